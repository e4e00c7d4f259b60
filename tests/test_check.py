"""tokcount check: raw jsonl <-> .bin/.idx under each preprocessing preset, trainer index files
and training logs. Preprocessed outputs are written by an independent, per-document simulation
of each preprocessor (tests/preprocess_writer.py) with real tokenizers; trainer files by the
spec's sample walk (tests/trainer_sim.py)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import preprocess_writer as pw
import pyarrow as pa
import pytest
import tokenizer_fixtures
import trainer_sim
from idx_writer import write_mmidx
from tokenizers import Tokenizer

from tokcount import FileCheckError, UsageError
from tokcount.checks.raw_index import check_raw
from tokcount.checks.trainer_index import check_trainer_index
from tokcount.checks.training_log import check_log
from tokcount.formats.indexed import open_shard
from tokcount.options import CheckOptions
from tokcount.render import check_lines

ROOT = Path(__file__).resolve().parent.parent

WORDS = "the quick brown fox jumps over lazy dog Größe 東京 😀 tokens count".split()


def records(n=120, seed=0):
    """Varied documents: empty texts, whitespace, list values with empty parts, long ones."""
    rng = np.random.RandomState(seed)
    out = []
    for i in range(n):
        kind = i % 10
        if kind == 3:
            text = ""
        elif kind == 6:
            text = [" ".join(rng.choice(WORDS, rng.randint(1, 9))), "", " ".join(rng.choice(WORDS, 3))]
        elif kind == 8:
            text = " ".join(rng.choice(WORDS, rng.randint(40, 90)))
        else:
            text = f"doc {i}: " + " ".join(rng.choice(WORDS, rng.randint(0, 12)))
        out.append({"text": text, "id": i})
    return out


def tok():
    return tokenizer_fixtures.bytelevel_bpe()  # <|endoftext|> is id 0


def options(**kw):
    kw.setdefault("workers", 1)
    return CheckOptions(tokenizer=kw.pop("tokenizer", tok()), **kw)


def setup(tmp_path, preset="megatron", append_eod=True, recs=None, name="corpus"):
    recs = records() if recs is None else recs
    raw = pw.write_jsonl(tmp_path / f"{name}.jsonl", recs)
    prefix = tmp_path / f"{name}_text_document"
    docs = pw.preprocess(prefix, recs, tok(), preset, append_eod, eod=0)
    return str(raw), str(prefix), docs


def totals(docs):
    return {
        "documents": len(docs),
        "sequences": sum(len(d) for d in docs),
        "tokens": sum(len(s) for d in docs for s in d),
    }


# --------------------------------------------------------------------------------------------
# raw <-> index


@pytest.mark.parametrize("preset", ["megatron", "megatron-fast", "neox"])
@pytest.mark.parametrize("append_eod", [True, False])
def test_each_preset_agrees_with_its_own_output(tmp_path, preset, append_eod):
    recs = records()
    if preset == "neox" and append_eod:
        recs = [r for r in recs if r["text"] not in ("",)]  # NeoX crashes on empty-token docs with EOD
    raw, prefix, docs = setup(tmp_path, preset, append_eod, recs)
    result = check_raw([raw], prefix, options(preset=preset, append_eod=append_eod, ids=True))
    assert result.ok, check_lines(result)
    assert result.expected_counts == totals(docs)
    assert result.compared_documents == len(docs)


def test_presets_differ_where_the_spec_says(tmp_path):
    raw, prefix, docs = setup(tmp_path, "megatron", True)
    # megatron-fast would have written [eod] for the empty document at line 4 (record 3)
    result = check_raw([raw], prefix, options(preset="megatron-fast", append_eod=True))
    assert not result.ok
    m = result.first_mismatch
    assert (m.document, m.position, m.expected_tokens, m.found_tokens) == (3, "line 4", 1, 0)
    # NeoX drops empty texts: 12 fewer documents and list values joined into one sequence
    result = check_raw([raw], prefix, options(preset="neox", append_eod=False))
    assert result.expected_counts["documents"] == len(docs) - sum(1 for r in records() if r["text"] == "")


def corrupt_and_check(tmp_path, docs, prefix, raw, **kw):
    write_mmidx(prefix, docs)
    return check_raw([raw], prefix, options(append_eod=True, **kw))


def test_dropped_document_is_located(tmp_path):
    raw, prefix, docs = setup(tmp_path)
    r = corrupt_and_check(tmp_path, docs[:41] + docs[42:], prefix, raw, ids=True)
    assert not r.ok
    assert r.first_mismatch.document == 41 and r.first_mismatch.position == "line 42"
    assert "raw document 41 is missing from the index" in r.diagnosis
    assert r.missing_from_index == 1
    assert r.index_counts["documents"] == len(docs) - 1


def test_changed_length_is_located(tmp_path):
    raw, prefix, docs = setup(tmp_path)
    docs[57] = [docs[57][0][:-3] + [docs[57][0][-1]]]  # two tokens shorter, EOD kept
    r = corrupt_and_check(tmp_path, docs, prefix, raw)
    assert r.differing_documents == 1 and r.missing_from_index == 0 and r.extra_in_index == 0
    m = r.first_mismatch
    assert (m.document, m.position, m.expected_tokens - m.found_tokens) == (57, "line 58", 2)


def test_changed_token_id_is_located_only_with_ids(tmp_path):
    raw, prefix, docs = setup(tmp_path)
    docs[88][0][5] = (docs[88][0][5] + 7) % 500
    write_mmidx(prefix, docs)
    assert check_raw([raw], prefix, options(append_eod=True)).ok  # lengths alone cannot see it
    r = check_raw([raw], prefix, options(append_eod=True, ids=True), window_bytes=64)  # many .bin windows
    m = r.first_mismatch
    assert r.differing_documents == 1
    assert (m.document, m.position, m.first_differing_token, m.found_id) == (88, "line 89", 5, docs[88][0][5])
    # the independent tokenizer gives the expected id
    text = records()[88]["text"]
    assert m.expected_id == Tokenizer.from_file(tok()).encode(text).ids[5]
    flat = [t for d in docs for s in d for t in s]
    assert flat[m.bin_token] == m.found_id


def test_reordered_documents_are_located(tmp_path):
    raw, prefix, docs = setup(tmp_path)
    docs[20], docs[21] = docs[21], docs[20]
    r = corrupt_and_check(tmp_path, docs, prefix, raw, ids=True)
    assert r.differing_documents == 2
    assert r.first_mismatch.document == 20
    assert r.diagnosis == "documents 20 and 21 are swapped in the index"


def test_extra_document_in_index(tmp_path):
    raw, prefix, docs = setup(tmp_path)
    r = corrupt_and_check(tmp_path, docs + [[[5, 6, 0]]], prefix, raw)
    assert not r.ok and r.extra_in_index == 1 and r.differing_documents == 0
    assert r.first_mismatch.document == len(docs) and r.first_mismatch.found_tokens == 3


def test_list_document_sequences_are_compared(tmp_path):
    raw, prefix, docs = setup(tmp_path)
    assert len(docs[6]) == 2  # a list value: two non-empty parts, two sequences
    docs[6] = [docs[6][0] + docs[6][1]]  # same tokens, one sequence
    r = corrupt_and_check(tmp_path, docs, prefix, raw, ids=True)
    m = r.first_mismatch
    assert m.document == 6 and m.expected_tokens == m.found_tokens
    assert len(m.expected_sequences) == 2 and len(m.found_sequences) == 1


def test_several_raw_files_in_order_and_compressed(tmp_path):
    recs = records(90)
    a = pw.write_jsonl(tmp_path / "in_0.jsonl", recs[:50])
    b = tmp_path / "in_1.jsonl.zst"
    with pa.output_stream(str(b), compression="zstd") as out:  # real zstd, written by Arrow
        out.write("".join(json.dumps(r) + "\n" for r in recs[50:]).encode())
    prefix = str(tmp_path / "merged_text_document")
    pw.preprocess(prefix, recs, tok(), "megatron", True, eod=0)
    assert check_raw([str(a), str(b)], prefix, options(append_eod=True, ids=True)).ok
    r = check_raw([str(b), str(a)], prefix, options(append_eod=True))
    assert not r.ok and r.first_mismatch.raw_path == str(b) and r.first_mismatch.document == 0


def test_neox_reads_jsonl_gz_as_raw_lines(tmp_path):
    recs = records(40)
    gz = tmp_path / "c.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    prefix = str(tmp_path / "c_text_document")
    write_mmidx(prefix, pw.neox_gz_documents(gz, tok(), True, 0))
    assert check_raw([str(gz)], prefix, options(preset="neox", append_eod=True, ids=True)).ok
    # the same index is not what the parsed JSON gives
    plain = pw.write_jsonl(tmp_path / "c.jsonl", recs)
    assert not check_raw([str(plain)], prefix, options(preset="neox", append_eod=True)).ok


def test_parallel_units_compare_in_order(tmp_path):
    recs = records(400, seed=3)
    raw, prefix, docs = setup(tmp_path, recs=recs)
    docs[350][0][1] += 1
    write_mmidx(prefix, docs)
    r = check_raw([raw], prefix, CheckOptions(tok(), append_eod=True, ids=True, workers=2, unit_bytes=4096))
    assert r.differing_documents == 1
    assert (r.first_mismatch.document, r.first_mismatch.position, r.first_mismatch.first_differing_token) == (
        350,
        "line 351",
        1,
    )
    assert r.expected_counts["documents"] == 400


@tokenizer_fixtures.needs_tokenizers_0("no Tokenizer.token_to_id")
def test_special_tokens_and_hints(tmp_path):
    llama = tokenizer_fixtures.llama_style_bpe()  # prepends <s>
    recs = [r for r in records(60) if r["text"] != ""]
    raw = pw.write_jsonl(tmp_path / "l.jsonl", recs)
    prefix = str(tmp_path / "l_text_document")
    eod = Tokenizer.from_file(llama).token_to_id("</s>")
    pw.preprocess(prefix, recs, llama, "megatron", True, eod=eod)
    assert check_raw([raw], prefix, options(tokenizer=llama, append_eod=True, ids=True)).ok
    r = check_raw([raw], prefix, options(tokenizer=llama, append_eod=True, add_special_tokens=False))
    assert r.differing_documents == len(recs)
    assert any("1 token longer" in h for h in r.hints)
    # an index written without EOD, checked as if with it
    pw.preprocess(prefix, recs, llama, "megatron", False)
    r = check_raw([raw], prefix, options(tokenizer=llama, append_eod=True))
    assert any("without --append-eod" in h for h in r.hints)


def test_bad_input_is_a_located_error(tmp_path):
    raw, prefix, _ = setup(tmp_path)
    lines = Path(raw).read_text().splitlines(keepends=True)
    lines[9] = '{"text": "broken\n'
    Path(raw).write_text("".join(lines))
    with pytest.raises(FileCheckError) as e:
        check_raw([raw], prefix, options(append_eod=True))
    assert e.value.path == raw and e.value.position == "line 10"
    with pytest.raises(UsageError):
        check_raw([raw], prefix, options(preset="neox", text_key="body"))
    # NeoX drops the empty text but crashes on "   ", which this tokenizer turns into 0 tokens
    raw3 = pw.write_jsonl(tmp_path / "z.jsonl", [{"text": ""}, {"text": "a"}, {"text": "   "}])
    write_mmidx(tmp_path / "z", [[[1, 2]], [[3]]])
    with pytest.raises(FileCheckError, match="IndexError") as e:
        check_raw(
            [raw3],
            tmp_path / "z",
            options(
                preset="neox",
                append_eod=True,
                eod=2,
                add_special_tokens=False,
                tokenizer=tokenizer_fixtures.wordpiece(),
            ),
        )
    assert e.value.position == "line 3"


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "tokcount", *map(str, args)], capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_exit_codes_and_json(tmp_path):
    raw, prefix, docs = setup(tmp_path)
    ok = run_cli("check", raw, "--against", prefix, "--tokenizer", tok(), "--append-eod", "--ids", "--workers", 1)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK:") and f"{len(docs)} documents" in ok.stdout
    docs[30] = []
    write_mmidx(prefix, docs)
    bad = run_cli("check", raw, "--against", prefix, "--tokenizer", tok(), "--append-eod", "--json", "--workers", 1)
    assert bad.returncode == 3, bad.stderr
    out = json.loads(bad.stdout)
    assert out["ok"] is False and out["first_mismatch"]["document"] == 30
    assert out["first_mismatch"]["position"] == "line 31" and out["first_mismatch"]["found_tokens"] == 0
    usage = run_cli("check", raw, "--against", prefix)
    assert usage.returncode == 1 and "needs --tokenizer" in usage.stderr and "Traceback" not in usage.stderr
    Path(prefix + ".bin").write_bytes(b"\x00")
    broken = run_cli("check", raw, "--against", prefix, "--tokenizer", tok())
    assert broken.returncode == 2 and broken.stderr.count("\n") == 1 and ".bin size" in broken.stderr


# --------------------------------------------------------------------------------------------
# trainer index files and logs


def data(tmp_path, n=300, seed=5):
    rng = np.random.RandomState(seed)
    docs = [[list(rng.randint(1, 400, rng.randint(0, 60)))] for _ in range(n)]
    docs = [[] if not d[0] else d for d in docs]
    prefix = str(tmp_path / "d_text_document")
    write_mmidx(prefix, docs)
    return prefix, open_shard(prefix)


def test_neox_index_files_agree_with_the_plan(tmp_path):
    prefix, shard = data(tmp_path)
    ranges = trainer_sim.neox_ranges("969, 30, 1", shard.sequences)
    _, E, B = trainer_sim.write_neox(prefix, shard.sizes, "train", ranges[0], ranges[1], 40, 64)
    _, E2, B2 = trainer_sim.write_neox(prefix, shard.sizes, "valid", ranges[1], ranges[2], 30, 16)  # several epochs
    assert E2 > 1
    checks, _ = check_trainer_index(shard, split="969, 30, 1")
    by = {c.files.split: c for c in checks}
    assert all(c.ok for c in checks), [check_lines(c) for c in checks]
    assert (by["train"].found["epochs"], by["train"].found["samples_built"]) == (E, B)
    assert (by["valid"].found["epochs"], by["valid"].found["samples_built"]) == (E2, B2)
    assert by["train"].found["logged_samples"] == B + 1 and by["train"].tokens == int(
        shard.sizes[ranges[0] : ranges[1]].sum()
    )


def test_neox_index_files_catch_changed_data(tmp_path):
    prefix, shard = data(tmp_path)
    trainer_sim.write_neox(prefix, shard.sizes, "train", 0, shard.sequences, 20, 32)
    # the data is preprocessed again: one document one token longer; the cache files stay
    docs = []
    for j in range(shard.documents):
        a, b = int(shard.doc_idx[j]), int(shard.doc_idx[j + 1])
        docs.append([[1] * int(s) for s in shard.sizes[a:b]])
    docs[10] = [[1] * (len(docs[10][0]) + 1)] if docs[10] else [[1]]
    write_mmidx(prefix, docs)
    (check,), _ = check_trainer_index(open_shard(prefix))
    assert not check.ok
    assert any("sample index row" in d for d in check.disagreements), check.disagreements


def test_megatron_index_files_with_separate_final_epoch(tmp_path):
    prefix, shard = data(tmp_path)
    T = int(shard.sizes.sum())
    # a target just above one epoch: E = 2 and the final epoch is separated (§4.4)
    paths, E, B, separate, rng = trainer_sim.write_megatron(
        prefix, shard.sizes, "train", "1,0,0", (T - 1) // 64 + 3, 64
    )
    assert E == 2 and separate
    (check,), notes = check_trainer_index(shard)
    assert check.ok, check_lines(check)
    assert check.expected["separate_final_epoch"] is True
    assert (check.found["epochs"], check.found["samples_built"], check.sequence_range) == (2, B, rng)
    # a shuffle index that mixes the final epoch in is caught
    sh = np.load(paths["shuffle_index"])
    sh[0], sh[-1] = sh[-1], sh[0]
    np.save(paths["shuffle_index"], sh)
    (check,), _ = check_trainer_index(shard)
    assert any("separate final epoch" in d for d in check.disagreements)


def test_megatron_cache_dir_and_other_datasets(tmp_path):
    prefix, shard = data(tmp_path)
    cache = str(tmp_path / "cache")
    trainer_sim.write_megatron(prefix, shard.sizes, "valid", "90,10,0", 8, 32, cache_dir=cache)
    trainer_sim.write_megatron(str(tmp_path / "other"), shard.sizes, "train", "1,0,0", 8, 32, cache_dir=cache)
    checks, notes = check_trainer_index(shard, cache_dir=cache)
    assert [c.files.split for c in checks] == ["valid"] and checks[0].ok
    assert any("not this prefix" in n for n in notes)
    with pytest.raises(UsageError, match="no trainer index files"):
        check_trainer_index(shard)


def test_cli_trainer_index_and_logs(tmp_path):
    prefix, shard = data(tmp_path)
    ranges = trainer_sim.neox_ranges("969, 30, 1", shard.sequences)
    _, E, B = trainer_sim.write_neox(prefix, shard.sizes, "train", ranges[0], ranges[1], 50, 32)
    r = run_cli("check", prefix, "--json")
    assert r.returncode == 0, r.stderr + r.stdout
    assert json.loads(r.stdout)["found"]["samples_built"] == B
    log = tmp_path / "train.log"
    n_train = ranges[1] - ranges[0]
    log.write_text(trainer_sim.neox_log(list(zip(ranges, ranges[1:])), {"train": (E, B, 32, n_train)}))
    r = run_cli("check", "--against-log", log, prefix)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "matches" in r.stdout


def test_neox_log_check(tmp_path):
    prefix, shard = data(tmp_path)
    ranges = trainer_sim.neox_ranges("969, 30, 1", shard.sequences)
    per = {}
    for name, (a, b), target in zip(("train", "valid"), zip(ranges, ranges[1:]), (50, 40)):
        _, E, B = trainer_sim.write_neox(prefix, shard.sizes, name, a, b, target, 32)
        per[name] = (E, B, 32, b - a)
    log = tmp_path / "neox.log"
    log.write_text(trainer_sim.neox_log(list(zip(ranges, ranges[1:])), per))
    result = check_log(shard, str(log))
    assert result.framework == "neox" and result.ok, check_lines(result)
    assert [(r["split"], r["samples_built"], r["epochs"]) for r in result.rows] == [
        (n, per[n][1], per[n][0]) for n in ("train", "valid")
    ]
    # a log from a run on one more sequence of data
    bigger = list(zip([0, ranges[1], ranges[2] + 1], [ranges[1], ranges[2] + 1, ranges[3] + 1]))
    log.write_text(trainer_sim.neox_log(bigger, per))
    assert not check_log(shard, str(log)).ok


def test_megatron_log_check(tmp_path):
    prefix, shard = data(tmp_path)
    T = int(shard.sizes.sum())
    paths, E, B, _, _ = trainer_sim.write_megatron(prefix, shard.sizes, "train", "1,0,0", (T - 1) // 64 + 3, 64)
    log = tmp_path / "m.log"
    log.write_text(
        trainer_sim.megatron_log(shard.sequences, shard.documents, [(0, 1.0), None, None], {"train": (E, B)})
    )
    result = check_log(shard, str(log), seq_len=64)
    assert result.framework == "megatron" and result.ok, check_lines(result)
    unpinned = check_log(shard, str(log))
    lo, hi = unpinned.rows[0]["seq_len_range"]
    assert lo <= 64 <= hi and all((E * T - 1) // s == B for s in (lo, hi))
    log.write_text(
        trainer_sim.megatron_log(shard.sequences, shard.documents, [(0, 1.0), None, None], {"train": (E, B + 1)})
    )
    assert not check_log(shard, str(log), seq_len=64).ok
    log.write_text(
        trainer_sim.megatron_log(shard.sequences + 1, shard.documents, [(0, 1.0), None, None], {"train": (E, B)})
    )
    bad = check_log(shard, str(log), seq_len=64)
    assert any("sequences" in d for d in bad.disagreements)


def test_megatron_index_files_without_extra_token(tmp_path):
    prefix, shard = data(tmp_path)
    _, E, B, _, _ = trainer_sim.write_megatron(prefix, shard.sizes, "train", "1,0,0", 250, 48, extra=0)
    (check,), _ = check_trainer_index(shard, extra_token=False)
    assert check.ok and check.found["samples_built"] == B and E > 1, check_lines(check)
    (check,), _ = check_trainer_index(shard, extra_token=True)  # x is not in the md5: a stale cache looks valid
    assert not check.ok


def _zst(path, recs):
    with pa.output_stream(str(path), compression="zstd") as out:  # real zstd, written by Arrow
        out.write("".join(json.dumps(r) + "\n" for r in recs).encode())
    return str(path)


@pytest.mark.parametrize("preset", ["megatron", "neox"])
def test_one_compressed_file_is_checked_as_interleaved_parts(tmp_path, monkeypatch, preset):
    """Fewer files than workers: the .zst is read by two processes, block by block, and the
    blocks are compared with the index in stream order, so every result and every position
    is the one-stream result."""
    from tokcount.formats import jsonl

    monkeypatch.setattr(jsonl, "INTERLEAVE_BLOCK_BYTES", 997)  # many blocks, lines across their edges
    monkeypatch.setattr(jsonl, "MIN_INTERLEAVED_BYTES", 0)
    recs = [r for r in records(400, seed=5) if preset != "neox" or r["text"]]
    raw = _zst(tmp_path / "corpus.jsonl.zst", recs)
    prefix = str(tmp_path / "corpus_text_document")
    docs = pw.preprocess(prefix, recs, tok(), preset, True, eod=0)
    two = CheckOptions(tok(), preset=preset, append_eod=True, ids=True, workers=2)
    parts = check_raw([raw], prefix, two)
    assert parts.ok and parts.expected_counts == totals(docs) and parts.compared_documents == len(recs)

    docs[301][0][2] += 1  # one token id, deep in the stream
    write_mmidx(prefix, docs)
    r = check_raw([raw], prefix, two)
    one = check_raw([raw], prefix, CheckOptions(tok(), preset=preset, append_eod=True, ids=True, workers=1))
    assert r.differing_documents == one.differing_documents == 1
    m = r.first_mismatch
    assert (m.document, m.position, m.first_differing_token) == (301, "line 302", 2)
    assert m.to_dict() == one.first_mismatch.to_dict()


def test_interleaved_parts_report_the_first_bad_line(tmp_path, monkeypatch):
    from tokcount.formats import jsonl

    monkeypatch.setattr(jsonl, "INTERLEAVE_BLOCK_BYTES", 997)
    monkeypatch.setattr(jsonl, "MIN_INTERLEAVED_BYTES", 0)
    lines = [json.dumps(r) for r in records(300, seed=6)]
    starts = np.cumsum([0] + [len(line) + 1 for line in lines])
    part = lambda i: (starts[i] // 997) % 2  # noqa: E731  (which of the two parts reads line i)
    # The first bad line in part 1, a later one in part 0: part 0's failure must not win.
    first = next(i for i in range(20, 300) if part(i) == 1)
    later = next(i for i in range(first + 30, 300) if part(i) == 0)
    for i in (first, later):
        lines[i] = "[" + lines[i][1:]  # malformed, same length: the blocks do not move
    raw = tmp_path / "bad.jsonl.zst"
    with pa.output_stream(str(raw), compression="zstd") as out:
        out.write("".join(line + "\n" for line in lines).encode())
    _, prefix, _ = setup(tmp_path, recs=records(10))
    with pytest.raises(FileCheckError) as error:
        check_raw([str(raw)], prefix, CheckOptions(tok(), append_eod=True, workers=2))
    assert error.value.position == f"line {first + 1}"


def test_hints_name_the_likely_cause_and_only_that(tmp_path):
    # empty documents preprocessed as [eod] (megatron-fast), checked under the megatron preset
    raw, prefix, _ = setup(tmp_path, "megatron-fast", True)
    r = check_raw([raw], prefix, options(append_eod=True))
    assert any("try --preset megatron-fast" in h for h in r.hints)
    # another tokenizer, no empty documents: the hint is about the tokenizer, never the preset
    recs = [x for x in records(80) if x["text"] != ""]
    raw2, prefix2, _ = setup(tmp_path, "megatron", True, recs, name="other")
    r = check_raw([raw2], prefix2, options(tokenizer=tokenizer_fixtures.llama_style_bpe(), append_eod=True))
    assert not r.ok and not any("megatron-fast" in h for h in r.hints)
    assert any("another tokenizer" in h for h in r.hints), r.hints


def test_raw_files_in_the_wrong_order_are_diagnosed(tmp_path):
    first, second = records(40, seed=1), records(40, seed=2)
    a = pw.write_jsonl(tmp_path / "in_0.jsonl", first)
    b = pw.write_jsonl(tmp_path / "in_1.jsonl", second)
    prefix = str(tmp_path / "in_text_document")
    pw.preprocess(prefix, first + second, tok(), "megatron", True, eod=0)
    assert check_raw([str(a), str(b)], prefix, options(append_eod=True)).ok
    swapped = check_raw([str(b), str(a)], prefix, options(append_eod=True))
    assert not swapped.ok and any("another order" in h for h in swapped.hints), swapped.hints


def test_a_check_says_which_mode_it_inferred(tmp_path):
    raw, prefix, _ = setup(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "tokcount", "check", *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    alone = cli(raw)
    assert alone.returncode == 1 and "trainer's index files" in alone.stderr and "--against PREFIX" in alone.stderr
    assert "pairing failed" not in alone.stderr
    swapped = cli(prefix, "--against", raw, "--tokenizer", tok())
    assert swapped.returncode == 1 and "swapped" in swapped.stderr and "Traceback" not in swapped.stderr
