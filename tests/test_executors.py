"""LocalExecutor with real worker processes, forked (the Linux default) and spawned."""

from __future__ import annotations

import collections
import functools
import os
import pathlib
import signal
import subprocess
import sys
import time
import types

import pytest

from tokcount import executors
from tokcount.executors import INITARGS_PIPE_BYTES, LocalExecutor

_state: dict = {}


def remember(tag: str, payload: str) -> None:
    _state["tag"] = tag
    _state["payload"] = len(payload)


def describe(x: int) -> tuple:
    return os.getpid(), x, _state.get("tag"), _state.get("payload")


def environment_variable(name: str) -> str | None:
    return os.environ.get(name)


START_METHODS = pytest.mark.parametrize("start_method", ["fork", "spawn"])


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"task {x} failed")
    return x


@START_METHODS
def test_started_pool_serves_runs_with_their_own_initializer_arguments(start_method):
    big = "x" * (2 * INITARGS_PIPE_BYTES)  # goes to the workers through a file
    with LocalExecutor(2, start_method=start_method) as executor:
        executor.start()
        first = dict(executor.run(describe, list(range(8)), [1] * 8, initializer=remember, initargs=("first", big)))
        second = dict(executor.run(describe, list(range(8)), [1] * 8, initializer=remember, initargs=("second", "s")))
    assert sorted(first) == sorted(second) == list(range(8))
    assert all(x == i for i, (_, x, _, _) in first.items())
    assert {(tag, size) for _, _, tag, size in first.values()} == {("first", len(big))}
    assert {(tag, size) for _, _, tag, size in second.values()} == {("second", 1)}
    pids = {pid for pid, _, _, _ in first.values()} | {pid for pid, _, _, _ in second.values()}
    assert os.getpid() not in pids and len(pids) <= 2  # the same two workers served both runs
    assert executor._workers is None  # closed on leaving the block


@START_METHODS
def test_a_failing_task_raises_in_the_caller_and_stops_the_pool(start_method):
    executor = LocalExecutor(2, start_method=start_method)
    executor.start()
    with pytest.raises(ValueError, match="task 3 failed"):
        list(executor.run(fail_on_three, list(range(6)), [1] * 6))
    assert executor._workers is None


@START_METHODS
def test_without_start_a_run_brings_its_own_pool(start_method):
    executor = LocalExecutor(2, remember, ("own", "abc"), start_method=start_method)
    results = dict(executor.run(describe, list(range(4)), [1] * 4))
    assert {(tag, size) for _, _, tag, size in results.values()} == {("own", 3)}
    assert os.getpid() not in {pid for pid, _, _, _ in results.values()}
    assert executor._workers is None


@START_METHODS
def test_workers_start_with_their_environment_and_the_caller_keeps_its_own(start_method, monkeypatch):
    monkeypatch.setenv("TOKCOUNT_TEST_KEPT", "caller")
    monkeypatch.delenv("TOKCOUNT_TEST_ADDED", raising=False)
    env = {"TOKCOUNT_TEST_KEPT": "worker", "TOKCOUNT_TEST_ADDED": "worker"}
    with LocalExecutor(2, start_method=start_method, worker_env=env) as executor:
        executor.start()
        seen = dict(executor.run(environment_variable, ["TOKCOUNT_TEST_KEPT", "TOKCOUNT_TEST_ADDED"], [1, 1]))
    assert seen == {0: "worker", 1: "worker"}
    assert os.environ["TOKCOUNT_TEST_KEPT"] == "caller"
    assert "TOKCOUNT_TEST_ADDED" not in os.environ


def is_imported(name: str) -> bool:
    return name in sys.modules


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only")
def test_default_workers_inherit_the_callers_imports():
    """What forking buys: a worker starts with the caller's modules loaded (numba, pyarrow and
    the tokenizer are not imported again). A module that exists only in this process's
    sys.modules is seen by a default worker, and not by a spawned one."""
    name = "tokcount_test_only_in_the_caller"
    sys.modules[name] = types.ModuleType(name)
    try:
        with LocalExecutor(2) as default:
            seen = dict(default.run(is_imported, [name, name], [1, 1]))
        with LocalExecutor(2, start_method="spawn") as spawned:
            seen_spawned = dict(spawned.run(is_imported, [name, name], [1, 1]))
    finally:
        del sys.modules[name]
    assert seen == {0: True, 1: True}
    assert seen_spawned == {0: False, 1: False}


ORPHAN_SCRIPT = """
import os, sys, time
sys.path.insert(0, {tests!r})
from tokcount.executors import LocalExecutor
import test_executors
with LocalExecutor(2) as executor:
    executor.start()
    for _ in executor.run(test_executors.quiet_work, [20, 20], [1, 1]):
        pass
"""


def quiet_work(seconds: int) -> int:
    """Work that writes nothing for a while: a worker that only notices its parent is gone
    through a broken pipe would keep going."""
    # One write(2) per line: two workers share the pipe, and print() may write the number and
    # the newline separately, so their lines could interleave.
    os.write(1, f"{os.getpid()}\n".encode())
    time.sleep(seconds)
    return seconds


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_parent():
    proc = _parent_running(ORPHAN_SCRIPT)
    workers = [int(proc.stdout.readline()), int(proc.stdout.readline())]
    proc.kill()
    proc.wait()
    killed = time.monotonic()
    while any(_alive(w) for w in workers) and time.monotonic() - killed < 10:
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers) and time.monotonic() - killed < 2


def _parent_running(script: str) -> subprocess.Popen:
    """A process running ``script`` (which prints its children's pids), in a session of its own."""
    return subprocess.Popen(
        [sys.executable, "-c", script.format(tests=os.path.dirname(__file__))],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Served:
    """Built in a service process: says where it was built and does a little work."""

    def __init__(self, fail_to_build: bool = False):
        if fail_to_build:
            raise ValueError("cannot build")
        self.built_in = os.getpid()

    def where(self) -> tuple[int, int]:
        return self.built_in, os.getpid()

    def double(self, x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return 2 * x


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork")
def test_a_service_process_builds_its_object_elsewhere_and_answers_calls():
    from tokcount.executors import ServiceProcess, ServiceUnavailable

    service = ServiceProcess(Served, "fork", {"TOKCOUNT_SERVICE_TEST": "set there"})
    built_in, answered_in = service.call("where")
    assert built_in == answered_in != os.getpid()
    assert service.call("double", 21) == 42
    assert os.environ.get("TOKCOUNT_SERVICE_TEST") is None  # the variable was the child's only
    with pytest.raises(ServiceUnavailable, match="negative"):
        service.call("double", -1)
    assert service.call("double", 2) == 4  # a failed call leaves the service serving
    service.close()
    assert not _alive(built_in)
    with pytest.raises(ServiceUnavailable):
        service.call("double", 1)

    broken = ServiceProcess(functools.partial(Served, fail_to_build=True), "fork")
    with pytest.raises(ServiceUnavailable, match="cannot build"):
        broken.call("double", 1)


SERVICE_ORPHAN_SCRIPT = """
import os, sys, time
sys.path.insert(0, {tests!r})
from tokcount.executors import ServiceProcess
import test_executors
service = ServiceProcess(test_executors.Served)
os.write(1, f"{{service.call('where')[1]}}\\n".encode())
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_service_process_dies_with_a_killed_parent():
    proc = _parent_running(SERVICE_ORPHAN_SCRIPT)
    service = int(proc.stdout.readline())
    assert _alive(service)
    proc.kill()
    proc.wait()
    killed = time.monotonic()
    while _alive(service) and time.monotonic() - killed < 10:
        time.sleep(0.05)
    assert not _alive(service)


def slow_to_build() -> Served:
    time.sleep(30)
    return Served()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork")
def test_a_stuck_service_process_is_given_up_on_not_waited_for(monkeypatch):
    from tokcount import executors

    monkeypatch.setattr(executors, "SERVICE_READY_SECONDS", 0.2)
    service = executors.ServiceProcess(slow_to_build, "fork")
    pid = service._process.pid
    with pytest.raises(executors.ServiceUnavailable, match="no answer"):
        service.call("double", 1)
    assert not _alive(pid)  # stopped, not left building


STOPPED_EARLY_SCRIPT = """
import os, sys, time
sys.path.insert(0, {tests!r})
from tokcount.executors import LocalExecutor
import test_executors
with LocalExecutor(2, start_method={start_method!r}) as executor:
    executor.start()
    for i, x in executor.run(test_executors.report_without_end, [({marker!r}, 0), ({marker!r}, 1)], [2, 1]):
        break  # task 1 ends while task 0 is writing progress: stop early
print("closed", flush=True)
"""


def report_without_end(task: tuple[str, int]) -> int:
    """Task 0 reports progress without pause until it is stopped; task 1 waits for that to have
    begun, then ends."""
    marker, x = task
    if x == 0:
        pathlib.Path(marker).write_text("reporting")
        while True:
            executors.report_progress(nbytes=1)
    while not os.path.exists(marker):
        time.sleep(0.01)
    time.sleep(0.2)
    return x


@START_METHODS
def test_a_worker_stopped_while_it_reports_progress_does_not_hang_the_exit(start_method, tmp_path):
    """A worker is stopped at any instant, here most likely mid-write of a progress message;
    the caller's process used to hang at exit on a lock of the shared progress queue that the
    stopped worker held (now each worker has a pipe of its own, and nothing is shared)."""
    script = STOPPED_EARLY_SCRIPT.format(
        tests=os.path.dirname(__file__), start_method=start_method, marker=str(tmp_path / "reporting")
    )
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "closed\n" and time.monotonic() - started < 60


def kill_own_worker(task: tuple[str, int, int]) -> int:
    """SIGKILLs the worker running it (as the out-of-memory killer would) on its first
    `deaths` attempts, counted in a file; then returns its number squared."""
    counter, x, deaths = task
    path = pathlib.Path(f"{counter}-{x}")
    attempt = int(path.read_text()) if path.exists() else 0
    path.write_text(str(attempt + 1))
    executors.report_progress(nbytes=10, documents=1)
    if attempt < deaths:
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x


@START_METHODS
def test_a_task_whose_worker_is_killed_runs_again_in_a_new_worker(start_method, tmp_path):
    counter = str(tmp_path / "attempts")
    tasks = [(counter, x, 2 if x in (1, 4) else 0) for x in range(6)]  # tasks 1 and 4 die twice
    with LocalExecutor(2, start_method=start_method) as executor:
        executor.start()
        progress = collections.Counter()
        retries = []
        results = dict(
            executor.run(
                kill_own_worker,
                tasks,
                [1] * 6,
                on_progress=lambda **counters: progress.update(counters),
                on_retry=lambda *retry: retries.append(retry),
            )
        )
        again = dict(executor.run(describe, [0, 1], [1, 1]))  # the replaced workers serve on
    assert results == {x: x * x for x in range(6)}
    attempts = {x: int(pathlib.Path(f"{counter}-{x}").read_text()) for x in range(6)}
    assert attempts == {0: 1, 1: 3, 2: 1, 3: 1, 4: 3, 5: 1}
    killed = "killed by SIGKILL: the out-of-memory killer, or kill -9"
    assert sorted(retries) == [(1, 2, killed), (1, 3, killed), (4, 2, killed), (4, 3, killed)]
    assert progress == {"nbytes": 60, "documents": 6}  # what the dead attempts reported is taken back
    assert sorted(again) == [0, 1]


ALWAYS_DIES_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from tokcount.executors import LocalExecutor, TaskFailed
import test_executors
tasks = [({counter!r}, x, 99 if x == 2 else 0) for x in range(4)]
with LocalExecutor(2, start_method={start_method!r}, max_retries=2) as executor:
    try:
        for _ in executor.run(test_executors.kill_own_worker, tasks, [1, 1, 5, 1]):
            pass
    except TaskFailed as failed:
        print(failed.index, failed.attempts, failed.reason, flush=True)
print("closed", flush=True)
"""


@START_METHODS
def test_a_task_whose_worker_dies_on_every_attempt_fails_the_run_and_never_hangs(start_method, tmp_path):
    counter = str(tmp_path / "attempts")
    script = ALWAYS_DIES_SCRIPT.format(tests=os.path.dirname(__file__), start_method=start_method, counter=counter)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "2 3 killed by SIGKILL: the out-of-memory killer, or kill -9\nclosed\n"
    assert pathlib.Path(f"{counter}-2").read_text() == "3"  # the first attempt and 2 retries
