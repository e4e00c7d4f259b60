"""tokcount.engines.fast against the definition, computed directly with `tokenizers`.

The reference count is always `len(Tokenizer.from_str(json).encode(text, add_special_tokens=flag).ids)`
from a tokenizer built here, never anything produced by the engine. Tokenizers: small byte-level
BPEs trained on the spot (GPT-2 pattern; Llama-3 pattern with ignore_merges; GPT-2 pattern with
NFC and NeoX-style whitespace added tokens; Digits(individual) before the GPT-2 pattern, with and
without NFC, one lacking a single-byte token; the Qwen2, Qwen3.5, o200k and Tekken split
patterns and tiktoken's cl100k regex; a DeepSeek-LLM-shaped sequence of splits), plus the real GPT-2, GPT-NeoX-20B, Llama-3, Refact, Command-R, Qwen3.5 and DeepSeek-LLM from ../shared
when present.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tokenizer_fixtures as fixtures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

if not fixtures.TRAINABLE:
    pytest.skip("tokenizers 1.x: no fast engine (its tables need 0.2x's components)", allow_module_level=True)

from tokcount.engines.fast import FastCounter, bpe, count, fast_support, pretokenize
from tokcount.engines.fast.codepoints import (
    CL100K_TIKTOKEN_PATTERN,
    GPT2_PATTERN,
    LLAMA3_PATTERN,
    O200K_PATTERN,
    QWEN2_PATTERN,
    QWEN35_PATTERN,
    TEKKEN_PATTERN,
    codepoint_tables,
    isolated_digit_members,
)
from tokcount.engines.hf import UnencodableText
from tokcount.tokenizer import TokenizerSpec, load_tokenizer_spec

CORPUS = fixtures.SHARED_TOKENIZERS.parent / "corpus" / "bench.jsonl.zst"
CORPUS_SAMPLE_BYTES = int(os.environ.get("TOKCOUNT_TEST_CORPUS_BYTES", 1_500_000))
NEOX_WHITESPACE_RUNS = [" " * n for n in range(2, 25)]


def _variant(name: str, edit) -> str:
    """A trained byte-level BPE with its JSON edited, saved next to the trained fixtures."""
    config = json.loads(Path(fixtures.bytelevel_bpe()).read_text())
    edit(config)
    path = Path(fixtures.bytelevel_bpe()).parent.parent / name / "tokenizer.json"
    path.parent.mkdir(exist_ok=True)
    tokenizer = Tokenizer.from_str(json.dumps(config))
    tokenizer.save(str(path))
    return str(path)


def split_then_byte_level(regex: str) -> dict:
    """The Llama-3 family's pre-tokenizer JSON with another regex."""
    return {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ],
    }


@functools.cache
def llama3_style_bpe() -> str:
    """Llama-3 layout: Split(Llama-3 regex) then ByteLevel(use_regex=false), ignore_merges, a
    post-processor adding a begin-of-text token, special tokens that are not normalized."""

    def edit(config):
        config["pre_tokenizer"] = split_then_byte_level(LLAMA3_PATTERN)
        config["model"]["ignore_merges"] = True
        next_id = max(config["model"]["vocab"].values()) + 1
        begin = {
            "id": next_id,
            "content": "<|begin_of_text|>",
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        config["added_tokens"] = [dict(t, normalized=False) for t in config["added_tokens"]] + [begin]
        config["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
            ],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {
                "<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [next_id], "tokens": ["<|begin_of_text|>"]}
            },
        }

    return _variant("llama3_style_bpe", edit)


@functools.cache
def neox_style_bpe() -> str:
    """NeoX layout: NFC normalizer, <|endoftext|> not normalized, and non-special normalized
    added tokens for runs of 2..24 spaces (matched after normalization, leftmost-longest)."""

    def edit(config):
        config["normalizer"] = {"type": "NFC"}
        next_id = max(config["model"]["vocab"].values()) + 1
        config["added_tokens"] = [dict(t, normalized=False) for t in config["added_tokens"]]
        for offset, run in enumerate(reversed(NEOX_WHITESPACE_RUNS)):
            config["added_tokens"].append(
                {
                    "id": next_id + offset,
                    "content": run,
                    "single_word": False,
                    "lstrip": False,
                    "rstrip": False,
                    "normalized": True,
                    "special": False,
                }
            )

    return _variant("neox_style_bpe", edit)


LOCAL = {
    "bytelevel_bpe": fixtures.bytelevel_bpe,
    "llama3_style_bpe": llama3_style_bpe,
    "neox_style_bpe": neox_style_bpe,
    **fixtures.BYTE_LEVEL_FAMILIES,
    **fixtures.SENTENCEPIECE_FAMILIES,
}
SHARED = (
    "gpt2",
    "gpt-neox-20b",
    "llama3",
    "refact",
    "command-r",
    "qwen35",
    "deepseek-llm",
    "llama2",
    "gemma-4",
    "phi-3",
)
ALL_NAMES = list(LOCAL) + list(SHARED)
# The tokenizers standing for each pre-tokenizer shape in the every-code-point tests.
NEW_FAMILIES = list(fixtures.BYTE_LEVEL_FAMILIES)
PATTERN_REPRESENTATIVES = [
    "bytelevel_bpe",
    "llama3_style_bpe",
    "neox_style_bpe",
    *NEW_FAMILIES,
    *fixtures.SENTENCEPIECE_FAMILIES,
]


def tokenizer_path(name: str) -> str:
    return fixtures.path_or_skip(name, trained=LOCAL)


@functools.cache
def spec_of(name: str) -> TokenizerSpec:
    return load_tokenizer_spec(tokenizer_path(name))


@functools.cache
def reference(name: str) -> Tokenizer:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    return Tokenizer.from_file(tokenizer_path(name))


def reference_counts(name: str, texts: list[str], add_special_tokens: bool) -> np.ndarray:
    """The definition: len(encode(text).ids), one text at a time."""
    tokenizer = reference(name)
    return np.array(
        [len(tokenizer.encode(t, add_special_tokens=add_special_tokens).ids) for t in texts], dtype=np.int64
    )


@functools.cache
def counter(name: str, add_special_tokens: bool) -> FastCounter:
    # Shared across examples on purpose: later examples hit entries cached by earlier ones.
    return FastCounter(spec_of(name), add_special_tokens=add_special_tokens)


def assert_same_counts(name: str, texts: list[str], add_special_tokens: bool, fast: FastCounter | None = None) -> None:
    fast = fast or counter(name, add_special_tokens)
    got = fast.count(texts)
    expected = reference_counts(name, texts, add_special_tokens)
    assert got.dtype == np.int64 and got.shape == (len(texts),)
    mismatches = np.flatnonzero(got != expected)
    if mismatches.size:
        i = int(mismatches[0])
        raise AssertionError(
            f"{name} add_special_tokens={add_special_tokens}: {mismatches.size} of {len(texts)} texts differ; "
            f"first text {texts[i]!r}: fast {got[i]} != tokenizers {expected[i]}"
        )


# ----------------------------------------------------------------------------------------------
# Support


@pytest.mark.parametrize("name", ALL_NAMES)
def test_supported_tokenizers(name):
    supported, why = fast_support(spec_of(name))
    assert supported, why
    sentencepiece = json.loads(Path(tokenizer_path(name)).read_text())["pre_tokenizer"] is None
    assert ("SentencePiece-style BPE" if sentencepiece else "byte-level BPE") in why


@pytest.mark.parametrize(
    "name, reason",
    [
        ("wordpiece", "WordPiece"),
        ("bert-bge", "WordPiece"),
    ],
)
def test_unsupported_tokenizers_say_why(name, reason):
    path = fixtures.TRAINED[name]() if name in fixtures.TRAINED else fixtures.shared_tokenizer(name)
    if path is None:
        pytest.skip(f"{name} not present")
    spec = load_tokenizer_spec(path)
    supported, why = fast_support(spec)
    assert not supported and reason in why
    with pytest.raises(ValueError, match="does not support"):
        FastCounter(spec)


@pytest.mark.parametrize(
    "flag, value, reason",
    [
        ("lstrip", True, "lstrip"),
        ("single_word", True, "single_word"),
        ("rstrip", True, "rstrip and is matched after normalizing"),
    ],
)
def test_added_token_options_not_handled_say_so(flag, value, reason):
    def edit(config):
        token = fixtures.added_token(len(config["model"]["vocab"]), "<|turn|>", normalized=flag == "rstrip")
        config["added_tokens"].append({**token, flag: value})

    supported, why = fast_support(load_tokenizer_spec(_variant(f"added_{flag}", edit)))
    assert not supported and reason in why, why


def test_rstrip_refused_where_stripped_whitespace_could_start_another_token():
    def edit(config):
        next_id = len(config["model"]["vocab"])
        for offset, (content, rstrip) in enumerate([("<|turn|>", True), ("  ", False)]):
            config["added_tokens"].append(fixtures.added_token(next_id + offset, content, rstrip=rstrip))

    supported, why = fast_support(load_tokenizer_spec(_variant("rstrip_and_space_token", edit)))
    assert not supported and "starts with whitespace" in why, why


def test_rstrip_strips_what_tokenizers_strips_for_every_code_point():
    """Each code point after an rstrip token, then a letter: the fast count equals tokenizers'
    for every scalar value (Rust's whitespace, not the regex engine's \\s nor Python's)."""
    from tokcount.engines.fast.codepoints import stripped_by_added_tokens

    stripped = stripped_by_added_tokens()
    assert stripped[0x3000] and stripped[0x85] and not stripped[0x1C]  # Python's isspace says yes to U+001C
    scalars = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    texts = ["<|end|>" + chr(c) + "a" for c in scalars[::97]] + [
        "<|end|>" + chr(c) + "a" for c in np.flatnonzero(stripped).tolist()
    ]
    assert_same_counts("phi3_style_bpe", texts, False)


def test_other_regex_is_unsupported():
    def edit(config):
        config["pre_tokenizer"] = {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": LLAMA3_PATTERN.replace("{1,3}", "+")},
                    "behavior": "Isolated",
                    "invert": False,
                },
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        }

    supported, why = fast_support(load_tokenizer_spec(_variant("other_regex", edit)))
    assert not supported and "pre-tokenizer" in why


# ----------------------------------------------------------------------------------------------
# Differential: adversarial strings


WHITESPACE = " \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2007\u200a\u2028\u2029\u202f\u205f\u3000"
ADVERSARIAL_PIECES = [
    *WHITESPACE,
    "\r\n",
    "  ",
    "   ",
    " " * 5,
    " " * 24,
    " " * 25,
    " " * 49,
    "\n\n",
    " \n ",
    "'s",
    "'t",
    "'re",
    "'ve",
    "'m",
    "'ll",
    "'d",
    "'S",
    "'T",
    "'RE",
    "'Ve",
    "'M",
    "'LL",
    "'D",
    "'ſ",
    "'ſt",
    "''",
    "'",
    "s",
    "e",
    "ll",
    "don't",
    "I'M",
    "we'RE",
    "0",
    "7",
    "123",
    "1234567",
    "٣",
    "۴",
    "७",
    "๒",
    "௫",
    "五",
    "Ⅻ",
    "½",
    "²",
    "𝟘",
    "①",
    "\U00011de0",  # a digit to Digits (Rust's is_numeric) that tokenizers 0.23's \\p{N} lacks
    "\U00016ff4",
    "x1",
    " 1",
    "  1",
    "\t1",
    "\n1",
    "1 ",
    "1,000",
    "'1",
    "a1b",
    " ٣",
    "\u0915\u093f",  # a spacing mark after a letter
    "\u20dd",  # an enclosing mark
    " \u0301",
    "'\u0301",
    "!\u0301",
    "\u0301\u0301",
    "a",
    "Z",
    "é",
    "e\u0301",
    "a\u0308\u0323",
    "\u0301",
    "Å",
    "Ω",
    "K",
    "ﬁ",
    "ǅ",
    "ß",
    "ẞ",
    "İ",
    "ı",
    "中",
    "文",
    "ひ",
    "カ",
    "한",
    "\u1100\u1161\u11a8",
    "가\u11a8",
    "ا",
    "ب",
    "\u0651",
    "א",
    "ก",
    "\u0e31",
    "😀",
    "👍🏽",
    "👩\u200d💻",
    "🇩🇪",
    "❤️",
    "\u200d",
    "\u200c",
    "\ufe0f",
    "\u00ad",
    "\ufeff",
    "!",
    "?",
    ".",
    ",",
    "...",
    "--",
    "<",
    "|",
    ">",
    "#",
    "$",
    "%",
    "&",
    "*",
    "(",
    ")",
    "{",
    "}",
    "\\",
    "/",
    "_",
    "~",
    "`",
    "<|endoftext|>",
    "<|endoftext|",
    "<|begin_of_text|>",
    "<|unk|>",
    "<|",
    "|>",
    "\x00",
    "\x01",
    "\x7f",
    "\ue000",
    "\U0010fffd",
    "\U000e0001",
    "\u0378",
    "\U0001fbf0",
    "hello",
    " world",
    "Hello",
    "WORLD",
    "naïve",
    "café",
    "Straße",
    "Ελληνικά",
    "русский",
    "日本語",
]


def adversarial_texts():
    piece = st.one_of(
        st.sampled_from(ADVERSARIAL_PIECES), st.text(max_size=3), st.characters(exclude_categories=("Cs",))
    )
    return st.lists(st.lists(piece, max_size=24).map("".join), min_size=1, max_size=6)


@pytest.mark.parametrize("add_special_tokens", [True, False])
@pytest.mark.parametrize("name", ALL_NAMES)
def test_adversarial_strings_match_tokenizers(name, add_special_tokens):
    spec_of(name)  # skips when absent

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(texts=adversarial_texts())
    def check(texts):
        assert_same_counts(name, texts, add_special_tokens)

    check()


@pytest.mark.parametrize("name", ALL_NAMES)
def test_edge_texts(name):
    texts = [
        "",
        " ",
        "\n",
        "'",
        "'s",
        "a" * 300,
        " " * 300,
        "x" * 5000 + " y",
        "<|endoftext|>" * 3,
        "a<|endoftext|>b",
        " " * 30 + "x",
        "e\u0301<|endoftext|>e\u0301",
        "\u212b  \u212b",
        "1" * 10,
    ]
    for flag in (True, False):
        assert_same_counts(name, texts, flag)


SENTENCEPIECE_NAMES = [*fixtures.SENTENCEPIECE_FAMILIES, "llama2", "gemma-4", "phi-3"]
# U+3000, U+00A0, U+0085 and U+2028 are whitespace an rstrip token strips, U+001C is not.
SENTENCEPIECE_PIECES = (
    *(" ", "  ", "\u2581", " \u2581", "a", "ab", ">", "<", "</", "\n", "\t", "中文", "é", "🙂", "x "),
    *("\u3000", "\u00a0", "\x85", "\u2028", "\x1c", "\r\n "),
)


@pytest.mark.parametrize("name", SENTENCEPIECE_NAMES)
def test_sentencepiece_units_with_added_tokens_and_meta_characters(name):
    """Texts built from the pieces that decide units and Prepend (spaces and U+2581 in runs,
    '>' before them, characters left to byte fallback, added tokens at either end and in a
    row), against tokenizers: any unit cut that a merge spans, or a Prepend put in the wrong
    gap, changes some count."""
    config = json.loads(Path(tokenizer_path(name)).read_text())
    added = [token["content"] for token in config["added_tokens"]][:6]
    rng = np.random.default_rng(11)
    alphabet = [*SENTENCEPIECE_PIECES, *added]
    texts = ["".join(rng.choice(alphabet, size=rng.integers(0, 24))) for _ in range(3000)]
    texts += [" " * n + "x" for n in range(40)] + ["x" + " " * n for n in range(40)] + [added[0] * 3, ""]
    for flag in (True, False):
        assert_same_counts(name, texts, flag)


def test_sentencepiece_sticky_characters_come_from_the_merges():
    """A character that some merge joins to a following U+2581 keeps the next unit attached."""
    from tokcount.engines.fast import engine_plan

    config = json.loads(Path(tokenizer_path("llama_style_bpe")).read_text())
    merges = [m.split(" ") if isinstance(m, str) else m for m in config["model"]["merges"]]
    joined = {
        (left + right)[i - 1]
        for left, right in merges
        for i in range(1, len(left + right))
        if (left + right)[i] == "\u2581" and (left + right)[i - 1] != "\u2581"
    }
    sticky = engine_plan(spec_of("llama_style_bpe")).sticky
    assert joined, "the fixture was trained across spaces, so some merge joins a character to a following U+2581"
    assert sticky is not None and {chr(c) for c in np.flatnonzero(sticky) if c < 0x80} >= {
        c for c in joined if c < "\x80"
    }
    assert engine_plan(spec_of("gemma_style_bpe")).sticky.shape == (1,)  # trained on U+2581-led words: none


def test_lone_surrogate_is_reported_like_the_reference():
    fast = counter("bytelevel_bpe", True)
    with pytest.raises(UnencodableText):
        fast.count(["fine", "bad \ud800 text"])


# ----------------------------------------------------------------------------------------------
# Every code point, through every pattern


def code_point_texts(scalars: list[int]) -> list[str]:
    """Each code point c in "a"+c+" "+c+c (after a letter, after a space, doubled, before the
    next probe's letter), 4096 code points to a text."""
    texts = []
    for begin in range(0, len(scalars), 4096):
        texts.append("".join(f"a{chr(c)} {chr(c)}{chr(c)}" for c in scalars[begin : begin + 4096]))
    return texts


ALL_SCALARS = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]


def one_token_per_word_twin(name: str) -> Tokenizer:
    """The tokenizer with its model replaced by a WordLevel one that maps every word to one
    unknown token: encode then counts added tokens plus pre-tokens, with tokenizers' own
    normalizer, added-token split and pre-tokenizer (and is ~3x faster than BPE here)."""
    config = json.loads(Path(tokenizer_path(name)).read_text())
    config["model"] = {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}
    config["post_processor"] = None
    config["decoder"] = None
    for token in config["added_tokens"]:
        token["id"] += 1
    return Tokenizer.from_str(json.dumps(config))


@pytest.mark.parametrize("name", ["neox_style_bpe", "llama3_style_bpe", *NEW_FAMILIES, "deepseek-llm"])
def test_every_code_point_splits_like_tokenizers(name):
    """All 1,112,064 scalar values through the GPT-2 pattern (with NFC and added tokens) and
    the Llama-3 pattern: per text, pre-tokens + added tokens equal tokenizers' (~5 s each)."""
    texts = code_point_texts(ALL_SCALARS)
    got = FastCounter(spec_of(name), add_special_tokens=False).count_pieces(texts)
    twin = one_token_per_word_twin(name)
    expected = np.array([len(e) for e in twin.encode_batch_fast(texts, add_special_tokens=False)], dtype=np.int64)
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, (
        f"{name}: texts {bad[:5].tolist()} differ (code points from U+{ALL_SCALARS[int(bad[0]) * 4096]:04X})"
    )


@pytest.mark.parametrize("name", [*PATTERN_REPRESENTATIVES, "deepseek-llm"])
def test_every_bmp_code_point_counts_like_tokenizers(name):
    """Full token counts (BPE included) for every BMP code point and a sample of the others."""
    rng = np.random.default_rng(7)
    supplementary = [c for c in ALL_SCALARS if c > 0xFFFF]
    scalars = [c for c in ALL_SCALARS if c <= 0xFFFF] + sorted(rng.choice(supplementary, 16384, replace=False).tolist())
    texts = code_point_texts(scalars)
    got = FastCounter(spec_of(name), add_special_tokens=False).count(texts)
    expected = np.array(
        [len(e) for e in reference(name).encode_batch_fast(texts, add_special_tokens=False)], dtype=np.int64
    )
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, (
        f"{name}: texts {bad[:5].tolist()} differ (code points from U+{scalars[int(bad[0]) * 4096]:04X})"
    )


def assert_same_boundaries(split, pattern: int, classes: np.ndarray, texts: list[str], program=None) -> None:
    folds = codepoint_tables().folds
    for text in texts:
        data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        if not data.size:
            ends = np.zeros(0)
        elif pattern == pretokenize.PATTERN_SPLIT_SEQUENCE:
            ends = pretokenize.sequence_boundaries(data, classes, program)
        else:
            ends = pretokenize.pretoken_boundaries(pattern, data, classes, folds)
        expected = [len(text[:end].encode("utf-8")) for _, (_, end) in split.pre_tokenize_str(text)]
        assert ends.tolist() == expected, repr(text)


def boundary_texts(seed: int = 5, count: int = 300) -> list[str]:
    rng = np.random.default_rng(seed)
    pieces = ADVERSARIAL_PIECES + [" " * k for k in range(1, 5)] + ["\r\n\r\n", "'S'", "1234567", " \n \n "]
    return ["".join(rng.choice(pieces, size=rng.integers(1, 30)).tolist()) for _ in range(count)]


@pytest.mark.parametrize(
    "pattern, regex, class_table",
    [
        (pretokenize.PATTERN_GPT2, GPT2_PATTERN, "classes"),
        (pretokenize.PATTERN_LLAMA3, LLAMA3_PATTERN, "classes"),
        (pretokenize.PATTERN_QWEN2, QWEN2_PATTERN, "classes"),
        (pretokenize.PATTERN_QWEN2, QWEN35_PATTERN, "classes_marks_as_letters"),
        (pretokenize.PATTERN_O200K, O200K_PATTERN, "classes_cased"),
        (pretokenize.PATTERN_TEKKEN, TEKKEN_PATTERN, "classes_cased"),
        (pretokenize.PATTERN_CL100K_TIKTOKEN, CL100K_TIKTOKEN_PATTERN, "classes"),
    ],
)
def test_pretoken_boundaries_match_the_regex(pattern, regex, class_table):
    """The matcher's boundaries equal the regex's own splits (stronger than equal counts)."""
    from tokenizers import Regex, pre_tokenizers

    split = pre_tokenizers.Split(Regex(regex), "isolated")
    assert_same_boundaries(split, pattern, getattr(codepoint_tables(), class_table), boundary_texts())


@pytest.mark.parametrize("name", [*NEW_FAMILIES, "refact", "command-r", "qwen35", "deepseek-llm"])
def test_pretoken_boundaries_match_the_tokenizers_pre_tokenizer(name):
    """The plan's matcher and class table split like the tokenizer's own pre-tokenizer (for
    Digits + ByteLevel, the whole Sequence: digits cut the regex's pieces; for a sequence of
    splits, every step)."""
    from tokcount.engines.fast import engine_plan

    plan = engine_plan(spec_of(name))
    split = reference(name).pre_tokenizer
    if plan.sequence is not None:
        assert_same_boundaries(split, plan.pattern, plan.sequence.members, boundary_texts(6), plan.sequence.program)
    else:
        assert_same_boundaries(split, plan.pattern, getattr(codepoint_tables(), plan.class_table), boundary_texts(6))


# ----------------------------------------------------------------------------------------------
# Real text


@functools.lru_cache(maxsize=1)
def corpus_sample() -> list[str]:
    if not CORPUS.exists():
        return []
    import pyarrow as pa

    stream = pa.input_stream(str(CORPUS), compression="zstd")
    data = stream.read(CORPUS_SAMPLE_BYTES + (1 << 20))
    texts, taken = [], 0
    for line in data.split(b"\n")[:-1]:
        text = json.loads(line)["text"]
        texts.append(text)
        taken += len(text)
        if taken >= CORPUS_SAMPLE_BYTES:
            break
    return texts


@pytest.mark.parametrize("name", list(SHARED) + ["neox_style_bpe", "command_r_style_bpe", "qwen35_style_bpe"])
def test_real_corpus_documents_match_tokenizers(name):
    texts = corpus_sample()
    if not texts:
        pytest.skip("../shared/corpus/bench.jsonl.zst not present")
    fast = FastCounter(spec_of(name), add_special_tokens=True)
    got = fast.count(texts)
    expected = np.array(
        [len(e) for e in reference(name).encode_batch_fast(texts, add_special_tokens=True)], dtype=np.int64
    )
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, f"{name}: {bad.size} of {len(texts)} documents differ, first {int(bad[0])}"
    assert fast.stats["cache_hits"] > fast.stats["cache_misses"]


def test_small_cache_evicts_and_stays_exact():
    """A 64 KiB cache evicts many times over; counts must not change."""
    rng = np.random.default_rng(3)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzäöü"))
    generated = [
        " ".join("".join(rng.choice(letters, size=rng.integers(2, 12))) for _ in range(200)) + " common words repeat"
        for _ in range(300)
    ]
    texts = corpus_sample()[:300] or generated
    fast = FastCounter(spec_of("bytelevel_bpe"), add_special_tokens=True, cache_bytes=64 << 10)
    for begin in range(0, len(texts), 50):
        assert_same_counts("bytelevel_bpe", texts[begin : begin + 50], True, fast)
    stats = fast.stats
    assert stats["cache_evictions"] > 0
    assert stats["cache_allocated_bytes"] <= (64 << 10) + 128


def test_nfc_slow_paths_are_exact_and_counted():
    name = "neox_style_bpe"
    texts = [
        "e\u0301 needs NFC  twice  spaced",  # renormalized, then fast
        "\u212b<|endoftext|>e\u0301",  # non-normalized added token + NFC: tokenizers encode
        "plain ascii  text",
        "precomposed é is NFC-safe",
    ]
    fast = FastCounter(spec_of(name), add_special_tokens=True)
    assert_same_counts(name, texts, True, fast)
    stats = fast.stats
    assert stats["nfc_documents"] == 1 and stats["slow_documents"] == 1
    assert stats["added_tokens"] >= 2


def test_bpe_alone_matches_tokenizers_model_on_vocabulary_words():
    """The merge loop against tokenizers' BPE on every vocabulary token and on pairs of them
    (ties, stale heap entries and ignore_merges are exercised by real merge tables)."""
    from tokcount.engines.fast import checked_byte_level_alphabet, engine_plan

    for name in ("bytelevel_bpe", "llama3_style_bpe", "gpt2", "llama3"):
        path = fixtures.shared_tokenizer(name) if name in SHARED else LOCAL[name]()
        if path is None:
            continue
        spec = load_tokenizer_spec(path)
        config = json.loads(spec.json)
        inverse = {ch: b for b, ch in checked_byte_level_alphabet().items()}
        words = [
            bytes(inverse[ch] for ch in token)
            for token in config["model"]["vocab"]
            if all(ch in inverse for ch in token)
        ]
        rng = np.random.default_rng(1)
        picks = rng.choice(len(words), size=(min(20000, len(words)), 2))
        words = words[:20000] + [words[a] + words[b] for a, b in picks]
        data = np.frombuffer(b"".join(words), dtype=np.uint8)
        lengths = np.array([len(w) for w in words])
        ends = np.cumsum(lengths)
        got = bpe.words_token_counts(data, ends - lengths, ends, *engine_plan(spec).model.as_tuple())
        # tokenizers' own BPE on the same words: no normalizer, no added tokens, byte-level only.
        config["normalizer"] = None
        config["added_tokens"] = []
        config["post_processor"] = None
        config["pre_tokenizer"] = {
            "type": "ByteLevel",
            "add_prefix_space": False,
            "trim_offsets": False,
            "use_regex": False,
        }
        bpe_only = Tokenizer.from_str(json.dumps(config))
        texts = [w.decode("utf-8", errors="strict") if _valid(w) else None for w in words]
        keep = [i for i, t in enumerate(texts) if t]
        expected = bpe_only.encode_batch_fast([texts[i] for i in keep], add_special_tokens=False)
        assert got[keep].tolist() == [len(e) for e in expected], name


def _valid(word: bytes) -> bool:
    try:
        word.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_short_word_rank_scan_matches_the_heap():
    """Words up to SCAN_BPE_MAX_BYTES skip the heap; both merge loops must agree on them
    (corpus pre-tokens, so ties, repeats and non-ASCII bytes occur)."""
    import dataclasses

    from tokcount.engines.fast import engine_plan

    # Without the shared corpus: the fixtures' multilingual training text and the adversarial pieces.
    texts = corpus_sample()[:300] or (fixtures.TRAINING_TEXT.splitlines() + list(ADVERSARIAL_PIECES))
    for name in ("bytelevel_bpe", "llama3_style_bpe", "gpt2", "llama3", "refact_style_bpe", "qwen35_style_bpe"):
        path = fixtures.shared_tokenizer(name) if name in SHARED else LOCAL[name]()
        if path is None:
            continue
        plan = engine_plan(load_tokenizer_spec(path))
        assert plan.model.scan_ok
        data = np.frombuffer("".join(texts).encode("utf-8"), dtype=np.uint8)
        tables = codepoint_tables()
        classes = getattr(tables, plan.class_table)
        ends = pretokenize.pretoken_boundaries(plan.pattern, data, classes, tables.folds)
        starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        short = (ends - starts) <= bpe.SCAN_BPE_MAX_BYTES
        starts, ends = starts[short], ends[short]
        scan = bpe.words_token_counts(data, starts, ends, *plan.model.as_tuple())
        heap = bpe.words_token_counts(data, starts, ends, *dataclasses.replace(plan.model, scan_ok=False).as_tuple())
        assert np.array_equal(scan, heap), name


@pytest.mark.parametrize("name", ["neox_style_bpe", "gpt-neox-20b"])
def test_precomposed_characters_next_to_combining_marks(name):
    """Precomposed letters skip NFC; the marks and jamo that could recompose with them do not."""
    pieces = [
        "ü",
        "u\u0308",
        "ü\u0301",
        "ǘ",
        "が",
        "か\u3099",
        "が\u3099",
        "각",
        "가\u11a8",
        "\u1100\u1161",
        "Å",
        "A\u030a",
        "\u212b",
        "é\u0327",
        "ạ\u0302",
        "ậ",
        "ö̈",
        "\u0b47\u0b3e",
        "ୋ",
    ]
    rng = np.random.default_rng(5)
    texts = pieces + ["".join(rng.choice(pieces + [" ", "a", "x ", "  "], size=12)) for _ in range(200)]
    assert_same_counts(name, texts, True, FastCounter(spec_of(name)))


@pytest.mark.parametrize("name", ["neox_style_bpe", "gpt-neox-20b"])
def test_whitespace_runs_of_every_length(name):
    """Runs of one repeated byte are matched by run length; every length and neighbour."""
    texts = []
    for n in range(1, 40):
        for before, after in (("a", "b"), ("\n", "x"), ("", ""), ("\t", "\t"), ("<|endoftext|>", "\n")):
            texts.append(before + " " * n + after)
            texts.append(before + " " * n + "\t" + " " * (n // 2) + after)
    assert_same_counts(name, texts, True, FastCounter(spec_of(name)))


@pytest.mark.parametrize("name", ALL_NAMES)
def test_word_at_a_time_scans_at_every_offset(name):
    """The letter runs and added-token candidates are found eight bytes at a time: put words,
    special tokens, near misses and non-ASCII letters at every offset from a word boundary,
    in the middle of the batch's buffer and at its very end (where the byte loop takes over)."""
    pieces = [
        "<|endoftext|>",
        "<|begin_of_text|>",
        "<|",
        "<",
        "<<|endoftext|>",
        "|<|unk|>",
        "  ",
        "   \n",
        "abcdefghijklmnopq",
        "abcdefgé",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "zZaA[`{@",
        "naïveté",
        "x",
    ]
    texts = [" " * offset + piece + tail for piece in pieces for offset in range(17) for tail in ("", " a", "<|")]
    for flag in (True, False):
        fast = FastCounter(spec_of(name), add_special_tokens=flag)
        assert_same_counts(name, texts, flag, fast)
        for text in texts[::7]:  # alone: the text ends at the end of the buffer
            assert_same_counts(name, [text], flag, fast)


def test_repeated_new_words_within_one_batch_are_counted_and_cached_once():
    """Cache misses are counted in batches: a new word missed several times in one batch must
    count every time and be inserted once."""
    words = [f"w{i:05d}x" for i in range(3 * count.PENDING_MISSES)]
    texts = [" ".join(words[i : i + 50] * 3) for i in range(0, len(words), 50)]
    fast = FastCounter(spec_of("bytelevel_bpe"))
    assert_same_counts("bytelevel_bpe", texts, True, fast)
    stats = fast.stats
    assert stats["cache_hits"] + stats["cache_misses"] + stats["uncached_pretokens"] == stats["pretokens"]
    assert stats["cache_entries"] == stats["cache_misses"]


def test_hot_cache_answers_repeated_short_words_exactly():
    """Short pre-tokens found in the main table are copied to the hot cache; later occurrences
    are answered there, with the same counts, and counted as hits."""
    texts = [f"the cat and the dog: {i} of them, ok" for i in range(200)] + ["the end"]
    fast = FastCounter(spec_of("bytelevel_bpe"))
    assert_same_counts("bytelevel_bpe", texts, True, fast)
    first = fast.stats
    assert_same_counts("bytelevel_bpe", texts, True, fast)
    second = fast.stats
    assert second["cache_hot_hits"] > first["cache_hot_hits"] > 0
    assert second["cache_misses"] == first["cache_misses"]  # nothing new the second time
    for stats in (first, second):
        assert stats["cache_hits"] + stats["cache_misses"] + stats["uncached_pretokens"] == stats["pretokens"]
        assert stats["cache_hot_hits"] <= stats["cache_hits"]


# ----------------------------------------------------------------------------------------------
# Families beyond GPT-2 / Llama-3: isolated digits, bytes without a token, Qwen's split regexes


DIGITS_FAMILIES = ["refact_style_bpe", "command_r_style_bpe", "refact", "command-r"]


@pytest.mark.parametrize("name", DIGITS_FAMILIES)
def test_every_isolated_digit_in_every_neighbourhood(name):
    """Each code point Digits(individual) isolates (the table read from tokenizers: every
    script's digits, and those 0.23's \\p{N} lacks) next to letters, spaces, other digits,
    apostrophes, punctuation, line breaks and marks: the counts, and the boundaries of the
    tokenizer's own pre-tokenizer."""
    from tokcount.engines.fast import engine_plan

    digits = isolated_digit_members().tolist()
    assert ord("7") in digits and ord("٣") in digits and ord("a") not in digits
    contexts = ["a{}", " {}", "  {}", "{}{}", "'{}", "{}'s", "x{} ", "{}  y", "\n{}\r\n", "!{}?", "{}\u0301", "\t{}é"]
    texts = ["".join(context.format(chr(d), chr(d)) for context in contexts) for d in digits]
    texts = ["".join(texts[i : i + 8]) for i in range(0, len(texts), 8)]
    assert_same_counts(name, texts, True, FastCounter(spec_of(name)))
    plan = engine_plan(spec_of(name))
    assert_same_boundaries(
        reference(name).pre_tokenizer, plan.pattern, getattr(codepoint_tables(), plan.class_table), texts[::5]
    )


def test_digits_cut_the_gpt2_pieces():
    """Where Digits changes the GPT-2 split (" 1" is two pre-tokens, whitespace before a digit
    is kept whole: the regex's lookahead sees its piece's end, not the digit), the counts of
    pieces follow the tokenizer's pre-tokenizer, not GPT-2's."""
    texts = [" 1", "a  1", "x'1", "12", " ٣٤", "\n\n 5"]
    for name in ("refact_style_bpe", "bytelevel_bpe"):
        pieces = FastCounter(spec_of(name), add_special_tokens=False).count_pieces(texts)
        expected = [len(reference(name).pre_tokenizer.pre_tokenize_str(t)) for t in texts]
        assert pieces.tolist() == expected, name
    digits_split = FastCounter(spec_of("refact_style_bpe")).count_pieces(texts)
    assert np.count_nonzero(digits_split != FastCounter(spec_of("bytelevel_bpe")).count_pieces(texts)) == 3
    assert_same_counts("refact_style_bpe", texts, False)


# Refact's vocabulary lacks the byte 0xF1: U+40000..U+7FFFF (unassigned planes 4-7) start with it.
UNENCODABLE_TEXTS = [
    "a plain document, 2024 and all",
    "one odd code point \U00050000 in the middle, digits 12",
    "\U00040000",
    "\U0007ffff<|endoftext|> then more\U00040001",
    "after it: \U00047000 9",
    "no such byte here: \U00030000 \U00080000",
]


@pytest.mark.parametrize("name", ["refact_style_bpe", "refact"])
def test_texts_with_a_byte_without_a_token_are_counted_by_tokenizers(name):
    supported, why = fast_support(spec_of(name))
    assert supported and "0xF1" in why
    for flag in (True, False):
        fast = FastCounter(spec_of(name), add_special_tokens=flag)
        assert_same_counts(name, UNENCODABLE_TEXTS, flag, fast)
        stats = fast.stats
        assert stats["unencodable_documents"] == stats["slow_documents"] == 4
        assert stats["slow_bytes"] == sum(
            len(t.encode()) for t in UNENCODABLE_TEXTS if "\U00040000" <= max(t) <= "\U0007ffff"
        )
    # Splitting needs no vocabulary: count_pieces keeps those texts on the fast path.
    assert FastCounter(spec_of(name)).count_pieces(UNENCODABLE_TEXTS).shape == (len(UNENCODABLE_TEXTS),)


def test_a_byte_without_a_token_that_only_nfc_produces():
    """NFC can compose a character whose bytes have no token from ones whose bytes do (here
    e + U+0301 -> é, U+00E9, whose UTF-8 lead 0xC3 the edited vocabulary lacks): that text
    goes to tokenizers after normalizing; the others stay fast."""
    lead = chr(0xC3)  # GPT-2's byte map keeps printable Latin-1 bytes as their own characters

    def edit(config):
        config["normalizer"] = {"type": "NFC"}
        model = config["model"]
        model["vocab"] = {token: i for token, i in model["vocab"].items() if lead not in token}
        model["merges"] = [m for m in model["merges"] if lead not in "".join(m)]

    name = "no_c3_byte"
    path = _variant(name, edit)
    spec = load_tokenizer_spec(path)
    texts = ["cafe\u0301 at 9", "plain text", "caf\u00e9 precomposed", "ke\u0301\u0301", "o\u0308 is ö", "k\u0301 x"]
    fast = FastCounter(spec)
    got = fast.count(texts)
    tokenizer = Tokenizer.from_file(path)
    assert got.tolist() == [len(tokenizer.encode(t).ids) for t in texts]
    stats = fast.stats
    assert stats["unencodable_documents"] == 4 and stats["slow_documents"] == 4
    assert stats["nfc_documents"] == 1  # "k\u0301" composes to U+1E31, bytes E1 B8 B1


@pytest.mark.parametrize(
    "regex",
    [
        QWEN35_PATTERN.replace(r"\p{N}|", r"\p{N}{1,3}|"),  # not declared by any family we know
        QWEN2_PATTERN.replace(
            "(?i:'s|'t|'re|'ve|'m|'ll|'d)", "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
        ),
        QWEN2_PATTERN + "|x",
    ],
)
def test_split_regexes_are_recognised_by_their_exact_string(regex):
    def edit(config):
        config["pre_tokenizer"] = split_then_byte_level(regex)

    supported, why = fast_support(load_tokenizer_spec(_variant(f"unknown_split_{abs(hash(regex))}", edit)))
    assert not supported and "pre-tokenizer" in why and "Qwen3.5" in why


def _byte_level(add_prefix_space: bool = False) -> dict:
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": True, "use_regex": True}


@pytest.mark.parametrize(
    "pre_tokenizer",
    [
        [{"type": "Digits", "individual_digits": False}, _byte_level()],
        [_byte_level(), {"type": "Digits", "individual_digits": True}],
        [{"type": "Digits", "individual_digits": True}, _byte_level(add_prefix_space=True)],
    ],
    ids=["digit-runs", "digits-after", "prefix-space"],
)
def test_other_digit_sequences_are_unsupported(pre_tokenizer, request):
    def edit(config):
        config["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": pre_tokenizer}

    supported, why = fast_support(load_tokenizer_spec(_variant(f"other_digits_{request.node.callspec.id}", edit)))
    assert not supported and "Digits(individual_digits=true)" in why


def _split(regex: str, behavior: str = "Isolated") -> dict:
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": behavior, "invert": False}


_LAST = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}


@pytest.mark.parametrize(
    "pre_tokenizer",
    [
        [_split("[\r\n]", "Removed"), _LAST],  # removes what it matches
        [_split("\\s?[a-z]+x"), _LAST],  # not one of the shapes
        [_split("[a-z]{2}"), _LAST],
        [_split("[[:alpha:]]+"), _LAST],  # nested brackets
        [_split("[\r\n]"), dict(_LAST, use_regex=True)],  # the GPT-2 regex after the splits
        [_split("[\r\n]"), dict(_LAST, add_prefix_space=True)],
    ],
    ids=["removed", "other-shape", "counted", "nested-class", "byte-level-regex", "prefix-space"],
)
def test_other_split_sequences_are_unsupported(pre_tokenizer, request):
    def edit(config):
        config["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": pre_tokenizer}

    supported, why = fast_support(load_tokenizer_spec(_variant(f"other_sequence_{request.node.callspec.id}", edit)))
    assert not supported and "pre-tokenizer" in why


@pytest.mark.parametrize(
    "steps",
    [
        ["\\p{L}+", "\\s?\\p{P}+", "\\p{N}"],
        ["[\r\n]", "\\s+$", {"type": "Digits", "individual_digits": False}],
        ["[\u3000-\u303f]", "\\s?[\u3000-\u303f]+", "[^a-z]+"],  # U+3000 is \s and a member
        ["[\r\n]", "\\p{N}{1,3}", "\\p{L}{1,2}"],  # bounded runs, cut by the step before
        # DeepSeek-V3's words regex after other cuts, and spelt with \r and \n escaped
        ["\\s+$", "\\s?\\p{P}+", fixtures.DEEPSEEK_V3_SPLITS[2]],
        ["[0-9]+", fixtures.DEEPSEEK_V3_SPLITS[2].replace("\r", "\\r").replace("\n", "\\n")],
        ["\\s+$", "\\p{L}+"],  # Oniguruma's $ matches before a line feed inside a piece too
    ],
    ids=[
        "properties",
        "digit-runs",
        "space-members",
        "bounded-runs",
        "v3-words-after-cuts",
        "v3-words-escaped",
        "end-of-line",
    ],
)
def test_split_sequences_of_the_simple_shapes_split_like_tokenizers(steps, request):
    """Other sequences made of the same step shapes are counted too, and split as tokenizers does."""
    from tokcount.engines.fast import engine_plan

    def edit(config):
        parts = [_split(step) if isinstance(step, str) else step for step in steps]
        config["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [*parts, _LAST]}

    path = _variant(f"simple_sequence_{request.node.callspec.id}", edit)
    spec = load_tokenizer_spec(path)
    supported, why = fast_support(spec)
    assert supported and f"sequence of {len(steps)} splits" in why, why
    plan = engine_plan(spec)
    texts = boundary_texts(8) + ["\u3000\u3000a\u3000 \u3001x  ", "12 345\n\n 6  ", "  "]
    texts += ["a \n\n b\n", " \n", "\n \n x", "x \r\n \n\ty", "\n\n", "a\n", "a \r \n\r"]
    assert plan.sequence is not None
    assert_same_boundaries(
        Tokenizer.from_file(path).pre_tokenizer, plan.pattern, plan.sequence.members, texts, plan.sequence.program
    )
    assert_same_counts_for(path, texts)


def test_deepseek_v3_splits_like_tokenizers_on_random_texts():
    """DeepSeek-V3's three splits against its pre-tokenizer on 20,000 texts drawn from pieces that
    exercise each alternative of its words regex (ASCII punctuation before ASCII letters, marks,
    digit runs past 3, CJK and kana, Unicode whitespace, lone control characters)."""
    from tokcount.engines.fast import engine_plan

    path = tokenizer_path("deepseek_v3_style_bpe")
    plan = engine_plan(load_tokenizer_spec(path))
    assert plan.sequence is not None
    pieces = ["a", "Z", "é", "e\u0301", "\u0301", "中", "文", "の", "カ", "ー", "한", "1", "23", "4567", "١٢", "²"]
    pieces += [" ", "  ", "\t", "\n", "\r\n", " \n ", "\u3000", "\x85", ".", ",", "'s", "$", "++", "¿", "-", "_"]
    pieces += ["(", ")", "\\", "`", "~", "½", "\x01", "\u200b", "🙂", "ǅ", "x.com", "。", "\U000e0001"]
    rng = np.random.default_rng(11)
    texts = ["".join(rng.choice(pieces, size=rng.integers(1, 20)).tolist()) for _ in range(20000)]
    assert_same_boundaries(
        Tokenizer.from_file(path).pre_tokenizer, plan.pattern, plan.sequence.members, texts, plan.sequence.program
    )


def assert_same_counts_for(path: str, texts: list[str]) -> None:
    tokenizer = Tokenizer.from_file(path)
    got = FastCounter(load_tokenizer_spec(path)).count(texts)
    assert got.tolist() == [len(tokenizer.encode(t).ids) for t in texts]
