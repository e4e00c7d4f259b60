"""The gigatoken engine (an optional extra): exact against the reference wherever it loads a
tokenizer, chosen by auto where the fast engine cannot count, refused clearly where it cannot."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tokenizer_fixtures as fixtures
from test_text import ADVERSARIAL, reference, write_jsonl
from tokenizers import Tokenizer

from tokcount import TextOptions, UsageError, scan
from tokcount.engines import choose_engine, make_counter
from tokcount.engines.gigatoken import gigatoken_support
from tokcount.tokenizer import build_tokenizer, load_tokenizer_spec

pytest.importorskip("gigatoken", reason="the gigatoken extra is not installed")

# Real families whose tokenizer.json gigatoken 0.10 loads (the others are refused; see
# test_refusals_name_the_reason).
SHARED = ("gpt2", "gpt-neox-20b", "llama3", "llama2", "qwen35", "phi-3", "mpt", "gemma-4")
TRAINED = ("bytelevel_bpe", "llama_style_bpe")


CORPUS = fixtures.SHARED_TOKENIZERS.parent / "corpus" / "bench.jsonl.zst"
WHITESPACE = " \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2028\u2029\u202f\u3000"
PIECES = [
    *WHITESPACE,
    "\r\n",
    " " * 5,
    " " * 25,
    "'s",
    "'LL",
    "'ſt",
    "don't",
    "0",
    "1234567",
    "٣",
    "é",
    "e\u0301",
    "🙂",
    "漢字",
]


def corpus_sample(text_bytes: int = 1 << 20) -> list[str]:
    """The first megabyte of the shared corpus, or nothing without it."""
    if not CORPUS.exists():
        return []
    import pyarrow as pa

    data = pa.input_stream(str(CORPUS), compression="zstd").read(text_bytes + (1 << 20))
    texts = [json.loads(line)["text"] for line in data.split(b"\n")[:-1]]
    taken, kept = 0, []
    for text in texts:
        kept.append(text)
        taken += len(text)
        if taken >= text_bytes:
            break
    return kept


def texts_for_differential() -> list[str]:
    pieces = [*PIECES, *ADVERSARIAL]
    joined = ["".join(pieces[i : i + 7]) for i in range(0, len(pieces), 3)]
    specials = ["<|endoftext|> x", "<s>hello</s>", "a<|end_of_text|>b", "<unk>", "[CLS]"]
    return ["", " ", *pieces, *joined, *specials, *fixtures.TRAINING_TEXT.splitlines(), *corpus_sample()]


@pytest.mark.parametrize("add_special_tokens", [True, False])
@pytest.mark.parametrize("name", TRAINED + SHARED)
def test_counts_equal_the_reference(name, add_special_tokens):
    path = fixtures.path_or_skip(name)
    try:
        spec = load_tokenizer_spec(path)
    except UsageError as refused:  # tokenizers 1.x cannot encode with Qwen3.5's Split: no reference
        pytest.skip(str(refused))
    supported, why = gigatoken_support(spec)
    assert supported, why
    texts = texts_for_differential()
    counter = make_counter(spec, add_special_tokens, "gigatoken")
    tokenizer = Tokenizer.from_file(path)
    expected = [len(tokenizer.encode(t, add_special_tokens=add_special_tokens).ids) for t in texts]
    got = counter.count(texts)
    assert got.dtype == np.int64
    mismatches = [(t[:40], g, e) for t, g, e in zip(texts, got.tolist(), expected) if g != e]
    assert not mismatches, mismatches[:5]


def test_the_post_processor_is_added_by_tokcount():
    """gigatoken adds no BOS; the count must still include the template's <s>."""
    spec = load_tokenizer_spec(fixtures.llama_style_bpe())
    with_special = make_counter(spec, True, "gigatoken").count(["hello", ""])
    without = make_counter(spec, False, "gigatoken").count(["hello", ""])
    assert (with_special - without).tolist() == [1, 1]


def test_refusals_name_the_reason():
    spec = load_tokenizer_spec(fixtures.wordpiece())
    supported, why = gigatoken_support(spec)
    assert not supported and "WordPiece" in why and "\n" not in why
    with pytest.raises(UsageError, match="engine 'gigatoken'.*WordPiece"):
        choose_engine(spec, "gigatoken")
    assert choose_engine(spec, "auto").engine == "hf"


def test_auto_takes_gigatoken_first_and_guards_it():
    spec = load_tokenizer_spec(fixtures.llama_style_bpe())  # both count it; AUTO_ORDER puts gigatoken first
    choice = choose_engine(spec, "auto")
    assert (choice.engine, choice.guarded) == ("gigatoken", True), choice.reason


def test_a_lone_surrogate_is_named_as_the_reference_names_it():
    from tokcount.engines.hf import UnencodableText

    counter = make_counter(load_tokenizer_spec(fixtures.bytelevel_bpe()), True, "gigatoken")
    with pytest.raises(UnencodableText, match="lone surrogate U\\+D800"):
        counter.count(["fine", "bad \ud800 text"])


@pytest.mark.parametrize("engine", ["gigatoken", "auto"])
def test_a_scan_with_gigatoken_is_exact(tmp_path, engine):
    tok = fixtures.llama_style_bpe()
    documents = texts_for_differential() * 3
    path = write_jsonl(tmp_path / "d.jsonl", documents)
    report = scan([str(path)], text=TextOptions(tokenizer=tok, engine=engine, workers=2, unit_bytes=4096))
    assert report.total["tokens"] == sum(reference(tok, documents))
    assert report.options["engine"] == "gigatoken"
    if engine == "auto":
        assert report.options["parity"]["texts_checked"] > 0 and report.options["parity"]["mismatch"] is None


def test_the_cli_takes_the_engine_and_bench_lists_it(tmp_path):
    tok = fixtures.llama_style_bpe()
    documents = fixtures.TRAINING_TEXT.splitlines()
    path = write_jsonl(tmp_path / "d.jsonl", documents)
    run = subprocess.run(
        [sys.executable, "-m", "tokcount", "scan", str(path), "--tokenizer", tok, "--engine", "gigatoken", "--json"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["total"]["tokens"] == sum(reference(tok, documents))
    bench = subprocess.run(
        [sys.executable, "-m", "tokcount", "bench", str(path), "--tokenizer", tok, "--json"],
        capture_output=True,
        text=True,
    )
    assert bench.returncode == 0, bench.stderr
    runs = {r["engine"]: r for r in json.loads(bench.stdout)["runs"]}
    assert runs["gigatoken"]["agreeing_texts"] == len(documents)


def test_build_tokenizer_is_the_reference_used():
    # The post-processor probe runs on build_tokenizer's Tokenizer (padding/truncation off).
    spec = load_tokenizer_spec(fixtures.llama_style_bpe())
    assert len(build_tokenizer(spec).encode("").ids) == 1
