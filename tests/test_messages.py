"""What a careful user reads when something is off: one line, the file, the position, in words
that parse, and the flag that would help. Real files, real compression, the real CLI."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tokenizer_fixtures
from idx_writer import write_mmidx
from tokenizers import Tokenizer

from tokcount import TextOptions, UsageError, scan

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "tokcount", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


def count(tok: str, texts: list[str]) -> int:
    t = Tokenizer.from_file(tok)
    return sum(len(t.encode(x).ids) for x in texts)


TESTERS = {".gz": ["gzip", "-t"], ".zst": ["zstd", "-t"], ".bz2": ["bzip2", "-t"], ".xz": ["xz", "-t"]}


@pytest.mark.parametrize("suffix", list(TESTERS))
def test_a_zero_byte_compressed_file_fails_as_its_own_tool_says(tmp_path, suffix):
    path = tmp_path / f"empty.jsonl{suffix}"
    path.write_bytes(b"")
    proc = run_cli("scan", path, "--tokenizer", tokenizer_fixtures.bytelevel_bpe())
    assert proc.returncode == 2 and "the file is empty" in proc.stderr and "Traceback" not in proc.stderr
    tool = TESTERS[suffix]
    if shutil.which(tool[0]):
        assert subprocess.run([*tool, str(path)], capture_output=True).returncode != 0
    plain = tmp_path / "empty.jsonl"  # an empty plain file is an empty dataset, not a broken stream
    plain.write_bytes(b"")
    report = scan([str(plain)], text=TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe()))
    assert report.ok and report.files[0].documents == 0


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz"])
def test_a_truncated_stream_names_the_last_line_read_whole(tmp_path, suffix):
    lines = [json.dumps({"text": f"line number {i} " * 20}) + "\n" for i in range(3000)]
    data = "".join(lines).encode()
    compress = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}[suffix]
    packed = compress(data)
    path = tmp_path / f"t.jsonl{suffix}"
    path.write_bytes(packed[: len(packed) // 2])
    report = scan([str(path)], text=TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), workers=1))
    message = str(report.failures[0])
    assert " at after " not in message
    # what the standard library's decoder gets whole from the same bytes
    decoder = {".gz": lambda: zlib.decompressobj(31), ".bz2": bz2.BZ2Decompressor, ".xz": lzma.LZMADecompressor}
    try:
        readable = decoder[suffix]().decompress(path.read_bytes()).count(b"\n")
    except (EOFError, OSError, lzma.LZMAError):
        readable = 0
    found = re.search(r"failed after line ([\d,]+), the last one read whole", message)
    if readable == 0:  # bz2: one 900 kB block, nothing decodes before its end
        assert "failed before its first line" in message, message
    else:
        assert found, message
        assert 0 < int(found[1].replace(",", "")) <= readable < len(lines)


def test_a_byte_order_mark_opening_the_file_is_accepted_and_elsewhere_named(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"text": "first line"}\n{"text": "second"}\n')
    report = scan([str(path)], text=TextOptions(tokenizer=tok))
    assert report.ok and report.files[0].tokens == count(tok, ["first line", "second"])
    path.write_bytes(b'{"text": "first line"}\n\xef\xbb\xbf{"text": "second"}\n')
    failure = scan([str(path)], text=TextOptions(tokenizer=tok)).failures[0]
    assert failure.check == "byte order mark" and failure.position == "line 2" and "invalid UTF-8" not in str(failure)


def test_a_bad_line_names_the_flag_that_skips_it(tmp_path):
    path = tmp_path / "blank.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": "b"}\n')
    proc = run_cli("scan", path, "--tokenizer", tokenizer_fixtures.bytelevel_bpe())
    assert proc.returncode == 2 and "line 2: blank line" in proc.stderr and "--skip-bad-records" in proc.stderr


def test_an_empty_text_key_is_a_usage_error(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n')
    proc = run_cli("scan", path, "--tokenizer", tokenizer_fixtures.bytelevel_bpe(), "--text-key", "")
    assert proc.returncode == 1 and "--text-key" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(UsageError, match="text_key"):  # the API names its parameter, not the flag
        scan([str(path)], text=TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), text_key=" "))


def test_names_and_bytes_that_disagree_are_told_apart(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    gz_as_zst = tmp_path / "x.jsonl.zst"
    gz_as_zst.write_bytes(gzip.compress(b'{"text": "a"}\n'))
    parquet_as_jsonl = tmp_path / "y.jsonl"
    pq.write_table(pa.table({"text": ["a"]}), parquet_as_jsonl)
    not_gz = tmp_path / "z.jsonl.gz"
    not_gz.write_bytes(b'{"text": "a"}\n')
    report = scan([str(gz_as_zst), str(parquet_as_jsonl), str(not_gz)], text=TextOptions(tokenizer=tok))
    messages = [str(f) for f in report.failures]
    assert "named .zst but the bytes are gzip-compressed" in messages[0]
    assert "the file is Parquet" in messages[1]
    assert "named .gz but it does not start with the gzip magic bytes" in messages[2] and ".gzip" not in messages[2]


def test_a_uri_of_an_unknown_scheme_is_said_to_be_unsupported():
    # Remote URIs are read (tests/test_remote.py); a scheme tokcount has no filesystem for is a usage error.
    proc = run_cli(
        "scan", "ftp://example.invalid/corpus/part-0.jsonl.zst", "--tokenizer", tokenizer_fixtures.bytelevel_bpe()
    )
    assert proc.returncode == 1 and "no file matches" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "tokcount: error: ftp://example.invalid/corpus/part-0.jsonl.zst: unsupported scheme ftp:// "
        "(tokcount reads local paths and s3://, gs://, az://, abfs://, hf://, http://, https://)"
    ]


def test_text_options_on_a_shards_only_scan_get_a_warning(tmp_path):
    write_mmidx(tmp_path / "d", [[[1, 2, 3]]])
    report = scan([str(tmp_path / "d")], text=TextOptions(tokenizer="unused.json", append_eod=True))
    assert report.ok and report.warnings and "--tokenizer, --append-eod only apply to raw text" in report.warnings[0]
    proc = run_cli("scan", tmp_path / "d", "--tokenizer", "unused.json")
    assert proc.returncode == 0 and "warning: --tokenizer only apply" in " ".join(proc.stdout.split())
    assert not scan([str(tmp_path / "d")]).warnings


@tokenizer_fixtures.needs_tokenizers_0("no enable_truncation/enable_padding")
def test_an_ignored_truncation_setting_is_shown_in_the_table(tmp_path):
    tokenizer = Tokenizer.from_file(tokenizer_fixtures.bytelevel_bpe())
    tokenizer.enable_truncation(max_length=4)
    tok = tmp_path / "truncating.json"
    tokenizer.save(str(tok))
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a long enough text to be truncated at four tokens"}\n')
    proc = run_cli("scan", data, "--tokenizer", tok)
    assert proc.returncode == 0 and "sets truncation; counting ignores it" in proc.stdout


def test_bench_on_an_empty_file_is_an_error_and_takes_fractional_megabytes(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    proc = run_cli("bench", empty, "--tokenizer", tokenizer_fixtures.bytelevel_bpe())
    assert proc.returncode == 2 and "no text to time" in proc.stderr and "x)" not in proc.stdout
    some = tmp_path / "some.jsonl"
    some.write_text("".join(json.dumps({"text": f"words {i}"}) + "\n" for i in range(100)))
    proc = run_cli("bench", some, "--tokenizer", tokenizer_fixtures.bytelevel_bpe(), "--max-mb", "0.5", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["texts"] == 100


class _Recorder:
    def __init__(self):
        self.statuses: list[str] = []

    def start(self, total_bytes):
        pass

    def advance(self, nbytes=0, tokens=0, documents=0):
        pass

    def status(self, message):
        self.statuses.append(message)


@tokenizer_fixtures.needs_tokenizers_0("no fast engine")
def test_a_first_run_says_it_compiles_and_later_runs_do_not(tmp_path, monkeypatch):
    from tokcount.engines.fast import code_version

    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "some words"}\n')
    options = TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), engine="fast")
    assert code_version.kernels_compiled()  # the session compiled them (conftest)
    warm = _Recorder()
    scan([str(path)], progress=warm, text=options)
    assert warm.statuses == []
    monkeypatch.setattr(code_version, "kernels_compiled", lambda: False)  # as in a fresh install
    cold = _Recorder()
    scan([str(path)], progress=cold, text=options)
    assert len(cold.statuses) == 1 and "compiling the fast engine's kernels" in cold.statuses[0]
    hf = _Recorder()
    scan([str(path)], progress=hf, text=TextOptions(tokenizer=options.tokenizer, engine="hf"))
    assert hf.statuses == []  # nothing to compile for the reference engine


@tokenizer_fixtures.needs_tokenizers_0("no fast engine")
def test_a_batch_of_empty_documents_compiles_nothing_new():
    """A batch whose texts are all empty once made a writable one-byte buffer instead of a
    read-only one: another numba type, so every kernel compiled a second time (+40 s)."""
    from tokcount.engines.fast import FastCounter, count
    from tokcount.tokenizer import load_tokenizer_spec

    counter = FastCounter(load_tokenizer_spec(tokenizer_fixtures.bytelevel_bpe()))
    counter.count(["some text"])
    before = list(count.count_documents.signatures)
    assert counter.count(["", ""]).tolist() == [0, 0]
    assert list(count.count_documents.signatures) == before and len(before) == 1


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("tail", [b"", b"\0" * 1000, b"trailing garbage, not gzip\n"])
def test_data_after_the_last_gzip_member_is_handled_as_gzip_does(tmp_path, monkeypatch, tail, workers):
    from tokcount.formats import jsonl

    monkeypatch.setattr(jsonl, "MIN_INTERLEAVED_BYTES", 0)
    tok = tokenizer_fixtures.bytelevel_bpe()
    texts = [f"line {i}: " + "words and more words " * (i % 40) for i in range(6000)]
    lines = [json.dumps({"text": t}) + "\n" for t in texts]
    half = len(lines) // 2
    data = gzip.compress("".join(lines[:half]).encode()) + gzip.compress("".join(lines[half:]).encode()) + tail
    path = tmp_path / "members.jsonl.gz"
    path.write_bytes(data)
    gzip_says = subprocess.run(["gzip", "-t", str(path)], capture_output=True) if shutil.which("gzip") else None
    report = scan([str(path)], text=TextOptions(tokenizer=tok, workers=workers, in_process_bytes=0))
    assert report.ok, report.failures
    f = report.files[0]
    assert f.documents == len(texts) and f.tokens == count(tok, texts)
    garbage = tail.strip(b"\0") != b""
    assert bool(f.warnings) == garbage and (not garbage or "trailing garbage" in f.warnings[0])
    if gzip_says is not None:  # gzip: garbage is a warning (exit 2), zeros are fine (exit 0)
        assert (gzip_says.returncode != 0) == garbage


def test_a_corrupt_gzip_member_still_fails_cleanly(tmp_path):
    good = gzip.compress(b'{"text": "a"}\n' * 100)
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(good[:20] + bytes(b ^ 0xFF for b in good[20:40]) + good[40:])
    report = scan([str(path)], text=TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe()))
    assert report.files == [] and "corrupt" in report.failures[0].check
