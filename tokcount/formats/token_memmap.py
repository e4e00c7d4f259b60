"""OLMo / dolma token memmaps: ``<name>.npy`` arrays of token ids, read by OLMo-core's
``NumpyFSLDataset``.

Despite the suffix these are usually raw ``np.memmap`` dumps with no numpy header (dolma's
tokenizer and OLMo-core's data guide write them with ``np.memmap(path, mode="w+", dtype=...)``),
uint16 or uint32; a real ``.npy`` header is accepted too. Documents are delimited by the EOS id
(``olmo_core/data/utils.py``, ``iter_document_indices``); dolma may write ``<name>.csv.gz``
beside the array, one ``start,end[,id,src,...]`` line of token offsets per document.

Documents come from that offsets file when present, else from a scan for ``--eod``. Without a
header the dtype is ``--dtype``, or what the offsets file or the file size allows: a size that
fits both uint16 and uint32 is refused rather than guessed.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from ..errors import FileCheckError
from ..lazy_import import lazy_module
from .base import TokenFormat, TokenLayout, regular_file_problem
from .indexed import WINDOW_BYTES, IndexedShard, map_window

indexed_kernels = lazy_module("tokcount.formats.indexed_kernels")  # numba, on first use

SUFFIX = ".npy"
OFFSETS_SUFFIX = ".csv.gz"
NPY_MAGIC = b"\x93NUMPY"
DTYPES: dict[str, np.dtype] = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}


def offsets_path_of(path: str) -> str:
    return path[: -len(SUFFIX)] + OFFSETS_SUFFIX


def _npy_header(path: str) -> tuple[np.dtype, int, int] | None:
    """(dtype, tokens, data offset) from a real ``.npy`` header, or None when there is none."""
    with open(path, "rb") as f:
        if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
            return None
        f.seek(0)
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(
                    f"npy format version {version[0]}.{version[1]}: token arrays are written as 1.0 or 2.0"
                )
        except ValueError as e:
            raise FileCheckError(path, "npy header", str(e), "byte 0") from None
        offset = f.tell()
    if len(shape) != 1:
        raise FileCheckError(path, "npy header", f"shape {shape}: a token array is 1-D")
    if dtype.newbyteorder("<") not in DTYPES.values() or dtype.byteorder == ">":
        raise FileCheckError(path, "npy header", f"dtype {dtype.str}: token ids are little-endian uint16 or uint32")
    return np.dtype(dtype.newbyteorder("<")), int(shape[0]), offset


def _read_offsets(path: str) -> np.ndarray:
    """Document boundaries [0, end_0, end_1, ...] from a dolma ``.csv.gz``, checked contiguous."""
    bounds = [0]
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            for number, line in enumerate(f, 1):
                fields = line.split(",", 2)
                try:
                    start, end = int(fields[0]), int(fields[1])
                except (ValueError, IndexError):
                    raise FileCheckError(
                        path,
                        "offsets",
                        f"expected 'start,end,...' token offsets, found {line.strip()[:80]!r}",
                        f"line {number}",
                    ) from None
                if start != bounds[-1] or end < start:
                    raise FileCheckError(
                        path,
                        "offsets contiguous",
                        f"document [{start}, {end}) after one ending at {bounds[-1]}",
                        f"line {number}",
                    )
                bounds.append(end)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        raise FileCheckError(path, "open", getattr(e, "strerror", None) or str(e)) from None
    return np.asarray(bounds, dtype=np.int64)


def _eod_bounds(path: str, dtype: np.dtype, data_offset: int, tokens: int, eod: int) -> tuple[np.ndarray, bool]:
    """Document boundaries from the positions of ``eod``: [0, p_0 + 1, p_1 + 1, ...], plus the
    end of the file when the last document does not end in it (then also True)."""
    window = max(1, WINDOW_BYTES // dtype.itemsize)
    pieces = [np.zeros(1, dtype=np.int64)]
    with open(path, "rb") as f:
        for start in range(0, tokens, window):
            count = min(window, tokens - start)
            with map_window(f, path, data_offset + start * dtype.itemsize, count * dtype.itemsize) as (view, delta):
                ids = np.frombuffer(view, dtype=dtype, count=count, offset=delta)
                pieces.append(indexed_kernels.value_positions(ids, eod) + (start + 1))
                del ids  # the mapping can only close once no array points into it
    bounds = np.concatenate(pieces)
    unterminated = int(bounds[-1]) != tokens
    if unterminated:
        bounds = np.append(bounds, tokens)
    return bounds, unterminated


def open_memmap(path: str, layout: TokenLayout | None = None) -> IndexedShard:
    """Validate a token memmap and find its documents. Raises FileCheckError."""
    layout = layout or TokenLayout()
    problem = regular_file_problem(path)
    if problem is not None:
        raise FileCheckError(path, "open", problem)
    file_bytes = os.path.getsize(path)
    offsets_path = offsets_path_of(path)
    has_offsets = os.path.exists(offsets_path)
    bounds = _read_offsets(offsets_path) if has_offsets else None
    stated = DTYPES[layout.dtype] if layout.dtype is not None else None
    header = _npy_header(path)
    warnings: list[str] = []
    if header is not None:
        dtype, tokens, data_offset = header
        if stated is not None and stated != dtype:
            raise FileCheckError(path, "dtype", f"--dtype {layout.dtype}, but the .npy header says {dtype.name}")
        if file_bytes != data_offset + tokens * dtype.itemsize:
            raise FileCheckError(
                path,
                "file size",
                f"{file_bytes} bytes, but the header's {tokens} {dtype.name} ids after {data_offset} header bytes "
                f"need {data_offset + tokens * dtype.itemsize}",
            )
        warnings.append(
            f"a real .npy header ({data_offset} bytes): OLMo-core maps these files raw and would read "
            "the header as token ids"
        )
    else:
        data_offset = 0
        dtype = stated if stated is not None else _infer_dtype(path, file_bytes, bounds)
        if file_bytes % dtype.itemsize:
            raise FileCheckError(
                path, "file size", f"{file_bytes} bytes, not a multiple of {dtype.itemsize} ({dtype.name} ids)"
            )
        tokens = file_bytes // dtype.itemsize
    if bounds is not None:
        if int(bounds[-1]) != tokens:
            raise FileCheckError(
                offsets_path,
                "last offset == tokens",
                f"the last document ends at {int(bounds[-1])}, but {path} holds {tokens} {dtype.name} tokens",
                f"line {bounds.shape[0] - 1}",
            )
        source = "offsets file"
    elif layout.eod is not None:
        bounds, unterminated = _eod_bounds(path, dtype, data_offset, tokens, layout.eod)
        source = f"EOS id {layout.eod}"
        if unterminated:
            warnings.append(
                f"the last document ({int(bounds[-1] - bounds[-2])} tokens) does not end in EOS id {layout.eod}"
            )
    else:
        raise FileCheckError(
            path,
            "documents",
            f"no {os.path.basename(offsets_path)} offsets file beside it: give --eod ID to find the documents "
            "by their EOS id",
        )
    sizes = np.diff(bounds)
    return IndexedShard(
        prefix=path,
        idx_path=offsets_path if has_offsets else path,
        bin_path=path,
        format="npy" if header is not None else "npy-raw",
        dtype=dtype,
        sizes=sizes,
        doc_idx=np.arange(sizes.shape[0] + 1, dtype=np.int64),
        bin_bytes=file_bytes,
        tokens=tokens,
        empty_documents=int(np.count_nonzero(sizes == 0)),
        warnings=warnings,
        data_offset=data_offset,
        details={"documents_from": source, "npy_header": header is not None},
    )


def _infer_dtype(path: str, file_bytes: int, bounds: np.ndarray | None) -> np.dtype:
    if bounds is not None and int(bounds[-1]) > 0:
        for dtype in DTYPES.values():
            if file_bytes == int(bounds[-1]) * dtype.itemsize:
                return dtype
    fits = [d for d in DTYPES.values() if file_bytes % d.itemsize == 0]
    if len(fits) == 1:
        return fits[0]
    if not fits:
        raise FileCheckError(path, "dtype", f"{file_bytes} bytes is an odd size: neither uint16 nor uint32 ids")
    raise FileCheckError(
        path,
        "dtype",
        f"no .npy header, and {file_bytes} bytes fits both uint16 and uint32 ids: give --dtype uint16 or --dtype uint32",
    )


class TokenMemmapFormat(TokenFormat):
    """An OLMo / dolma ``.npy`` token array (with its ``.csv.gz`` offsets when dolma wrote one)."""

    name = "token-memmap"
    label = "OLMo/dolma .npy"

    def detect(self, path: str) -> bool:
        return path.endswith(SUFFIX)

    def data_file_of(self, path: str) -> str | None:
        return path[: -len(OFFSETS_SUFFIX)] + SUFFIX if path.endswith(OFFSETS_SUFFIX) else None

    def open(self, path: str, layout: TokenLayout | None = None) -> IndexedShard:
        return open_memmap(path, layout)
