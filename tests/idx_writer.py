"""A test-side writer of ``.bin/.idx`` pairs, written from the byte layout in
``shared/spec/megatron_neox.md`` §1.1 and §1.7 independently of tokcount's reader.

Documents are lists of sequences; a sequence is a list of token ids. An empty document is [].
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

CODES = {np.uint8: 1, np.int8: 2, np.int16: 3, np.int32: 4, np.int64: 5, np.uint16: 8}


def write_mmidx(prefix, documents, dtype=np.uint16, multimodal_modes=None, dtype_code=None, version=1):
    """Write ``prefix.bin`` and ``prefix.idx`` the way both preprocessors do. Returns the sizes."""
    prefix = Path(prefix)
    sizes, doc_idx, chunks = [], [0], []
    for doc in documents:
        for seq in doc:
            arr = np.asarray(seq, dtype=dtype)
            chunks.append(arr.tobytes())
            sizes.append(arr.size)
        doc_idx.append(len(sizes))
    itemsize = np.dtype(dtype).itemsize
    pointers, ptr = [], 0
    for s in sizes:
        pointers.append(ptr)
        ptr += s * itemsize
    Path(str(prefix) + ".bin").write_bytes(b"".join(chunks))
    code = CODES[np.dtype(dtype).type] if dtype_code is None else dtype_code
    with open(str(prefix) + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(struct.pack("<Q", version))
        f.write(struct.pack("<B", code))
        f.write(struct.pack("<Q", len(sizes)))
        f.write(struct.pack("<Q", len(doc_idx)))
        f.write(np.asarray(sizes, dtype="<i4").tobytes())
        f.write(np.asarray(pointers, dtype="<i8").tobytes())
        f.write(np.asarray(doc_idx, dtype="<i8").tobytes())
        if multimodal_modes is not None:
            f.write(np.asarray(multimodal_modes, dtype="<i1").tobytes())
    return np.asarray(sizes, dtype=np.int64)


def write_tntidx(prefix, documents):
    """The legacy lazy/cached format (int32 data, element size 4)."""
    prefix = Path(prefix)
    sizes, doc_idx, chunks = [], [0], []
    for doc in documents:
        for seq in doc:
            arr = np.asarray(seq, dtype=np.int32)
            chunks.append(arr.tobytes())
            sizes.append(arr.size)
        doc_idx.append(len(sizes))
    data_offsets = [0]
    for s in sizes:
        data_offsets.append(data_offsets[-1] + s)
    dim_offsets = list(range(len(sizes) + 1))
    Path(str(prefix) + ".bin").write_bytes(b"".join(chunks))
    with open(str(prefix) + ".idx", "wb") as f:
        f.write(b"TNTIDX\x00\x00")
        f.write(struct.pack("<QQQ", 1, 4, 4))
        f.write(struct.pack("<QQ", len(sizes), len(sizes)))
        f.write(struct.pack("<Q", len(doc_idx)))
        f.write(np.asarray(dim_offsets, dtype="<i8").tobytes())
        f.write(np.asarray(data_offsets, dtype="<i8").tobytes())
        f.write(np.asarray(sizes, dtype="<i8").tobytes())
        f.write(np.asarray(doc_idx, dtype="<i8").tobytes())
    return np.asarray(sizes, dtype=np.int64)


def idx_layout(prefix):
    """Byte offsets of the MMIDIDX arrays, for tests that corrupt one field."""
    raw = Path(str(prefix) + ".idx").read_bytes()
    n, d = struct.unpack_from("<QQ", raw, 18)
    return {"n": n, "d": d, "sizes": 34, "pointers": 34 + 4 * n, "doc_idx": 34 + 12 * n, "end": 34 + 12 * n + 8 * d}


def patch(path, offset, fmt, value):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack(fmt, value))
