"""The command line, run as a real subprocess: exit codes, one-line errors, stable JSON."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tokenizer_fixtures as fixtures
from idx_writer import patch, write_mmidx

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "data"
SHARED = ROOT.parent / "shared"


def run(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "tokcount", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def assert_clean_error(proc, code):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("tokcount: error")]
    assert errors, proc.stderr


def index_sizes(prefix):
    """sizes read straight from the bytes, independently of tokcount."""
    raw = Path(str(prefix) + ".idx").read_bytes()
    n = int.from_bytes(raw[18:26], "little")
    return np.frombuffer(raw, dtype="<i4", count=n, offset=34)


def test_example_scan_json_keys_and_counts():
    proc = run("scan", *sorted(glob.glob(str(EXAMPLE / "*.bin"))), "--seq-len", 2048, "--gbs", 1024, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    f = doc["files"][0]
    for key in ("path", "format", "documents", "sequences", "empty_documents", "tokens", "dtype"):
        assert key in f
    for key in ("files", "documents", "sequences", "tokens"):
        assert key in doc["total"]
    sizes = index_sizes(EXAMPLE / "corpus_text_document")
    assert f["tokens"] == int(sizes.sum(dtype=np.int64)) == doc["total"]["tokens"]
    assert f["sequences"] == len(sizes)
    lines = (EXAMPLE / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    assert f["documents"] == len(lines)
    assert f["empty_documents"] == sum(1 for line in lines if json.loads(line)["text"] == "")
    plan = doc["plan"]
    for key in (
        "framework",
        "seq_len",
        "global_batch_size",
        "tokens",
        "samples_per_epoch",
        "estimated_tokens",
        "iterations_per_epoch",
        "remainder_samples",
    ):
        assert key in plan
    T = f["tokens"]
    assert plan["samples_per_epoch"] == (T - 1) // 2048
    assert plan["estimated_tokens"] == plan["samples_per_epoch"] * 2048
    assert plan["iterations_per_epoch"] == plan["samples_per_epoch"] // 1024


@pytest.mark.skipif(not (SHARED / "tokenizers" / "gpt2.json").exists(), reason="needs ../shared/tokenizers/gpt2.json")
def test_example_index_is_the_tokenized_jsonl():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(SHARED / "tokenizers" / "gpt2.json"))
    lengths = []
    for line in (EXAMPLE / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        n = len(tok.encode(json.loads(line)["text"]).ids)
        if n:
            lengths.append(n + 1)  # Megatron preprocessing: EOD on non-empty documents only
    assert index_sizes(EXAMPLE / "corpus_text_document").tolist() == lengths


def test_split_and_train_iters_in_json(tmp_path):
    sizes = [5, 0, 7, 3, 9, 11, 2, 4, 6, 8]
    write_mmidx(tmp_path / "d", [[[1] * s] for s in sizes])
    proc = run(
        "scan",
        tmp_path / "d",
        "--seq-len",
        4,
        "--gbs",
        2,
        "--split",
        "8,1,1",
        "--train-iters",
        3,
        "--eval-interval",
        2,
        "--eval-iters",
        1,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    splits = json.loads(proc.stdout)["plan"]["splits"]
    for name in ("train", "valid", "test"):
        for key in (
            "sequences",
            "tokens",
            "samples_per_epoch",
            "requested_samples",
            "epochs",
            "samples_built",
            "dataset_length",
        ):
            assert key in splits[name]
    # Megatron: round the cumulative fraction (spec §4.2): [0,8) [8,9) [9,10)
    assert splits["train"]["sequences"] == [0, 8]
    assert splits["train"]["tokens"] == sum(sizes[:8])
    assert splits["valid"]["tokens"] == sizes[8]
    assert splits["train"]["requested_samples"] == 3 * 2
    assert splits["valid"]["requested_samples"] == (3 // 2 + 1) * 1 * 2


def test_corrupt_file_exit_2_and_healthy_files_still_reported(tmp_path):
    write_mmidx(tmp_path / "good", [[[1, 2, 3]]])
    write_mmidx(tmp_path / "bad", [[[1, 2, 3]]])
    patch(tmp_path / "bad.idx", 17, "<B", 6)
    proc = run("scan", tmp_path / "good.bin", tmp_path / "bad.bin", "--json")
    assert_clean_error(proc, 2)
    doc = json.loads(proc.stdout)
    assert [f["tokens"] for f in doc["files"]] == [3]
    assert doc["failures"][0]["check"] == "dtype code"
    assert "bad.idx" in proc.stderr and "byte 17" in proc.stderr


def test_table_output_without_json(tmp_path):
    write_mmidx(tmp_path / "d", [[[1] * 100], []])
    proc = run("scan", tmp_path / "d.bin", "--seq-len", 8, "--gbs", 4)
    assert proc.returncode == 0, proc.stderr
    assert "100" in proc.stdout and "samples per epoch" in proc.stdout


def test_verify_tokens_cli(tmp_path):
    write_mmidx(tmp_path / "d", [[[1, 2, 0]], [[70000, 0]]], dtype=np.int32)
    proc = run("scan", tmp_path / "d", "--verify-tokens", "--vocab-size", 65536, "--eod", 0)
    assert_clean_error(proc, 2)
    assert "token 3" in proc.stderr
    proc = run("scan", tmp_path / "d", "--verify-tokens", "--vocab-size", 70001, "--eod", 0, "--json")
    assert proc.returncode == 0, proc.stderr
    check = json.loads(proc.stdout)["files"][0]["token_check"]
    assert check["max_token_id"] == 70000 and check["documents_missing_eod"] == 0


@pytest.mark.parametrize(
    "args",
    [
        ["scan"],
        ["scan", "x.bin", "--seq-len", "0", "--gbs", "4"],
        ["scan", "x.bin", "--seq-len", "8"],
        ["scan", "x.bin", "--verify-tokens"],
        ["plan", "--seq-len", "8", "--gbs", "2"],
        ["bogus"],
    ],
)
def test_usage_errors_exit_1(args):
    proc = run(*args)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_file_exit_2():
    proc = run("scan", "/nonexistent/data_text_document.bin")
    assert_clean_error(proc, 2)


def test_plan_seed_example():
    proc = run("plan", "--samples", 31267487, "--seq-len", 2048, "--gbs", 1024, "--json")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "30534" in text.replace(",", "")
    proc = run("plan", "--samples", 31267487, "--seq-len", 2048, "--gbs", 1024)
    assert proc.returncode == 0 and "30,534" in proc.stdout


def test_python_api_mirrors_cli(tmp_path):
    import tokcount

    write_mmidx(tmp_path / "d", [[[1] * 50]])
    report = tokcount.scan(str(tmp_path / "d"), tokcount.TrainingOptions(seq_len=7, global_batch_size=2))
    assert report.total["tokens"] == 50
    assert report.plan.samples_per_epoch == (50 - 1) // 7


def test_several_shards_blend_and_weights(tmp_path):
    write_mmidx(tmp_path / "a", [[[1] * s] for s in (50, 70, 30)])
    write_mmidx(tmp_path / "b", [[[1] * s] for s in (500, 10)])
    proc = run(
        "scan",
        tmp_path / "a",
        tmp_path / "b",
        "--seq-len",
        16,
        "--gbs",
        4,
        "--train-iters",
        5,
        "--eval-iters",
        1,
        "--weights",
        1,
        3,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["plan"]["tokens"] == 150 + 510  # all shards merged into one dataset
    blend = doc["blend"]
    assert [p["tokens"] for p in blend["shard_plans"]] == [150, 510]
    members = [m for m in blend["weighted_blend_members"] if m["split"] == "train"]
    # Megatron (spec §4.8): target ceil(N·w), buffer ceil(target·1.005), N = 5·4 = 20
    assert [m["blend_target"] for m in members] == [5, 15]
    assert [m["requested_samples"] for m in members] == [6, 16]
    proc = run("scan", tmp_path / "a", tmp_path / "b", "--seq-len", 16, "--gbs", 4, "--weights", 1)
    assert proc.returncode == 1 and "--weights" in proc.stderr


def test_plan_from_tokens_cli():
    proc = run("plan", "--tokens", 64035813377, "--seq-len", 2048, "--gbs", 1024, "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["samples_per_epoch"] == 31267487 and d["iterations_per_epoch"] == 30534
    assert d["remainder_samples"] == 671 and d["unused_tail_tokens"] == 0


def test_a_refused_plan_exits_4_and_shows_no_numbers_for_the_refused_split():
    proc = run("plan", "--tokens", 1, "--seq-len", 2048, "--gbs", 8, "--train-iters", 10)
    assert proc.returncode == 4, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.strip("│┃ ").startswith("train"))
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells[3] == "REFUSED" and set(cells[4:]) == {"-"}  # samples built etc. are not shown
    assert "refused: train" in proc.stderr and "Traceback" not in proc.stderr
    assert "0 samples per epoch" in proc.stdout
    as_json = run("plan", "--tokens", 1, "--seq-len", 2048, "--gbs", 8, "--train-iters", 10, "--json")
    assert as_json.returncode == 4 and json.loads(as_json.stdout)["splits"]["train"]["refused"]


def test_a_scan_whose_plan_is_refused_exits_4(tmp_path):
    write_mmidx(tmp_path / "d", [[[1]]])  # one token: helpers.cpp asserts tokens_per_epoch > 1
    proc = run("scan", tmp_path / "d", "--seq-len", 8, "--gbs", 1, "--train-iters", 1, "--framework", "neox")
    assert proc.returncode == 4 and "refused:" in proc.stderr
    ok = run("scan", EXAMPLE / "corpus_text_document", "--seq-len", 8, "--gbs", 1)
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize(
    "args, kind",
    [
        (["scan", "--bogus", "x"], "usage"),
        (["scan", str(EXAMPLE / "corpus.jsonl"), "--tokenizer", "no/such/tokenizer.json"], "usage"),
        (["plan", "--tokens", "10", "--seq-len", "0", "--gbs", "1"], "usage"),
    ],
)
def test_with_json_every_error_is_json_and_one_line_on_stderr(args, kind):
    proc = run(*args, "--json")
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert error["kind"] == kind and error["exit_code"] == 1 and error["message"]
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("tokcount: error: ")
    assert "usage:" not in proc.stderr and "Traceback" not in proc.stderr


def test_an_argparse_error_is_one_line_with_a_hint():
    proc = run("scan", "--bogus", "x")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["tokcount: error: unrecognized arguments: --bogus (see 'tokcount scan --help')"]


@pytest.mark.parametrize("as_json", [False, True])
def test_a_closed_pipe_exits_quietly(tmp_path, as_json):
    for i in range(400):  # enough output to fill the pipe before the reader goes away
        write_mmidx(tmp_path / f"shard_{i:03d}", [[[1, 2, 3]], [[4]]])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokcount", "scan", str(tmp_path / "*.bin"), *(["--json"] if as_json else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err == ""


def test_every_option_has_help_and_every_command_ends_with_examples_and_exit_codes():
    import argparse

    from tokcount.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) == {"scan", "plan", "check", "bench"}
    for name, command in commands.items():
        undocumented = [a.option_strings or a.dest for a in command._actions if not a.help]
        assert undocumented == [], name
        text = command.format_help()
        assert "examples:" in text and f"tokcount {name} " in text.split("examples:")[1]
        assert text.rstrip().splitlines()[-3].startswith("  0 ok, 1 usage error")  # exit codes close the help


@pytest.mark.parametrize("columns", [None, "80", "60"])
def test_tables_never_cut_a_number(columns):
    args = ["plan", "--tokens", 64_035_813_377_000, "--seq-len", 2048, "--gbs", 1024, "--train-iters", 10**15]
    numbers = json.loads(run(*args, "--json").stdout)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("COLUMNS", None)
    if columns:
        env["COLUMNS"] = columns
    proc = subprocess.run(
        [sys.executable, "-m", "tokcount", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    train = numbers["splits"]["train"]
    for key in ("tokens", "samples_per_epoch", "requested_samples", "epochs", "samples_built", "dataset_length"):
        assert f"{train[key]:,}" in proc.stdout, (key, columns)
    if columns:
        assert max(map(len, proc.stdout.splitlines())) <= int(columns)


NUMBA_EXTENSIONS_PROBE = """
import sys
if sys.argv[1] == "command":
    from tokcount.cli import main
    main(["scan", sys.argv[3], "--tokenizer", sys.argv[2], "--engine", "fast", "--no-cache", "--json"])
else:
    from tokcount.engines.fast import FastCounter
    from tokcount.tokenizer import load_tokenizer_spec
    FastCounter(load_tokenizer_spec(sys.argv[2])).count(["numba loads its extensions on a first call"])
print("awkward" in sys.modules, file=sys.stderr)
"""


def test_the_command_skips_numba_extensions_and_a_library_caller_keeps_them(tmp_path):
    # awkward registers a numba extension (0.13-0.2 s to import): the command's own process
    # never needs it, but a program using tokcount as a library may need numba's extensions.
    pytest.importorskip("awkward")
    if not fixtures.TRAINABLE:
        pytest.skip("tokenizers 1.x: no fast engine (its tables need 0.2x's components)")
    tokenizer = fixtures.bytelevel_bpe()
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello world"}\n', encoding="utf-8")
    seen = {}
    for mode in ("command", "library"):
        proc = subprocess.run(
            [sys.executable, "-c", NUMBA_EXTENSIONS_PROBE, mode, tokenizer, str(data)],
            capture_output=True,
            text=True,
            timeout=600,
            # a cold plan cache: the plan's builders are numba's first call, before any kernel
            env=dict(os.environ, PYTHONPATH=str(ROOT), TOKCOUNT_CACHE_DIR=str(tmp_path / mode)),
        )
        assert proc.returncode == 0, proc.stderr
        seen[mode] = proc.stderr.strip().splitlines()[-1]
    assert seen == {"command": "False", "library": "True"}
