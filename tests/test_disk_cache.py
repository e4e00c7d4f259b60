"""The disk cache (~/.cache/tokcount): atomic writes, the least-recently-used bound, and the two
caches that use it for tokenizers (specs, engine plans), all on real files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest
import tokenizer_fixtures as fixtures
from tokenizers import Tokenizer

from tokcount import disk_cache


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("TOKCOUNT_CACHE_DIR", str(directory))
    return directory


def _write(data: bytes):
    return lambda f: f.write(data)


def test_store_and_read_back(cache_dir):
    path = disk_cache.cache_directory() / "kind" / "entry.bin"
    assert disk_cache.read_bytes(path) is None
    disk_cache.store(path, _write(b"payload"))
    assert path.parent.parent == cache_dir
    assert disk_cache.read_bytes(path) == b"payload"
    assert os.listdir(path.parent) == ["entry.bin"]  # no temporary file left behind


def test_entries_get_the_usual_file_mode(cache_dir):
    umask = os.umask(0o022)
    try:
        path = cache_dir / "kind" / "entry.bin"
        disk_cache.store(path, _write(b"x"))
        assert path.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(umask)


def test_a_failing_write_leaves_nothing(cache_dir):
    path = cache_dir / "kind" / "entry.bin"

    def fail(f):
        f.write(b"half")
        raise OSError("disk full")

    disk_cache.store(path, fail)
    assert not path.exists() and os.listdir(path.parent) == []


def test_an_unwritable_cache_only_costs_time(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("TOKCOUNT_CACHE_DIR", str(blocker / "cache"))
    path = disk_cache.cache_directory() / "entry.bin"
    disk_cache.store(path, _write(b"x"))  # no exception
    assert disk_cache.read_bytes(path) is None


def test_keep_removes_the_least_recently_used(cache_dir):
    directory = cache_dir / "kind"
    for i in range(4):
        disk_cache.store(directory / f"entry{i}", _write(bytes([i])))
        os.utime(directory / f"entry{i}", (1000 + i, 1000 + i))
    disk_cache.read_bytes(directory / "entry0")  # used now: the most recent
    disk_cache.store(directory / "entry4", _write(b"4"), keep=3)
    assert sorted(os.listdir(directory)) == ["entry0", "entry3", "entry4"]


@fixtures.needs_tokenizers_0("the spec compares with to_str")
def test_a_file_tokenizer_spec_is_built_once_then_read_back(cache_dir):
    from tokcount.tokenizer import load_tokenizer_spec

    path = fixtures.bytelevel_bpe()
    first = load_tokenizer_spec(path)
    assert first.json == Tokenizer.from_file(path).to_str()
    assert first.fingerprint == hashlib.sha256(first.json.encode()).hexdigest()
    (entry,) = (cache_dir / "specs").iterdir()
    with open(path, "rb") as f:
        assert entry.name.startswith(hashlib.sha256(f.read()).hexdigest())
    second = load_tokenizer_spec(path)
    assert second == first and second.info() == first.info()
    # The second load takes the stored entry: another tokenizer's spec put there is what it returns.
    other = load_tokenizer_spec(fixtures.llama_style_bpe())
    header = json.dumps({"fingerprint": other.fingerprint, "vocab_size": other.vocab_size, "summary": other.summary})
    entry.write_bytes(header.encode() + b"\n" + other.json.encode())
    assert load_tokenizer_spec(path).json == other.json
    # A damaged entry (its text no longer matches its fingerprint) is rebuilt, not trusted.
    entry.write_bytes(header.encode() + b"\n" + other.json.encode()[:-1])
    assert load_tokenizer_spec(path) == first


@fixtures.needs_tokenizers_0("the spec compares with to_str")
def test_an_edited_tokenizer_file_gets_its_own_entry(cache_dir, tmp_path):
    from tokcount.tokenizer import load_tokenizer_spec

    path = tmp_path / "tokenizer.json"
    shutil.copy(fixtures.bytelevel_bpe(), path)
    before = load_tokenizer_spec(str(path))
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.add_special_tokens(["<|new|>"])
    tokenizer.save(str(path))
    after = load_tokenizer_spec(str(path))
    assert after.json == tokenizer.to_str() != before.json
    assert after.vocab_size == before.vocab_size + 1
    assert len(list((cache_dir / "specs").iterdir())) == 2


@fixtures.needs_tokenizers_0("no fast engine")
def test_engine_plans_are_cached_and_bounded(cache_dir, monkeypatch):
    from tokcount.engines.fast import plan
    from tokcount.tokenizer import load_tokenizer_spec

    spec = load_tokenizer_spec(fixtures.bytelevel_bpe())
    plans = cache_dir / "plans"
    plans.mkdir(parents=True)
    for i in range(plan.PLANS_KEPT + 3):  # plans left by earlier versions
        (plans / f"plan-stale-{i}.pkl").write_bytes(b"old")
        os.utime(plans / f"plan-stale-{i}.pkl", (1000 + i, 1000 + i))
    plan.engine_plan.cache_clear()
    built = plan.engine_plan(spec)
    stored = plan._plan_cache_path(spec)
    names = sorted(os.listdir(plans))
    assert len(names) == plan.PLANS_KEPT and stored.name in names
    assert "plan-stale-0.pkl" not in names  # the oldest went first
    plan.engine_plan.cache_clear()
    assert plan.engine_plan(spec).model.merge_ids.tolist() == built.model.merge_ids.tolist()
