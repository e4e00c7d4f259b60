"""Whole-process wall time, CPU seconds and peak RSS at realistic scale: ``tokcount scan`` (auto,
and each engine) against gigatoken's native file path (``encode_files`` + ``awkward.num``) and,
when a tokenizers 1.x interpreter is given, HF 1.0's ``encode_batch`` on every core, on the same
file, the same cores, run in turn.

Inputs (each skipped when absent):
- ``../shared/corpus/bench.jsonl.zst`` as it ships (146 MB of text, one zstd stream);
- a code corpus of TOKCOUNT_BENCH_CODE_MB (default 300) MB of jsonl built once by
  ``../shared/corpus/make_code_corpus.sh`` into TOKCOUNT_BENCH_DIR (default: a temp dir).

    python -m pytest benches/bench_whole_process.py --benchmark-columns=min,max,rounds
    TOKCOUNT_BENCH_HF1_PYTHON=/path/to/venv-with-tokenizers-1/bin/python python -m pytest ...

Every run's token total is checked against the others: a fast run with a different count fails.
CPU seconds and peak RSS (of the largest process of the run) are in ``extra_info``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus" / "bench.jsonl.zst"
MAKE_CODE_CORPUS = SHARED / "corpus" / "make_code_corpus.sh"
CODE_MB = int(os.environ.get("TOKCOUNT_BENCH_CODE_MB", 300))
HF1_PYTHON = os.environ.get("TOKCOUNT_BENCH_HF1_PYTHON")
TOKENIZERS = ["gpt2", "llama3", "llama2", "deepseek-llm"]
# Families neither peer loads (gigatoken refuses the pre-tokenizer sequence, HF 1.0rc3 its
# regexes): their baseline is tokcount's own hf engine under the installed tokenizers.
NO_PEER = {"deepseek-llm"}
ROUNDS = int(os.environ.get("TOKCOUNT_BENCH_ROUNDS", 2))

GIGATOKEN_NATIVE = """
import sys, awkward, gigatoken
tok = gigatoken.Tokenizer.from_json(open(sys.argv[1]).read())
lengths = awkward.num(tok.encode_files(gigatoken.JsonlFileSource([sys.argv[2]], field="text")), axis=1)
print(int(awkward.sum(lengths)))
"""

HF_ENCODE_BATCH = """
import sys, orjson, io
from tokenizers import Tokenizer
import pyarrow as pa
tok = Tokenizer.from_file(sys.argv[1])
path = sys.argv[2]
compression = "zstd" if path.endswith(".zst") else None
stream = pa.input_stream(path, compression=compression)
total, batch = 0, []
for line in io.TextIOWrapper(stream, encoding="utf-8"):
    batch.append(orjson.loads(line)["text"])
    if len(batch) == 4096:
        total += sum(len(e) for e in tok.encode_batch(batch)); batch = []
total += sum(len(e) for e in tok.encode_batch(batch))
print(total)
"""


def _tokenizer(name: str) -> str:
    path = SHARED / "tokenizers" / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"{path} is not there")
    return str(path)


@pytest.fixture(scope="module", params=["bench.jsonl.zst", "code.jsonl"])
def corpus(request) -> Path:
    if request.param == "bench.jsonl.zst":
        if not CORPUS.is_file():
            pytest.skip(f"{CORPUS} is not there")
        return CORPUS
    if not MAKE_CODE_CORPUS.is_file():
        pytest.skip(f"{MAKE_CODE_CORPUS} is not there")
    directory = Path(os.environ.get("TOKCOUNT_BENCH_DIR") or tempfile.gettempdir())
    path = directory / f"tokcount-bench-code-{CODE_MB}mb.jsonl"
    if not path.is_file():
        subprocess.run(["bash", str(MAKE_CODE_CORPUS), str(path), str(CODE_MB)], check=True)
    return path


# Runs the command and prints its rusage: RUSAGE_CHILDREN of this wrapper covers the command
# and every process it waited for (tokcount's workers), and nothing measured before it.
RUSAGE_WRAPPER = """
import json, resource, subprocess, sys
code = subprocess.run(sys.argv[2:]).returncode
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    json.dump({"cpu": usage.ru_utime + usage.ru_stime, "maxrss_mb": usage.ru_maxrss / 1024}, f)
sys.exit(code)
"""


def _run(argv: list[str], usage_file: Path) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds of every process of the run, the peak RSS in MB of its largest
    process, and its stdout."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", RUSAGE_WRAPPER, str(usage_file), *argv], capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise AssertionError(f"{argv[:4]} failed: {proc.stderr[-2000:]}")
    usage = json.loads(usage_file.read_text())
    return wall, usage["cpu"], usage["maxrss_mb"], proc.stdout


TOTALS: dict[tuple[str, str], int] = {}


def _measure(benchmark, key: tuple[str, str], argv: list[str], tokens_of, tmp_path: Path) -> None:
    results = []

    def once():
        wall, cpu, rss, out = _run(argv, tmp_path / "usage.json")
        results.append((wall, cpu, rss, tokens_of(out)))

    benchmark.pedantic(once, rounds=ROUNDS, iterations=1)
    tokens = {r[3] for r in results}
    assert len(tokens) == 1, tokens
    total = tokens.pop()
    previous = TOTALS.setdefault(key, total)
    assert previous == total, f"{argv[:4]}: {total} tokens, another run counted {previous}"
    best = min(results)
    benchmark.extra_info.update({"tokens": total, "wall_s": best[0], "cpu_s": best[1], "peak_rss_mb": best[2]})


def _skip_unless_the_engine_counts(tok: str, engine: str) -> None:
    from tokcount.engines import choose_engine
    from tokcount.errors import UsageError
    from tokcount.tokenizer import load_tokenizer_spec

    try:
        choose_engine(load_tokenizer_spec(tok), engine)
    except UsageError as why:
        pytest.skip(str(why))


def _tokcount_tokens(out: str) -> int:
    return json.loads(out)["total"]["tokens"]


@pytest.mark.parametrize("engine", ["auto", "fast", "gigatoken"])
@pytest.mark.parametrize("name", TOKENIZERS)
def test_tokcount_scan(benchmark, corpus, name, engine, tmp_path):
    tok = _tokenizer(name)
    argv = [sys.executable, "-m", "tokcount", "scan", str(corpus), "--tokenizer", tok, "--json", "--engine", engine]
    argv.append("--no-cache")  # every round counts: a cached re-run would read no text
    _skip_unless_the_engine_counts(tok, engine)
    benchmark.group = f"{corpus.name} {name}"
    _measure(benchmark, (corpus.name, name), argv, _tokcount_tokens, tmp_path)


@pytest.mark.parametrize("name", sorted(NO_PEER))
def test_tokcount_scan_hf_where_no_peer_counts(benchmark, corpus, name, tmp_path):
    tok = _tokenizer(name)
    argv = [sys.executable, "-m", "tokcount", "scan", str(corpus), "--tokenizer", tok, "--json", "--engine", "hf"]
    benchmark.group = f"{corpus.name} {name}"
    _measure(benchmark, (corpus.name, name), [*argv, "--no-cache"], _tokcount_tokens, tmp_path)


@pytest.mark.parametrize("name", TOKENIZERS)
def test_gigatoken_native(benchmark, corpus, name, tmp_path):
    pytest.importorskip("gigatoken")
    if name in NO_PEER:
        pytest.skip("gigatoken cannot load this tokenizer")
    if name == "llama2":
        pytest.skip("gigatoken adds no BOS: its native total is not the reference's")
    tok = _tokenizer(name)
    benchmark.group = f"{corpus.name} {name}"
    _measure(benchmark, (corpus.name, name), [sys.executable, "-c", GIGATOKEN_NATIVE, tok, str(corpus)], int, tmp_path)


@pytest.mark.parametrize("name", TOKENIZERS)
def test_hf_1_encode_batch(benchmark, corpus, name, tmp_path):
    if not HF1_PYTHON:
        pytest.skip("set TOKCOUNT_BENCH_HF1_PYTHON to an interpreter with tokenizers 1.x")
    if name in NO_PEER:
        pytest.skip("tokenizers 1.0rc3 cannot load this tokenizer")
    tok = _tokenizer(name)
    benchmark.group = f"{corpus.name} {name}"
    _measure(benchmark, (corpus.name, name), [HF1_PYTHON, "-c", HF_ENCODE_BATCH, tok, str(corpus)], int, tmp_path)
