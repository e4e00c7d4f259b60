"""Which code the fast engine runs: a hash of every module of this package. Engine plans on disk
are keyed by it, and numba's compiled kernels are dropped when it changes: numba's own cache
(``cache=True``) only notices edits to a kernel's own file, not to the modules its inlined
helpers come from (numba issue 1833), so a kernel could otherwise keep running old code."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).parent
STAMP = "tokcount-kernels.version"


@functools.lru_cache(maxsize=1)
def engine_code_version() -> str:
    digest = hashlib.sha256()
    for module_file in sorted(PACKAGE.glob("*.py")):
        digest.update(module_file.name.encode())
        digest.update(module_file.read_bytes())
    return digest.hexdigest()[:16]


def kernels_compiled() -> bool:
    """Whether numba's cache already holds the main counting kernel for this code (a first run
    compiles it: about two minutes on one core, which a user must be told about)."""
    cache = PACKAGE / "__pycache__"
    try:
        current = (cache / STAMP).read_text() == engine_code_version()
    except OSError:
        return False
    return current and any(cache.glob("count.count_documents-*.nbi"))


COMPILING_MESSAGE = (
    "compiling the fast engine's kernels: once per install (or upgrade), about two minutes on one core; "
    "later runs start at once"
)


def announce_first_compile(progress: object) -> None:
    """Tell the caller (its progress object's ``status``) that the first run's compile begins."""
    status = getattr(progress, "status", None)
    if status is not None and not kernels_compiled():
        status(COMPILING_MESSAGE)


def drop_stale_compiled_kernels() -> None:
    """Delete numba's cache files of this package when they were compiled from other code. A
    read-only install (or a race with another process) only costs a recompile."""
    cache = PACKAGE / "__pycache__"
    stamp = cache / STAMP
    version = engine_code_version()
    try:
        if stamp.read_text() == version:
            return
    except OSError:
        pass
    try:
        for stale in [*cache.glob("*.nbi"), *cache.glob("*.nbc")]:
            stale.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        stamp.write_text(version)
    except OSError:
        pass
