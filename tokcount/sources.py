"""From what the user typed (paths, prefixes, globs) to a list of sources with a format each."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

from . import formats
from .errors import FileCheckError
from .formats.base import Format


@dataclass(frozen=True)
class Source:
    path: str  # for an indexed pair: its prefix
    format: Format


def _has_magic(arg: str) -> bool:
    return any(c in arg for c in "*?[")


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
            fmt = formats.detect(path)
            if fmt is None:
                if not os.path.exists(path):
                    failures.append(
                        FileCheckError(path, "open", "no such file, and no .bin/.idx pair with this prefix")
                    )
                else:
                    failures.append(
                        FileCheckError(path, "format", f"unknown format (expected {formats.EXPECTED_SUFFIXES})")
                    )
                continue
            key_path = fmt.source_path(path)
            if (fmt.name, key_path) in seen:
                continue
            seen.add((fmt.name, key_path))
            sources.append(Source(key_path, fmt))
    return sources, failures
