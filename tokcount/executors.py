"""Where work units run. Executors know nothing of formats: they run a picklable function over
picklable tasks and hand back results, with progress reported along the way."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Generator, Sequence
from typing import Any

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


# Initializer arguments larger than this go to workers through a file: the task pipe holds
# ~64 KiB, so a bigger payload (a tokenizer's JSON) would make the parent wait until each
# child has started and read it, one child after the other.
INITARGS_PIPE_BYTES = 32 << 10


def default_start_method() -> str:
    """fork on Linux: a worker starts as a copy of this process with its imports done, where
    spawn pays ~0.45 s per worker to start an interpreter and import numba, pyarrow and numpy
    again. A forked child has only the forking thread, so its tasks must not use a thread pool
    the parent started (tokcount's worker tasks run no parallel kernels, and tokenizers is kept
    single-threaded through ``worker_env``); the locks it inherits (malloc, jemalloc, OpenBLAS,
    the interpreter's) are reset by their at-fork handlers. Elsewhere spawn: macOS forbids
    fork after some system libraries, Windows has none."""
    return "fork" if sys.platform.startswith("linux") else "spawn"


_initialized_with = None  # in a worker: the key of the initializer call it last ran


PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL_SECONDS = 0.5


def _die_with_parent(parent_pid: int) -> None:
    """A worker must not outlive the process it works for (a SIGKILL of the parent would leave it
    computing under PID 1). Linux: the kernel kills it when the parent dies (PR_SET_PDEATHSIG);
    elsewhere a thread watches the parent's pid."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
        else:
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="tokcount-parent-watch", daemon=True).start()


def _child_of(parent_pid: int) -> None:
    """A worker's or a service's first steps: it dies with its parent and leaves signals to it."""
    _die_with_parent(parent_pid)
    # Ctrl-C and a closing terminal reach the whole process group; the parent decides (it stops
    # its children with SIGTERM), children must not print tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # A forked child inherits the caller's handlers; SIGTERM is how the parent stops it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


_worker_progress_queue: Any = None  # in a worker: where report_progress sends to


def _put_progress(**counters) -> None:
    _worker_progress_queue.put(counters)


def _worker_init(progress_queue, prepare, parent_pid):
    global _progress_sink, _worker_progress_queue
    _child_of(parent_pid)
    _worker_progress_queue = progress_queue
    _progress_sink = _put_progress
    if prepare is not None:
        prepare()


def _run_task(job):
    """In a worker: run the run's initializer once (the first task of each run brings it), then
    the task."""
    global _initialized_with
    key, initializer, initargs, initargs_file, fn, task = job
    if _initialized_with != key:
        if initargs_file is not None:
            with open(initargs_file, "rb") as f:
                initargs = pickle.load(f)
        if initializer is not None:
            initializer(*initargs)
        _initialized_with = key
    return fn(task)


@contextlib.contextmanager
def _environment(variables: dict[str, str]):
    """These environment variables for the duration, then this process's own values again."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class LocalExecutor:
    """A pool of worker processes (``default_start_method``). With one worker, or one task,
    everything runs in this process.

    ``start()`` starts the workers ahead of the first run, so that their start-up (``prepare``,
    and under spawn the interpreter and imports) overlaps whatever the caller does meanwhile;
    the pool then lives until ``close()`` and serves every run. Without it, each run starts
    and stops its own pool.
    """

    def __init__(
        self,
        workers: int | None = None,
        initializer=None,
        initargs: tuple = (),
        start_method: str | None = None,
        worker_env: dict[str, str] | None = None,
    ):
        self.workers = max(1, workers or default_workers())
        self.start_method = start_method or default_start_method()
        self.worker_env = dict(worker_env or {})  # set in the workers from their first instruction
        self.initializer = initializer
        self.initargs = initargs
        self._pool: Any = None  # multiprocessing.pool.Pool
        self._progress_queue: Any = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._runs = 0

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, prepare: Callable[[], None] | None = None) -> None:
        """Start the workers now; each calls ``prepare()`` first (imports, warm-up)."""
        if self._pool is not None or self.workers == 1:
            return
        ctx = multiprocessing.get_context(self.start_method)
        self._progress_queue = ctx.Queue()
        self._scratch = tempfile.TemporaryDirectory(prefix="tokcount-")
        with warnings.catch_warnings():
            # Python >= 3.12 warns on any fork of a process with threads (here: OpenBLAS's and
            # jemalloc's idle ones); default_start_method says why these workers are safe.
            warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
            # Frozen objects are left alone by a forked worker's collector, which would otherwise
            # touch, and so copy, every page of the parent's heap (worker start-up 0.3 -> 0.22 s).
            gc.freeze()
            try:
                with _environment(self.worker_env):  # what a forked or spawned child starts with
                    self._pool = ctx.Pool(self.workers, _worker_init, (self._progress_queue, prepare, os.getpid()))
            finally:
                gc.unfreeze()

    def close(self) -> None:
        """Stop the workers now rather than wait for their interpreter teardown (~0.4 s with
        numba and a tokenizer loaded); their tasks are done or no longer wanted."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()
            pool.join()
        progress_queue, self._progress_queue = self._progress_queue, None
        if progress_queue is not None:
            # A worker stopped while it wrote to this queue holds its write lock for ever, so a
            # put of ours (a task's wake-up) would wait on it in the queue's feeder thread, and
            # this process's exit would wait on that thread: leave it behind (it is discarded).
            progress_queue.cancel_join_thread()
            progress_queue.close()
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def run(
        self,
        fn: Callable,
        tasks: Sequence,
        costs: Sequence[int],
        on_progress: Callable[..., None] | None = None,
        initializer=None,
        initargs: tuple | None = None,
    ) -> Generator[tuple[int, Any], None, None]:
        """Yield (task index, result) as tasks finish; the most costly tasks start first. Every
        worker runs ``initializer(*initargs)`` (default: the constructor's) before its first
        task of this run."""
        if initargs is None:
            initializer, initargs = self.initializer, self.initargs
        order = sorted(range(len(tasks)), key=lambda i: -costs[i])
        if self.workers == 1 or len(tasks) <= 1:
            yield from self._run_here(fn, tasks, order, on_progress, initializer, initargs)
        elif self._pool is not None:
            yield from self._run_pool(fn, tasks, order, on_progress, initializer, initargs)
        else:
            try:
                self.start()
                yield from self._run_pool(fn, tasks, order, on_progress, initializer, initargs)
            finally:
                self.close()

    def _run_here(self, fn, tasks, order, on_progress, initializer, initargs):
        global _progress_sink
        previous = _progress_sink
        _progress_sink = on_progress
        try:
            if initializer is not None:
                initializer(*initargs)
            for i in order:
                yield i, fn(tasks[i])
        finally:
            _progress_sink = previous

    def _run_pool(self, fn, tasks, order, on_progress, initializer, initargs):
        self._runs += 1
        key = (os.getpid(), id(self), self._runs)
        payload = pickle.dumps(initargs, protocol=pickle.HIGHEST_PROTOCOL)
        initargs_file = None
        if len(payload) > INITARGS_PIPE_BYTES:
            initargs_file = os.path.join(self._scratch.name, f"initargs-{self._runs}.pkl")
            with open(initargs_file, "wb") as f:
                f.write(payload)
            initargs = ()
        progress_queue = self._progress_queue
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
                job = (key, initializer, initargs, initargs_file, fn, tasks[i])
                self._pool.apply_async(_run_task, (job,), callback=on_done(i, True), error_callback=on_done(i, False))
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
        except BaseException:
            self.close()  # Ctrl-C, a bug, or a caller that stopped early: stop the workers now
            raise

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


SERVICE_READY_SECONDS = 60.0  # for a service's object to be built (a large tokenizer: ~1 s)
SERVICE_CALL_SECONDS = 300.0  # for one call's answer


class ServiceUnavailable(RuntimeError):
    """A ``ServiceProcess`` failed to build its object, died, or was closed."""


def _serve(connection, parent_end, factory: Callable[[], Any], parent_pid: int) -> None:
    """In a service process: build the object, then answer calls until the parent hangs up."""
    _child_of(parent_pid)
    if parent_end is not None:
        parent_end.close()  # forked: else this process would keep its own end open
    try:
        served = factory()
    except BaseException as error:  # noqa: BLE001 - told to the parent, which falls back
        connection.send(("failed", repr(error)))
        return
    connection.send(("ready", None))
    while True:
        try:
            method, args = connection.recv()
        except (EOFError, OSError):
            return
        try:
            outcome = ("ok", getattr(served, method)(*args))
        except BaseException as error:  # noqa: BLE001
            outcome = ("failed", repr(error))
        connection.send(outcome)


class ServiceProcess:
    """One object built and used in a process of its own, started now: its construction (and
    the calls made to it) then run on another core while this process goes on. ``call`` blocks
    until the answer comes; any failure on the other side raises ``ServiceUnavailable``, so the
    caller can do the work itself instead.

    Started with ``fork`` only where that is the start method (Linux): the object's factory
    need not be picklable, and the process starts in milliseconds. It dies with this process
    and ignores Ctrl-C, like a worker."""

    def __init__(self, factory: Callable[[], Any], start_method: str = "fork", env: dict[str, str] | None = None):
        ctx: Any = multiprocessing.get_context(start_method)
        mine, theirs = ctx.Pipe()
        self._connection: Any = mine
        self._ready = False
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
            with _environment(env or {}):
                self._process = ctx.Process(
                    target=_serve,
                    args=(theirs, mine if start_method == "fork" else None, factory, os.getpid()),
                    name="tokcount-service",
                    daemon=True,
                )
                self._process.start()
        theirs.close()

    def call(self, method: str, *args) -> Any:
        if self._connection is None:
            raise ServiceUnavailable("closed")
        try:
            if not self._ready:
                status, detail = self._answer(SERVICE_READY_SECONDS)
                if status != "ready":
                    raise ServiceUnavailable(detail)
                self._ready = True
            self._connection.send((method, args))
            status, answer = self._answer(SERVICE_CALL_SECONDS)
        except (EOFError, OSError) as error:
            self.close()
            raise ServiceUnavailable(f"the service process ended ({error!r})") from None
        except ServiceUnavailable:
            self.close()
            raise
        if status != "ok":
            raise ServiceUnavailable(answer)
        return answer

    def _answer(self, seconds: float) -> tuple[str, Any]:
        # Bounded: a service stuck for any reason makes its caller do the work, never hang.
        if not self._connection.poll(seconds):
            raise ServiceUnavailable(f"no answer from the service process in {seconds:.0f} s")
        return self._connection.recv()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        connection.close()
        # Not left to see the pipe close: forked workers hold copies of this end.
        self._process.terminate()
        self._process.join()
