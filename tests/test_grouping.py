"""--group-by on real files: each group's documents, empty documents, bytes and tokens equal a
direct computation with tok.encode over that group's documents; shards are grouped by file; the
plan per group follows the trainers' formulas (a plain-loop epoch count); too many values fail."""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tokenizer_fixtures
import trainer_sim
from idx_writer import write_mmidx
from test_unit_cache import age, documents, tokcount_scan, write_jsonl
from tokenizers import Tokenizer

from tokcount import CacheOptions, TextOptions, TrainingOptions, UsageError, scan
from tokcount.grouping import MAX_GROUPS

ROOT = Path(__file__).resolve().parent.parent
SHARED_CORPUS = ROOT.parent / "shared" / "corpus" / "bench.jsonl.zst"


def expected_groups(docs, group_of, tok_path, append_eod=False, text="text"):
    tok = Tokenizer.from_file(tok_path)
    out: dict = defaultdict(lambda: [0, 0, 0, 0])
    for d in docs:
        n = len(tok.encode(d[text]).ids)
        row = out[group_of(d)]
        row[0] += 1
        row[1] += n == 0
        row[2] += len(d[text].encode("utf-8"))
        row[3] += n + (1 if append_eod and n else 0)
    return dict(out)


def as_dict(groups):
    return {g["key"]: [g["documents"], g["empty_documents"], g["text_bytes"], g["tokens"]] for g in groups}


def zst(path: Path, data: bytes) -> Path:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    path.write_bytes(sink.getvalue().to_pybytes())
    return path


def test_jsonl_groups_equal_a_direct_count_per_group(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    a, b = documents(1500, 1), documents(1200, 2)
    for d in b[::7]:
        del d["source"]  # documents without the key form their own group
    for d in b[1::7]:
        d["source"] = None
    write_jsonl(tmp_path / "a.jsonl", a)
    zst(tmp_path / "b.jsonl.zst", "".join(json.dumps(d) + "\n" for d in b).encode())
    paths = [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl.zst")]
    report = scan(
        paths, text=TextOptions(tokenizer=tok, workers=2, unit_bytes=30_000, append_eod=True, group_by="source")
    )
    assert report.ok
    expected = expected_groups(a + b, lambda d: d.get("source"), tok, append_eod=True)
    assert as_dict(report.groups) == expected
    assert None in expected and sum(r[3] for r in expected.values()) == report.total["tokens"]
    assert [g["tokens"] for g in report.groups] == sorted((g["tokens"] for g in report.groups), reverse=True)
    assert math.isclose(sum(g["share"] for g in report.groups), 1.0)
    for g in report.groups:
        assert g["share"] == g["tokens"] / report.total["tokens"]
        assert g["tokens_per_byte"] == g["tokens"] / g["text_bytes"]

    nested = scan(paths, text=TextOptions(tokenizer=tok, workers=1, group_by="meta.lang"))
    assert as_dict(nested.groups) == expected_groups(a + b, lambda d: d["meta"]["lang"], tok)


def test_interleaved_parts_and_the_cache_give_the_same_groups(tmp_path, monkeypatch):
    from tokcount.formats import jsonl

    monkeypatch.setattr(jsonl, "INTERLEAVE_BLOCK_BYTES", 4096)  # many blocks, lines across their edges
    monkeypatch.setattr(jsonl, "MIN_INTERLEAVED_BYTES", 1)
    tok = tokenizer_fixtures.bytelevel_bpe()
    docs = documents(3000, 3)
    path = zst(tmp_path / "c.jsonl.zst", "".join(json.dumps(d) + "\n" for d in docs).encode())
    age(path)
    text = TextOptions(tokenizer=tok, workers=2, group_by="source")
    cache = CacheOptions(directory=str(tmp_path / "cache"))
    first = scan([str(path)], text=text, cache=cache)
    assert first.cache["units"] > 1  # interleaved parts
    assert as_dict(first.groups) == expected_groups(docs, lambda d: d["source"], tok)
    second = scan([str(path)], text=text, cache=cache)
    assert second.cache["units_counted"] == 0 and second.groups == first.groups
    ungrouped = scan([str(path)], text=TextOptions(tokenizer=tok, workers=2), cache=cache)
    assert ungrouped.groups is None and ungrouped.cache["units_counted"] == ungrouped.cache["units"]


def test_parquet_text_and_token_id_columns_grouped(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    docs = documents(900, 4)
    ids = [list(range(len(d["text"]) % 11)) for d in docs]
    texts = [d["text"] for d in docs]
    texts[5] = None  # a null text is a bad record, skipped: not a document of its group
    table = pa.table(
        {"text": texts, "input_ids": ids, "lang": [d["meta"]["lang"] for d in docs], "n": [i % 3 for i in range(900)]}
    )
    path = tmp_path / "a.parquet"
    pq.write_table(table, path, row_group_size=200)
    report = scan([str(path)], text=TextOptions(tokenizer=tok, workers=2, group_by="lang", skip_bad_records=True))
    kept = [d for i, d in enumerate(docs) if i != 5]
    assert as_dict(report.groups) == expected_groups(kept, lambda d: d["meta"]["lang"], tok)
    by_number = scan([str(path)], text=TextOptions(text_column="input_ids", workers=1, group_by="n"))
    expected: dict = defaultdict(lambda: [0, 0, 0, 0])
    for i, row in enumerate(ids):
        e = expected[str(i % 3)]
        e[0] += 1
        e[1] += not row
        e[3] += len(row)
    assert as_dict(by_number.groups) == dict(expected)  # numbers are named as JSON; no text bytes
    missing = scan([str(path)], text=TextOptions(tokenizer=tok, workers=1, group_by="source"))
    assert not missing.ok and "no column 'source' to group by" in str(missing.failures[0])


def test_shards_are_grouped_by_file(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    rng = np.random.default_rng(5)
    shards = []
    for name in ("x", "y"):
        documents_ = [[rng.integers(0, 100, rng.integers(1, 40)).tolist()] if i % 9 else [] for i in range(200)]
        write_mmidx(tmp_path / name, documents_)
        shards.append((str(tmp_path / name), documents_))
    docs = documents(300)
    write_jsonl(tmp_path / "t.jsonl", docs)
    report = scan(
        [p for p, _ in shards] + [str(tmp_path / "t.jsonl")],
        text=TextOptions(tokenizer=tok, workers=1, group_by="source"),
    )
    got = as_dict(report.groups)
    for prefix, documents_ in shards:
        lengths = [sum(map(len, d)) for d in documents_]
        assert got.pop(prefix) == [len(lengths), lengths.count(0), None, sum(lengths)]
    assert got == expected_groups(docs, lambda d: d["source"], tok)


@pytest.mark.parametrize("framework", ["megatron", "neox"])
def test_samples_per_epoch_and_mixture_epochs_per_group(tmp_path, framework):
    tok = tokenizer_fixtures.bytelevel_bpe()
    docs = documents(2000, 6)
    write_jsonl(tmp_path / "a.jsonl", docs)
    S, G, iters = 16, 8, 3000
    weights = {"code": 0.5, "docs": 0.2, "man": 0.3}
    training = TrainingOptions(
        seq_len=S, global_batch_size=G, framework=framework, train_iters=iters, mixture=tuple(weights.items())
    )
    report = scan([str(tmp_path / "a.jsonl")], training, text=TextOptions(tokenizer=tok, workers=1, group_by="source"))
    expected = expected_groups(docs, lambda d: d["source"], tok)
    N = iters * G
    for g in report.groups:
        T = expected[g["key"]][3]
        assert g["samples_per_epoch"] == (T - 1) // S  # x = 1 (Megatron's default, NeoX always)
        w = weights[g["key"]] / sum(weights.values())
        # the spec's member targets: Megatron ceil(ceil(N·w) · 1.005) (§4.8), NeoX ceil(N·w·1.005) (§3.8)
        target = math.ceil(math.ceil(N * w) * 1.005) if framework == "megatron" else math.ceil(N * w * 1.005)
        assert g["target_samples"] == target
        assert g["epochs"] == trainer_sim.epochs_needed(T, target, S, 1)
    with pytest.raises(UsageError, match="--mixture names 'web'"):
        scan(
            [str(tmp_path / "a.jsonl")],
            TrainingOptions(seq_len=S, global_batch_size=G, train_iters=iters, mixture=(("web", 1.0),)),
            text=TextOptions(tokenizer=tok, workers=1, group_by="source"),
        )


def test_more_than_ten_thousand_values_fail_clearly(tmp_path):
    docs = [{"id": i, "text": "a b"} for i in range(MAX_GROUPS + 1)]
    path = write_jsonl(tmp_path / "ids.jsonl", docs)
    report = scan([str(path)], text=TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), workers=1, group_by="id"))
    assert not report.ok and report.groups == []
    assert "more than 10,000 distinct values" in str(report.failures[0])
    halves = [write_jsonl(tmp_path / f"h{k}.jsonl", [d for d in docs if d["id"] % 2 == k]) for k in (0, 1)]
    with pytest.raises(UsageError, match="more than 10,000 distinct values"):
        scan(
            [str(p) for p in halves],
            text=TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), workers=1, group_by="id"),
        )


def test_cli_group_table_and_json(tmp_path):
    docs = documents(600, 7)
    path = write_jsonl(tmp_path / "a.jsonl", docs)
    base = tokcount_scan(path, "--tokenizer", tokenizer_fixtures.bytelevel_bpe(), "--group-by", "source", "--no-cache")
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    table = subprocess.run(
        [*base, "--seq-len", "16", "--gbs", "4", "--train-iters", "100", "--mixture", "code=1,man=1"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert table.returncode == 0, table.stderr
    assert "groups by source" in table.stdout and "samples/epoch" in table.stdout and "epochs" in table.stdout
    out = subprocess.run([*base, "--json"], capture_output=True, text=True, env=env)
    groups = json.loads(out.stdout)["groups"]
    assert {"key", "documents", "empty_documents", "text_bytes", "tokens", "share"} <= set(groups[0])
    assert as_dict(groups) == expected_groups(docs, lambda d: d["source"], tokenizer_fixtures.bytelevel_bpe())
    bad = subprocess.run([*base, "--mixture", "code=1"], capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and "--mixture needs --seq-len and --gbs" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.skipif(not SHARED_CORPUS.exists(), reason="the shared corpus is not here")
def test_shared_corpus_sources(tmp_path):
    """The first 4 MB of the shared corpus, grouped by its source key, against a direct count."""
    tok = tokenizer_fixtures.path_or_skip("gpt2")
    data = pa.input_stream(str(SHARED_CORPUS), compression="zstd").read(4 << 20)
    data = data[: data.rfind(b"\n") + 1]
    path = tmp_path / "slice.jsonl"
    path.write_bytes(data)
    docs = [json.loads(line) for line in data.splitlines()]
    report = scan([str(path)], text=TextOptions(tokenizer=tok, workers=2, group_by="source"))
    expected = expected_groups(docs, lambda d: d["source"], tok)
    assert len(expected) > 1 and as_dict(report.groups) == expected
