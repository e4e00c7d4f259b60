"""The fast engine's one-off start-up in a worker process: what numba would load that the
kernels never use, skipped."""

from __future__ import annotations

import multiprocessing
import sys

_OWN_PROCESS = False


def own_this_process() -> None:
    """The `tokcount` command runs this process: quiet_numba_start may act in it too (as a
    library, tokcount leaves its caller's numba extensions alone)."""
    global _OWN_PROCESS
    _OWN_PROCESS = True


def quiet_numba_start() -> None:
    """In a worker process, or in the `tokcount` command's own process, skip what numba loads
    before its first compile or cache load that the kernels never use: every installed numba
    extension (awkward's, there with the gigatoken extra, alone costs 0.13-0.2 s), and SciPy's
    BLAS, which numba imports to offer np.dot (0.19 s when SciPy is installed)."""
    if multiprocessing.parent_process() is None and not _OWN_PROCESS:
        return
    from numba.core import entrypoints

    entrypoints._already_initialized = True
    if "numba.np.arraymath" not in sys.modules:
        blocked = "scipy.linalg.cython_blas"
        sys.modules.setdefault(blocked, None)  # type: ignore[arg-type]  # importing a None entry raises ImportError
        try:
            import numba.np.arraymath  # noqa: F401  (finds no BLAS: the kernels need none)
        finally:
            if sys.modules.get(blocked, 0) is None:
                del sys.modules[blocked]
