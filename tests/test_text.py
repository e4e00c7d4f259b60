"""Raw text scans (jsonl in every compression, parquet, arrow) against the definition:
sum of len(tok.encode(text, add_special_tokens).ids), plus 1 EOD per document with tokens."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tokenizer_fixtures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from tokcount import TextOptions, TrainingOptions, UsageError, scan

ROOT = Path(__file__).resolve().parent.parent

ADVERSARIAL = [
    "",
    " ",
    "   ",
    "\n\n",
    "\t\t",
    "\r\n",
    "line one\r\nline two\r\n",
    "tab\tseparated\tvalues",
    "nul\x00inside",
    "emoji 👩‍👩‍👧‍👦 and 🇩🇪 flags",
    "e\u0301 combining a\u0300\u0323",
    "汉字和日本語のテキスト",
    "Русский текст, Deutsch: Größe",
    "עברית وعربي mixed RTL",
    "It's we've they'll I'd DON'T",
    "numbers 12345 ١٢٣ ۴۵۶ ¾",
    "<|endoftext|>",
    "text <|endoftext|> between",
    "<s> and </s> [CLS] [SEP]",
    "    indented code\n\tif x:\n\t\treturn 1\n",
    "x" * 5000,
    ("long line of words " * 3000),
    "caf\u00e9 \U0001f600 surrogate pair",
    "trailing spaces   ",
    "\u3000ideographic\u2003em space\u00a0nbsp",
]

TOKENIZERS = {
    "bytelevel": tokenizer_fixtures.bytelevel_bpe,
    "llama_style": tokenizer_fixtures.llama_style_bpe,
    "wordpiece": tokenizer_fixtures.wordpiece,
}
SHARED = [name for name in ("gpt2", "gpt-neox-20b", "llama3", "llama2") if tokenizer_fixtures.shared_tokenizer(name)]


def tokenizer_path(name: str) -> str:
    return tokenizer_fixtures.path_or_skip(name, trained=TOKENIZERS)


def reference(tok_path: str, documents, add_special_tokens=True, append_eod=False):
    """Per-document token counts by the definition."""
    tok = Tokenizer.from_file(tok_path)
    out = []
    for doc in documents:
        parts = [doc] if isinstance(doc, str) else doc
        n = sum(len(tok.encode(p, add_special_tokens=add_special_tokens).ids) for p in parts)
        out.append(n + (1 if append_eod and n > 0 else 0))
    return out


def auto_engine(tok_path: str) -> str:
    """The engine auto takes for this tokenizer with what is installed (never the reference here)."""
    from tokcount.engines import choose_engine
    from tokcount.tokenizer import load_tokenizer_spec

    engine = choose_engine(load_tokenizer_spec(tok_path), "auto").engine
    assert engine != "hf"
    return engine


def write_jsonl(path: Path, documents, key="text", compression=None, extra_lines=()):
    lines = [json.dumps({"id": i, key: d}, ensure_ascii=bool(i % 2)) for i, d in enumerate(documents)]
    lines.extend(extra_lines)
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    if compression == "gz":
        data = gzip.compress(data)
    elif compression == "bz2":
        data = bz2.compress(data)
    elif compression == "xz":
        data = lzma.compress(data)
    elif compression == "zst":
        sink = pa.BufferOutputStream()
        with pa.CompressedOutputStream(sink, "zstd") as out:
            out.write(data)
        data = sink.getvalue().to_pybytes()
    path.write_bytes(data)
    return path


def scan_text(paths, tok, workers=1, **kw):
    return scan([str(p) for p in paths], text=TextOptions(tokenizer=tok, workers=workers, **kw))


@pytest.mark.parametrize("compression", [None, "gz", "zst", "bz2", "xz"])
@pytest.mark.parametrize("name", list(TOKENIZERS))
def test_jsonl_every_compression_matches_definition(tmp_path, compression, name):
    tok = tokenizer_path(name)
    suffix = ".jsonl" + (f".{compression}" if compression else "")
    path = write_jsonl(tmp_path / f"d{suffix}", ADVERSARIAL, compression=compression)
    expected = reference(tok, ADVERSARIAL)
    report = scan_text([path], tok)
    assert report.ok, report.failures
    f = report.files[0]
    assert f.tokens == sum(expected)
    assert f.documents == len(ADVERSARIAL)
    assert f.empty_documents == sum(1 for n in expected if n == 0)
    assert f.sizes.tolist() == [n for n in expected if n > 0]
    assert f.format == "jsonl" + (f".{compression}" if compression else "")


@pytest.mark.parametrize("engine", ["hf", "auto"])
@pytest.mark.parametrize("add_special_tokens", [True, False])
@pytest.mark.parametrize("append_eod", [True, False])
@pytest.mark.parametrize("name", list(TOKENIZERS) + SHARED)
def test_policies_match_definition(tmp_path, name, add_special_tokens, append_eod, engine):
    tok = tokenizer_path(name)
    path = write_jsonl(tmp_path / "d.jsonl", ADVERSARIAL)
    expected = reference(tok, ADVERSARIAL, add_special_tokens, append_eod)
    report = scan_text([path], tok, add_special_tokens=add_special_tokens, append_eod=append_eod, engine=engine)
    f = report.files[0]
    assert f.tokens == sum(expected)
    assert f.sizes.tolist() == [n for n in expected if n > 0]
    assert f.extra["document_tokens"]["max"] == max(expected)
    assert f.extra["document_tokens"]["p50"] == int(np.percentile(expected, 50, method="inverted_cdf"))


def test_bos_post_processor_counts_with_special_tokens(tmp_path):
    tok = tokenizer_fixtures.llama_style_bpe()
    path = write_jsonl(tmp_path / "d.jsonl", ["hello", "", "world"])
    with_bos = scan_text([path], tok).files[0]
    without = scan_text([path], tok, add_special_tokens=False).files[0]
    assert with_bos.tokens - without.tokens == 3  # a BOS for every document, the empty one too
    assert with_bos.empty_documents == 0 and without.empty_documents == 1


def test_special_token_strings_counted_as_encode_counts_them(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    docs = ["<|endoftext|>", "a<|endoftext|>b", "<|endoftext|><|endoftext|>"]
    path = write_jsonl(tmp_path / "d.jsonl", docs)
    assert scan_text([path], tok).files[0].tokens == sum(reference(tok, docs))
    encoded = Tokenizer.from_file(tok).encode("<|endoftext|>").ids
    assert len(encoded) == 1  # matched as the special token, not spelled out


def test_list_values_and_nested_key(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    docs = [["first part", "", "second part"], "plain", [], ["", ""]]
    lines = [json.dumps({"meta": {"body": d}}) for d in docs]
    path = tmp_path / "n.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = scan_text([path], tok, text_key="meta.body", append_eod=True)
    f = report.files[0]
    expected = reference(tok, docs, append_eod=True)
    assert f.tokens == sum(expected)
    # Megatron: each part with tokens is a sequence, EOD joins the document's last one
    t = Tokenizer.from_file(tok)
    n1, n2 = len(t.encode("first part").ids), len(t.encode("second part").ids)
    assert f.sizes.tolist() == [n1, n2 + 1, len(t.encode("plain").ids) + 1]
    assert f.empty_documents == 2


def test_plain_jsonl_split_into_ranges_in_parallel(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    rng = np.random.default_rng(0)
    docs = [" ".join(ADVERSARIAL[int(i)] for i in rng.integers(0, len(ADVERSARIAL) - 3, 4)) for _ in range(300)]
    path = write_jsonl(tmp_path / "big.jsonl", docs)
    expected = reference(tok, docs, append_eod=True)
    # tiny ranges: most lines straddle a cut; two real worker processes
    report = scan([str(path)], text=TextOptions(tokenizer=tok, workers=2, unit_bytes=997, append_eod=True))
    f = report.files[0]
    assert f.documents == len(docs)
    assert f.tokens == sum(expected)
    assert f.sizes.tolist() == [n for n in expected if n > 0]  # order restored exactly


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",))), max_size=20), unit=st.integers(1, 200)
)
def test_random_text_any_cut(tmp_path_factory, docs, unit):
    tok = tokenizer_fixtures.bytelevel_bpe()
    path = write_jsonl(tmp_path_factory.mktemp("h") / "d.jsonl", docs)
    report = scan([str(path)], text=TextOptions(tokenizer=tok, workers=1, unit_bytes=unit))
    expected = reference(tok, docs)
    assert report.files[0].tokens == sum(expected)
    assert report.files[0].documents == len(docs)


def _parquet(path, table, row_group_size):
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def test_parquet_text_column_row_groups(tmp_path):
    tok = tokenizer_fixtures.wordpiece()
    docs = ADVERSARIAL * 3
    path = _parquet(tmp_path / "t.parquet", pa.table({"id": list(range(len(docs))), "content": docs}), 7)
    assert pq.ParquetFile(path).num_row_groups > 5
    report = scan([str(path)], text=TextOptions(tokenizer=tok, workers=2, text_column="content", append_eod=True))
    f = report.files[0]
    expected = reference(tok, docs, append_eod=True)
    assert f.documents == len(docs) and f.format == "parquet"
    assert f.tokens == sum(expected)
    assert f.sizes.tolist() == [n for n in expected if n > 0]


def test_parquet_list_of_strings_column(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    docs = [["a b", "c"], [], ["只有中文"]]
    path = _parquet(tmp_path / "l.parquet", pa.table({"text": docs}), 2)
    f = scan_text([path], tok).files[0]
    assert f.tokens == sum(reference(tok, docs))


@pytest.mark.parametrize("value_type", [pa.int32(), pa.uint16(), pa.int64()])
def test_token_id_column_counted_from_offsets(tmp_path, value_type):
    rng = np.random.default_rng(1)
    rows = [rng.integers(0, 1000, int(n)).tolist() for n in rng.integers(0, 50, 100)]
    arr = pa.array(rows, type=pa.list_(value_type))
    path = _parquet(tmp_path / "ids.parquet", pa.table({"input_ids": arr}), 16)
    report = scan([str(path)], text=TextOptions(text_column="input_ids", workers=1))  # no tokenizer needed
    f = report.files[0]
    assert f.tokens == sum(len(r) for r in rows)
    assert f.documents == len(rows) == pq.read_metadata(path).num_rows
    assert f.empty_documents == sum(1 for r in rows if not r)
    assert f.extra["content"] == "token_ids"


@pytest.mark.parametrize("ipc", ["file", "stream"])
def test_arrow_ipc(tmp_path, ipc):
    tok = tokenizer_fixtures.bytelevel_bpe()
    table = pa.table({"text": ADVERSARIAL})
    path = tmp_path / "data.arrow"
    with pa.OSFile(str(path), "wb") as sink:
        writer = (pa.ipc.new_file if ipc == "file" else pa.ipc.new_stream)(sink, table.schema)
        for batch in table.to_batches(max_chunksize=4):
            writer.write_batch(batch)
        writer.close()
    f = scan_text([path], tok, workers=2).files[0]
    assert f.tokens == sum(reference(tok, ADVERSARIAL))
    assert f.format == "arrow"


def test_mixed_formats_in_one_scan(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from idx_writer import write_mmidx

    tok = tokenizer_fixtures.bytelevel_bpe()
    j = write_jsonl(tmp_path / "a.jsonl.gz", ADVERSARIAL[:10], compression="gz")
    p = _parquet(tmp_path / "b.parquet", pa.table({"text": ADVERSARIAL[10:]}), 5)
    write_mmidx(tmp_path / "c", [[[1, 2, 3]], [[4]]])
    report = scan(
        [str(j), str(p), str(tmp_path / "c.bin")],
        TrainingOptions(seq_len=8, global_batch_size=2),
        text=TextOptions(tokenizer=tok, workers=1),
    )
    assert [f.format for f in report.files] == ["jsonl.gz", "parquet", "mmidx"]
    assert report.total["tokens"] == sum(reference(tok, ADVERSARIAL)) + 4
    assert report.plan.tokens == report.total["tokens"]


# --- bad input: one-line errors naming the file and the line / row group ---

GOOD = json.dumps({"text": "fine"})


def _bad_file(tmp_path, raw_lines: list[bytes], name="bad.jsonl"):
    path = tmp_path / name
    path.write_bytes(b"\n".join(raw_lines) + b"\n")
    return path


BAD_CASES = {
    "malformed JSON": b'{"text": "unterminated',
    "missing key": b'{"body": "no text key"}',
    "wrong type": b'{"text": 42}',
    "invalid UTF-8": b'{"text": "caf\xe9"}',
    "invalid unicode escape": b'{"text": "\\ud800 lone surrogate"}',
}


@pytest.mark.parametrize("kind", list(BAD_CASES))
def test_bad_record_is_a_located_error(tmp_path, kind):
    tok = tokenizer_fixtures.bytelevel_bpe()
    path = _bad_file(tmp_path, [GOOD.encode()] * 4 + [BAD_CASES[kind]] + [GOOD.encode()] * 3)
    report = scan_text([path], tok)
    assert report.files == []
    err = report.failures[0]
    assert err.check == kind and err.position == "line 5" and err.path == str(path)
    assert "\n" not in str(err)


def test_bad_record_line_number_in_a_later_range(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    lines = [GOOD.encode()] * 500 + [BAD_CASES["wrong type"]] + [GOOD.encode()] * 20
    path = _bad_file(tmp_path, lines)
    report = scan([str(path)], text=TextOptions(tokenizer=tok, workers=1, unit_bytes=512))
    assert report.failures[0].position == "line 501"


def test_skip_bad_records_counts_and_lists_them(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    lines = [GOOD.encode()] * 3 + list(BAD_CASES.values()) + [b""] + [GOOD.encode()] * 2
    path = _bad_file(tmp_path, lines)
    report = scan_text([path], tok, skip_bad_records=True)
    f = report.files[0]
    assert f.documents == 5
    assert f.tokens == sum(reference(tok, ["fine"] * 5))
    assert f.extra["skipped_records"] == len(BAD_CASES) + 1  # + the blank line
    assert [e["position"] for e in f.extra["skipped_examples"]] == [f"line {n}" for n in range(4, 9)]


@pytest.mark.parametrize("compression", ["gz", "zst", "bz2", "xz"])
def test_truncated_compressed_file(tmp_path, compression):
    tok = tokenizer_fixtures.bytelevel_bpe()
    path = write_jsonl(tmp_path / f"t.jsonl.{compression}", ["some text here"] * 5000, compression=compression)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    report = scan_text([path], tok)
    assert report.files == [] and report.failures[0].path == str(path)
    assert "truncated" in report.failures[0].check or "compressed" in report.failures[0].check


def test_suffix_contradicts_magic(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    path = tmp_path / "x.jsonl.zst"
    path.write_bytes(gzip.compress(b'{"text": "a"}\n'))
    report = scan_text([path], tok)
    assert report.failures[0].check == "format"


def test_parquet_missing_column_and_wrong_type(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    p1 = _parquet(tmp_path / "a.parquet", pa.table({"body": ["x"]}), 10)
    p2 = _parquet(tmp_path / "b.parquet", pa.table({"text": [1, 2]}), 10)
    report = scan_text([p1, p2], tok)
    assert [e.check for e in report.failures] == ["column", "column type"]
    assert "body" in str(report.failures[0])


def test_parquet_null_located_by_row_group(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    p = _parquet(tmp_path / "n.parquet", pa.table({"text": ["a", "b", "c", None, "e"]}), 2)
    report = scan_text([p], tok)
    assert report.failures[0].position == "row group 1, row 1"
    report = scan_text([p], tok, skip_bad_records=True)
    assert report.files[0].documents == 4 and report.files[0].extra["skipped_records"] == 1


def test_unreadable_file(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    (tmp_path / "dir.jsonl").mkdir()
    report = scan_text([tmp_path / "dir.jsonl"], tok)
    assert report.failures and report.failures[0].path.endswith("dir.jsonl")


def test_text_without_tokenizer_is_a_usage_error(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ["a"])
    with pytest.raises(UsageError):
        scan([str(path)])


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "tokcount", *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )


@tokenizer_fixtures.needs_tokenizers_0("no fast engine (auto picks hf)")
def test_cli_text_scan_json_and_errors(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    good = write_jsonl(tmp_path / "good.jsonl.zst", ADVERSARIAL, compression="zst")
    bad = _bad_file(tmp_path, [GOOD.encode(), BAD_CASES["malformed JSON"]])
    proc = run_cli("scan", good, bad, "--tokenizer", tok, "--append-eod", "--json", "--workers", "1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{bad}: malformed JSON failed at line 2" in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["files"][0]["tokens"] == sum(reference(tok, ADVERSARIAL, append_eod=True))
    assert doc["options"]["tokenizer"]["fingerprint"]
    assert doc["options"]["engine"] == auto_engine(tok)  # auto's engine, not the reference ...
    assert doc["options"]["parity"]["texts_checked"] >= len(ADVERSARIAL)  # ... and checks a file's first texts
    assert doc["options"]["parity"]["mismatch"] is None
    for key in ("text_bytes", "tokens_per_byte", "document_tokens", "skipped_records"):
        assert key in doc["files"][0]
    table = run_cli("scan", good, "--tokenizer", tok, "--workers", "1")
    checked = doc["options"]["parity"]["texts_checked"]
    assert table.returncode == 0 and f"parity guard: {checked:,} texts also counted with hf" in table.stdout


def test_cli_unknown_tokenizer_exit_1(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ["a"])
    proc = run_cli("scan", path, "--tokenizer", tmp_path / "missing.json")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "missing.json" in proc.stderr
    proc = run_cli("scan", path)
    assert proc.returncode == 1 and "--tokenizer" in proc.stderr


def test_parity_guard_catches_a_wrong_count():
    from tokcount.engines.hf import TokenCounter
    from tokcount.engines.parity import ParityGuard
    from tokcount.tokenizer import load_tokenizer_spec

    spec = load_tokenizer_spec(tokenizer_fixtures.bytelevel_bpe())
    texts = ADVERSARIAL[:10]
    right = TokenCounter(spec).count(texts).tolist()
    samples = [(text, n, f"line {k + 1}", False) for k, (text, n) in enumerate(zip(texts, right))]
    guard = ParityGuard(spec, add_special_tokens=True)
    assert guard.check(samples) is None and guard.texts_checked == len(texts)
    samples[7] = (texts[7], right[7] + 1, "line 8", False)
    detail = ParityGuard(spec, add_special_tokens=True).check(samples)
    assert detail == {"position": "line 8", "fast": right[7] + 1, "reference": right[7], "preview": texts[7][:120]}


def test_parity_guard_stays_within_its_time_budget_and_counts_what_it_left():
    """The budget is the floor plus 1 % of the engine's time, spent at the reference's measured
    speed: the run's first sample is always checked, the rest as far as the budget goes, and
    the ones left are counted, not dropped silently."""
    from tokcount.engines.hf import TokenCounter
    from tokcount.engines.parity import GUARD_FLOOR_SECONDS, GUARD_SHARE, GuardBudget, ParityGuard
    from tokcount.tokenizer import load_tokenizer_spec

    budget = GuardBudget()
    samples = [("x" * 1000, 0, f"line {k}", False) for k in range(20)]
    assert budget.affordable(samples) == 1  # nothing measured yet: the first sample only
    budget.spend(1000, GUARD_FLOOR_SECONDS / 5)  # the reference: 1000 characters per fifth of the floor
    assert budget.affordable(samples) == 4  # what is left of the floor buys four more
    budget.earn(GUARD_FLOOR_SECONDS / GUARD_SHARE)  # the engine counted for 100 floors: 1 floor more
    assert budget.affordable(samples) == 9

    spec = load_tokenizer_spec(tokenizer_fixtures.bytelevel_bpe())
    texts = ADVERSARIAL[:10]
    right = TokenCounter(spec).count(texts).tolist()
    texts_and_counts = [(text, n, f"line {k + 1}", k % 2 == 0) for k, (text, n) in enumerate(zip(texts, right))]
    spent = GuardBudget()
    spent.spend(1, 2 * GUARD_FLOOR_SECONDS)  # overspent: nothing left, not even for an empty text
    guard = ParityGuard(spec, add_special_tokens=True, budget=spent)
    assert guard.check(texts_and_counts) is None
    assert guard.tally()["texts_checked"] == 0 and guard.tally()["texts_unchecked"] == len(texts)
    guard = ParityGuard(spec, add_special_tokens=True)  # a fresh budget: the floor covers them
    assert guard.check(texts_and_counts) is None
    tally = guard.tally()
    assert (tally["texts_checked"], tally["texts_unchecked"], tally["prefixes_checked"]) == (10, 0, 5)
    assert tally["chars_checked"] == sum(map(len, texts))


@tokenizer_fixtures.needs_tokenizers_0("the reference process is forked, and tokenizers 1.x scans spawn")
def test_a_reference_in_its_own_process_counts_as_the_reference_and_survives_its_loss():
    import signal

    from tokcount.counting import WORKER_ENV, ReferenceElsewhere
    from tokcount.engines.hf import TokenCounter
    from tokcount.tokenizer import load_tokenizer_spec

    spec = load_tokenizer_spec(tokenizer_fixtures.bytelevel_bpe())
    texts = ADVERSARIAL[:30]
    expected = TokenCounter(spec, add_special_tokens=True).count(texts).tolist()
    reference = ReferenceElsewhere(spec, True, WORKER_ENV)
    try:
        assert reference.count(texts).tolist() == expected
        service = reference._service
        assert service is not None
        os.kill(service._process.pid, signal.SIGKILL)  # gone: counted here instead, still exact
        assert reference.count(texts).tolist() == expected
        assert reference._service is None
    finally:
        reference.close()


def test_parity_sampler_takes_first_texts_then_a_spread_sample():
    from tokcount.engines.parity import ParitySampler

    sampler = ParitySampler("f.jsonl:0", fraction=0.01, first_texts=4)
    texts = ["x" * 100] * 50
    first = sampler.pick(texts, 5000, at_file_start=True)
    assert first[:4] == [0, 1, 2, 3] and len(first) == 5  # under budget: one random text as well
    assert sampler.pick(texts, 100, at_file_start=False) == []  # 500 bytes sampled > 1 % of 5100
    later = sampler.pick(texts, 100_000, at_file_start=False)
    assert len(later) == 1 and 0 <= later[0] < len(texts)


def test_parity_sampler_checks_long_texts_only_as_far_as_its_budget():
    """Documents of 500 KB: the guard's characters stay within its fraction of the bytes (plus
    one minimum-size sample and the first texts' allowance), checked on prefixes."""
    from tokcount.engines.parity import FIRST_TEXTS_CHARS, MIN_SAMPLE_CHARS, ParitySampler

    fraction = 1 / 4000
    sampler = ParitySampler("f.jsonl:0", fraction=fraction)
    texts = ["x" * 500_000] * 16
    batch_bytes = sum(map(len, texts))
    first = sampler.pick(texts, batch_bytes, at_file_start=True)
    assert first[0] == 0 and sampler.chars[0] == FIRST_TEXTS_CHARS  # the first text, on a prefix
    for _ in range(200):
        for i in sampler.pick(texts, batch_bytes, at_file_start=False):
            assert MIN_SAMPLE_CHARS <= sampler.chars[i] < len(texts[i])
    random_chars = sampler.sampled_bytes - FIRST_TEXTS_CHARS
    assert random_chars <= fraction * sampler.counted_bytes + 2 * MIN_SAMPLE_CHARS
    assert random_chars >= fraction * sampler.counted_bytes / 2  # and it does sample


@pytest.fixture(params=["fast", "gigatoken"])
def guarded_counter(request, monkeypatch):
    """The counter class of the engine ``auto`` is made to take (each guarded engine in turn),
    for tests that make it wrong on purpose and expect the guard to catch it."""
    from tokcount import engines

    if request.param == "fast":
        if not tokenizer_fixtures.TRAINABLE:
            pytest.skip("tokenizers 1.x: no fast engine")
        from tokcount.engines.fast import FastCounter as counter_class
    else:
        pytest.importorskip("gigatoken", reason="the gigatoken extra is not installed")
        from tokcount.engines.gigatoken import GigatokenCounter as counter_class
    monkeypatch.setattr(engines, "AUTO_ORDER", (request.param,))
    return counter_class


@pytest.mark.parametrize("workers", [1, 2])
def test_parity_mismatch_recounts_everything_with_the_reference(tmp_path, monkeypatch, guarded_counter, workers):
    """An engine that is wrong on one document: the scan says so and reports exact counts (with
    two workers, the guard's reference runs in a process of its own)."""
    tok = tokenizer_fixtures.bytelevel_bpe()
    docs = ADVERSARIAL[:20] + ["the wrong one"] + ADVERSARIAL[20:]
    path = write_jsonl(tmp_path / "d.jsonl", docs)
    right_count = guarded_counter.count

    def off_by_one_on_marker(self, texts):
        counts = right_count(self, texts)
        return counts + np.array(["wrong one" in t for t in texts], dtype=np.int64)

    monkeypatch.setattr(guarded_counter, "count", off_by_one_on_marker)
    from tokcount.engines.hf import worker_start_method

    if workers > 1 and worker_start_method() != "fork":
        pytest.skip("spawned workers do not inherit the wrong engine this test patches in")
    report = scan([str(path)], text=TextOptions(tokenizer=tok, workers=workers, unit_bytes=4096))
    assert report.options["engine"] == "hf"
    assert "disagreed" in report.options["engine_reason"] and "line 21" in report.options["engine_reason"]
    assert report.options["parity"]["mismatch"]["preview"] == "the wrong one"
    assert report.files[0].tokens == sum(reference(tok, docs))


def test_parity_mismatch_in_a_later_range_names_its_line_and_sampling_counts_no_lines(
    tmp_path, monkeypatch, guarded_counter
):
    """Samples from byte ranges after the first keep their line unresolved: counting the lines
    before a range reads the file up to it, which only a reported mismatch may cost."""
    from tokcount.formats import jsonl

    tok = tokenizer_fixtures.bytelevel_bpe()
    docs = [f"ok document {i}" for i in range(300)] + [f"wrong one {i}" for i in range(300)]
    path = write_jsonl(tmp_path / "d.jsonl", docs)
    right_count = guarded_counter.count
    monkeypatch.setattr(
        guarded_counter,
        "count",
        lambda self, texts: right_count(self, texts) + np.array(["wrong one" in t for t in texts], dtype=np.int64),
    )
    counted = []
    lines_before = jsonl.lines_before
    monkeypatch.setattr(jsonl, "lines_before", lambda *a: counted.append(a) or lines_before(*a))
    report = scan([str(path)], text=TextOptions(tokenizer=tok, workers=1, unit_bytes=2000))
    reason = report.options["engine_reason"]
    line = int(reason.split(" line ")[1].split()[0])
    assert docs[line - 1].startswith("wrong one") and report.options["parity"]["mismatch"]["preview"] == docs[line - 1]
    assert len(counted) == 1  # the reported line only
    assert report.files[0].tokens == sum(reference(tok, docs))


@tokenizer_fixtures.needs_tokenizers_0("no fast engine at all")
def test_engine_fast_refused_for_unsupported_tokenizer(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ["a"])
    proc = run_cli("scan", path, "--tokenizer", tokenizer_fixtures.wordpiece(), "--engine", "fast")
    assert proc.returncode == 1 and "--engine fast" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("scan", path, "--tokenizer", tokenizer_fixtures.wordpiece(), "--json")
    assert proc.returncode == 0
    options = json.loads(proc.stdout)["options"]
    assert options["engine"] == "hf" and "WordPiece" in options["engine_reason"]


@tokenizer_fixtures.needs_tokenizers_0("no fast engine to bench")
def test_bench_command_times_engines_and_checks_agreement(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    path = write_jsonl(tmp_path / "d.jsonl.gz", ADVERSARIAL, compression="gz")
    proc = run_cli("bench", path, "--tokenizer", tok, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    import importlib.util

    optional = ["gigatoken"] if importlib.util.find_spec("gigatoken") else []
    assert [r["engine"] for r in result["runs"]] == ["hf", "fast", *optional]
    assert result["texts"] == len(ADVERSARIAL) and result["agree"] is True
    for run in result["runs"]:
        assert run["tokens"] == sum(reference(tok, ADVERSARIAL))
        assert run["agreeing_texts"] == len(ADVERSARIAL) and run["mb_per_s"] > 0
    proc = run_cli("bench", path, "--tokenizer", tokenizer_fixtures.wordpiece(), "--json")
    assert proc.returncode == 0
    assert "fast" in json.loads(proc.stdout)["unavailable"]


def _varied_documents(count: int, seed: int = 0) -> list[str]:
    """Documents of random words (poorly compressible, with non-ASCII and empty ones)."""
    rng = np.random.default_rng(seed)
    alphabet = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") + [
        "é",
        "ß",
        "ж",
        "漢",
        "'s",
        "\n",
    ]
    docs = []
    for i in range(count):
        if i % 97 == 5:
            docs.append("")
            continue
        words = ["".join(rng.choice(alphabet, size=int(rng.integers(1, 12)))) for _ in range(int(rng.integers(1, 120)))]
        docs.append(" ".join(words))
    return docs


@pytest.mark.parametrize("compression", ["gz", "zst"])
def test_compressed_stream_read_as_interleaved_parts(tmp_path, monkeypatch, compression):
    from tokcount.formats import TextPolicy, jsonl, plan_units

    # Tiny blocks, so that most lines straddle a block boundary; in this process (small input).
    monkeypatch.setattr(jsonl, "INTERLEAVE_BLOCK_BYTES", 301)
    monkeypatch.setattr(jsonl, "MIN_INTERLEAVED_BYTES", 0)
    tok = tokenizer_fixtures.bytelevel_bpe()
    docs = _varied_documents(400)
    path = write_jsonl(tmp_path / f"d.jsonl.{compression}", docs, compression=compression)
    units = plan_units(0, str(path), "jsonl", TextPolicy(), 1 << 20, compressed_parts=3)
    assert [(u.part, u.parts) for u in units] == [(0, 3), (1, 3), (2, 3)]
    report = scan([str(path)], text=TextOptions(tokenizer=tok, workers=3, append_eod=True))
    expected = reference(tok, docs, append_eod=True)
    f = report.files[0]
    assert f.documents == len(docs) and f.tokens == sum(expected)
    assert f.sizes.tolist() == [n for n in expected if n > 0]  # file order restored block by block


def test_slow_codecs_stay_one_stream(tmp_path, monkeypatch):
    from tokcount.formats import TextPolicy, jsonl, plan_units

    monkeypatch.setattr(jsonl, "MIN_INTERLEAVED_BYTES", 0)
    for compression in ("bz2", "xz"):
        path = write_jsonl(tmp_path / f"d.jsonl.{compression}", ["a b c"] * 50, compression=compression)
        assert [u.parts for u in plan_units(0, str(path), "jsonl", TextPolicy(), 1 << 20, 4)] == [1]


def test_first_bad_line_of_the_file_is_reported_across_interleaved_parts(tmp_path, monkeypatch):
    """Two bad lines: the first in the file sits in a block of part 1, the other in a later
    block of part 0; the report names the first, whichever part failed first."""
    from tokcount.formats import jsonl

    block = 257
    monkeypatch.setattr(jsonl, "INTERLEAVE_BLOCK_BYTES", block)
    monkeypatch.setattr(jsonl, "MIN_INTERLEAVED_BYTES", 0)
    lines = [json.dumps({"text": d}) for d in _varied_documents(300)]
    starts = np.cumsum([0] + [len(line) + 1 for line in lines[:-1]])
    first = next(i for i in range(50, 300) if (starts[i] // block) % 2 == 1)
    later = next(i for i in range(first + 20, 300) if (starts[i] // block) % 2 == 0)
    for i in (first, later):  # same byte length, so the blocks computed above stay right
        lines[i] = json.dumps({"texx": "y" * (len(lines[i]) - len('{"texx": ""}'))})
    path = tmp_path / "two-bad.jsonl.zst"
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write("".join(line + "\n" for line in lines).encode())
    path.write_bytes(sink.getvalue().to_pybytes())
    report = scan([str(path)], text=TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), workers=2))
    assert report.files == [] and report.failures[0].position == f"line {first + 1}"
    assert report.failures[0].check == "missing key"
    skipping = TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), workers=2, skip_bad_records=True)
    examples = scan([str(path)], text=skipping).files[0].extra["skipped_examples"]
    assert [e["position"] for e in examples] == [f"line {first + 1}", f"line {later + 1}"]  # file order


def test_bad_line_located_in_an_interleaved_part(tmp_path, monkeypatch):
    from tokcount.formats import jsonl

    monkeypatch.setattr(jsonl, "INTERLEAVE_BLOCK_BYTES", 257)
    monkeypatch.setattr(jsonl, "MIN_INTERLEAVED_BYTES", 0)
    tok = tokenizer_fixtures.bytelevel_bpe()
    lines = [json.dumps({"text": d}) for d in _varied_documents(300)]
    lines[236] = '{"text": 42}'
    data = "".join(line + "\n" for line in lines).encode()
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    path = tmp_path / "bad.jsonl.zst"
    path.write_bytes(sink.getvalue().to_pybytes())
    report = scan([str(path)], text=TextOptions(tokenizer=tok, workers=2))
    assert report.files == [] and report.failures[0].position == "line 237"


def test_one_large_compressed_file_counted_by_two_processes(tmp_path):
    """Default block size, real worker processes: the interleaved parts of one .zst stream."""
    from tokcount.formats import jsonl

    tok = tokenizer_fixtures.bytelevel_bpe()
    docs = _varied_documents(5000, seed=1)
    path = write_jsonl(tmp_path / "big.jsonl.zst", docs, compression="zst")
    assert path.stat().st_size >= jsonl.MIN_INTERLEAVED_BYTES
    report = scan([str(path)], text=TextOptions(tokenizer=tok, workers=2, in_process_bytes=0))
    expected = reference(tok, docs)
    f = report.files[0]
    assert f.documents == len(docs) and f.tokens == sum(expected)
    assert f.sizes.tolist() == [n for n in expected if n > 0]


AFTER_PARALLEL_TOKENIZERS = """
import json, sys
from tokenizers import Tokenizer
from tokcount import TextOptions, scan
tok_path, engine, *paths = sys.argv[1:]
texts = [json.loads(line)["text"] for path in paths for line in open(path)]
ids = Tokenizer.from_file(tok_path).encode_batch(texts)  # the library's thread pool, in the parent
report = scan(paths, text=TextOptions(tokenizer=tok_path, workers=2, engine=engine, in_process_bytes=0))
print(sum(f.tokens for f in report.files), sum(len(e.ids) for e in ids))
"""


@pytest.mark.parametrize("engine", ["hf", "auto"])
def test_forked_workers_after_the_caller_used_parallel_tokenizers(tmp_path, engine):
    """A library caller may have run tokenizers' thread pool before scanning; the workers forked
    from it must neither hang nor print the library's fork warning, and count exactly."""
    tok = tokenizer_fixtures.bytelevel_bpe()
    paths = [write_jsonl(tmp_path / f"part{i}.jsonl", _varied_documents(400, seed=i)) for i in range(3)]
    env = {k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-c", AFTER_PARALLEL_TOKENIZERS, tok, engine, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    total, reference_total = map(int, result.stdout.split())
    expected = sum(sum(reference(tok, _varied_documents(400, seed=i))) for i in range(3))
    assert total == reference_total == expected


def test_a_literal_dotted_key_wins_over_the_path_on_every_line_kind(tmp_path):
    """Plain strings take the reader's fast path, lists and paths the general one; both give
    the same documents, in order."""
    tok = tokenizer_fixtures.bytelevel_bpe()
    records = [
        {"meta.body": "literal wins", "meta": {"body": "not this"}},
        {"meta": {"body": "nested path"}},
        {"meta.body": ["a list", "of parts"], "meta": {"body": "not this"}},
        {"meta": {"body": ["nested", "list"]}},
        {"meta.body": "", "meta": {"body": "not this either"}},
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    report = scan_text([path], tok, text_key="meta.body")
    chosen = ["literal wins", "nested path", ["a list", "of parts"], ["nested", "list"], ""]
    assert report.files[0].tokens == sum(reference(tok, chosen))
    assert report.files[0].documents == 5 and report.files[0].empty_documents == 1


@tokenizer_fixtures.needs_tokenizers_0("no fast engine, so no parity guard")
def test_the_parity_guard_checks_a_huge_line_on_a_bounded_prefix(tmp_path):
    """One 6 MB document among short ones: the guard recounts at most MAX_SAMPLE_CHARS of it
    (both engines count the same prefix), in the workers, and the total stays exact."""
    from tokcount.engines.parity import MAX_SAMPLE_CHARS

    tok = tokenizer_fixtures.bytelevel_bpe()
    huge = "Ein langer Satz, with words and numbers 12345, repeated. " * 110_000
    docs = [huge] + ADVERSARIAL * 3
    path = write_jsonl(tmp_path / "huge.jsonl", docs)
    report = scan([str(path)], text=TextOptions(tokenizer=tok, workers=2, in_process_bytes=0))
    parity = report.options["parity"]
    assert report.options["engine"] == auto_engine(tok) and parity["mismatch"] is None
    # sampled on a prefix: checked, or left to the time budget and counted as left
    assert parity["prefixes_checked"] <= 1 and len(huge) > 5 * MAX_SAMPLE_CHARS
    assert parity["texts_checked"] >= 1
    assert parity["chars_checked"] <= 2 * MAX_SAMPLE_CHARS + sum(map(len, ADVERSARIAL * 3))
    assert report.files[0].tokens == sum(reference(tok, docs))


def test_a_prepared_worker_is_kept_by_its_run_and_any_other_set_up_replaces_it():
    """A forked worker inherits the counting state the scanning process prepared; the run's
    initializer must keep it, and never keep a state set up for another tokenizer, policy or
    engine, nor one left behind by an earlier run."""
    from tokcount import counting
    from tokcount.engines import HF_REQUESTED, EngineChoice
    from tokcount.tokenizer import load_tokenizer_spec

    spec = load_tokenizer_spec(tokenizer_fixtures.bytelevel_bpe())
    other_spec = load_tokenizer_spec(tokenizer_fixtures.llama_style_bpe())
    try:
        counting.prepare_worker(spec, True, HF_REQUESTED)
        prepared = counting.current_worker()
        counting.start_worker(spec, True, HF_REQUESTED)
        assert counting.current_worker() is prepared
        counting.start_worker(spec, True, HF_REQUESTED)  # a state an earlier run set up: not kept
        left_behind = counting.current_worker()
        counting.start_worker(spec, True, HF_REQUESTED)
        assert counting.current_worker() is not left_behind
        for args in [
            (other_spec, True, HF_REQUESTED),
            (spec, False, HF_REQUESTED),
            (spec, True, EngineChoice("hf", "recounted", guarded=False)),
            (None, True, HF_REQUESTED),
        ]:
            counting.prepare_worker(spec, True, HF_REQUESTED)
            kept = counting.current_worker()
            counting.start_worker(*args)
            assert counting.current_worker() is not kept, args
    finally:
        counting.forget_worker()
