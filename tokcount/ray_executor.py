"""Work units on a Ray cluster, with the interface of ``executors.LocalExecutor``. Like it, this
knows nothing of formats: it runs a picklable function over picklable tasks on the cluster's
worker processes and hands back (task index, result) as tasks finish.

Ray is optional (``pip install 'tokcount[ray]'``) and imported only when this executor is used.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import executors
from .errors import UsageError
from .executors import DEFAULT_MAX_RETRIES, TaskFailed

RAY_MISSING = "the Ray executor (--executor ray) needs Ray: pip install 'tokcount[ray]'"

PROGRESS_POLL_SECONDS = 0.5


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_MISSING) from None
    return ray


# In a Ray worker process: the key of the initializer call it last ran (one tokenizer per
# process, built by the first task of each run that lands there).
_initialized_with: Any = None


def _run_on_ray(key, initializer, initargs_box: list, worker_env: dict, progress_box, fn, task):
    """In a Ray worker: set up once per run (the initializer's arguments are fetched from the
    object store only then, so a tokenizer's JSON is not sent with every task), then the task.
    ``initargs_box`` is a list so that Ray does not resolve the reference for every task."""
    global _initialized_with
    if _initialized_with != key:
        import ray

        # Before the tokenizer exists: its thread pool reads these once (see counting.WORKER_ENV).
        os.environ.update(worker_env)
        if initializer is not None:
            initializer(*ray.get(initargs_box[0]))
        _initialized_with = key
    executors._progress_sink = lambda **counters: progress_box.add.remote(counters)
    try:
        return fn(task)
    finally:
        executors._progress_sink = None


def _ray_notices_to_stderr() -> None:
    """Ray's driver prints the cluster's notices (e.g. that a worker died and its task is
    retried) on stdout, where they would corrupt ``--json``: send them to stderr."""
    try:
        from ray._private import worker as ray_worker

        original = ray_worker.print_to_stdstream
    except (ImportError, AttributeError):  # another Ray version: its own behaviour
        return
    if getattr(original, "tokcount_to_stderr", False):
        return

    def to_stderr(data, *args, **kwargs):
        return original(dict(data, is_err=True), *args, **kwargs)

    to_stderr.tokcount_to_stderr = True  # type: ignore[attr-defined]
    ray_worker.print_to_stdstream = to_stderr


class _ProgressBox:
    """A Ray actor: workers add their progress counters, the driver takes the sums."""

    def __init__(self) -> None:
        self.sums: dict[str, int] = {}

    def add(self, counters: dict) -> None:
        for name, value in counters.items():
            self.sums[name] = self.sums.get(name, 0) + value

    def take(self) -> dict:
        sums, self.sums = self.sums, {}
        return sums


class RayExecutor:
    """Runs tasks as Ray tasks: on the cluster at ``address`` (default ``RAY_ADDRESS``), else on
    a Ray started here with ``workers`` CPUs (default: every core) and stopped by ``close()``.

    Each worker process runs ``initializer(*initargs)`` once per run, before its first task.
    The most costly tasks are submitted first and at most ``in_flight`` per CPU wait on the
    cluster at a time, so the driver holds a bounded number of references whatever the number
    of tasks.
    """

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        initializer=None,
        initargs: tuple = (),
        worker_env: dict[str, str] | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        in_flight: int = 4,
    ):
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.requested_workers = workers
        self.workers = workers or executors.default_workers()
        self.initializer, self.initargs = initializer, initargs
        self.worker_env = dict(worker_env or {})
        self.max_retries = max_retries
        self.in_flight = in_flight
        self._started_ray = False
        self._remote: Any = None
        self._progress: Any = None
        self._runs = 0
        self._pending: list = []

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, prepare: Callable[[], None] | None = None) -> None:
        """Connect to the cluster (or start a local one). ``prepare`` is for local worker pools
        that start ahead of the first run; Ray's workers start with the cluster."""
        ray = import_ray()
        if self._remote is not None:
            return
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
            if self.address is None:
                kwargs.update(num_cpus=self.workers, include_dashboard=False)
            try:
                # "local": a new Ray, even where `ray start` left a cluster Ray would join by default
                ray.init(address=self.address or "local", **kwargs)
            except ConnectionError as e:
                raise UsageError(f"cannot connect to the Ray cluster at {self.address} (--ray-address): {e}") from None
            self._started_ray = True
        _ray_notices_to_stderr()
        if self.requested_workers is None:
            self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(_run_on_ray)
        self._progress = ray.remote(num_cpus=0)(_ProgressBox).remote()

    def close(self) -> None:
        """Cancel what is still queued or running, and stop the Ray this executor started."""
        ray = import_ray()
        self._cancel_pending()
        if self._progress is not None and ray.is_initialized():
            ray.kill(self._progress)
        self._remote = self._progress = None
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    def _cancel_pending(self) -> None:
        ray = import_ray()
        pending, self._pending = self._pending, []
        for ref in pending:
            try:
                ray.cancel(ref, force=True)  # force: stop a task mid-unit, not at its end
            except Exception:  # already finished, or its worker already gone
                pass

    def run(
        self,
        fn: Callable,
        tasks: Sequence,
        costs: Sequence[int],
        on_progress=None,
        initializer=None,
        initargs=None,
        on_retry=None,
    ):
        """``LocalExecutor.run`` on the cluster: yield (task index, result) as tasks finish,
        the most costly tasks first. Ray retries a task whose worker died by itself and says so
        on stderr (``on_retry`` is not called).
        Raises ``TaskFailed`` for a task whose worker died on every attempt, and whatever a
        task raised."""
        ray = import_ray()
        self.start()
        if initargs is None:
            initializer, initargs = self.initializer, self.initargs
        self._runs += 1
        key = (os.getpid(), id(self), self._runs, time.time())
        initargs_box = [ray.put(initargs)]
        remote = self._remote.options(max_retries=self.max_retries, retry_exceptions=False)
        order = sorted(range(len(tasks)), key=lambda i: -costs[i])
        waiting = iter(order)
        index_of: dict = {}
        limit = max(2, self.in_flight * self.workers)
        try:
            while True:
                while len(self._pending) < limit:
                    i = next(waiting, None)
                    if i is None:
                        break
                    ref = remote.remote(key, initializer, initargs_box, self.worker_env, self._progress, fn, tasks[i])
                    index_of[ref] = i
                    self._pending.append(ref)
                if not self._pending:
                    break
                ready, self._pending = ray.wait(self._pending, num_returns=1, timeout=PROGRESS_POLL_SECONDS)
                if ready:  # take every other finished one too
                    more, self._pending = ray.wait(self._pending, num_returns=len(self._pending), timeout=0)
                    ready += more
                self._hand_on_progress(on_progress)
                for ref in ready:
                    i = index_of.pop(ref)
                    yield i, self._result(ray, ref, i)
            self._hand_on_progress(on_progress)
        except BaseException:
            self._cancel_pending()  # Ctrl-C, a failure, or a caller that stopped early
            raise

    def _result(self, ray, ref, index: int):
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # the task raised: raise the same here
            raise e.as_instanceof_cause() from None
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.RayError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TaskFailed(index, self.max_retries + 1, f"{type(e).__name__}: {reason}") from None

    def _hand_on_progress(self, on_progress) -> None:
        if on_progress is None or self._progress is None:
            return
        ray = import_ray()
        sums = ray.get(self._progress.take.remote())
        if sums:
            on_progress(**sums)
