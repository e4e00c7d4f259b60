"""Interrupted scans resume: a real SIGINT (Ctrl-C) or SIGKILL in the middle of a scan leaves
its finished units in the cache, and the same command again counts only the rest and gives
exactly the report of an uninterrupted scan."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import tokenizer_fixtures
from test_unit_cache import age, documents, tokcount_scan

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """About 8 MB of varied text, cut into about 8 units for 2 workers, and its uninterrupted report."""
    path = tmp_path_factory.mktemp("resume") / "corpus.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for seed in range(20):
            f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in documents(2500, seed))
    age(path)
    command = [*tokcount_scan(path, "--tokenizer", tokenizer_fixtures.bytelevel_bpe()), "--engine", "hf"]
    command += ["--workers", "2", "--json", "--seq-len", "128", "--gbs", "8"]
    uninterrupted = subprocess.run([*command, "--no-cache"], capture_output=True, text=True, env=ENV, check=True)
    return command, json.loads(uninterrupted.stdout)


def _data(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("cache", "options")}


@tokenizer_fixtures.needs_tokenizers_0("1.x counts the whole corpus before the signal can arrive")
@pytest.mark.parametrize("signame", ["SIGINT", "SIGKILL"])
def test_an_interrupted_scan_resumes_to_the_uninterrupted_totals(tmp_path, corpus, signame):
    command, expected = corpus
    cache = tmp_path / "cache"
    command = [*command, "--cache-dir", str(cache)]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not list((cache / "units").glob("*.unit")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the scan finished before it could be interrupted"
    os.killpg(proc.pid, getattr(signal, signame))  # Ctrl-C reaches the whole group; so does this SIGKILL
    out, err = proc.communicate(timeout=60)
    stored = len(list((cache / "units").glob("*.unit")))
    if signame == "SIGINT":
        assert proc.returncode == 130, err
        assert "run the same command again to resume" in err and "Traceback" not in err
        partial = json.loads(out)
        assert partial["complete"] is False
        assert partial["cache"]["units_stored"] == stored
    else:
        assert proc.returncode == -signal.SIGKILL
    assert stored >= 1

    resumed = subprocess.run(command, capture_output=True, text=True, env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    units = report["cache"]["units"]
    assert units >= 6 and stored < units
    assert report["cache"]["units_from_cache"] == stored
    assert report["cache"]["units_counted"] == units - stored
    assert _data(report) == _data(expected)
