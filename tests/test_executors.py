"""LocalExecutor with real spawned worker processes."""

from __future__ import annotations

import os

import pytest

from tokcount.executors import INITARGS_PIPE_BYTES, LocalExecutor

_state: dict = {}


def remember(tag: str, payload: str) -> None:
    _state["tag"] = tag
    _state["payload"] = len(payload)


def describe(x: int) -> tuple:
    return os.getpid(), x, _state.get("tag"), _state.get("payload")


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"task {x} failed")
    return x


def test_started_pool_serves_runs_with_their_own_initializer_arguments():
    big = "x" * (2 * INITARGS_PIPE_BYTES)  # goes to the workers through a file
    with LocalExecutor(2) as executor:
        executor.start()
        first = dict(executor.run(describe, list(range(8)), [1] * 8, initializer=remember, initargs=("first", big)))
        second = dict(executor.run(describe, list(range(8)), [1] * 8, initializer=remember, initargs=("second", "s")))
    assert sorted(first) == sorted(second) == list(range(8))
    assert all(x == i for i, (_, x, _, _) in first.items())
    assert {(tag, size) for _, _, tag, size in first.values()} == {("first", len(big))}
    assert {(tag, size) for _, _, tag, size in second.values()} == {("second", 1)}
    pids = {pid for pid, _, _, _ in first.values()} | {pid for pid, _, _, _ in second.values()}
    assert os.getpid() not in pids and len(pids) <= 2  # the same two workers served both runs
    assert executor._pool is None  # closed on leaving the block


def test_a_failing_task_raises_in_the_caller_and_stops_the_pool():
    executor = LocalExecutor(2)
    executor.start()
    with pytest.raises(ValueError, match="task 3 failed"):
        list(executor.run(fail_on_three, list(range(6)), [1] * 6))
    assert executor._pool is None


def test_without_start_a_run_brings_its_own_pool():
    executor = LocalExecutor(2, remember, ("own", "abc"))
    results = dict(executor.run(describe, list(range(4)), [1] * 4))
    assert {(tag, size) for _, _, tag, size in results.values()} == {("own", 3)}
    assert os.getpid() not in {pid for pid, _, _, _ in results.values()}
    assert executor._pool is None
