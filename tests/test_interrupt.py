"""Ctrl-C: workers stop promptly, the partial report is printed and marked incomplete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import tokenizer_fixtures

ROOT = Path(__file__).resolve().parent.parent


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
