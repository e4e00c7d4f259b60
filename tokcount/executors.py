"""Where work units run. Executors know nothing of formats: they run a picklable function over
picklable tasks and hand back results, with progress reported along the way."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import signal
import tempfile
from typing import Callable, Iterator, Sequence

_progress_sink: Callable[..., None] | None = None


def report_progress(**counters) -> None:
    """Called by task code while it works; a no-op where nobody listens."""
    if _progress_sink is not None:
        _progress_sink(**counters)


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# Initializer arguments larger than this go to workers through a file: the spawn pipe holds
# ~64 KiB, so a bigger payload (a tokenizer's JSON) makes the parent wait until each child has
# started and imported enough to read it, one child after the other.
INITARGS_PIPE_BYTES = 32 << 10


def _worker_init(progress_queue, initializer, initargs, initargs_file=None):
    global _progress_sink
    # Ctrl-C reaches the whole process group; the parent decides, workers must not print tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _progress_sink = lambda **c: progress_queue.put(c)  # noqa: E731
    if initargs_file is not None:
        with open(initargs_file, "rb") as f:
            initargs = pickle.load(f)
    if initializer is not None:
        initializer(*initargs)


class LocalExecutor:
    """A pool of spawned processes (spawn, not fork: the parent may already hold tokenizer or
    numba threads). With one worker, or one task, everything runs in this process."""

    def __init__(self, workers: int | None = None, initializer=None, initargs: tuple = ()):
        self.workers = max(1, workers or default_workers())
        self.initializer = initializer
        self.initargs = initargs

    def run(self, fn: Callable, tasks: Sequence, costs: Sequence[int],
            on_progress: Callable[..., None] | None = None) -> Iterator[tuple[int, object]]:
        """Yield (task index, result) as tasks finish; the most costly tasks start first."""
        order = sorted(range(len(tasks)), key=lambda i: -costs[i])
        if self.workers == 1 or len(tasks) <= 1:
            yield from self._run_here(fn, tasks, order, on_progress)
        else:
            yield from self._run_pool(fn, tasks, order, on_progress)

    def _run_here(self, fn, tasks, order, on_progress):
        global _progress_sink
        previous = _progress_sink
        _progress_sink = on_progress
        try:
            if self.initializer is not None:
                self.initializer(*self.initargs)
            for i in order:
                yield i, fn(tasks[i])
        finally:
            _progress_sink = previous

    def _run_pool(self, fn, tasks, order, on_progress):
        ctx = multiprocessing.get_context("spawn")
        progress_queue = ctx.Queue()
        workers = min(self.workers, len(tasks))
        with tempfile.TemporaryDirectory(prefix="tokcount-") as scratch:
            payload = pickle.dumps(self.initargs, protocol=pickle.HIGHEST_PROTOCOL)
            if len(payload) <= INITARGS_PIPE_BYTES:
                init = (progress_queue, self.initializer, self.initargs)
            else:
                initargs_file = os.path.join(scratch, "initargs.pkl")
                with open(initargs_file, "wb") as f:
                    f.write(payload)
                init = (progress_queue, self.initializer, (), initargs_file)
            pool = ctx.Pool(workers, _worker_init, init)
            yield from self._run_started_pool(pool, fn, tasks, order, progress_queue, on_progress)

    def _run_started_pool(self, pool, fn, tasks, order, progress_queue, on_progress):
        try:
            # The pool's result thread files each outcome here and posts a wake-up on the
            # progress queue, so the loop sleeps on that one queue and hands results on at once.
            finished: dict[int, tuple[bool, object]] = {}

            def on_done(i, ok):
                def record(outcome):
                    finished[i] = (ok, outcome)
                    progress_queue.put(None)
                return record

            for i in order:
                pool.apply_async(fn, (tasks[i],), callback=on_done(i, True), error_callback=on_done(i, False))
            remaining = len(order)
            while remaining:
                for i in list(finished):
                    ok, outcome = finished.pop(i)
                    remaining -= 1
                    if not ok:
                        raise outcome
                    yield i, outcome
                if remaining:
                    self._drain(progress_queue, on_progress, timeout=0.5)
            self._drain(progress_queue, on_progress, timeout=0)
            # Every result is in: stop the idle workers now rather than wait for their
            # interpreter teardown (~0.4 s with numba and a tokenizer loaded).
            pool.terminate()
        except BaseException:
            pool.terminate()  # Ctrl-C or a bug: stop the workers now, not after their tasks
            raise
        finally:
            pool.join()

    @staticmethod
    def _drain(progress_queue, on_progress, timeout: float) -> None:
        """Hand on queued progress; wait up to `timeout` for the first item (None = a task
        finished: return so the caller collects it)."""
        try:
            item = progress_queue.get(timeout=timeout) if timeout else progress_queue.get_nowait()
            while item is not None:
                if on_progress is not None:
                    on_progress(**item)
                item = progress_queue.get_nowait()
        except queue.Empty:
            pass
