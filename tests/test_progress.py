"""The progress bar goes to a terminal's stderr only, never into stdout."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import tokenizer_fixtures

ROOT = Path(__file__).resolve().parent.parent


def _run_with_terminal_stderr(args):
    leader, follower = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="120")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokcount", *map(str, args)], stdout=subprocess.PIPE, stderr=follower, env=env
    )
    os.close(follower)
    terminal = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        terminal += chunk
    out = proc.stdout.read()
    proc.wait(timeout=120)
    os.close(leader)
    return proc.returncode, out.decode(), terminal.decode(errors="replace")


@tokenizer_fixtures.needs_tokenizers_0("counts the test file before the bar shows")
def test_progress_on_terminal_stderr_and_clean_json_stdout(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    line = json.dumps({"text": "words and more words, 12345 " * 50}) + "\n"
    path = tmp_path / "d.jsonl"
    path.write_text(line * 3000)  # a few seconds with the reference engine
    code, out, terminal = _run_with_terminal_stderr(
        ["scan", path, "--tokenizer", tok, "--engine", "hf", "--workers", "1", "--json"]
    )
    assert code == 0, terminal
    assert json.loads(out)["total"]["documents"] == 3000  # stdout is pure JSON
    assert "scanning" in terminal and "tok/s" in terminal


def test_no_progress_flag(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    path = tmp_path / "d.jsonl"
    path.write_text((json.dumps({"text": "words " * 200}) + "\n") * 3000)
    code, out, terminal = _run_with_terminal_stderr(
        ["scan", path, "--tokenizer", tok, "--engine", "hf", "--workers", "1", "--no-progress"]
    )
    assert code == 0
    assert "scanning" not in terminal


class _RecordedProgress:
    def __init__(self):
        self.total = None
        self.advanced = 0

    def start(self, total_bytes: int) -> None:
        self.total = total_bytes

    def advance(self, nbytes: int = 0, tokens: int = 0, documents: int = 0) -> None:
        self.advanced += nbytes


def _compressed(path: Path, data: bytes, codec: str) -> Path:
    import lzma

    import pyarrow as pa

    if codec == "xz":
        path.write_bytes(lzma.compress(data))
        return path
    with pa.CompressedOutputStream(str(path), codec) as out:
        out.write(data)
    return path


def test_progress_of_compressed_files_adds_up_to_their_size(tmp_path, monkeypatch):
    """Progress through a compressed file is its compressed bytes, also when it is read as
    interleaved parts; the decompressed lines would overshoot the total."""
    from tokcount import TextOptions, scan
    from tokcount.formats import jsonl

    monkeypatch.setattr(jsonl, "INTERLEAVE_BLOCK_BYTES", 4096)
    monkeypatch.setattr(jsonl, "MIN_INTERLEAVED_BYTES", 0)
    tok = tokenizer_fixtures.bytelevel_bpe()
    data = "".join(
        json.dumps({"text": f"document {i} " + "with words " * (i % 40)}) + "\n" for i in range(3000)
    ).encode()
    paths = [
        _compressed(tmp_path / "a.jsonl.zst", data, "zstd"),
        _compressed(tmp_path / "b.jsonl.gz", data, "gzip"),
        _compressed(tmp_path / "c.jsonl.xz", data, "xz"),
    ]
    for path in paths:
        progress = _RecordedProgress()
        report = scan([str(path)], progress=progress, text=TextOptions(tokenizer=tok, workers=2))
        assert report.ok and report.files[0].documents == 3000
        size = path.stat().st_size
        assert progress.total == size, path
        assert size - 2 <= progress.advanced <= size, path  # parts round their shares down
