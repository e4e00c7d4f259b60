"""FastCounter.count against tokenizers' encode_batch_fast, same documents, one process, one
thread, cold cache (a new FastCounter each round; the tokenizer tables are built once, as a
worker would). Counts are checked equal before timing.

    python -m pytest benches/bench_fast_engine.py --benchmark-columns=min,mean,rounds

MB/s (UTF-8 bytes of the texts) in ``extra_info``; TOKCOUNT_BENCH_BYTES sets the slice
(default 8 MB of ../shared/corpus/bench.jsonl.zst, generated text when absent).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import tokenizer_fixtures  # noqa: E402

from tokcount.engines.fast import FastCounter, fast_support  # noqa: E402
from tokcount.tokenizer import load_tokenizer_spec  # noqa: E402

CORPUS = tokenizer_fixtures.SHARED_TOKENIZERS.parent / "corpus" / "bench.jsonl.zst"
SLICE_BYTES = int(os.environ.get("TOKCOUNT_BENCH_BYTES", 8 << 20))
TOKENIZERS = ["gpt2", "gpt-neox-20b", "llama3", "bytelevel_bpe", "llama2", "phi-3", "gemma-4"]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    if CORPUS.exists():
        import pyarrow as pa

        data = pa.input_stream(str(CORPUS), compression="zstd").read(SLICE_BYTES + (2 << 20))
        out, taken = [], 0
        for line in data.split(b"\n")[:-1]:
            text = json.loads(line)["text"]
            out.append(text)
            taken += len(text.encode("utf-8"))
            if taken >= SLICE_BYTES:
                break
        return out
    lines = tokenizer_fixtures.TRAINING_TEXT.splitlines(keepends=True)
    rng = np.random.default_rng(0)
    out, taken = [], 0
    while taken < SLICE_BYTES:
        text = "".join(rng.choice(lines, size=40).tolist()) + f" document {len(out)} ends."
        out.append(text)
        taken += len(text.encode("utf-8"))
    return out


def _path(name: str) -> str:
    return tokenizer_fixtures.path_or_skip(name)


def _megabytes(texts: list[str]) -> float:
    return sum(len(t.encode("utf-8")) for t in texts) / 1e6


@pytest.mark.parametrize("name", TOKENIZERS)
def test_fast_engine_cold(benchmark, texts, name):
    benchmark.group = f"one core, cold, {name}"
    spec = load_tokenizer_spec(_path(name))
    supported, why = fast_support(spec)
    if not supported:
        pytest.skip(why)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    reference = Tokenizer.from_str(spec.json)
    expected = np.array([len(e) for e in reference.encode_batch_fast(texts)], dtype=np.int64)
    warm = FastCounter(spec)
    assert np.array_equal(warm.count(texts), expected)  # also compiles the kernels

    counters = []

    def setup():
        counters.append(FastCounter(spec))
        return (counters[-1],), {}

    result = benchmark.pedantic(lambda counter: counter.count(texts), setup=setup, rounds=3, iterations=1)
    assert np.array_equal(result, expected)
    megabytes = _megabytes(texts)
    benchmark.extra_info.update(
        tokenizer=name,
        documents=len(texts),
        megabytes=round(megabytes, 2),
        mb_per_s=round(megabytes / benchmark.stats.stats.min, 2),
        stats=counters[-1].stats,
    )


@pytest.mark.parametrize("name", TOKENIZERS)
def test_tokenizers_encode_batch_fast(benchmark, texts, name):
    benchmark.group = f"one core, cold, {name}"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core, like one FastCounter
    tokenizer = Tokenizer.from_file(_path(name))
    benchmark.pedantic(lambda: tokenizer.encode_batch_fast(texts), rounds=1, iterations=1)
    megabytes = _megabytes(texts)
    benchmark.extra_info.update(
        tokenizer=name, megabytes=round(megabytes, 2), mb_per_s=round(megabytes / benchmark.stats.stats.min, 2)
    )


@pytest.mark.parametrize("name", TOKENIZERS)
def test_gigatoken_one_thread(benchmark, texts, name):
    """gigatoken (Rust, SIMD), one thread, a new tokenizer each round; counts checked against HF."""
    gigatoken = pytest.importorskip("gigatoken", reason="pip install gigatoken (the bench extra)")
    benchmark.group = f"one core, cold, {name}"
    path = _path(name)
    spec = load_tokenizer_spec(path)
    reference = Tokenizer.from_str(spec.json)
    expected = [len(e) for e in reference.encode_batch_fast(texts)]

    def setup():
        return (gigatoken.Tokenizer(path),), {}

    out = benchmark.pedantic(
        lambda tok: tok.encode_batch_list(texts, parallel=False), setup=setup, rounds=3, iterations=1
    )
    agree = sum(len(ids) == n for ids, n in zip(out, expected))
    megabytes = _megabytes(texts)
    benchmark.extra_info.update(
        tokenizer=name,
        megabytes=round(megabytes, 2),
        agreeing_documents=agree,
        documents=len(texts),
        mb_per_s=round(megabytes / benchmark.stats.stats.min, 2),
    )
