"""``scan --estimate``: its intervals cover the exact totals (200 seeds on skewed corpora and on
a slice of the shared corpus), it is reproducible, exact where it reads everything, and labelled
as an estimate. The exact totals come from a real ``tokcount.scan`` of the same files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import tokenizer_fixtures
from estimate_harness import (
    coverage,
    heavy_tailed_corpus,
    huge_and_small_files_corpus,
    languages_corpus,
    measure_population,
    write_parquet,
)
from idx_writer import write_mmidx
from test_cli import SHARED, assert_clean_error, run

import tokcount
from tokcount.cli import main
from tokcount.estimate import EstimateOptions, estimate_scan, parse_budget, parse_fraction
from tokcount.options import TextOptions, TrainingOptions
from tokcount.planning import make_plan

SEEDS = range(200)
UNIT_BYTES = 4 << 10  # small corpora, small ranges: the sample is a small part of the data


def exact_totals(paths: list[str], text: TextOptions) -> tuple[int, int]:
    report = tokcount.scan(paths, text=text)
    assert report.ok and report.complete
    return report.total["tokens"], report.total["documents"]


def check_coverage(paths: list[str], text: TextOptions, target_error: float):
    population = measure_population(paths, text, UNIT_BYTES)
    # the sampling units partition the data: measured all together they give the exact scan
    assert (population.exact_tokens, population.exact_documents) == exact_totals(paths, text)
    result = coverage(population, SEEDS, target_error=target_error)
    assert result.tokens_covered >= 0.93 * len(SEEDS), result.to_dict()
    assert result.max_fraction_read < 0.6, result.to_dict()  # a sample, not a count in disguise
    return result


@pytest.mark.parametrize("corpus", [heavy_tailed_corpus, huge_and_small_files_corpus, languages_corpus])
def test_intervals_cover_the_exact_total_on_skewed_corpora(tmp_path, corpus):
    paths = corpus(tmp_path)
    check_coverage(paths, TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe()), target_error=0.02)


def shared_slice(directory: Path, nbytes: int) -> str | None:
    corpus = SHARED / "corpus" / "bench.jsonl.zst"
    if not corpus.is_file():
        return None
    with pa.input_stream(str(corpus), compression="zstd") as f:
        data = f.read(nbytes)
    path = directory / "bench-slice.jsonl"
    path.write_bytes(data[: data.rfind(b"\n") + 1])
    return str(path)


def test_intervals_cover_the_exact_total_on_the_shared_corpus(tmp_path):
    path = shared_slice(tmp_path, 6 << 20)
    tokenizer = tokenizer_fixtures.shared_tokenizer("gpt2")
    if path is None or tokenizer is None:
        pytest.skip("../shared/corpus/bench.jsonl.zst or ../shared/tokenizers/gpt2.json is not there")
    # a mixed corpus (code, man pages in six languages): 2 % would read most of a 6 MB slice
    check_coverage([path], TextOptions(tokenizer=tokenizer), target_error=0.05)


def test_estimate_is_exact_where_it_reads_everything(tmp_path):
    # a small file (fewer units than a pilot): every unit is read and the interval has no width
    rng = np.random.default_rng(0)
    texts = [" ".join("word" * int(k) for k in rng.integers(1, 5, 30)) for _ in range(50)]
    (tmp_path / "small.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    write_parquet(tmp_path / "rows.parquet", texts * 40, row_group=50)
    write_mmidx(tmp_path / "shard", [[list(range(n))] for n in (5, 9, 1, 30)])
    paths = [str(tmp_path / p) for p in ("small.jsonl", "rows.parquet", "shard")]
    text = TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe())
    tokens, documents = exact_totals(paths, text)
    est = estimate_scan(paths, text, EstimateOptions(seed=1, unit_bytes=UNIT_BYTES))
    assert est.stopped_by == "exhausted" and est.fraction_read == pytest.approx(1.0, abs=0.01)
    assert round(est.tokens.value) == tokens and est.tokens.low == est.tokens.high
    assert round(est.documents.value) == documents
    assert est.exact_tokens == 45 and est.exact_documents == 4


def test_parquet_documents_are_exact_from_the_footers(tmp_path):
    rng = np.random.default_rng(4)
    texts = [" ".join(["alpha", "beta", "gamma"] * int(k)) for k in rng.integers(1, 200, 4000)]
    write_parquet(tmp_path / "big.parquet", texts, row_group=40)
    text = TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe())
    est = estimate_scan([str(tmp_path / "big.parquet")], text, EstimateOptions(seed=2, target_error=0.05))
    assert est.stopped_by == "target" and est.fraction_read < 0.8
    assert est.documents.value == pytest.approx(4000) and est.documents.high - est.documents.low < 1e-6


def make_corpus(directory: Path) -> str:
    rng = np.random.default_rng(7)
    texts = [
        " ".join(rng.choice(["tok", "count", "estimate", "Größe", "東京"], int(k))) for k in rng.integers(1, 300, 6000)
    ]
    path = directory / "c.jsonl"
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    return str(path)


def test_command_line_estimate(tmp_path):
    path = make_corpus(tmp_path)
    tokenizer = tokenizer_fixtures.bytelevel_bpe()
    args = ["scan", path, "--tokenizer", tokenizer, "--estimate", "--seed", 11, "--target-error", "2%"]
    plan_args = ["--seq-len", 64, "--gbs", 4, "--train-iters", 500]
    first, second = run(*args, *plan_args, "--json"), run(*args, *plan_args, "--json")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout  # --seed: the same sample, the same numbers
    doc = json.loads(first.stdout)
    assert set(doc) == {"tokcount_version", "estimate"}  # no exact "total" beside the estimate
    est = doc["estimate"]
    assert est["kind"] == "estimate" and est["seed"] == 11
    for key in ("tokens", "documents"):
        assert set(est[key]) == {"value", "low", "high", "confidence"} and est[key]["confidence"] == 0.95
        assert est[key]["low"] <= est[key]["value"] <= est[key]["high"]
    assert 0 < est["fraction_read"] < 1
    tokens, _ = exact_totals([path], TextOptions(tokenizer=tokenizer))
    plan = est["plan"]
    low, high = (make_plan(tokens=t, seq_len=64, global_batch_size=4, train_iters=500) for t in plan["tokens"])
    assert plan["samples_per_epoch"] == [low.samples_per_epoch, high.samples_per_epoch]
    assert plan["iterations_per_epoch"] == [low.iterations_per_epoch, high.iterations_per_epoch]
    if plan["tokens"][0] <= tokens <= plan["tokens"][1]:
        exact = make_plan(tokens=tokens, seq_len=64, global_batch_size=4)
        assert plan["samples_per_epoch"][0] <= exact.samples_per_epoch <= plan["samples_per_epoch"][1]
    text = run(*args)
    assert text.returncode == 0 and "ESTIMATE" in text.stdout and "not an exact count" in text.stdout
    budget = json.loads(run("scan", path, "--tokenizer", tokenizer, "--estimate", "--budget", "150KB", "--json").stdout)
    assert budget["estimate"]["stopped_by"] == "budget" and budget["estimate"]["fraction_read"] < 0.5


def test_estimate_usage_errors(tmp_path, capsys):
    path = make_corpus(tmp_path)
    tokenizer = tokenizer_fixtures.bytelevel_bpe()
    assert_clean_error(run("scan", path, "--tokenizer", tokenizer, "--seed", 3), 1)  # one real process
    for bad in (
        ["--budget", "lots"],
        ["--target-error", "0"],
        ["--target-error", "150%"],
        ["--confidence", "1.5"],
        ["--verify-tokens"],
    ):
        assert main(["scan", path, "--tokenizer", tokenizer, "--estimate", *bad]) == 1, bad
        err = capsys.readouterr().err
        assert err.startswith("tokcount: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert main(["scan", path, "--estimate"]) == 1  # no tokenizer
    assert "tokenizer" in capsys.readouterr().err
    assert parse_budget("2GB") == (2 * 10**9, None) and parse_budget("500MiB") == (500 << 20, None)
    assert parse_budget("90s") == (None, 90) and parse_budget("2min") == (None, 120)
    assert parse_fraction("0.5%", "--target-error") == pytest.approx(0.005)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": \n')
    proc = run("scan", bad, "--tokenizer", tokenizer, "--estimate")
    assert_clean_error(proc, 2)
    assert "bad.jsonl" in proc.stderr and "line 2" in proc.stderr


def test_estimate_with_training_options_rejects_blends(tmp_path):
    path = make_corpus(tmp_path)
    with pytest.raises(tokcount.UsageError):
        estimate_scan(
            [path, path],
            TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe()),
            EstimateOptions(seed=0),
            TrainingOptions(seq_len=8, global_batch_size=1, weights=(1.0, 1.0)),
        )


@tokenizer_fixtures.needs_tokenizers_0("no fast engine, so no parity guard")
def test_an_engine_that_disagrees_is_caught_and_the_sample_counted_with_hf(tmp_path, monkeypatch):
    from tokcount import engines
    from tokcount.engines import fast as fast_engine

    texts = ["the wrong one"] + [f"document {k} " * (k % 7 + 1) for k in range(400)]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    right_count = fast_engine.FastCounter.count

    def off_by_one_on_marker(self, batch):
        return right_count(self, batch) + np.array(["wrong one" in t for t in batch], dtype=np.int64)

    monkeypatch.setattr(fast_engine.FastCounter, "count", off_by_one_on_marker)
    monkeypatch.setattr(engines, "AUTO_ORDER", ("fast",))  # auto: the (broken) fast engine, guarded
    text = TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe())
    est = estimate_scan([str(path)], text, EstimateOptions(seed=0, unit_bytes=1024))
    monkeypatch.setattr(fast_engine.FastCounter, "count", right_count)
    assert est.stopped_by == "exhausted" and round(est.tokens.value) == exact_totals([str(path)], text)[0]
    assert any("disagreed" in note for note in est.notes) and "engine: hf" in est.notes[-1]
