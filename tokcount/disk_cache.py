"""tokcount's files under ~/.cache/tokcount (or $TOKCOUNT_CACHE_DIR). Everything there is
derived from inputs that are part of its name, so any file can be deleted at any time; a
missing or unwritable cache only costs time."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def cache_directory() -> Path:
    explicit = os.environ.get("TOKCOUNT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tokcount"


def read_bytes(path: Path) -> bytes | None:
    """The file's bytes, or None. A hit marks the file as recently used (see ``store``)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        os.utime(path)
    except OSError:
        pass
    return data


def store(path: Path, write: Callable[[BinaryIO], object], keep: int | None = None) -> None:
    """Write through ``write(file)`` and rename into place, so concurrent processes never read
    half a file. With ``keep``, the directory then holds at most that many files, the least
    recently used ones removed: its entries are keyed by versions and hashes, so old ones
    would otherwise pile up with every upgrade or edited tokenizer."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        # Mode 0o666 less the umask, like any file the user creates (mkstemp's 0o600 would
        # keep a cache directory shared by a team private to whoever wrote each entry).
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError:
        return
    if keep is not None:
        _keep_most_recent(path.parent, keep)


def _keep_most_recent(directory: Path, keep: int) -> None:
    entries = []
    for entry in os.scandir(directory):
        if entry.is_file() and not entry.name.startswith("."):  # "." = another process's write in progress
            try:
                entries.append((entry.stat().st_mtime, entry.path))
            except OSError:
                pass
    entries.sort(reverse=True)
    for _, stale in entries[keep:]:
        try:
            os.unlink(stale)
        except OSError:
            pass  # already removed by another process


def keep_under_bytes(directory: Path, max_bytes: int) -> None:
    """Remove the least recently used files of ``directory`` until the rest fit in ``max_bytes``."""
    entries = []
    total = 0
    try:
        scan = list(os.scandir(directory))
    except OSError:
        return
    for entry in scan:
        if entry.is_file() and not entry.name.startswith("."):
            try:
                st = entry.stat()
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, entry.path))
            total += st.st_size
    entries.sort()
    for _, size, stale in entries:
        if total <= max_bytes:
            break
        try:
            os.unlink(stale)
        except OSError:
            pass
        total -= size
