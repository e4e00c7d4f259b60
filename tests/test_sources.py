"""Inputs as users give them: recursive globs, directories, the same file under several names,
and things that are not regular files. Counts are compared with the index's own sizes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import tokenizer_fixtures
from idx_writer import write_mmidx

from tokcount import TokenCheckOptions, scan

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, cwd=ROOT, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "tokcount", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def shard(prefix: Path, seed: int) -> int:
    """A real pair with random documents; returns its token total from the sizes written."""
    rng = np.random.default_rng(seed)
    docs = [[list(rng.integers(0, 1000, int(rng.integers(1, 30))))] for _ in range(int(rng.integers(3, 9)))]
    prefix.parent.mkdir(parents=True, exist_ok=True)
    sizes = write_mmidx(prefix, docs)
    return int(np.sum(sizes))


def test_a_quoted_double_star_glob_matches_every_depth(tmp_path):
    expected = {}
    for depth, rel in enumerate(["a", "x/b", "x/y/c", "x/y/z/d"]):
        expected[rel] = shard(tmp_path / rel, depth)
    report = scan([str(tmp_path / "**" / "*.bin")])
    assert sorted(Path(f.path).relative_to(tmp_path).as_posix() for f in report.files) == sorted(expected)
    assert report.total["tokens"] == sum(expected.values())


def test_a_directory_is_walked_and_what_it_leaves_out_is_listed(tmp_path):
    total = shard(tmp_path / "data" / "part-0", 1) + shard(tmp_path / "data" / "deep" / "part-1", 2)
    (tmp_path / "data" / "README.md").write_text("not data")
    (tmp_path / "data" / ".cache").mkdir()
    shard(tmp_path / "data" / ".cache" / "stale", 3)  # hidden: never counted
    (tmp_path / "data" / ".DS_Store").write_bytes(b"\0")
    report = scan([str(tmp_path / "data")])
    assert report.ok and len(report.files) == 2 and report.total["tokens"] == total
    skipped = {Path(s["path"]).name: s["reason"] for s in report.skipped_inputs}
    assert skipped == {"README.md": "unknown format", ".cache": "hidden directory", ".DS_Store": "hidden file"}
    doc = json.loads(run_cli("scan", tmp_path / "data", "--json").stdout)
    assert doc["total"]["tokens"] == total and len(doc["skipped_inputs"]) == 3


def test_an_empty_directory_is_an_error_not_a_zero(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run_cli("scan", tmp_path / "empty")
    assert proc.returncode == 2 and "holds no" in proc.stderr and "Traceback" not in proc.stderr


def test_the_same_file_under_several_names_is_counted_once(tmp_path):
    tokens = shard(tmp_path / "d" / "x", 7)
    os.symlink(tmp_path / "d" / "x.bin", tmp_path / "link.bin")
    os.symlink(tmp_path / "d" / "x.idx", tmp_path / "link.idx")
    names = ["d/x", "d/x.bin", "./d/x.bin", str(tmp_path / "d" / "x.bin"), "link.bin", "d/x.idx"]
    proc = run_cli("scan", *names, "--json", cwd=tmp_path)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["total"]["files"] == 1 and doc["total"]["tokens"] == tokens
    # every name after the first is listed (a glob's x.bin and x.idx are one pair: see below)
    assert [m["path"] for m in doc["merged_inputs"]] == [
        "d/x.bin",
        "./d/x.bin",
        str(tmp_path / "d" / "x.bin"),
        "link.bin",
        "d/x.idx",
    ]
    assert {m["same_as"] for m in doc["merged_inputs"]} == {"d/x"}
    globbed = scan([str(tmp_path / "d" / "*")])  # x.bin and x.idx: one pair, nothing to report
    assert globbed.total["tokens"] == tokens and globbed.merged_inputs == []


def test_a_directory_named_like_a_bin_file_is_refused(tmp_path):
    # 2,048 uint16 tokens make a 4,096-byte .bin: exactly a directory's st_size on most filesystems
    write_mmidx(tmp_path / "x", [[list(range(2048))]])
    (tmp_path / "x.bin").unlink()
    (tmp_path / "x.bin").mkdir()
    for extra in ([], ["--verify-tokens", "--vocab-size", "50000"]):
        proc = run_cli("scan", tmp_path / "x.bin", *extra)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and "a directory, not a regular file" in proc.stderr
    report = scan([str(tmp_path / "x")], verify_tokens=TokenCheckOptions(50000))
    assert report.files == [] and report.failures[0].check == "open"


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.zst", ".parquet", ".bin"])
def test_a_fifo_is_refused_at_once_even_with_a_writer(tmp_path, suffix):
    fifo = tmp_path / f"stream{suffix}"
    os.mkfifo(fifo)
    writer = subprocess.Popen([sys.executable, "-c", f"open({str(fifo)!r}, 'wb').write(b'{{}}\\n' * 10)"])
    try:
        proc = run_cli("scan", fifo, "--tokenizer", ROOT / "missing.json", timeout=60)
    finally:
        writer.kill()
        writer.wait()
    assert proc.returncode == 2 and "FIFO" in proc.stderr and "Traceback" not in proc.stderr


def test_an_arrow_ipc_file_with_no_record_batch_is_listed_with_zero_documents(tmp_path):
    schema = pa.schema([("text", pa.string())])
    with pa.OSFile(str(tmp_path / "empty.arrow"), "wb") as sink:
        pa.ipc.new_file(sink, schema).close()
    ids = tmp_path / "ids.arrow"  # a token-id column needs no tokenizer
    with pa.OSFile(str(ids), "wb") as sink:
        pa.ipc.new_file(sink, pa.schema([("text", pa.list_(pa.int32()))])).close()
    report = scan([str(ids)])
    assert report.ok and [(Path(f.path).name, f.documents, f.tokens) for f in report.files] == [("ids.arrow", 0, 0)]


@pytest.mark.parametrize("command", ["bench", "check"])
def test_bench_and_check_refuse_a_fifo_too(tmp_path, command):
    fifo = tmp_path / "stream.jsonl"
    os.mkfifo(fifo)
    writer = subprocess.Popen([sys.executable, "-c", f"open({str(fifo)!r}, 'wb').write(b'{{}}\\n' * 10)"])
    write_mmidx(tmp_path / "x", [[[1, 2, 3]]])
    tok = tokenizer_fixtures.bytelevel_bpe()  # a real one, so that the file is what gets refused
    args = (
        ["bench", fifo, "--tokenizer", tok]
        if command == "bench"
        else ["check", fifo, "--against", tmp_path / "x", "--tokenizer", tok]
    )
    try:
        proc = run_cli(*args, timeout=60)
    finally:
        writer.kill()
        writer.wait()
    assert proc.returncode == 2 and "FIFO" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("compress", [None, "gzip", "zstd", "bz2", "xz"])
def test_standard_input_is_read_once_in_any_compression(tmp_path, compress):
    import bz2
    import gzip
    import lzma

    texts = [f"document {i}: some words, numbers {i * 7} and ünïcödé" for i in range(300)]
    data = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
    if compress == "gzip":
        data = gzip.compress(data)
    elif compress == "bz2":
        data = bz2.compress(data)
    elif compress == "xz":
        data = lzma.compress(data)
    elif compress == "zstd":
        sink = pa.BufferOutputStream()
        with pa.CompressedOutputStream(sink, "zstd") as out:
            out.write(data)
        data = sink.getvalue().to_pybytes()
    tok = tokenizer_fixtures.bytelevel_bpe()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "tokcount", "scan", "-", "--tokenizer", tok, "--json"],
        input=data,
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(tok)
    assert doc["files"][0]["path"] == "-" and doc["files"][0]["documents"] == len(texts)
    assert doc["total"]["tokens"] == sum(len(reference.encode(t).ids) for t in texts)


def test_empty_standard_input_is_counted_and_warned_about():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokcount",
            "scan",
            "-",
            "-",
            "--tokenizer",
            tokenizer_fixtures.bytelevel_bpe(),
            "--json",
        ],
        input=b"",
        capture_output=True,
        env=env,
        timeout=300,
    )
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["total"]["documents"] == 0
    assert "standard input held no document" in " ".join(doc["files"][0]["warnings"])
    assert doc["merged_inputs"] == [{"path": "-", "same_as": "-"}]
