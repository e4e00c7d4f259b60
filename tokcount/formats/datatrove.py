"""datatrove's ``DocumentTokenizer`` output: ``<name>.ds`` and its companions.

Layout, read from datatrove 0.10.1 (``datatrove/pipeline/tokens/tokenizer.py``, ``TokenizedFile``):

- ``<name>.ds``: the token ids, little-endian, 2 bytes each (``struct`` "H") or 4 ("I") when the
  vocabulary has more than 65,536 entries;
- ``<name>.ds.index``: each document's end offset in tokens, uint64 little-endian, no header;
- ``<name>.ds.metadata``: three text lines, ``<tokenizer>|<token size>``, the token count, and
  the count humanized ("1.2M");
- ``<name>.ds.loss``: optional, one byte (a bool) per token.

Counted from the index alone and validated against the other files; the ``.ds`` is only
stat-ed, unless tokens are verified. Unlike datatrove's ``check_dataset`` (which reads every
token as 2 bytes), the token size comes from the metadata, or from the sizes when it is missing.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import FileCheckError
from ..lazy_import import lazy_module
from .base import TokenFormat, TokenLayout, regular_file_problem
from .indexed import IndexedShard

indexed_kernels = lazy_module("tokcount.formats.indexed_kernels")  # numba, on first use

DATA_SUFFIX = ".ds"
INDEX_SUFFIX = ".ds.index"
METADATA_SUFFIX = ".ds.metadata"
LOSS_SUFFIX = ".ds.loss"
COMPANION_SUFFIXES = (INDEX_SUFFIX, METADATA_SUFFIX, LOSS_SUFFIX)
TOKEN_DTYPES: dict[int, np.dtype] = {2: np.dtype("<u2"), 4: np.dtype("<u4")}


def data_path_of(path: str) -> str:
    """``x.ds.index``, ``x.ds.metadata`` and ``x.ds.loss`` all belong to ``x.ds``."""
    for suffix in COMPANION_SUFFIXES:
        if path.endswith(suffix):
            return path[: -len(suffix) + len(DATA_SUFFIX)]
    return path


def _size_of(path: str) -> int:
    problem = regular_file_problem(path)
    if problem is not None:
        raise FileCheckError(path, "open", problem)
    return os.path.getsize(path)


def read_metadata(path: str) -> tuple[str, int, int]:
    """(tokenizer name, token size, token count) from a ``.ds.metadata`` file."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise FileCheckError(path, "open", getattr(e, "strerror", None) or str(e)) from None
    if len(lines) < 2:
        raise FileCheckError(
            path,
            "metadata",
            f"{len(lines)} line(s); expected 'tokenizer|token_size', the token count, a humanized count",
        )
    # The tokenizer's name may itself hold a "|": the token size is what follows the last one.
    name, bar, size_text = lines[0].rpartition("|")
    if not bar or size_text.strip() not in ("2", "4"):
        raise FileCheckError(path, "metadata", f"expected 'tokenizer|2' or 'tokenizer|4', found {lines[0]!r}", "line 1")
    try:
        count = int(lines[1].strip())
    except ValueError:
        raise FileCheckError(path, "metadata", f"the token count is not an integer: {lines[1]!r}", "line 2") from None
    return name, int(size_text), count


def open_ds(path: str) -> IndexedShard:
    """Read and validate a ``.ds`` file and its companions. Raises FileCheckError."""
    ds_path = data_path_of(path)
    index_path, metadata_path, loss_path = (ds_path[: -len(DATA_SUFFIX)] + s for s in COMPANION_SUFFIXES)
    if not os.path.exists(ds_path):
        raise FileCheckError(path, "pairing", f"{ds_path} does not exist (the token data of this .ds file)")
    ds_bytes = _size_of(ds_path)
    if not os.path.exists(index_path):
        raise FileCheckError(
            ds_path,
            "pairing",
            f"{index_path} does not exist: without it the document ends are unknown "
            "(datatrove writes it unless save_index=False)",
        )
    index_bytes = _size_of(index_path)
    if index_bytes % 8:
        raise FileCheckError(index_path, "index size", f"{index_bytes} bytes, not a multiple of 8 (uint64 entries)")
    documents = index_bytes // 8
    ends = (
        np.memmap(index_path, dtype="<u8", mode="r", shape=(documents,)) if documents else np.zeros(0, dtype=np.uint64)
    )
    last_end = int(ends[-1]) if documents else 0

    details: dict = {"token_size": None, "tokenizer": None, "loss_file": False}
    if os.path.exists(metadata_path):
        _size_of(metadata_path)
        tokenizer, token_size, stated = read_metadata(metadata_path)
        details.update(tokenizer=tokenizer, token_size=token_size)
    else:
        stated = None
        token_size = _infer_token_size(ds_path, ds_bytes, last_end)
        details["token_size"] = token_size
    dtype = TOKEN_DTYPES[token_size]
    if ds_bytes % token_size:
        raise FileCheckError(
            ds_path, ".ds size", f"{ds_bytes} bytes, not a multiple of the token size {token_size} (truncated?)"
        )
    tokens = ds_bytes // token_size
    if last_end != tokens:
        raise FileCheckError(
            index_path,
            "last document end == tokens",
            f"the last entry is {last_end}, but {ds_path} holds {tokens} tokens of {token_size} bytes",
            f"entry {documents - 1}" if documents else "entry 0",
        )
    bounds = np.empty(documents + 1, dtype=np.int64)
    bounds[0] = 0
    bounds[1:] = ends  # an entry >= 2^63 turns negative here, and fails the order check below
    empty, first_bad = indexed_kernels.document_index_summary(bounds, tokens)
    if first_bad >= 0:
        j = int(first_bad)
        value = int(bounds[j])
        previous = f"entry {j - 2} = {int(bounds[j - 1])}" if j >= 2 else "the start, 0"
        problem = f"exceeds the {tokens} tokens" if value > tokens else f"comes after {previous}"
        raise FileCheckError(
            index_path, "document ends non-decreasing", f"entry {j - 1} = {value} {problem}", f"entry {j - 1}"
        )
    if stated is not None and stated != tokens:
        raise FileCheckError(
            metadata_path, "metadata token count", f"states {stated} tokens, {ds_path} holds {tokens}", "line 2"
        )
    if os.path.exists(loss_path):
        loss_bytes = _size_of(loss_path)
        details["loss_file"] = True
        if loss_bytes != tokens:
            raise FileCheckError(
                loss_path, "loss file size", f"{loss_bytes} bytes, but there are {tokens} tokens (one byte each)"
            )
    sizes = np.diff(bounds)
    return IndexedShard(
        prefix=ds_path,
        idx_path=index_path,
        bin_path=ds_path,
        format="datatrove",
        dtype=dtype,
        sizes=sizes,
        doc_idx=np.arange(documents + 1, dtype=np.int64),
        bin_bytes=ds_bytes,
        tokens=tokens,
        empty_documents=int(empty),
        details=details,
    )


def _infer_token_size(ds_path: str, ds_bytes: int, last_end: int) -> int:
    """Without a metadata file: the size that makes the last document end the file's end."""
    for size in (2, 4):
        if last_end and ds_bytes == last_end * size:
            return size
    if ds_bytes == 0 and last_end == 0:
        return 2  # empty: no token to read, whatever their size
    raise FileCheckError(
        ds_path,
        "token size",
        f"no .ds.metadata, and {ds_bytes} bytes is neither 2 nor 4 bytes times the {last_end} tokens the index ends at",
    )


class DatatroveFormat(TokenFormat):
    """A datatrove ``.ds`` file, named by it or by any of its companion files."""

    name = "datatrove"
    label = "datatrove .ds"

    def detect(self, path: str) -> bool:
        return path.endswith((DATA_SUFFIX, *COMPANION_SUFFIXES))

    def source_path(self, path: str) -> str:
        return data_path_of(path)

    def open(self, path: str, layout: TokenLayout | None = None) -> IndexedShard:
        return open_ds(path)
