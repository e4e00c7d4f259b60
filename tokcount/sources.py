"""From what the user typed (paths, prefixes, globs) to a list of sources with a format each."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

from . import columnar, jsonl
from .errors import FileCheckError
from .indexed_dataset import DATA_SUFFIX, INDEX_SUFFIX, prefix_of

INDEXED = "indexed"
JSONL = "jsonl"
PARQUET = "parquet"
ARROW = "arrow"
TEXT_FORMATS = (JSONL, PARQUET, ARROW)


@dataclass(frozen=True)
class Source:
    path: str  # for an indexed pair: its prefix
    format: str


def _has_magic(arg: str) -> bool:
    return any(c in arg for c in "*?[")


def detect_format(path: str) -> str | None:
    if path.endswith((INDEX_SUFFIX, DATA_SUFFIX)):
        return INDEXED
    if jsonl.is_jsonl(path):
        return JSONL
    columnar_format = columnar.format_of(path)
    if columnar_format is not None:
        return columnar_format
    if not os.path.exists(path) and (os.path.exists(path + INDEX_SUFFIX) or os.path.exists(path + DATA_SUFFIX)):
        return INDEXED  # a prefix, as training configs write it
    return None


def find_sources(args: list[str]) -> tuple[list[Source], list[FileCheckError]]:
    """Expand globs, pair .bin with .idx, drop duplicates; keep the user's order."""
    sources: list[Source] = []
    failures: list[FileCheckError] = []
    seen: set[tuple[str, str]] = set()
    for arg in args:
        if _has_magic(arg):
            paths = sorted(glob.glob(arg))
            if not paths:
                failures.append(FileCheckError(arg, "open", "no file matches this pattern"))
                continue
        else:
            paths = [arg]
        for path in paths:
            fmt = detect_format(path)
            if fmt is None:
                if not os.path.exists(path):
                    failures.append(FileCheckError(path, "open", "no such file, and no .bin/.idx pair with this prefix"))
                else:
                    failures.append(FileCheckError(
                        path, "format",
                        "unknown format (expected .bin/.idx, .jsonl[.gz|.zst|.bz2|.xz], .parquet or .arrow)"))
                continue
            key_path = prefix_of(path) if fmt == INDEXED else path
            if (fmt, key_path) in seen:
                continue
            seen.add((fmt, key_path))
            sources.append(Source(key_path, fmt))
    return sources, failures
