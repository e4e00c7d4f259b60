"""tokcount.tokenizer against the definition, computed directly with `tokenizers`.

The reference count is always `len(Tokenizer.from_file(path).encode(text, add_special_tokens=flag).ids)`,
never anything produced by the module under test.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tokenizer_fixtures as fixtures
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from tokcount.engines.hf import TokenCounter, UnencodableText
from tokcount.errors import UsageError
from tokcount.tokenizer import TokenizerSpec, end_of_document_id, load_tokenizer_spec

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Every tokenizer the comparisons run on: the three trained here, plus real ones when shared/ has them.
TOKENIZER_NAMES = list(fixtures.TRAINED) + list(fixtures.SHARED_NAMES)


def tokenizer_path(name: str) -> str:
    return fixtures.path_or_skip(name)


@functools.cache
def reference_tokenizer(name: str) -> Tokenizer:
    return Tokenizer.from_file(tokenizer_path(name))


@functools.cache
def counter(name: str, add_special_tokens: bool) -> TokenCounter:
    return TokenCounter(load_tokenizer_spec(tokenizer_path(name)), add_special_tokens=add_special_tokens)


def definition(name: str, texts: list[str], add_special_tokens: bool) -> list[int]:
    tokenizer = reference_tokenizer(name)
    return [len(tokenizer.encode(text, add_special_tokens=add_special_tokens).ids) for text in texts]


def _long_line() -> str:
    # ~200 KB on one line, mixing scripts so every pre-tokenizer path is exercised at length.
    piece = "Lorem ipsum dolor sit amet, Größe 日本語のテキスト Съешь 😀👩‍💻 1234567890 \t  x "
    return (piece * (200_000 // len(piece) + 1))[:200_000]


ADVERSARIAL_TEXTS = [
    "",
    " ",
    "  ",
    "\n",
    "\n\n",
    " \n \t \n ",
    "\r\n",
    "line one\r\nline two\r\n",
    "\r",
    "\t\tindented\tby\ttabs\t",
    "\x00",
    "a\x00b\x00",
    "\u00a0\u3000\u2028\u2029\u200b",  # no-break, ideographic, line/paragraph separators, zero width
    "\ufeffBOM first",
    "\ufffd\uffff\U0010ffff",
    "👩‍👩‍👧‍👦 🏳️‍🌈 👍🏽 🇩🇪🇯🇵 🧑🏿‍🚀",
    "e\u0301 a\u0308 Z\u0351\u0368\u0307\u0310a\u0306\u0321lgo",
    "Åström vs A\u030astro\u0308m",  # the same word, NFC and NFD
    "日本語のテキストです。中文文本。한국어 텍스트",
    "مرحبا بالعالم",
    "שלום עולם",
    "abc \u202eRLO override\u202c def \u200fRLM",
    "I'm don't y'all'd've ’twas",
    "3.14159 1,000,000 0xDEADBEEF 1234567890123456789012345678901234567890",
    "def f(x):\n    return x  # comment\n\n\n\tpass",
    "    leading and trailing spaces    ",
    "<|endoftext|>",
    "before<|endoftext|>after <|endoftext|><|endoftext|>",
    "<s>",
    "</s> <unk> <s>text</s>",
    "[CLS] x [SEP] [UNK] [PAD] [MASK]",
    "<|begin_of_text|>hi<|end_of_text|>",
    "<0x41><0xFF>",
    "▁▁ leading metaspace ▁",
    _long_line(),
]


# --- load_tokenizer_spec ---------------------------------------------------------------------


@fixtures.needs_tokenizers_0("no to_str/get_vocab_size")
def test_spec_from_file_and_from_directory_is_the_same_tokenizer():
    path = fixtures.bytelevel_bpe()
    from_file = load_tokenizer_spec(path)
    from_directory = load_tokenizer_spec(str(Path(path).parent))
    assert from_file.source == path
    assert from_directory.source == str(Path(path).parent)
    assert from_file.fingerprint == from_directory.fingerprint
    assert from_file.json == from_directory.json
    reference = Tokenizer.from_file(path)
    assert from_file.vocab_size == reference.get_vocab_size(with_added_tokens=True)
    assert Tokenizer.from_str(from_file.json).to_str() == reference.to_str()


def test_fingerprint_differs_between_tokenizers_and_is_sha256_of_json():
    specs = [load_tokenizer_spec(loader()) for loader in fixtures.TRAINED.values()]
    assert len({spec.fingerprint for spec in specs}) == len(specs)
    for spec in specs:
        assert spec.fingerprint == hashlib.sha256(spec.json.encode("utf-8")).hexdigest()


def test_spec_survives_pickling_and_info_is_json():
    spec = load_tokenizer_spec(fixtures.llama_style_bpe())
    assert pickle.loads(pickle.dumps(spec)) == spec
    info = json.loads(json.dumps(spec.info()))
    assert info["fingerprint"] == spec.fingerprint
    assert info["source"] == spec.source
    assert info["model_type"] == "BPE"
    assert info["byte_fallback"] is True
    assert info["normalizer"] == "Sequence[Prepend, Replace]"
    assert info["post_processor"] == "TemplateProcessing"
    assert info["has_post_processor"] is True
    assert info["tokenizers_version"]


@pytest.mark.parametrize("name", TOKENIZER_NAMES)
def test_info_from_the_summary_equals_info_from_the_whole_json(name):
    import dataclasses

    spec = load_tokenizer_spec(tokenizer_path(name))
    assert spec.summary  # loading keeps what info() needs, so reports skip parsing the whole JSON
    assert spec.info() == dataclasses.replace(spec, summary="").info()


@fixtures.needs_tokenizers_0("no token_to_id")
def test_end_of_document_id_of_trained_tokenizers():
    reference = Tokenizer.from_file(fixtures.bytelevel_bpe())
    assert end_of_document_id(load_tokenizer_spec(fixtures.bytelevel_bpe())) == reference.token_to_id("<|endoftext|>")
    reference = Tokenizer.from_file(fixtures.llama_style_bpe())
    assert end_of_document_id(load_tokenizer_spec(fixtures.llama_style_bpe())) == reference.token_to_id("</s>")
    assert end_of_document_id(load_tokenizer_spec(fixtures.wordpiece())) is None


@pytest.mark.parametrize(
    ("name", "expected"), [("gpt2", 50256), ("gpt-neox-20b", 0), ("llama2", 2), ("llama3", 128001)]
)
@fixtures.needs_tokenizers_0("no token_to_id/to_str")
def test_end_of_document_id_of_real_tokenizers(name, expected):
    path = tokenizer_path(name)
    assert (
        end_of_document_id(TokenizerSpec(name, Tokenizer.from_file(path).to_str(), "", 0)) == expected
    )  # from the JSON
    assert end_of_document_id(load_tokenizer_spec(path)) == expected  # from the summary


def assert_one_line_usage_error(arg: str, *phrases: str) -> str:
    with pytest.raises(UsageError) as caught:
        load_tokenizer_spec(arg)
    message = str(caught.value)
    assert "\n" not in message
    assert arg in message
    for phrase in phrases:
        assert phrase in message
    return message


def test_missing_file_is_no_such_file(tmp_path):
    assert_one_line_usage_error(str(tmp_path / "missing" / "tokenizer.json"), "no such file")
    assert_one_line_usage_error("missing-tokenizer.json", "no such file")


def test_directory_without_tokenizer_json(tmp_path):
    (tmp_path / "vocab.txt").write_text("a\n")
    assert_one_line_usage_error(str(tmp_path), "has no tokenizer.json")


def test_invalid_json_names_the_parse_error(tmp_path):
    broken = tmp_path / "tokenizer.json"
    broken.write_text('{"version": "1.0",\n  "model": ')
    message = assert_one_line_usage_error(str(broken), "not a valid tokenizer JSON")
    assert "line" in message  # the parser's own position, e.g. "EOF while parsing ... at line 2"
    # A directory holding that file reports the same problem.
    assert_one_line_usage_error(str(tmp_path), "not a valid tokenizer JSON")


def test_valid_json_that_is_not_a_tokenizer(tmp_path):
    not_a_tokenizer = tmp_path / "config.json"
    not_a_tokenizer.write_text('{"vocab_size": 10}')
    assert_one_line_usage_error(str(not_a_tokenizer), "not a valid tokenizer JSON")


def test_invalid_hub_name_is_rejected_without_network():
    assert_one_line_usage_error("not a repo!", "no such file", "not a valid Hugging Face hub name")


def test_empty_argument():
    with pytest.raises(UsageError, match="empty"):
        load_tokenizer_spec("")


def _load_in_subprocess(arg: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = textwrap.dedent(
        """
        import sys
        from tokcount.errors import UsageError
        from tokcount.tokenizer import load_tokenizer_spec
        try:
            print("OK", load_tokenizer_spec(sys.argv[1]).fingerprint)
        except UsageError as error:
            print("UsageError:", error)
        """
    )
    return subprocess.run(
        [sys.executable, "-c", script, arg],
        capture_output=True,
        text=True,
        timeout=60,  # a hang fails the test instead of blocking the suite
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **env},
    )


def test_unknown_hub_name_without_network_fails_fast_with_a_hint(tmp_path):
    # This machine has no network: the hub lookup must fail (not hang) and say so.
    name = "tokcount-tests/no-such-tokenizer-zz9"
    env = {"HF_HUB_CACHE": str(tmp_path / "empty-cache"), "HF_HUB_OFFLINE": "0"}
    result = _load_in_subprocess(name, env)
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result
    assert lines[0].startswith(f"UsageError: {name}:")
    assert "hub could not be reached" in lines[0]
    assert "pass a local tokenizer.json path" in lines[0]


def test_hub_name_loads_from_the_local_cache_when_offline(tmp_path):
    # The cache layout huggingface_hub writes: models--{org}--{name}/refs/main -> snapshots/{commit}/.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--tokcount-tests--cached-tokenizer"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    shutil.copy(fixtures.wordpiece(), snapshot / "tokenizer.json")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    result = _load_in_subprocess(
        "tokcount-tests/cached-tokenizer", {"HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    )
    expected = load_tokenizer_spec(fixtures.wordpiece()).fingerprint
    assert result.stdout.split() == ["OK", expected], result


# --- TokenCounter: equal to the definition ---------------------------------------------------


@pytest.mark.parametrize("add_special_tokens", [True, False])
@pytest.mark.parametrize("name", TOKENIZER_NAMES)
def test_count_matches_definition_on_adversarial_texts(name, add_special_tokens):
    counts = counter(name, add_special_tokens).count(ADVERSARIAL_TEXTS)
    assert counts.dtype == np.int64
    assert counts.tolist() == definition(name, ADVERSARIAL_TEXTS, add_special_tokens)


@pytest.mark.parametrize("add_special_tokens", [True, False])
@pytest.mark.parametrize("name", TOKENIZER_NAMES)
def test_count_one_matches_definition(name, add_special_tokens):
    texts = ADVERSARIAL_TEXTS[:-1]  # the long line is covered by the batch test
    expected = definition(name, texts, add_special_tokens)
    assert [counter(name, add_special_tokens).count_one(text) for text in texts] == expected


def test_count_of_empty_batch():
    counts = counter("bytelevel_bpe", True).count([])
    assert counts.dtype == np.int64 and counts.shape == (0,)


def without_lone_surrogates(text: str) -> bool:
    return not any(0xD800 <= ord(character) <= 0xDFFF for character in text)


@pytest.mark.parametrize("name", TOKENIZER_NAMES)
@settings(max_examples=25, deadline=None)
@given(texts=st.lists(st.text().filter(without_lone_surrogates), max_size=8))
def test_count_matches_definition_on_generated_texts(name, texts):
    for add_special_tokens in (True, False):
        assert counter(name, add_special_tokens).count(texts).tolist() == definition(name, texts, add_special_tokens)


def test_bos_adds_exactly_one_token_for_llama_style():
    texts = ADVERSARIAL_TEXTS[:-1]
    with_bos = counter("llama_style_bpe", True).count(texts)
    without = counter("llama_style_bpe", False).count(texts)
    assert (with_bos - without).tolist() == [1] * len(texts)
    assert with_bos[0] == 1  # "" is just the BOS
    assert with_bos.tolist() == definition("llama_style_bpe", texts, True)


@settings(max_examples=50, deadline=None)
@given(text=st.text())
def test_bos_adds_exactly_one_token_for_any_text(text):
    assert counter("llama_style_bpe", True).count_one(text) == counter("llama_style_bpe", False).count_one(text) + 1


@fixtures.needs_tokenizers_0("no enable_truncation/enable_padding")
def test_stored_truncation_and_padding_do_not_change_counts(tmp_path):
    # A tokenizer.json may carry a model's max length and padding; counts must ignore both.
    reference = Tokenizer.from_file(fixtures.bytelevel_bpe())
    configured = Tokenizer.from_file(fixtures.bytelevel_bpe())
    configured.enable_truncation(max_length=4)
    configured.enable_padding(pad_id=0, pad_token="<|endoftext|>")
    path = tmp_path / "tokenizer.json"
    configured.save(str(path))
    texts = ["a", "a much longer text than four tokens, surely", ""]
    assert [len(configured.encode(t).ids) for t in texts][1] == 4  # the stored setting is real
    spec = load_tokenizer_spec(str(path))
    assert spec.info()["ignored_truncation"] and spec.info()["ignored_padding"]
    assert spec.info() == TokenizerSpec(spec.source, spec.json, spec.fingerprint, spec.vocab_size).info()
    assert TokenCounter(spec).count(texts).tolist() == [len(reference.encode(t).ids) for t in texts]


# --- lone surrogates -------------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 2, 4])
def test_lone_surrogate_names_the_first_offending_text(index):
    texts = ["fine", "also fine", "ok", "", "last"]
    texts[index] = "before \ud800 after"
    if index < 4:
        texts[4] = "\udfff later one"  # not the first: must not be the one reported
    with pytest.raises(UnencodableText) as caught:
        counter("bytelevel_bpe", True).count(texts)
    assert isinstance(caught.value, ValueError)
    assert caught.value.index == index
    assert f"text {index}" in str(caught.value)
    assert "U+D800" in str(caught.value)


def test_lone_surrogate_in_count_one():
    with pytest.raises(UnencodableText) as caught:
        counter("wordpiece", False).count_one("x\udc00")
    assert caught.value.index == 0


def test_surrogate_pair_written_as_two_code_points_is_rejected():
    # json.loads('"\\ud83d\\ude00"') gives one emoji, but two separate escapes in Python stay lone.
    assert counter("bytelevel_bpe", True).count([json.loads('"\\ud83d\\ude00"')]).tolist() == definition(
        "bytelevel_bpe", ["😀"], True
    )
    with pytest.raises(UnencodableText):
        counter("bytelevel_bpe", True).count(["\ud83d\ude00"])


# --- threads ---------------------------------------------------------------------------------

THREAD_PROBE = textwrap.dedent(
    """
    import os
    import sys
    from tokenizers import Tokenizer
    from tokcount.engines.hf import TokenCounter
    from tokcount.tokenizer import load_tokenizer_spec

    def threads():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))

    path, mode = sys.argv[1], sys.argv[2]
    texts = [f"text number {i}: Größe 日本語 😀 " * 8 for i in range(4000)]
    before = threads()
    if mode == "counter":
        count = TokenCounter(load_tokenizer_spec(path)).count
    else:  # the library on its own, to prove the probe sees a Rayon pool when there is one
        count = Tokenizer.from_file(path).encode_batch
    counts = count(texts)
    after = threads()
    # tokenizers (< 0.23) warned on fork after parallel use; a forked worker must stay silent.
    child = os.fork()
    if child == 0:
        count(texts[:10])
        os._exit(0)
    os.waitpid(child, 0)
    print(before, after, len(counts))
    """
)


def _probe_threads(mode: str) -> tuple[int, int, str]:
    env = {key: value for key, value in os.environ.items() if key != "TOKENIZERS_PARALLELISM"}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    result = subprocess.run(
        [sys.executable, "-c", THREAD_PROBE, fixtures.bytelevel_bpe(), mode],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    before, after, count = result.stdout.split()
    assert int(count) == 4000
    return int(before), int(after), result.stderr


@fixtures.needs_tokenizers_0("it starts its thread pool whatever TOKENIZERS_PARALLELISM says")
def test_counting_adds_no_threads():
    # The baseline is not 1: importing tokcount starts pyarrow's jemalloc background thread.
    before, after, stderr = _probe_threads("counter")
    assert after == before
    assert stderr == ""  # in particular no "process just got forked" warning from tokenizers


def test_thread_probe_detects_a_rayon_pool():
    if (os.cpu_count() or 1) < 2:
        pytest.skip("a single core gives Rayon no reason for extra threads")
    before, after, _ = _probe_threads("plain")
    assert after > before
