"""Where work units run. Executors know nothing of formats: they run a picklable function over
picklable tasks and hand back results, with progress reported along the way."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import gc
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Generator, Sequence
from typing import Any

from .errors import EXIT_INVALID_FILE, TokcountError

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


HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])}


@contextlib.contextmanager
def _signals_held_for_a_child():
    """Blocks the signals a child handles in ``_child_of`` while it is started: a forked child
    begins with the parent's handlers (the CLI's raises KeyboardInterrupt), and a SIGTERM that
    stops it that early (a run that ends while a dead worker's replacement starts) printed a
    traceback from its after-fork hooks. Blocked, the signal waits until the child's own
    handlers are set, and then ends it quietly."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


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
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)  # held while it started


# A worker process killed mid-task (the out-of-memory killer, a lost node, kill -9) is retried
# this often before its task fails the run; tasks that raise are not retried (the same input
# fails again).
DEFAULT_MAX_RETRIES = 3


class TaskFailed(TokcountError):
    """A task whose worker process died on every attempt: ``index`` is its place in the tasks
    handed to ``run``, so the caller can say which work unit it was."""

    exit_code = EXIT_INVALID_FILE

    def __init__(self, index: int, attempts: int, reason: str):
        self.index, self.attempts, self.reason = index, attempts, reason
        super().__init__(f"task {index}: the worker process running it died on all {attempts} attempts ({reason})")


def death_reason(exitcode: int | None) -> str:
    """Why a worker process ended, from its exit code, in words a user can act on."""
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if -exitcode == signal.SIGKILL:
            return f"killed by {name}: the out-of-memory killer, or kill -9"
        if -exitcode in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT):
            return f"killed by {name}: a crash in native code"
        return f"killed by {name}"
    return f"exited with status {exitcode}"


_worker_connection: Any = None  # in a worker: its pipe to the parent
_worker_sending = threading.Lock()  # task code may report progress from a thread of its own


def _send(message: tuple) -> None:
    with _worker_sending:
        _worker_connection.send(message)


def _send_progress(**counters) -> None:
    _send(("progress", counters))


def _worker_main(connection, prepare, parent_pid: int, others: list) -> None:
    """A worker: prepare, then run each job the parent sends over this worker's own pipe and
    send back its progress and outcome. Nothing is shared with other workers, so a worker killed
    at any instant leaves no lock held that another process waits on."""
    global _progress_sink, _worker_connection
    _child_of(parent_pid)
    for other in others:  # forked: the parent's ends of the other workers' pipes
        other.close()
    _worker_connection = connection
    _progress_sink = _send_progress
    unprepared: BaseException | None = None
    if prepare is not None:
        try:
            prepare()
        except BaseException as error:  # noqa: BLE001 - each task then fails with it
            unprepared = error
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            if unprepared is not None:
                raise unprepared
            outcome: tuple = ("done", _run_task(job))
        except BaseException as error:  # noqa: BLE001 - raised again in the caller
            outcome = ("failed", error)
        try:
            _send(outcome)
        except (EOFError, OSError):
            return
        except Exception as error:  # noqa: BLE001 - the outcome does not pickle
            _send(("failed", RuntimeError(f"a task's outcome could not be sent back: {error!r}")))


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


WORKER_STOP_SECONDS = 5.0  # for a SIGTERMed worker to go before it is SIGKILLed


class _Worker:
    """One worker process, its pipe, and the task it runs (None: idle)."""

    def __init__(self, process, connection):
        self.process = process
        self.connection = connection
        self.task: int | None = None

    def stop(self) -> None:
        if self.process.exitcode is None:
            self.process.terminate()

    def reap(self) -> None:
        self.process.join(WORKER_STOP_SECONDS)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()
        self.connection.close()


class LocalExecutor:
    """Worker processes (``default_start_method``), each with a pipe of its own. With one
    worker, or one task, everything runs in this process.

    ``start()`` starts the workers ahead of the first run, so that their start-up (``prepare``,
    and under spawn the interpreter and imports) overlaps whatever the caller does meanwhile;
    they then live until ``close()`` and serve every run. Without it, each run starts and stops
    its own workers.

    A worker that dies mid-task (the out-of-memory killer, kill -9, a crash) is replaced and its
    task run again, up to ``max_retries`` times; then the run raises ``TaskFailed``. A task
    that raises stops the run with that exception.
    """

    def __init__(
        self,
        workers: int | None = None,
        initializer=None,
        initargs: tuple = (),
        start_method: str | None = None,
        worker_env: dict[str, str] | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ):
        self.workers = max(1, workers or default_workers())
        self.start_method = start_method or default_start_method()
        self.worker_env = dict(worker_env or {})  # set in the workers from their first instruction
        self.initializer = initializer
        self.initargs = initargs
        self.max_retries = max_retries
        self._workers: list[_Worker] | None = None
        self._prepare: Callable[[], None] | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._runs = 0

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, prepare: Callable[[], None] | None = None) -> None:
        """Start the workers now; each calls ``prepare()`` first (imports, warm-up)."""
        if self._workers is not None or self.workers == 1:
            return
        self._prepare = prepare
        self._scratch = tempfile.TemporaryDirectory(prefix="tokcount-")
        self._workers = []
        for _ in range(self.workers):
            self._workers.append(self._start_worker())

    def _start_worker(self) -> _Worker:
        ctx: Any = multiprocessing.get_context(self.start_method)
        mine, theirs = ctx.Pipe()
        forked = self.start_method == "fork"
        # A forked child holds copies of every pipe end open here: it closes the other workers'
        # (else a worker's death would not close its pipe) and its own parent end.
        others = [w.connection for w in self._workers or []] + [mine] if forked else []
        with warnings.catch_warnings():
            # Python >= 3.12 warns on any fork of a process with threads (here: OpenBLAS's and
            # jemalloc's idle ones); default_start_method says why these workers are safe.
            warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
            # Frozen objects are left alone by a forked worker's collector, which would otherwise
            # touch, and so copy, every page of the parent's heap (worker start-up 0.3 -> 0.22 s).
            gc.freeze()
            try:
                with _environment(self.worker_env), _signals_held_for_a_child():
                    process = ctx.Process(
                        target=_worker_main,
                        args=(theirs, self._prepare, os.getpid(), others),
                        name="tokcount-worker",
                        daemon=True,
                    )
                    process.start()
            finally:
                gc.unfreeze()
        theirs.close()
        return _Worker(process, mine)

    def close(self) -> None:
        """Stop the workers now rather than wait for their interpreter teardown (~0.4 s with
        numba and a tokenizer loaded); their tasks are done or no longer wanted."""
        workers, self._workers = self._workers, None
        for worker in workers or []:
            worker.stop()
        for worker in workers or []:
            worker.reap()
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
        on_retry: Callable[[int, int, str], None] | None = None,
    ) -> Generator[tuple[int, Any], None, None]:
        """Yield (task index, result) as tasks finish; the most costly tasks start first. Every
        worker runs ``initializer(*initargs)`` (default: the constructor's) before its first
        task of this run. A task whose worker died is run again after
        ``on_retry(task index, attempt, why it died)``; the progress it had reported is taken
        back first (negative counters), so the totals end exact."""
        if initargs is None:
            initializer, initargs = self.initializer, self.initargs
        order = sorted(range(len(tasks)), key=lambda i: -costs[i])
        if self.workers == 1 or len(tasks) <= 1:
            yield from self._run_here(fn, tasks, order, on_progress, initializer, initargs)
        elif self._workers is not None:
            yield from self._run_workers(fn, tasks, order, on_progress, initializer, initargs, on_retry)
        else:
            try:
                self.start()
                yield from self._run_workers(fn, tasks, order, on_progress, initializer, initargs, on_retry)
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

    def _run_workers(self, fn, tasks, order, on_progress, initializer, initargs, on_retry):
        self._runs += 1
        key = (os.getpid(), id(self), self._runs)
        payload = pickle.dumps(initargs, protocol=pickle.HIGHEST_PROTOCOL)
        initargs_file = None
        if len(payload) > INITARGS_PIPE_BYTES:
            assert self._scratch is not None
            initargs_file = os.path.join(self._scratch.name, f"initargs-{self._runs}.pkl")
            with open(initargs_file, "wb") as f:
                f.write(payload)
            initargs = ()
        waiting = collections.deque(order)
        attempts = collections.Counter[int]()
        reported: dict[int, collections.Counter] = {}  # progress of the tasks under way
        remaining = len(order)

        def hand_out() -> None:
            for k, worker in enumerate(workers):
                while worker.task is None and waiting:
                    i = waiting.popleft()
                    try:
                        worker.connection.send((key, initializer, initargs, initargs_file, fn, tasks[i]))
                    except (EOFError, OSError):  # it died idle: a new one takes the task
                        waiting.appendleft(i)
                        worker = workers[k] = self._replace(worker)
                    else:
                        worker.task = i

        workers = self._workers
        assert workers is not None
        try:
            hand_out()
            while remaining:
                watched = {w.connection: w for w in workers} | {w.process.sentinel: w for w in workers}
                for ready in multiprocessing.connection.wait(list(watched)):
                    worker = watched[ready]
                    if worker not in workers:
                        continue  # replaced earlier in this round
                    message = self._receive(worker)
                    if message is None:  # the worker died
                        i = worker.task
                        workers[workers.index(worker)] = self._replace(worker)
                        if i is None:
                            continue  # idle: nothing lost
                        attempts[i] += 1
                        taken_back = reported.pop(i, None)
                        if taken_back and on_progress is not None:
                            on_progress(**{name: -value for name, value in taken_back.items()})
                        reason = death_reason(worker.process.exitcode)
                        if attempts[i] > self.max_retries:
                            raise TaskFailed(i, attempts[i], reason)
                        if on_retry is not None:
                            on_retry(i, attempts[i] + 1, reason)
                        waiting.appendleft(i)
                        continue
                    kind, content = message
                    if kind == "progress":
                        if worker.task is not None:
                            reported.setdefault(worker.task, collections.Counter()).update(content)
                        if on_progress is not None:
                            on_progress(**content)
                        continue
                    if kind == "failed":
                        raise content
                    i, worker.task = worker.task, None
                    reported.pop(i, None)
                    remaining -= 1
                    hand_out()  # the worker goes on while the caller takes the result
                    yield i, content
                hand_out()
        except BaseException:
            self.close()  # Ctrl-C, a bug, or a caller that stopped early: stop the workers now
            raise

    @staticmethod
    def _receive(worker: _Worker) -> tuple | None:
        """The worker's next message, or None if it died. A message sent just before dying is
        still read: the pipe holds it after the process is gone."""
        try:
            if worker.connection.poll():
                return worker.connection.recv()
        except (EOFError, OSError):
            return None
        # Woken by the pipe or the sentinel with nothing to read: it died, or is dying (its pipe
        # closed first); its exit code says how.
        worker.process.join(WORKER_STOP_SECONDS)
        return None

    def _replace(self, dead: _Worker) -> _Worker:
        dead.stop()
        dead.reap()
        return self._start_worker()


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
            with _environment(env or {}), _signals_held_for_a_child():
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
