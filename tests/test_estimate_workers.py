"""``--estimate`` on the local workers: for a ``--seed`` the same estimate as one process, to the
last digit; Ctrl-C (a real SIGINT to the process group) prints the estimate so far, marked
partial, and exits 130; ``--skip-bad-records`` skips, counts and reports the bad records of the
bytes read; standard input and split datasets are refused in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tokenizer_fixtures
from estimate_harness import sources_corpus
from test_cli import run
from tokenizers import Tokenizer

from tokcount.cli import main
from tokcount.estimate import EstimateOptions, estimate_scan
from tokcount.options import TextOptions

ROOT = Path(__file__).resolve().parent.parent


def test_workers_give_the_estimate_of_one_process(tmp_path):
    tokenizer = tokenizer_fixtures.bytelevel_bpe()
    paths = sources_corpus(tmp_path, documents=1500)
    options = EstimateOptions(seed=7, target_error=0.03, unit_bytes=4 << 10)
    one, two = (
        estimate_scan(paths, TextOptions(tokenizer=tokenizer, group_by="source", workers=n), options).to_dict()
        for n in (1, 2)
    )
    assert one["stopped_by"] == "target" and 0 < one["fraction_read"] < 0.8
    assert one == two


def big_corpus(directory: Path) -> Path:
    rng = np.random.default_rng(0)
    path = directory / "big.jsonl"
    words = ["Ein", "langer", "Satz,", "with", "words", "and", "numbers", "12345,", "repeated."]
    with open(path, "w") as f:
        for k in range(40_000):  # ~90 MB: far more than a few seconds of sampling with hf
            text = " ".join(rng.choice(words, int(rng.integers(200, 600))))
            f.write(json.dumps({"text": text, "source": f"s{k % 3}"}) + "\n")
    return path


@tokenizer_fixtures.needs_tokenizers_0("reads the sample before the signal is sent")
def test_ctrl_c_prints_the_partial_estimate(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    path = big_corpus(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    base = [sys.executable, "-m", "tokcount", "scan", str(path), "--tokenizer", tok, "--engine", "hf"]
    base += ["--estimate", "--target-error", "0.01%", "--seed", "1", "--group-by", "source", "--workers", "2"]
    procs = [
        subprocess.Popen(
            base + extra,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        for extra in (["--json"], [])
    ]
    time.sleep(8)  # past the workers' start-up and the pilot
    for proc in procs:
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    (out, err), (human, human_err) = (proc.communicate(timeout=60) for proc in procs)
    for proc, e in zip(procs, (err, human_err)):
        assert proc.returncode == 130, e
        assert "Traceback" not in e and "PARTIAL" in e
    est = json.loads(out)["estimate"]
    assert est["complete"] is False and est["stopped_by"] == "interrupted"
    assert 0 < est["units_read"] < est["units_total"] and est["tokens"]["low"] <= est["tokens"]["value"]
    assert {g["key"] for g in est["groups"]} == {"s0", "s1", "s2"}
    assert "PARTIAL (interrupted) ESTIMATE" in human and "groups by source" in human


def test_skip_bad_records_in_the_sample_are_counted_and_reported(tmp_path):
    tokenizer = tokenizer_fixtures.bytelevel_bpe()
    rng = np.random.default_rng(3)
    lines = []
    for k in range(3000):
        if k % 50 == 7:
            lines.append('{"text": broken\n' if k % 100 == 7 else '{"no_text": 1}\n')
        else:
            lines.append(json.dumps({"text": " ".join(["word"] * int(rng.integers(1, 80)))}) + "\n")
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(lines))
    text = TextOptions(tokenizer=tokenizer, skip_bad_records=True)
    # read everything: exactly the 60 bad lines, and the good ones' exact totals
    whole = estimate_scan([str(path)], text, EstimateOptions(seed=0, unit_bytes=16 << 10))  # < 60 units
    assert whole.stopped_by == "exhausted" and whole.skipped_records == 60
    assert round(whole.documents.value) == 2940
    tok = Tokenizer.from_file(tokenizer)
    good = [json.loads(line)["text"] for k, line in enumerate(lines) if k % 50 != 7]
    assert round(whole.tokens.value) == sum(len(tok.encode(t).ids) for t in good)
    # examples: the first bad records drawn, each named by its line
    assert 0 < len(whole.skipped_examples) <= 5
    for bad in whole.skipped_examples:
        assert (int(bad["position"].removeprefix("line ")) - 1) % 50 == 7, bad
    # a sample: fewer, and said so in the JSON and the table
    proc = run("scan", path, "--tokenizer", tokenizer, "--estimate", "--skip-bad-records", "--budget", "40KB", "--json")
    assert proc.returncode == 0, proc.stderr
    est = json.loads(proc.stdout)["estimate"]
    assert 0 < est["skipped_records"] < 60 and est["bytes_read"] < path.stat().st_size
    assert any("bad record(s) skipped" in note for note in est["notes"])
    human = run("scan", path, "--tokenizer", tokenizer, "--estimate", "--skip-bad-records", "--budget", "40KB")
    assert "bad record(s) in the" in human.stdout


def test_stdin_and_split_datasets_are_refused(tmp_path, capsys):
    tokenizer = tokenizer_fixtures.bytelevel_bpe()
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "hello"}\n')
    for args in (
        ["-"],
        [str(path), "--valid-data", str(path), "--seq-len", "8", "--gbs", "1"],
        [str(path), "--executor", "ray"],
    ):
        assert main(["scan", *args, "--tokenizer", tokenizer, "--estimate"]) == 1, args
        err = capsys.readouterr().err
        assert err.startswith("tokcount: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
