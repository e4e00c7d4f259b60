"""``scan --estimate --group-by``: per-group intervals from the same sample. Each group's exact
total is computed directly (the sum of ``len(tok.encode(text).ids)`` over its documents); over
200 seeds the 95 % intervals of the groups the report marks trusted cover it in at
least 93 % of the runs; an estimate that reads everything is exact per group; token files are
exact groups (by file); the human and JSON output label the groups as estimates."""

from __future__ import annotations

import json
from collections import defaultdict

import pyarrow.parquet as pq
import pytest
import tokenizer_fixtures
from estimate_harness import coverage, measure_population, sources_corpus, write_jsonl
from idx_writer import write_mmidx
from test_cli import run
from tokenizers import Tokenizer

from tokcount.cli import main
from tokcount.estimate import EstimateOptions, estimate_scan
from tokcount.options import TextOptions

SEEDS = range(200)
UNIT_BYTES = 4 << 10


def direct_groups(paths: list[str], tokenizer: str) -> dict:
    """group -> [tokens, documents], straight from the definition."""
    tok = Tokenizer.from_file(tokenizer)
    out: dict = defaultdict(lambda: [0, 0])
    for path in paths:
        if path.endswith(".parquet"):
            records = pq.read_table(path).to_pylist()
        else:
            with open(path, encoding="utf-8") as f:
                records = [json.loads(line) for line in f]
        for r in records:
            row = out[r.get("source")]
            row[0] += len(tok.encode(r["text"]).ids)
            row[1] += 1
    return {g: tuple(v) for g, v in out.items()}


def test_group_intervals_cover_each_groups_exact_total(tmp_path):
    tokenizer = tokenizer_fixtures.bytelevel_bpe()
    paths = sources_corpus(tmp_path)
    population = measure_population(paths, TextOptions(tokenizer=tokenizer, group_by="source"), UNIT_BYTES)
    exact = direct_groups(paths, tokenizer)
    assert population.exact_groups == exact  # the sampling units partition every group
    result = coverage(population, SEEDS, target_error=0.02)
    assert result.max_fraction_read < 0.6, result.to_dict()
    assert result.groups is not None
    trusted = covered = 0
    for name, group in result.groups.items():
        trusted += group.listed - group.untrusted
        covered += group.covered_when_trusted
        if group.tokens_share >= 0.15:  # the big groups, rare flag or not
            assert group.tokens_covered >= 0.93 * len(SEEDS), (name, result.to_dict())
    # every (run, group) the report marks trusted
    assert trusted >= 400 and covered >= 0.93 * trusted, result.to_dict()


def test_grouped_estimate_is_exact_where_it_reads_everything(tmp_path):
    tokenizer = tokenizer_fixtures.bytelevel_bpe()
    texts = [f"document {k} " * (k % 9 + 1) for k in range(60)]
    sources = [["a", "b", None][k % 3] for k in range(60)]
    write_jsonl(tmp_path / "small.jsonl", texts, sources)
    write_mmidx(tmp_path / "shard", [[list(range(n))] for n in (5, 9, 1, 30)])
    paths = [str(tmp_path / "small.jsonl"), str(tmp_path / "shard")]
    est = estimate_scan(
        paths, TextOptions(tokenizer=tokenizer, group_by="source"), EstimateOptions(seed=0, unit_bytes=512)
    )
    assert est.stopped_by == "exhausted" and est.groups is not None
    got = {g["key"]: (round(g["tokens"]["value"]), round(g["documents"]["value"])) for g in est.groups}
    want = direct_groups(paths[:1], tokenizer)
    want[paths[1]] = (45, 4)  # a token file is one group, exact from its index
    assert got == want
    for g in est.groups:
        assert g["tokens"]["low"] == pytest.approx(g["tokens"]["high"]) and g["trusted"]
    assert sum(g["share"]["value"] for g in est.groups) == pytest.approx(1.0)


def test_command_line_grouped_estimate(tmp_path, capsys):
    tokenizer = tokenizer_fixtures.bytelevel_bpe()
    paths = sources_corpus(tmp_path, documents=1500)[:1]
    args = ["scan", *paths, "--tokenizer", tokenizer, "--estimate", "--group-by", "source", "--seed", 5]
    proc = run(*args, "--target-error", "3%", "--json")
    assert proc.returncode == 0, proc.stderr
    est = json.loads(proc.stdout)["estimate"]
    assert est["group_by"] == "source" and est["groups"]
    for g in est["groups"]:
        assert set(g) == {"key", "tokens", "documents", "share", "units_seen", "trusted"}
        for k in ("tokens", "documents", "share"):
            assert set(g[k]) == {"value", "low", "high", "confidence"} and g[k]["low"] <= g[k]["value"]
    values = [g["tokens"]["value"] for g in est["groups"]]
    assert values == sorted(values, reverse=True)
    assert sum(values) == pytest.approx(est["tokens"]["value"])  # the groups partition the total
    human = run(*args, "--target-error", "3%")
    assert human.returncode == 0 and "groups by source (ESTIMATE" in human.stdout
    assert "(missing)" in human.stdout  # documents without the key are a group
    # --mixture weighs exact counts: refused in one line
    assert main([*map(str, args), "--mixture", "web=1", "--seq-len", "8", "--gbs", "1", "--train-iters", "9"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tokcount: error: ") and "--mixture" in err and err.count("\n") == 1
