"""Raw-text counting speed and memory, tokcount against the plain baselines, same slice, same
tokenizer, same run, same 2 cores:

- ``encode_batch_fast`` over all documents in one process (Rayon uses every core)
- Megatron ``preprocess_data.py`` style: ``json.loads`` + ``encode`` per line in a
  ``multiprocessing.Pool`` of all cores
- gigatoken (the bench extra) on every core

Two inputs: a TOKCOUNT_BENCH_BYTES slice as plain jsonl, and the whole shared corpus as it
ships (one ``.jsonl.zst`` stream, which tokcount reads as interleaved parts on every core).
The baselines get the corpus's texts already decompressed and parsed, in memory.

    python -m pytest benches/bench_text.py --benchmark-columns=min,rounds

MB/s per row are in ``extra_info`` (``--benchmark-json``) and in the README.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import tokenizer_fixtures  # noqa: E402

from tokcount import TextOptions, scan  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "bench.jsonl.zst"
SLICE_BYTES = int(os.environ.get("TOKCOUNT_BENCH_BYTES", 6 << 20))
WORKERS = os.cpu_count() or 1
TOKENIZERS = ["gpt2", "gpt-neox-20b", "llama3", "llama2"]


GENERATED_WORDS = "the quick brown fox jumps over the lazy dog Größe 漢字 число 12345 def f(x): return x".split()


def _generated_text(i: int) -> str:
    """Document i of the stand-in corpus used when ../shared is absent."""
    return " ".join(GENERATED_WORDS[(i * 7 + k) % len(GENERATED_WORDS)] for k in range(400))


def _tokenizer(name: str) -> str:
    return tokenizer_fixtures.path_or_skip(name, trained={})


@pytest.fixture(scope="module")
def corpus_slice(tmp_path_factory) -> tuple[Path, int]:
    """The first SLICE_BYTES of the shared corpus as plain jsonl, or generated text without it."""
    out = tmp_path_factory.mktemp("corpus") / "slice.jsonl"
    taken = 0
    with open(out, "w", encoding="utf-8") as f:
        if CORPUS.exists():
            stream = pa.input_stream(str(CORPUS), compression="zstd")
            buffered = b""
            while taken < SLICE_BYTES:
                chunk = stream.read(1 << 20)
                if not chunk:
                    break
                buffered += chunk
                *lines, buffered = buffered.split(b"\n")
                for line in lines:
                    text = json.loads(line)["text"]
                    f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
                    taken += len(text.encode("utf-8"))
                    if taken >= SLICE_BYTES:
                        break
        else:
            i = 0
            while taken < SLICE_BYTES:
                text = _generated_text(i)
                f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
                taken += len(text.encode("utf-8"))
                i += 1
    return out, taken


def _texts(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


_pool_tokenizer = None


def _pool_init(tok_path):
    global _pool_tokenizer
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _pool_tokenizer = Tokenizer.from_file(tok_path)


def _pool_encode(line: str) -> int:
    return len(_pool_tokenizer.encode(json.loads(line)["text"]).ids)


def _record(benchmark, text_bytes):
    seconds = benchmark.stats.stats.min
    benchmark.extra_info["MB_per_s"] = round(text_bytes / seconds / 1e6, 2)


@pytest.mark.parametrize("name", TOKENIZERS)
def test_hf_encode_batch_fast(benchmark, corpus_slice, name):
    benchmark.group = f"text count, {name}"
    path, text_bytes = corpus_slice
    tok = Tokenizer.from_file(_tokenizer(name))
    texts = _texts(path)
    os.environ["TOKENIZERS_PARALLELISM"] = "true"  # every core, as a user would run it
    total = benchmark.pedantic(lambda: sum(len(e) for e in tok.encode_batch_fast(texts)), rounds=2, iterations=1)
    _record(benchmark, text_bytes)
    assert total > 0


@pytest.mark.parametrize("name", TOKENIZERS)
def test_megatron_style_pool(benchmark, corpus_slice, name):
    benchmark.group = f"text count, {name}"
    path, text_bytes = corpus_slice
    tok_path = _tokenizer(name)
    lines = path.read_text(encoding="utf-8").splitlines()

    def run():
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(WORKERS, _pool_init, (tok_path,)) as pool:
            return sum(pool.imap(_pool_encode, lines, chunksize=32))

    total = benchmark.pedantic(run, rounds=2, iterations=1)
    _record(benchmark, text_bytes)
    assert total > 0


@pytest.mark.parametrize("name", TOKENIZERS)
def test_tokcount_scan(benchmark, corpus_slice, name):
    benchmark.group = f"text count, {name}"
    path, text_bytes = corpus_slice
    tok_path = _tokenizer(name)
    options = TextOptions(tokenizer=tok_path, workers=WORKERS, unit_bytes=1 << 20)
    report = benchmark.pedantic(lambda: scan([str(path)], text=options), rounds=2, iterations=1)
    _record(benchmark, text_bytes)
    benchmark.extra_info["engine"] = report.options["engine"]
    reference = Tokenizer.from_file(tok_path)
    assert report.total["tokens"] == sum(len(e) for e in reference.encode_batch_fast(_texts(path)))


@pytest.mark.parametrize("name", TOKENIZERS)
def test_tokcount_scan_hf_engine(benchmark, corpus_slice, name):
    benchmark.group = f"text count, {name}"
    path, text_bytes = corpus_slice
    options = TextOptions(tokenizer=_tokenizer(name), workers=WORKERS, unit_bytes=1 << 20, engine="hf")
    report = benchmark.pedantic(lambda: scan([str(path)], text=options), rounds=1, iterations=1)
    _record(benchmark, text_bytes)
    assert report.options["engine"] == "hf"


@pytest.mark.parametrize("name", TOKENIZERS)
def test_gigatoken_parallel(benchmark, corpus_slice, name):
    """gigatoken on every core over the same documents (a cold tokenizer each round)."""
    gigatoken = pytest.importorskip("gigatoken", reason="pip install gigatoken (the bench extra)")
    benchmark.group = f"text count, {name}"
    path, text_bytes = corpus_slice
    tok_path = _tokenizer(name)
    texts = _texts(path)
    out = benchmark.pedantic(
        lambda: gigatoken.Tokenizer(tok_path).encode_batch_list(texts, parallel=True), rounds=2, iterations=1
    )
    _record(benchmark, text_bytes)
    expected = [len(e) for e in Tokenizer.from_file(tok_path).encode_batch_fast(texts)]
    benchmark.extra_info["agreeing_documents"] = sum(len(ids) == n for ids, n in zip(out, expected))
    benchmark.extra_info["documents"] = len(texts)


def _peak_rss_mb(args) -> float:
    """Peak RSS of the largest process of a tokcount run (parent or one worker)."""
    code = (
        "import resource, subprocess, sys;"
        f"subprocess.run({args!r}, check=True, stdout=subprocess.DEVNULL);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    return int(out.stdout.strip()) / 1024


@pytest.mark.parametrize("megabytes", [16, 64])
def test_peak_memory(benchmark, tmp_path, megabytes):
    """Peak RSS must not grow with the input: compare the two sizes."""
    benchmark.group = "peak RSS (MB) of the largest tokcount process"
    tok = tokenizer_fixtures.bytelevel_bpe()
    line = json.dumps({"text": "Ein Satz, with words and numbers 12345, repeated. " * 80}) + "\n"
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        f.write(line * (megabytes * (1 << 20) // len(line)))
    args = [sys.executable, "-m", "tokcount", "scan", str(path), "--tokenizer", tok, "--json"]
    rss = benchmark.pedantic(lambda: _peak_rss_mb(args), rounds=1, iterations=1)
    benchmark.extra_info["peak_rss_mb"] = round(rss, 1)
    assert rss > 0


_WHOLE_EXPECTED: dict[str, int] = {}  # HF's total per tokenizer, from the HF run of the group


@pytest.fixture(scope="module")
def whole_corpus(tmp_path_factory) -> tuple[str, list[str], int]:
    """The shared corpus as it ships, one zstd stream, and its texts; generated without it."""
    if CORPUS.exists():
        path = str(CORPUS)
    else:
        lines = [json.dumps({"text": _generated_text(i)}, ensure_ascii=False) for i in range(20000)]
        path = str(tmp_path_factory.mktemp("whole") / "generated.jsonl.zst")
        with pa.CompressedOutputStream(path, "zstd") as out:
            out.write("".join(line + "\n" for line in lines).encode("utf-8"))
    data = pa.input_stream(path, compression="zstd").read()
    texts = [json.loads(line)["text"] for line in data.split(b"\n") if line]
    return path, texts, sum(len(t.encode("utf-8")) for t in texts)


@pytest.mark.parametrize("name", TOKENIZERS[:3])
def test_whole_corpus_hf_encode_batch_fast(benchmark, whole_corpus, name):
    benchmark.group = f"whole corpus .jsonl.zst, {name}"
    _, texts, text_bytes = whole_corpus
    tok = Tokenizer.from_file(_tokenizer(name))
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    total = benchmark.pedantic(lambda: sum(len(e) for e in tok.encode_batch_fast(texts)), rounds=1, iterations=1)
    _WHOLE_EXPECTED[name] = total
    _record(benchmark, text_bytes)


@pytest.mark.parametrize("name", TOKENIZERS[:3])
def test_whole_corpus_tokcount_scan(benchmark, whole_corpus, name):
    """``tokcount scan corpus.jsonl.zst``: new worker processes each round, start-up included."""
    benchmark.group = f"whole corpus .jsonl.zst, {name}"
    path, texts, text_bytes = whole_corpus
    tok_path = _tokenizer(name)
    options = TextOptions(tokenizer=tok_path, workers=WORKERS)
    report = benchmark.pedantic(lambda: scan([path], text=options), rounds=2, iterations=1)
    _record(benchmark, text_bytes)
    benchmark.extra_info["engine"] = report.options["engine"]
    if name not in _WHOLE_EXPECTED:
        os.environ["TOKENIZERS_PARALLELISM"] = "true"
        _WHOLE_EXPECTED[name] = sum(len(e) for e in Tokenizer.from_file(tok_path).encode_batch_fast(texts))
    assert report.total["tokens"] == _WHOLE_EXPECTED[name]


@pytest.mark.parametrize("name", TOKENIZERS[:3])
def test_whole_corpus_gigatoken(benchmark, whole_corpus, name):
    gigatoken = pytest.importorskip("gigatoken", reason="pip install gigatoken (the bench extra)")
    benchmark.group = f"whole corpus .jsonl.zst, {name}"
    _, texts, text_bytes = whole_corpus
    tok_path = _tokenizer(name)
    out = benchmark.pedantic(
        lambda: gigatoken.Tokenizer(tok_path).encode_batch_list(texts, parallel=True), rounds=2, iterations=1
    )
    _record(benchmark, text_bytes)
    if name in _WHOLE_EXPECTED:
        benchmark.extra_info["agrees_with_hf_total"] = sum(map(len, out)) == _WHOLE_EXPECTED[name]
