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
    proc = subprocess.Popen([sys.executable, "-m", "tokcount", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=follower, env=env)
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


def test_progress_on_terminal_stderr_and_clean_json_stdout(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    line = json.dumps({"text": "words and more words, 12345 " * 50}) + "\n"
    path = tmp_path / "d.jsonl"
    path.write_text(line * 3000)  # a few seconds with the reference engine
    code, out, terminal = _run_with_terminal_stderr(
        ["scan", path, "--tokenizer", tok, "--engine", "hf", "--workers", "1", "--json"])
    assert code == 0, terminal
    assert json.loads(out)["total"]["documents"] == 3000  # stdout is pure JSON
    assert "scanning" in terminal and "tok/s" in terminal


def test_no_progress_flag(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    path = tmp_path / "d.jsonl"
    path.write_text((json.dumps({"text": "words " * 200}) + "\n") * 3000)
    code, out, terminal = _run_with_terminal_stderr(
        ["scan", path, "--tokenizer", tok, "--engine", "hf", "--workers", "1", "--no-progress"])
    assert code == 0
    assert "scanning" not in terminal
