"""From what the user typed (paths, prefixes, globs, directories) to a list of sources with a
format each.

- ``**`` in a glob matches any depth, as in bash's globstar, pathlib and fsspec.
- A directory is walked recursively; files are picked by suffix, and hidden or unknown files
  are listed as skipped, never silently dropped.
- The same file named twice (relative and absolute, ``./x``, a symlink, a ``.bin`` prefix and
  its ``.bin`` path) is one source: files are identified by device and inode, and every merge
  is listed.
- URIs (``s3://bucket/prefix/**/*.parquet``, ``hf://datasets/...``, ``https://...``) are listed
  through ``tokcount.storage``: a glob, a prefix (walked like a directory), an object, or a
  ``.bin/.idx`` prefix; an object is identified by its URI.
- Inputs that are not regular files (a directory named ``x.bin``, a FIFO, a device) are refused
  with one line, before anything opens them.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

from . import formats, storage
from .errors import FileCheckError
from .formats.base import Format, regular_file_problem


@dataclass(frozen=True)
class Source:
    path: str  # for an indexed pair: its prefix
    format: Format


@dataclass
class Discovery:
    sources: list[Source] = field(default_factory=list)
    failures: list[FileCheckError] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"}: files a directory walk left out
    merged: list[dict] = field(default_factory=list)  # {"path", "same_as"}: inputs naming a file already listed


def _has_magic(arg: str) -> bool:
    return any(c in arg for c in "*?[")


def _identity(path: str, fmt: Format) -> tuple[int, int] | str:
    """What makes two names the same input: the (device, inode) of the file, for a pair that of
    its index; the resolved path when the file cannot be stat-ed."""
    probe = fmt.source_path(path) + ".idx" if fmt is formats.INDEXED else fmt.source_path(path)
    try:
        st = os.stat(probe)
        return (st.st_dev, st.st_ino)
    except OSError:
        return os.path.realpath(fmt.source_path(path))


def _walk(directory: str, discovery: Discovery) -> list[str]:
    """The files under ``directory`` that have a format, in sorted order; the others are
    listed as skipped. Hidden files and directories are skipped (caches, .git, editor files)."""
    found: list[str] = []
    for root, dirs, files in os.walk(directory):
        hidden_dirs = sorted(d for d in dirs if d.startswith("."))
        for d in hidden_dirs:
            discovery.skipped.append({"path": os.path.join(root, d), "reason": "hidden directory"})
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = os.path.join(root, name)
            if name.startswith("."):
                discovery.skipped.append({"path": path, "reason": "hidden file"})
            elif formats.detect(path) is None:
                if formats.read_with(path) is None:  # a side file (x.csv.gz of x.npy) is read with its data file
                    discovery.skipped.append({"path": path, "reason": "unknown format"})
            else:
                found.append(path)
    return found


def _files_of_one_source(a: str, b: str, fmt: Format) -> bool:
    """x.bin and x.idx, or x.ds and x.ds.index: one source's files, which a glob like data/*
    names all of (a prefix and its .bin are two names of one file set: that merge is listed)."""
    if fmt is formats.INDEXED:
        (root_a, ext_a), (root_b, ext_b) = os.path.splitext(a), os.path.splitext(b)
        return root_a == root_b and {ext_a, ext_b} == {".bin", ".idx"}
    return a != b and fmt.source_path(a) == fmt.source_path(b)


def find_sources(args: list[str]) -> Discovery:
    """Expand globs and directories, pair .bin with .idx, merge names of the same file; keep
    the user's order."""
    discovery = Discovery()
    seen: dict[tuple[int, int] | str, tuple[str, str]] = {}  # identity -> (source path, the name first given)
    for arg in args:
        if storage.is_remote(arg):
            _add_remote(arg, discovery, seen)
            continue
        if arg == "-":
            if any(s.path == "-" for s in discovery.sources):
                discovery.merged.append({"path": "-", "same_as": "-"})
            else:
                discovery.sources.append(Source("-", formats.JSONL))  # standard input: JSON lines, any compression
            continue
        if _has_magic(arg):
            paths = sorted(glob.glob(arg, recursive=True))
            if not paths:
                discovery.failures.append(FileCheckError(arg, "open", "no file matches this pattern"))
                continue
        elif os.path.isdir(arg) and formats.detect(arg) is None:
            paths = _walk(arg, discovery)
            if not paths:
                discovery.failures.append(
                    FileCheckError(arg, "open", f"the directory holds no {formats.EXPECTED_SUFFIXES} file")
                )
                continue
        else:
            paths = [arg]
        for path in paths:
            fmt = formats.detect(path)
            if fmt is None:
                if os.path.isdir(path):
                    continue  # a glob's directory match: its files are matched or not by the glob itself
                owner = formats.read_with(path)
                if owner is not None and owner in paths:
                    continue  # a glob's x.csv.gz: read with its x.npy, which the glob names too
                if not os.path.exists(path):
                    discovery.failures.append(
                        FileCheckError(path, "open", "no such file, and no .bin/.idx pair with this prefix")
                    )
                elif owner is not None:
                    discovery.failures.append(
                        FileCheckError(path, "format", f"a side file of {owner}, read with it: name {owner} instead")
                    )
                else:
                    discovery.failures.append(
                        FileCheckError(path, "format", f"unknown format (expected {formats.EXPECTED_SUFFIXES})")
                    )
                continue
            source_path = fmt.source_path(path)
            problem = None if fmt is formats.INDEXED else regular_file_problem(path)
            if problem is not None and os.path.exists(path):
                discovery.failures.append(FileCheckError(path, "open", problem))
                continue
            _add_source(discovery, seen, _identity(path, fmt), Source(source_path, fmt), path)
    return discovery


def _add_source(discovery: Discovery, seen: dict, key, source: Source, name: str) -> None:
    """List ``source``, unless the file ``key`` identifies is already listed under another name."""
    if key in seen:
        _, first_name = seen[key]
        if not _files_of_one_source(first_name, name, source.format):
            discovery.merged.append({"path": name, "same_as": first_name})
        return
    seen[key] = (source.path, name)
    discovery.sources.append(source)


def _remote_paths(arg: str, discovery: Discovery) -> list[str] | None:
    """The objects an URI names (a glob, an object, a pair's prefix, or a prefix to walk), or
    None after recording why there are none."""
    try:
        if _has_magic(arg):
            paths = storage.glob(arg)
            if not paths:
                discovery.failures.append(FileCheckError(arg, "open", "no object matches this pattern"))
                return None
            return paths
        if formats.detect(arg) is not None:
            return [arg]  # an object with a format's name (or a pair's prefix): opened, and checked, later
        found = storage.walk(arg.rstrip("/"))
    except OSError as e:
        discovery.failures.append(FileCheckError(arg, "open", e.strerror or str(e)))
        return None
    paths = []
    for path in found:
        name = path.rsplit("/", 1)[-1]
        relative = path[len(arg.rstrip("/")) :]
        if any(part.startswith(".") for part in relative.split("/")):
            discovery.skipped.append({"path": path, "reason": "hidden file"})
        elif formats.detect(path) is None:
            if formats.read_with(path) is None:  # a side file is read with its data file
                discovery.skipped.append({"path": path, "reason": "unknown format"})
        elif name:
            paths.append(path)
    if not paths:
        discovery.failures.append(
            FileCheckError(
                arg,
                "open",
                f"no such object, and no {formats.EXPECTED_SUFFIXES} object under this prefix"
                if not found
                else f"the prefix holds no {formats.EXPECTED_SUFFIXES} object",
            )
        )
        return None
    return paths


def _add_remote(arg: str, discovery: Discovery, seen: dict) -> None:
    paths = _remote_paths(arg, discovery)
    for path in paths or []:
        fmt = formats.detect(path)
        if fmt is None:
            discovery.failures.append(
                FileCheckError(path, "format", f"unknown format (expected {formats.EXPECTED_SUFFIXES})")
            )
            continue
        source_path = fmt.source_path(path)
        key = source_path  # an object is its URI; a file set (a .bin/.idx pair), its name
        _add_source(discovery, seen, key, Source(source_path, fmt), path)
