"""The unit-result cache on real files: a second scan counts nothing and gives the same report,
a changed, added or removed file is counted alone, a damaged entry is counted again, and each key
field changes the key when, and only when, the counts can depend on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tokenizer_fixtures
from tokenizers import Tokenizer

from tokcount import CacheOptions, TextOptions, TrainingOptions, scan
from tokcount.engines import fast_engine_available
from tokcount.formats.base import TEXT, TOKEN_IDS, TextPolicy, WorkUnit
from tokcount.unit_cache import counting_context, engine_tag, entry_key, file_identity

ROOT = Path(__file__).resolve().parent.parent
LINES = tokenizer_fixtures.TRAINING_TEXT.splitlines()
SOURCES = ("code", "docs", "man")


def documents(n: int, seed: int = 0) -> list[dict]:
    out = []
    for i in range(n):
        k = (i * 7 + seed) % len(LINES)
        text = " ".join(LINES[k : k + 1 + (i + seed) % 5]) if i % 13 else ""
        out.append(
            {"id": i, "source": SOURCES[(i + seed) % 3], "meta": {"lang": "en" if i % 2 else "de"}, "text": text}
        )
    return out


def write_jsonl(path: Path, docs: list[dict], old: bool = True) -> Path:
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    if old:
        age(path)
    return path


def age(path: Path, seconds: float = 3600) -> None:
    """Files modified in the last seconds are not stored (their mtime may not show a rewrite)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def reference_tokens(tok_path: str, docs: list[dict], append_eod: bool = False, key: str = "text") -> int:
    tok = Tokenizer.from_file(tok_path)
    total = 0
    for d in docs:
        n = len(tok.encode(d[key]).ids)
        total += n + (1 if append_eod and n else 0)
    return total


def tokcount_scan(*args) -> list[str]:
    return [sys.executable, "-m", "tokcount", "scan", *map(str, args)]


def numbers(report) -> dict:
    """Everything a report says about the data, without the run's own statistics."""
    out = report.to_dict()
    for key in ("cache", "options"):
        out.pop(key)
    return out


def run(paths, cache_dir, **text_kw):
    text = TextOptions(tokenizer=text_kw.pop("tokenizer", tokenizer_fixtures.bytelevel_bpe()), **text_kw)
    training = TrainingOptions(seq_len=64, global_batch_size=4)
    return scan([str(p) for p in paths], training, text=text, cache=CacheOptions(directory=str(cache_dir)))


def test_second_scan_reads_only_the_cache_and_reports_the_same(tmp_path):
    docs = documents(3000)
    path = write_jsonl(tmp_path / "a.jsonl", docs)
    cache = tmp_path / "cache"
    first = run([path], cache, workers=2, unit_bytes=20_000, append_eod=True)
    assert first.cache["units"] > 4 and first.cache["units_from_cache"] == 0
    assert first.cache["units_stored"] == first.cache["units"]
    assert first.total["tokens"] == reference_tokens(tokenizer_fixtures.bytelevel_bpe(), docs, append_eod=True)
    second = run([path], cache, workers=2, unit_bytes=20_000, append_eod=True)
    assert second.cache["units_from_cache"] == second.cache["units"] == first.cache["units"]
    assert second.cache["units_counted"] == 0
    assert second.cache["bytes_from_cache"] == path.stat().st_size
    assert numbers(second) == numbers(first)
    assert second.plan.to_dict() == first.plan.to_dict()


def test_cached_scan_opens_the_file_only_for_its_format_check(tmp_path):
    """In a real process, every Python-level open of the data file is recorded (audit hook):
    the cached scan opens it once (its magic bytes), the counting scan more."""
    path = write_jsonl(tmp_path / "a.jsonl", documents(2000))
    script = f"""
import sys, json
opened = []
sys.addaudithook(lambda event, args: opened.append(1) if event == "open" and str(args[0]) == {str(path)!r} else None)
from tokcount import CacheOptions, TextOptions, scan
report = scan([{str(path)!r}], text=TextOptions(tokenizer={tokenizer_fixtures.bytelevel_bpe()!r}, workers=1,
              unit_bytes=30_000), cache=CacheOptions(directory={str(tmp_path / "cache")!r}))
print(json.dumps([len(opened), report.cache, report.total]))
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def once():
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
        return json.loads(out.stdout)

    opens_first, stats_first, total_first = once()
    opens_second, stats_second, total_second = once()
    assert stats_first["units_counted"] == stats_first["units"] > 1
    assert opens_first >= 1 + stats_first["units"]
    assert stats_second["units_counted"] == 0
    assert opens_second == 1
    assert total_second == total_first


def test_changed_added_and_removed_files_are_counted_alone(tmp_path):
    cache = tmp_path / "cache"
    paths = [write_jsonl(tmp_path / f"{name}.jsonl", documents(800, seed)) for seed, name in enumerate("abc")]
    first = run(paths, cache, workers=1, unit_bytes=15_000)
    per_file = first.cache["units"] // 3
    assert first.cache["units"] == 3 * per_file  # same-sized files, same cut

    changed = documents(900, 5)
    write_jsonl(paths[1], changed)
    report = run(paths, cache, workers=1, unit_bytes=15_000)
    assert report.cache["units_counted"] == report.cache["units"] - 2 * per_file
    fresh = scan(
        [str(p) for p in paths],
        TrainingOptions(seq_len=64, global_batch_size=4),
        text=TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), workers=1, unit_bytes=15_000),
    )
    assert numbers(report) == numbers(fresh)
    assert report.files[1].tokens == reference_tokens(tokenizer_fixtures.bytelevel_bpe(), changed)

    added = write_jsonl(tmp_path / "d.jsonl", documents(400, 9))
    added_units = run([added], tmp_path / "elsewhere", workers=1, unit_bytes=15_000).cache["units"]
    report = run([*paths, added], cache, workers=1, unit_bytes=15_000)
    assert report.cache["units_counted"] == added_units
    assert report.cache["units_from_cache"] == report.cache["units"] - added_units

    report = run(paths[::2], cache, workers=1, unit_bytes=15_000)
    assert report.cache["units_counted"] == 0 and report.cache["units"] == first.cache["units"] - per_file


def test_a_file_keeps_its_earlier_cut_when_the_planner_would_cut_it_anew(tmp_path):
    """Adding files changes the balanced unit size of every file; a cached file keeps its cut."""
    cache = tmp_path / "cache"
    path = write_jsonl(tmp_path / "a.jsonl", documents(2000))
    first = run([path], cache, workers=1, unit_bytes=20_000)
    second = run([path], cache, workers=1, unit_bytes=13_000)
    assert second.cache["units_counted"] == 0 and second.cache["units"] == first.cache["units"]
    assert numbers(second) == numbers(first)


def test_a_damaged_entry_is_detected_and_counted_again(tmp_path):
    cache = tmp_path / "cache"
    path = write_jsonl(tmp_path / "a.jsonl", documents(2000))
    first = run([path], cache, workers=1, unit_bytes=20_000)
    entries = sorted((cache / "units").glob("*.unit"))
    assert len(entries) == first.cache["units"]
    data = bytearray(entries[0].read_bytes())
    data[-3] ^= 0x40  # one flipped bit in a stored length
    entries[0].write_bytes(bytes(data))
    entries[1].write_bytes(entries[1].read_bytes()[:50])  # and a truncated one
    second = run([path], cache, workers=1, unit_bytes=20_000)
    assert second.cache["damaged_entries"] == 2
    assert second.cache["units_counted"] == 2
    assert numbers(second) == numbers(first)
    third = run([path], cache, workers=1, unit_bytes=20_000)
    assert third.cache["units_counted"] == 0 and third.cache["damaged_entries"] == 0


def test_failures_are_not_cached(tmp_path):
    cache = tmp_path / "cache"
    docs = documents(500)
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs) + "{not json\n")
    age(path)
    first = run([path], cache, workers=1)
    assert not first.ok and first.cache["units_stored"] == 0
    second = run([path], cache, workers=1)
    assert not second.ok and second.cache["units_from_cache"] == 0
    skipping = run([path], cache, workers=1, skip_bad_records=True)
    assert skipping.ok and skipping.files[0].extra["skipped_records"] == 1
    again = run([path], cache, workers=1, skip_bad_records=True)
    assert again.cache["units_counted"] == 0
    assert numbers(again) == numbers(skipping)


def test_recently_modified_files_are_counted_but_not_stored(tmp_path):
    cache = tmp_path / "cache"
    path = write_jsonl(tmp_path / "a.jsonl", documents(300), old=False)
    first = run([path], cache, workers=1)
    assert first.cache["units_stored"] == 0 and first.cache["not_stored_recent"] == first.cache["units"]


UNIT = WorkUnit(0, "x.jsonl", "jsonl", 1, 100, 200, 100)
IDENTITY = {"path": "/data/x.jsonl", "size": 1000, "mtime_ns": 123}


def key(identity=IDENTITY, unit=UNIT, fingerprint="f" * 64, policy=TextPolicy(), fmt="jsonl", kind=TEXT, engine="hf"):
    return entry_key(identity, unit, counting_context(fingerprint, policy, fmt, kind), engine)


def test_each_key_field_changes_the_key():
    base = key()
    flipped = {
        "path": key(identity=dict(IDENTITY, path="/data/y.jsonl")),
        "size": key(identity=dict(IDENTITY, size=1001)),
        "mtime": key(identity=dict(IDENTITY, mtime_ns=124)),
        "part": key(unit=replace(UNIT, part=2)),
        "start": key(unit=replace(UNIT, start=101)),
        "stop": key(unit=replace(UNIT, stop=201)),
        "parts": key(unit=replace(UNIT, parts=2)),
        "block": key(unit=replace(UNIT, block_bytes=1 << 20)),
        "tokenizer": key(fingerprint="e" * 64),
        "special tokens": key(policy=TextPolicy(add_special_tokens=False)),
        "eod": key(policy=TextPolicy(append_eod=True)),
        "text key": key(policy=TextPolicy(text_key="content")),
        "skip bad records": key(policy=TextPolicy(skip_bad_records=True)),
        "engine": key(engine="fast-0123"),
        "format": key(fmt="parquet"),
    }
    assert base not in flipped.values()
    assert len(set(flipped.values())) == len(flipped)


def test_each_engine_has_its_own_tag():
    tags = {engine_tag(engine) for engine in ("hf", "fast", "gigatoken")}
    assert len(tags) == 3 and "hf" in tags


def test_versions_are_in_the_key(monkeypatch):
    import tokenizers

    from tokcount import unit_cache

    base = key()
    monkeypatch.setattr(unit_cache, "__version__", "99.0")
    assert key() != base
    monkeypatch.undo()
    monkeypatch.setattr(tokenizers, "__version__", "0.0.1")
    assert key() != base


def test_fields_that_cannot_change_a_count_leave_the_key_alone():
    base = key()
    assert key(unit=replace(UNIT, source=7, path="elsewhere", cost=5)) == base  # the identity names the file
    assert key(policy=TextPolicy(text_column="content")) == base  # jsonl reads no column
    parquet = key(fmt="parquet", policy=TextPolicy(text_column="content"))
    assert key(fmt="parquet", policy=TextPolicy(text_column="content", text_key="body")) == parquet
    ids = key(fmt="parquet", kind=TOKEN_IDS, policy=TextPolicy(text_column="input_ids"))
    for policy in (
        TextPolicy(text_column="input_ids", append_eod=True),
        TextPolicy(text_column="input_ids", add_special_tokens=False),
    ):
        assert key(fmt="parquet", kind=TOKEN_IDS, policy=policy) == ids
    assert key(fmt="parquet", kind=TOKEN_IDS, fingerprint=None, policy=TextPolicy(text_column="input_ids")) == ids


def test_scans_miss_when_a_policy_changes_and_hit_when_only_workers_change(tmp_path):
    cache = tmp_path / "cache"
    docs = documents(1500)
    for d in docs:
        d["body"] = d["text"][::-1]
    path = write_jsonl(tmp_path / "a.jsonl", docs)
    base = run([path], cache, workers=1, unit_bytes=25_000)
    units = base.cache["units"]
    variants = [
        {"append_eod": True},
        {"add_special_tokens": False},
        {"text_key": "body"},
        {"skip_bad_records": True},
        {"tokenizer": tokenizer_fixtures.wordpiece()},
    ]
    if base.options["engine"] != "hf":
        variants.append({"engine": "hf"})  # another engine's results do not answer the reference
    for variant in variants:
        first = run([path], cache, workers=1, unit_bytes=25_000, **variant)
        assert first.cache["units_counted"] == units, variant
        again = run([path], cache, workers=2, unit_bytes=25_000, **variant)
        assert again.cache["units_counted"] == 0, variant
        assert numbers(again) == numbers(first)
    assert run([path], cache, text_column="other", workers=2, unit_bytes=25_000).cache["units_counted"] == 0
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1))
    assert run([path], cache, workers=1, unit_bytes=25_000).cache["units_counted"] == units


@pytest.mark.skipif(fast_engine_available() is not None, reason="tokenizers 1.x: no fast engine")
def test_results_of_the_reference_answer_the_fast_engine_and_not_the_other_way(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", documents(1500))
    by_fast = tmp_path / "fast-first"
    assert run([path], by_fast, workers=1, unit_bytes=25_000, engine="fast").cache["units_counted"] > 1
    assert run([path], by_fast, workers=1, unit_bytes=25_000, engine="hf").cache["units_from_cache"] == 0
    by_hf = tmp_path / "hf-first"
    reference = run([path], by_hf, workers=1, unit_bytes=25_000, engine="hf")
    fast = run([path], by_hf, workers=1, unit_bytes=25_000, engine="fast")
    assert fast.cache["units_counted"] == 0
    assert numbers(fast) == numbers(reference)


def test_parquet_token_ids_and_text_are_cached(tmp_path):
    cache = tmp_path / "cache"
    docs = documents(1200)
    table = pa.table({"text": [d["text"] for d in docs], "input_ids": [list(range(len(d["text"]) % 17)) for d in docs]})
    path = tmp_path / "a.parquet"
    pq.write_table(table, path, row_group_size=300)
    age(path)
    for column in ("text", "input_ids"):
        first = run([path], cache, workers=1, text_column=column)
        assert first.cache["units"] == 4 and first.cache["units_counted"] == 4
        second = run([path], cache, workers=1, text_column=column)
        assert second.cache["units_counted"] == 0
        assert numbers(second) == numbers(first)
    assert first.total["tokens"] == sum(len(d["text"]) % 17 for d in docs)


def test_no_cache_writes_nothing(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", documents(200))
    cache = tmp_path / "cache"
    report = scan(
        [str(path)],
        text=TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), workers=1),
        cache=CacheOptions(enabled=False, directory=str(cache)),
    )
    assert report.cache is None and not cache.exists()


def test_identity_of_a_local_file(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", documents(10))
    link = tmp_path / "link.jsonl"
    link.symlink_to(path)
    assert file_identity(str(link)) == file_identity(str(path))
    assert file_identity(str(path))["path"] == str(path.resolve())
    assert file_identity("-") is None and file_identity(str(tmp_path / "missing.jsonl")) is None


@pytest.mark.parametrize("flag", ["--no-cache", None])
def test_cli_reports_the_cache(tmp_path, flag):
    path = write_jsonl(tmp_path / "a.jsonl", documents(500))
    tok = tokenizer_fixtures.bytelevel_bpe()
    cmd = tokcount_scan(path, "--tokenizer", tok, "--cache-dir", tmp_path / "cache", "--workers", "1")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    outs = [subprocess.run(cmd + [flag] if flag else cmd, capture_output=True, text=True, env=env) for _ in range(2)]
    assert all(o.returncode == 0 for o in outs), outs[0].stderr
    if flag:
        assert "cache:" not in outs[1].stdout
    else:
        assert "cache: 0 of 1 units" in outs[0].stdout and "1 counted" in outs[0].stdout
        assert "cache: 1 of 1 units" in outs[1].stdout and "0 counted" in outs[1].stdout
    as_json = subprocess.run(cmd + ([flag] if flag else []) + ["--json"], capture_output=True, text=True, env=env)
    cache = json.loads(as_json.stdout)["cache"]
    assert cache is None if flag else cache["units_from_cache"] == 1


def test_an_unusable_cache_directory_only_costs_time(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", documents(400))
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache directory would be")
    report = run([path], blocked, workers=1, unit_bytes=20_000)
    assert report.ok and report.cache["units_stored"] == 0 and report.cache["units_counted"] == report.cache["units"]
    again = run([path], blocked, workers=1, unit_bytes=20_000)
    assert again.cache["units_from_cache"] == 0 and numbers(again) == numbers(report)
