"""The registry of formats: one instance each, in detection order."""

from __future__ import annotations

import os

from .base import Format, TextFormat, TextPolicy, WorkUnit
from .columnar import ArrowFormat, ParquetFormat
from .datatrove import DatatroveFormat
from .indexed import IndexedFormat
from .jsonl import JsonlFormat
from .token_memmap import TokenMemmapFormat

JSONL = JsonlFormat()
PARQUET = ParquetFormat()
ARROW = ArrowFormat()
INDEXED = IndexedFormat()
DATATROVE = DatatroveFormat()
TOKEN_MEMMAP = TokenMemmapFormat()

# In detection order: the first whose detect() accepts a path reads it.
REGISTERED: tuple[Format, ...] = (INDEXED, DATATROVE, TOKEN_MEMMAP, JSONL, PARQUET, ARROW)
_BY_NAME = {f.name: f for f in REGISTERED}

EXPECTED_SUFFIXES = ".bin/.idx, .ds (datatrove), .npy (OLMo/dolma), .jsonl[.gz|.zst|.bz2|.xz], .parquet or .arrow"


def detect(path: str) -> Format | None:
    """The format a path's name says it has, or None."""
    for fmt in REGISTERED:
        if fmt.detect(path):
            return fmt
    return INDEXED if INDEXED.is_prefix(path) else None


def read_with(path: str) -> str | None:
    """The existing data file that ``path`` is a side file of (and is read with), or None."""
    for fmt in REGISTERED:
        owner = fmt.data_file_of(path)
        if owner is not None and os.path.isfile(owner):
            return owner
    return None


def text_format(name: str) -> TextFormat:
    fmt = _BY_NAME[name]
    if not isinstance(fmt, TextFormat):
        raise TypeError(f"{name} is not a text format")
    return fmt


def plan_units(
    source: int, path: str, name: str, policy: TextPolicy, target_bytes: int, compressed_parts: int = 1
) -> list[WorkUnit]:
    """The work units of one file of format ``name`` (see ``TextFormat.units``)."""
    return text_format(name).units(source, path, policy, target_bytes, compressed_parts)
