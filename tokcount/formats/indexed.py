"""Megatron-LM / GPT-NeoX ``.bin/.idx`` pairs: the MMIDIDX index (plain and multimodal) and the
legacy TNTIDX index.

Byte layouts and validation rules follow ``shared/spec/megatron_neox.md`` §1 (read from the
NeoX and Megatron-LM writers and readers). Counting reads only the index, through numpy memmaps;
the ``.bin`` is only stat-ed, unless tokens are verified.
"""

from __future__ import annotations

import errno
import gc
import mmap
import os
import struct
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .. import storage
from ..errors import FileCheckError
from ..lazy_import import lazy_module
from .base import TokenFormat, TokenLayout, regular_file_problem

indexed_kernels = lazy_module("tokcount.formats.indexed_kernels")  # numba, on first use

MMIDIDX_MAGIC = b"MMIDIDX\x00\x00"
TNTIDX_MAGIC = b"TNTIDX\x00\x00"
MMIDIDX_HEADER_BYTES = 34  # magic 9 + version 8 + dtype 1 + N 8 + D 8
TNTIDX_HEADER_BYTES = 56

# dtype codes shared by NeoX and Megatron; 6 and 7 mean opposite floats in the two (spec §1.2).
DTYPE_CODES: dict[int, np.dtype] = {
    1: np.dtype(np.uint8),
    2: np.dtype(np.int8),
    3: np.dtype(np.int16),
    4: np.dtype(np.int32),
    5: np.dtype(np.int64),
    8: np.dtype(np.uint16),
}
AMBIGUOUS_FLOAT_CODES = {6: "float64 in Megatron, float32 in GPT-NeoX", 7: "float32 in Megatron, float64 in GPT-NeoX"}
TOKEN_DTYPE_CODES = {4, 8}

INDEX_SUFFIX = ".idx"
DATA_SUFFIX = ".bin"


@dataclass
class IndexedShard:
    """A validated ``.bin/.idx`` pair and its counts."""

    prefix: str
    idx_path: str
    bin_path: str
    format: str  # "mmidx", "mmidx-multimodal" or "tntidx"
    dtype: np.dtype
    sizes: np.ndarray  # tokens per sequence, file order
    doc_idx: np.ndarray
    bin_bytes: int
    tokens: int
    empty_documents: int
    warnings: list[str] = field(default_factory=list)
    data_offset: int = 0  # bytes before the first token of the data file (a .npy header)
    details: dict = field(default_factory=dict)  # what the format's own metadata adds to the report

    @property
    def sequences(self) -> int:
        return int(self.sizes.shape[0])

    @property
    def documents(self) -> int:
        return int(self.doc_idx.shape[0]) - 1

    def document_token_spans(self) -> tuple[np.ndarray, np.ndarray]:
        """(begin, end) token offsets of each document in the ``.bin`` (int64, length D-1 each)."""
        seq_ends = np.empty(self.sequences + 1, dtype=np.int64)
        seq_ends[0] = 0
        np.cumsum(self.sizes, dtype=np.int64, out=seq_ends[1:])
        return seq_ends[self.doc_idx[:-1]], seq_ends[self.doc_idx[1:]]


def prefix_of(path: str) -> str:
    """``data/x.bin``, ``data/x.idx`` and ``data/x`` all name the pair ``data/x``."""
    root, ext = os.path.splitext(path)
    return root if ext in (INDEX_SUFFIX, DATA_SUFFIX) else path


def open_shard(path: str) -> IndexedShard:
    """Read and validate the index of a pair, and the ``.bin`` size. Raises FileCheckError."""
    prefix = prefix_of(path)
    idx_path, bin_path = prefix + INDEX_SUFFIX, prefix + DATA_SUFFIX
    if storage.is_remote(prefix):
        return _open_remote_shard(path, prefix, idx_path, bin_path)
    for p in (idx_path, bin_path):
        problem = regular_file_problem(p) if os.path.exists(p) else None
        if problem is not None:  # a directory named x.bin must not pass on its st_size
            raise FileCheckError(p, "open", problem)
    for p, partner in ((idx_path, bin_path), (bin_path, idx_path)):
        if not os.path.exists(p):
            shown = path if os.path.exists(partner) else prefix
            raise FileCheckError(shown, "pairing", f"{p} does not exist (a .bin needs its .idx and vice versa)")
    try:
        idx_bytes = os.path.getsize(idx_path)
        bin_bytes = os.path.getsize(bin_path)
        with open(idx_path, "rb") as f:
            magic = f.read(9)
    except OSError as e:
        raise FileCheckError(idx_path, "open", e.strerror or str(e)) from None
    return _open_index(prefix, idx_path, bin_path, idx_path, magic, idx_bytes, bin_bytes)


def _open_remote_shard(path: str, prefix: str, idx_path: str, bin_path: str) -> IndexedShard:
    """A pair in object storage: the ``.idx`` read whole (one GET), the ``.bin`` only sized."""
    present = {}
    for p in (idx_path, bin_path):
        try:
            present[p] = storage.size(p)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise FileCheckError(p, "open", e.strerror or str(e)) from None
    for p, partner in ((idx_path, bin_path), (bin_path, idx_path)):
        if p not in present:
            shown = path if partner in present else prefix
            raise FileCheckError(shown, "pairing", f"{p} does not exist (a .bin needs its .idx and vice versa)")
    try:
        index = storage.read_bytes(idx_path)
    except OSError as e:
        raise FileCheckError(idx_path, "open", e.strerror or str(e)) from None
    return _open_index(prefix, idx_path, bin_path, index, index[:9], len(index), present[bin_path])


def _open_index(prefix, idx_path, bin_path, index, magic, idx_bytes, bin_bytes) -> IndexedShard:
    """``index``: the ``.idx`` path (memory-mapped) or its bytes (read remotely)."""
    if magic == MMIDIDX_MAGIC:
        return _open_mmidx(prefix, idx_path, bin_path, idx_bytes, bin_bytes, index)
    if magic[:8] == TNTIDX_MAGIC:
        return _open_tntidx(prefix, idx_path, bin_path, idx_bytes, bin_bytes, index)
    raise FileCheckError(
        idx_path, "magic", f"expected {MMIDIDX_MAGIC!r} or {TNTIDX_MAGIC!r}, found {magic!r}", "byte 0"
    )


def _open_mmidx(prefix, idx_path, bin_path, idx_bytes, bin_bytes, index) -> IndexedShard:
    if idx_bytes < MMIDIDX_HEADER_BYTES:
        raise FileCheckError(
            idx_path, "header", f"index is {idx_bytes} bytes, shorter than the {MMIDIDX_HEADER_BYTES}-byte header"
        )
    header = _header(index, MMIDIDX_HEADER_BYTES)
    (version,) = struct.unpack_from("<Q", header, 9)
    (code,) = struct.unpack_from("<B", header, 17)
    n, d = struct.unpack_from("<QQ", header, 18)
    if version != 1:
        raise FileCheckError(idx_path, "version", f"version {version}, only 1 exists", "byte 9")
    dtype = _token_dtype(idx_path, code, "byte 17")
    warnings = []
    if code not in TOKEN_DTYPE_CODES:
        warnings.append(f"dtype {dtype} (code {code}) is unusual for token data: preprocessing writes uint16 or int32")

    expected = MMIDIDX_HEADER_BYTES + 12 * n + 8 * d
    if idx_bytes == expected:
        fmt = "mmidx"
    elif idx_bytes == expected + n:
        fmt = "mmidx-multimodal"  # a trailing int8 mode per sequence (spec §1.1)
    else:
        raise FileCheckError(
            idx_path,
            "index size",
            f"{idx_bytes} bytes, but the header (N={n} sequences, D={d}) needs 34 + 12N + 8D = {expected}"
            + (" (truncated?)" if idx_bytes < expected else ""),
        )
    if d < 1:
        raise FileCheckError(idx_path, "doc_idx", "D = 0: doc_idx must hold at least its leading 0", "byte 26")

    offset = MMIDIDX_HEADER_BYTES
    sizes = _memmap(index, np.int32, offset, n)
    offset += 4 * n
    pointers = _memmap(index, np.int64, offset, n)
    offset += 8 * n
    doc_idx = _memmap(index, np.int64, offset, d)
    offset += 8 * d

    tokens, first_negative, first_bad_pointer = indexed_kernels.index_sizes_summary(sizes, pointers, dtype.itemsize)
    if first_negative >= 0:
        raise FileCheckError(idx_path, "sizes >= 0", f"size {int(sizes[first_negative])}", f"sequence {first_negative}")
    if first_bad_pointer >= 0:
        i = int(first_bad_pointer)
        expected_ptr = int(np.sum(sizes[:i], dtype=np.int64)) * dtype.itemsize
        hint = ""
        if (int(pointers[i]) - expected_ptr) % 2**32 == 0:
            hint = " (equal modulo 2^32: the int32 pointer overflow of older Megatron-core merges, spec §1.6)"
        raise FileCheckError(
            idx_path,
            "pointers",
            f"pointer {int(pointers[i])} != {expected_ptr}, the byte offset implied by the sizes before it{hint}",
            f"sequence {i}",
        )
    empty = _check_doc_idx(idx_path, doc_idx, n)

    if fmt == "mmidx-multimodal":
        modes = _memmap(index, np.int8, offset, n)
        non_text = int(np.count_nonzero(modes))
        if non_text:
            warnings.append(
                f"multimodal index: {non_text} of {n} sequences are not text (mode != 0); they are counted as tokens"
            )

    _check_bin_size(bin_path, bin_bytes, int(tokens), dtype)
    return IndexedShard(prefix, idx_path, bin_path, fmt, dtype, sizes, doc_idx, bin_bytes, int(tokens), empty, warnings)


def _open_tntidx(prefix, idx_path, bin_path, idx_bytes, bin_bytes, index) -> IndexedShard:
    # Legacy fairseq-style index still read by GPT-NeoX (spec §1.7). All arrays are int64.
    if idx_bytes < TNTIDX_HEADER_BYTES:
        raise FileCheckError(
            idx_path, "header", f"index is {idx_bytes} bytes, shorter than the {TNTIDX_HEADER_BYTES}-byte TNTIDX header"
        )
    header = _header(index, TNTIDX_HEADER_BYTES)
    version, code, element_size, length, s, doc_count = struct.unpack_from("<6Q", header, 8)
    if version != 1:
        raise FileCheckError(idx_path, "version", f"version {version}, only 1 exists", "byte 8")
    dtype = _token_dtype(idx_path, code, "byte 16")
    if dtype.itemsize != element_size:
        raise FileCheckError(idx_path, "element size", f"{element_size} does not match dtype {dtype}", "byte 24")
    expected = TNTIDX_HEADER_BYTES + 8 * (2 * (length + 1) + s + doc_count)
    if idx_bytes != expected:
        raise FileCheckError(idx_path, "index size", f"{idx_bytes} bytes, but the header needs {expected}")
    if s != length:
        raise FileCheckError(
            idx_path, "sizes", f"{s} size entries for {length} items: only 1-D token items are supported"
        )
    if doc_count < 1:
        raise FileCheckError(idx_path, "doc_idx", "doc_count = 0: doc_idx must hold at least its leading 0", "byte 48")
    offset = TNTIDX_HEADER_BYTES + 8 * (length + 1)  # skip dim_offsets
    data_offsets = _memmap(index, np.int64, offset, length + 1)
    offset += 8 * (length + 1)
    sizes64 = _memmap(index, np.int64, offset, s)
    offset += 8 * s
    doc_idx = _memmap(index, np.int64, offset, doc_count)

    if length and (sizes64.min() < 0 or sizes64.max() > np.iinfo(np.int32).max):
        i = int(np.argmax((sizes64 < 0) | (sizes64 > np.iinfo(np.int32).max)))
        raise FileCheckError(idx_path, "sizes >= 0", f"size {int(sizes64[i])}", f"item {i}")
    sizes = sizes64.astype(np.int32)
    # data_offsets are in elements; reuse the pointer check with itemsize 1.
    tokens, _, first_bad = indexed_kernels.index_sizes_summary(sizes, data_offsets[:-1], 1)
    if first_bad >= 0 or (length and int(data_offsets[-1]) != int(tokens)):
        i = int(first_bad) if first_bad >= 0 else length
        raise FileCheckError(idx_path, "data offsets", "not the cumulative sum of the sizes", f"item {i}")
    empty = _check_doc_idx(idx_path, doc_idx, length)
    _check_bin_size(bin_path, bin_bytes, int(tokens), dtype)
    return IndexedShard(prefix, idx_path, bin_path, "tntidx", dtype, sizes, doc_idx, bin_bytes, int(tokens), empty, [])


def _token_dtype(idx_path: str, code: int, where: str) -> np.dtype:
    if code in AMBIGUOUS_FLOAT_CODES:
        raise FileCheckError(
            idx_path,
            "dtype code",
            f"code {code} is {AMBIGUOUS_FLOAT_CODES[code]}; token data is int32 (4) or uint16 (8)",
            where,
        )
    if code not in DTYPE_CODES:
        raise FileCheckError(idx_path, "dtype code", f"unknown code {code}; valid codes are 1-8", where)
    return DTYPE_CODES[code]


def _check_doc_idx(idx_path: str, doc_idx: np.ndarray, n: int) -> int:
    if int(doc_idx[0]) != 0:
        raise FileCheckError(idx_path, "doc_idx[0] == 0", f"doc_idx[0] is {int(doc_idx[0])}", "document 0")
    empty, first_bad = indexed_kernels.document_index_summary(doc_idx, n)
    if first_bad >= 0:
        j = int(first_bad)
        raise FileCheckError(
            idx_path,
            "doc_idx non-decreasing",
            f"doc_idx[{j}] = {int(doc_idx[j])} after doc_idx[{j - 1}] = {int(doc_idx[j - 1])} (N = {n})",
            f"document {j}",
        )
    if int(doc_idx[-1]) != n:
        hint = (
            " (a GPT-NeoX merge_file_ output keeps only doc_idx=[0]; Megatron's loader rejects it)"
            if doc_idx.shape[0] == 1
            else ""
        )
        raise FileCheckError(
            idx_path,
            "doc_idx[-1] == N",
            f"doc_idx[-1] is {int(doc_idx[-1])}, N is {n}{hint}",
            f"document {doc_idx.shape[0] - 1}",
        )
    return int(empty)


def _check_bin_size(bin_path: str, bin_bytes: int, tokens: int, dtype: np.dtype) -> None:
    expected = tokens * dtype.itemsize
    if bin_bytes != expected:
        raise FileCheckError(
            bin_path,
            ".bin size",
            f"{bin_bytes} bytes, but the index holds {tokens} {dtype} tokens = {expected} bytes"
            + (" (truncated?)" if bin_bytes < expected else ""),
        )


def _header(index: str | bytes, nbytes: int) -> bytes:
    if isinstance(index, bytes):
        return index[:nbytes]
    with open(index, "rb") as f:
        return f.read(nbytes)


def _memmap(index: str | bytes, dtype, offset: int, count: int) -> np.ndarray:
    """``count`` little-endian values at ``offset`` of the index: mapped from a local file, or
    a view of the bytes read from a remote one."""
    if count == 0:
        return np.zeros(0, dtype=dtype)
    little = np.dtype(dtype).newbyteorder("<")
    if isinstance(index, bytes):
        return np.frombuffer(index, dtype=little, count=count, offset=offset)
    return np.memmap(index, dtype=little, mode="r", offset=offset, shape=(count,))


# ---------------------------------------------------------------------------------------------
# Token verification: one pass over the .bin, in windows, so memory stays bounded.

WINDOW_BYTES = 256 << 20
REMOTE_WINDOW_BYTES = 64 << 20  # one ranged GET each: retried whole when a transfer fails


@contextmanager
def _token_window(f, shard: IndexedShard, start: int, count: int, remote: bool):
    """The tokens [start, start + count) of the data file: a mapped window of a local file, or
    one ranged read of a remote one."""
    itemsize = shard.dtype.itemsize
    at = shard.data_offset + start * itemsize
    if remote:
        try:
            f.seek(at)
            data = f.read(count * itemsize)
        except OSError as e:
            raise FileCheckError(shard.bin_path, "read", e.strerror or str(e), f"byte {at}") from None
        if len(data) != count * itemsize:
            raise FileCheckError(shard.bin_path, "read", f"{len(data)} of {count * itemsize} bytes", f"byte {at}")
        yield np.frombuffer(data, dtype=shard.dtype, count=count)
        return
    with map_window(f, shard.bin_path, at, count * itemsize) as (view, delta):
        tokens = np.frombuffer(view, dtype=shard.dtype, count=count, offset=delta)
        try:
            yield tokens
        finally:
            del tokens  # the mapping can only close once no array points into it


@dataclass
class TokenCheck:
    vocab_size: int
    max_token_id: int | None
    out_of_range: int
    first_out_of_range: int | None  # token position in the .bin
    eod: int | None = None
    documents_missing_eod: int | None = None
    first_document_missing_eod: int | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@contextmanager
def map_window(f, path: str, offset: int, length: int):
    """Map ``length`` bytes at ``offset`` read-only, pre-faulted: one window at a time keeps
    memory bounded, and MAP_POPULATE avoids a page fault per 4 KiB."""
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
    try:
        m = mmap.mmap(f.fileno(), length + offset - start, flags=flags, prot=mmap.PROT_READ, offset=start)
    except (OSError, ValueError) as e:
        raise FileCheckError(path, "read", str(e), f"byte {offset}") from None
    try:
        yield m, offset - start
    finally:
        _close_mapping(m)


def _close_mapping(m: mmap.mmap) -> None:
    """Unmap now if no array still points into the mapping. One can outlive the caller's
    ``del``: numba's first compile of a kernel may keep its arguments alive a little longer
    (seen once, in a fresh environment). Then collect and retry, and failing that leave the
    unmapping to the last view's release rather than fail the scan."""
    try:
        m.close()
    except BufferError:
        gc.collect()
        try:
            m.close()
        except BufferError:
            pass


def check_tokens(
    shard: IndexedShard, vocab_size: int, eod: int | None = None, progress=None, window_bytes: int = WINDOW_BYTES
) -> TokenCheck:
    """Scan every token of the ``.bin``: max id, ids outside [0, vocab), documents not ending in eod.

    ``progress(nbytes)`` is called after each window.
    """
    itemsize = shard.dtype.itemsize
    total = shard.tokens
    window = max(1, window_bytes // itemsize)
    top = None
    bad = 0
    first_bad = None
    missing = 0
    first_missing = None
    if eod is not None:
        begins, ends = shard.document_token_spans()
        nonempty = np.flatnonzero(ends > begins)
        last_positions = ends[nonempty] - 1
    remote = storage.is_remote(shard.bin_path)
    if remote:
        window = max(1, min(window_bytes, REMOTE_WINDOW_BYTES) // itemsize)
    try:
        f = storage.open_input(shard.bin_path, sequential=False)
    except OSError as e:
        raise FileCheckError(shard.bin_path, "open", e.strerror or str(e)) from None
    with f:
        for start in range(0, total, window):
            count = min(window, total - start)
            with _token_window(f, shard, start, count, remote) as tokens:
                w_top, w_bad, w_first = indexed_kernels.token_stats(tokens, vocab_size)
                top = int(w_top) if top is None else max(top, int(w_top))
                bad += int(w_bad)
                if first_bad is None and w_first >= 0:
                    first_bad = start + int(w_first)
                if eod is not None:
                    w_missing, w_first_missing = indexed_kernels.count_missing_eod(tokens, start, last_positions, eod)
                    missing += int(w_missing)
                    if first_missing is None and w_first_missing >= 0:
                        first_missing = int(nonempty[w_first_missing])
                del tokens  # the mapping can only close once no array points into it
            if progress is not None:
                progress(count * itemsize)
    return TokenCheck(vocab_size, top, bad, first_bad, eod, missing if eod is not None else None, first_missing)


class IndexedFormat(TokenFormat):
    """A ``.bin/.idx`` pair, named by either file or by its prefix. Counted from the index alone
    (``open_shard``); the ``.bin`` is read only to verify tokens."""

    name = "indexed"
    label = "Megatron/NeoX .bin/.idx"

    def detect(self, path: str) -> bool:
        return path.endswith((INDEX_SUFFIX, DATA_SUFFIX))

    def is_prefix(self, path: str) -> bool:
        """A prefix, as training configs write it: no such file, but a .bin or .idx beside it."""
        return not storage.exists(path) and (storage.exists(path + INDEX_SUFFIX) or storage.exists(path + DATA_SUFFIX))

    def source_path(self, path: str) -> str:
        return prefix_of(path)

    def open(self, path: str, layout: TokenLayout | None = None) -> IndexedShard:
        return open_shard(path)
