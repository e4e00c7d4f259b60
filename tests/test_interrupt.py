"""Signals: on Ctrl-C, TERM and HUP the workers stop promptly and the partial report is printed,
marked incomplete; a worker killed by SIGKILL (the out-of-memory killer) is replaced."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tokenizer_fixtures
from process_killer import Killer

ROOT = Path(__file__).resolve().parent.parent


@tokenizer_fixtures.needs_tokenizers_0("counts the test file before the signal is sent")
def test_ctrl_c_stops_workers_and_prints_partial_report(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    line = json.dumps({"text": "Ein langer Satz, with words and numbers 12345, repeated. " * 40}) + "\n"
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        f.write(line * 40_000)  # ~95 MB: far more than a few seconds of work
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokcount",
            "scan",
            str(path),
            "--tokenizer",
            tok,
            "--engine",
            "hf",
            "--workers",
            "2",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    time.sleep(6)  # past the workers' start-up
    assert proc.poll() is None, proc.communicate()
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    out, err = proc.communicate(timeout=60)
    stopped_after = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "INCOMPLETE" in err
    report = json.loads(out)
    assert report["complete"] is False
    assert report["plan"] is None
    assert stopped_after < 20
    # no worker left behind (multiprocessing's resource tracker may need a moment to exit)
    deadline = time.monotonic() + 10
    while True:
        leftover = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
        if not leftover or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert leftover == []


def _workers_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead, only not yet reaped by its new parent
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@tokenizer_fixtures.needs_tokenizers_0("counts the test file before the signal is sent")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and pgrep -P")
@pytest.mark.parametrize("signame, code", [("SIGTERM", 143), ("SIGHUP", 129), ("SIGKILL", None)])
def test_a_killed_parent_leaves_no_worker_behind(tmp_path, signame, code):
    """TERM and HUP stop the scan like Ctrl-C (partial report, exit 128 + signal); after any of
    them, SIGKILL included, no worker outlives the parent by more than 2 s."""
    tok = tokenizer_fixtures.bytelevel_bpe()
    line = json.dumps({"text": "Ein langer Satz, with words and numbers 12345, repeated. " * 40}) + "\n"
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        f.write(line * 40_000)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokcount",
            "scan",
            str(path),
            "--tokenizer",
            tok,
            "--engine",
            "hf",
            "--workers",
            "2",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    workers: list[int] = []
    while len(workers) < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
        workers = [w for w in _workers_of(proc.pid) if open(f"/proc/{w}/cmdline").read().startswith(sys.executable)]
    time.sleep(2)  # counting, not starting up
    assert proc.poll() is None and len(workers) >= 2, proc.communicate()
    proc.send_signal(getattr(signal, signame))  # the parent only, as a scheduler or `kill` does
    out, err = proc.communicate(timeout=60)
    parent_gone = time.monotonic()
    while any(_alive(w) for w in workers) and time.monotonic() - parent_gone < 5:
        time.sleep(0.05)
    outlived = time.monotonic() - parent_gone
    assert not any(_alive(w) for w in workers) and outlived < 2, f"workers alive {outlived:.1f} s after the parent"
    if code is None:
        assert proc.returncode == -signal.SIGKILL
        return
    assert proc.returncode == code, err
    assert "Traceback" not in err and "INCOMPLETE" in err and signame in err
    report = json.loads(out)
    assert report["complete"] is False and report["plan"] is None


@tokenizer_fixtures.needs_tokenizers_0("counts the test file before the signal is sent")
def test_ctrl_c_stops_a_scan_within_two_seconds(tmp_path):
    """The scanning process only waits on its workers (the parity guard runs in them too), so
    Ctrl-C ends the run at once, long documents or not."""
    tok = tokenizer_fixtures.bytelevel_bpe()
    line = json.dumps({"text": "Ein langer Satz, with words and numbers 12345, repeated. " * 4000}) + "\n"
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        f.write(line * 500)  # 114 MB in 228 KB documents
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokcount", "scan", str(path), "--tokenizer", tok, "--engine", "hf", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    time.sleep(5)
    assert proc.poll() is None, proc.communicate()
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    stopped_after = time.monotonic() - sent
    assert proc.returncode == 130 and stopped_after < 2, (stopped_after, err)
    assert json.loads(out)["complete"] is False


def _python_children(parent: int) -> list[int]:
    """The scan's worker processes (its Python children but multiprocessing's resource tracker)."""
    found = []
    for pid in _workers_of(parent):
        try:
            command = open(f"/proc/{pid}/cmdline").read()
        except OSError:
            continue
        if command.startswith(sys.executable) and "resource_tracker" not in command:
            found.append(pid)
    return found


DYING_LINE = "Ein langer Satz, with words and numbers 12345, repeated. " * 40
DYING_LINES = 17_000  # ~40 MB: three 16 MB work units of a few seconds each with --engine hf


def _scan_while_killing(path: Path, times: int, after: float, *options: str):
    tok = tokenizer_fixtures.bytelevel_bpe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokcount", "scan", str(path), "--tokenizer", tok, "--engine", "hf"]
        + ["--workers", "2", "--json", "--no-cache", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        start_new_session=True,
    )
    killer = Killer(functools.partial(_python_children, proc.pid), times, after)
    killer.start()
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        killer.stop.set()
        killer.join()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return tok, path, proc.returncode, out, err, killer.killed


@tokenizer_fixtures.needs_tokenizers_0("needs work units of seconds: the kill must land mid-unit")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and pgrep -P")
def test_a_worker_killed_mid_unit_is_replaced_and_the_count_stays_exact(tmp_path):
    from tokenizers import Tokenizer

    path = tmp_path / "big.jsonl"
    path.write_text((json.dumps({"text": DYING_LINE}) + "\n") * DYING_LINES)
    tok, path, code, out, err, killed = _scan_while_killing(path, times=1, after=1.5)
    assert len(killed) == 1, "no worker was killed: the test proved nothing"
    assert code == 0, err
    assert "Traceback" not in err
    assert (
        f"{path} (bytes " in err
        and "the worker process counting it died (killed by SIGKILL: the out-of-memory killer, or kill -9);"
        " counting it again, attempt 2 of 4"
        in err
    ), err
    report = json.loads(out)
    assert report["complete"] is True and not report["failures"]
    exact = DYING_LINES * len(Tokenizer.from_file(tok).encode(DYING_LINE).ids)
    assert report["total"]["tokens"] == exact
    assert report["total"]["documents"] == DYING_LINES


@tokenizer_fixtures.needs_tokenizers_0("needs work units of seconds: the kill must land mid-unit")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and pgrep -P")
@pytest.mark.parametrize("options, doing", [((), "counting"), (("--estimate",), "reading")])
def test_a_unit_whose_worker_always_dies_fails_the_scan_in_one_line_and_never_hangs(tmp_path, options, doing):
    # Documents of ~1 MB: any work unit, sampled or counted, takes seconds
    path = tmp_path / "long_documents.jsonl"
    path.write_text("".join(json.dumps({"text": f"{i} {DYING_LINE}" * (300 + 10 * i)}) + "\n" for i in range(40)))
    tok, path, code, out, err, killed = _scan_while_killing(path, 1000, 0.5, *options)
    assert code == 2, err
    assert "Traceback" not in err
    failure = [line for line in err.splitlines() if line.startswith("tokcount: error: ")]
    assert len(failure) == 1, err
    check = "counting" if doing == "counting" else "sampling"
    assert failure[0].startswith(f"tokcount: error: {path}: {check} failed at bytes "), failure
    assert failure[0].endswith(
        f"the worker process {doing} it died on all 4 attempts (killed by SIGKILL: the out-of-memory killer, or kill -9)"
    )
    assert len(killed) >= 4
    assert json.loads(out)["error"]
