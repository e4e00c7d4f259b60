"""The fast engine's one-off start-up in a worker process: imports and numba's registries, done
while the scanning process still loads the tokenizer, and what numba would load that the
kernels never use skipped."""

from __future__ import annotations

import multiprocessing
import sys


def prepare_worker(fast_engine: bool) -> None:
    """Runs in each worker as it starts: the imports and numba's set-up that the first unit
    would otherwise wait for."""
    from . import fast_engine_available

    if fast_engine:
        try:
            import awkward  # noqa: F401  (the gigatoken engine's lengths: 0.25 s to import)
        except ImportError:
            pass
    if fast_engine and fast_engine_available() is None:
        quiet_numba_start()
        from numba.core.registry import cpu_target

        from . import fast as _  # noqa: F401  (numba and the kernels' modules)

        cpu_target.target_context.refresh()  # numba's registries, loaded before a first cache load
        cpu_target.typing_context.refresh()


def quiet_numba_start() -> None:
    """In a worker process, skip what numba loads before its first compile or cache load that
    the kernels never use: every installed numba extension (awkward's alone costs 0.13 s),
    and SciPy's BLAS, which numba imports to offer np.dot (0.19 s when SciPy is installed)."""
    if multiprocessing.parent_process() is None:
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
