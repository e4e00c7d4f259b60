"""Small real tokenizers, trained on the spot with `tokenizers` trainers.

Plain functions (not pytest fixtures) so that subprocess scripts and hypothesis tests can use
them too; each trains once per process and returns the path of its tokenizer.json.

tokenizers 1.x has no trainers (nor models, normalizers, ...): there the functions return the
files in data/tokenizers/, which these same functions trained with tokenizers 0.23.3
(``python tests/tokenizer_fixtures.py`` writes them again).
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

from tokenizers import Tokenizer

try:
    from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers, processors, trainers
except ImportError:  # tokenizers 1.x
    TRAINABLE = False
else:
    TRAINABLE = True

COMMITTED = Path(__file__).resolve().parent / "data" / "tokenizers"


def needs_tokenizers_0(why: str):
    """Skip under tokenizers 1.x, saying why: the test needs 0.2x's API or its speed."""
    import pytest

    return pytest.mark.skipif(not TRAINABLE, reason=f"tokenizers 1.x: {why}")


SHARED_TOKENIZERS = Path(__file__).resolve().parents[2] / "shared" / "tokenizers"

# Varied on purpose: scripts, code, emoji, digits, whitespace runs and contractions all shape
# which merges the trainers learn, so the tokenizers meet the same kinds of text as real ones.
TRAINING_TEXT = """\
The quick brown fox jumps over the lazy dog. It's 2024, and we're counting tokens.
I'm sure they'll say it isn't so; you'd've known if you'd asked. Don't panic!
Numbers: 3.14159, 2,718,281, 1e-9, 0xDEADBEEF, 42nd, 1st, 100% and $19.99.
Der schnelle braune Fuchs springt über den faulen Hund. Größe, Straße, Äpfel.
Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.
Съешь же ещё этих мягких французских булок, да выпей чаю.
В чащах юга жил бы цитрус? Да, но фальшивый экземпляр!
いろはにほへと ちりぬるを わかよたれそ つねならむ。日本語のテキストです。
東京は日本の首都です。今日はいい天気ですね。
我能吞下玻璃而不伤身体。中文文本的分词测试。
天地玄黄，宇宙洪荒。日月盈昃，辰宿列张。
def count_tokens(texts: list[str]) -> int:
    return sum(len(tokenizer.encode(t).ids) for t in texts)
for (int i = 0; i < n; ++i) { total += counts[i]; }
if __name__ == "__main__":
    main()
SELECT id, name FROM users WHERE age >= 18 ORDER BY name;
<div class="note">Hello &amp; welcome</div>
Emoji: 😀 😂 👍🏽 👩‍💻 🇩🇪 ❤️ 🎉🎉🎉
Mixed: naïve café résumé coöperate façade jalapeño.
    Indented line with    several   spaces.
		Tabs	between	words.
Trailing spaces here.    
Line with CRLF ending.\r
Ελληνικά: Γαζέες καὶ μυρτιὲς δὲν θὰ βρῶ πιὰ στὸ χρυσαφὶ ξέφωτο.
Polski: Zażółć gęślą jaźń. Čeština: Příliš žluťoučký kůň.
한국어 텍스트도 조금 있습니다.
Français: Portez ce vieux whisky au juge blond qui fume.
Español: El veloz murciélago hindú comía feliz cardillo y kiwi.
https://example.com/path?query=1&lang=en#section
user@example.org, @handle, #hashtag, C:\\Windows\\System32
She said, "Well... that's that." He replied: 'Fine -- whatever.'
1234567890 0987654321 000 007 3:45pm 12/31/1999
Accents combining: e\u0301 a\u0308 o\u0302.
    nested = {"a": [1, 2, {"b": None}], "c": True}
The end. The end. The end of the text, again and again and again.
Tokenizers learn merges from frequent pairs: th, he, in, er, an, re.
A line with ünïcödé and ASCII mixed together for good measure.
Last line: goodbye, до свидания, さようなら, 再见, auf Wiedersehen!
"""


@functools.cache
def _cache_dir() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="tokcount-test-tokenizers-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def _save(tokenizer: Tokenizer, name: str) -> str:
    path = _cache_dir() / name / "tokenizer.json"
    path.parent.mkdir()
    tokenizer.save(str(path))
    return str(path)


def _train(tokenizer: Tokenizer, trainer) -> None:
    lines = TRAINING_TEXT.splitlines(keepends=True)
    tokenizer.train_from_iterator(lines, trainer=trainer)


@functools.cache
def bytelevel_bpe() -> str:
    """GPT-2 style: byte-level BPE, <|endoftext|> is id 0."""
    if not TRAINABLE:
        return str(COMMITTED / "bytelevel_bpe.json")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte stays encodable
        show_progress=False,
    )
    _train(tokenizer, trainer)
    return _save(tokenizer, "bytelevel_bpe")


LLAMA_SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]
BYTE_TOKENS = [f"<0x{byte:02X}>" for byte in range(256)]


@functools.cache
def llama_style_bpe() -> str:
    """Llama-2 style: '▁' for spaces, BPE with byte fallback, <s> prepended as BOS."""
    if not TRAINABLE:
        return str(COMMITTED / "llama_style_bpe.json")
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    # A small alphabet leaves many characters (kana, hanzi, emoji...) to the byte fallback.
    trainer = trainers.BpeTrainer(
        vocab_size=700, special_tokens=LLAMA_SPECIAL_TOKENS, limit_alphabet=80, show_progress=False
    )
    _train(tokenizer, trainer)

    tokenizer = _with_byte_tokens_first(tokenizer)

    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B:1", special_tokens=[("<s>", 1)]
    )
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    return _save(tokenizer, "llama_style_bpe")


def added_token(token_id: int, content: str, **flags) -> dict:
    """An added token as tokenizer.json holds it: special, matched before normalizing, no
    stripping, unless `flags` say otherwise."""
    token = {"id": token_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False}
    return {**token, "normalized": False, "special": True, **flags}


@functools.cache
def phi3_style_bpe() -> str:
    """Phi-3 style: Llama-2's model with chat tokens whose ``rstrip`` drops the whitespace after
    them ("</s>" not special, "<|end|>" special), beside one without it."""
    data = json.loads(Path(llama_style_bpe()).read_text())
    for token in data["added_tokens"]:
        if token["content"] == "</s>":
            token["rstrip"] = True
    next_id = max(data["model"]["vocab"].values()) + 1
    for offset, (content, rstrip) in enumerate([("<|end|>", True), ("<|user|>", True), ("<|endoftext|>", False)]):
        data["added_tokens"].append(added_token(next_id + offset, content, rstrip=rstrip))
    path = _cache_dir() / "phi3_style_bpe" / "tokenizer.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    return str(path)


def _with_byte_tokens_first(tokenizer: Tokenizer) -> Tokenizer:
    """As in Llama's tokenizer.json, the byte tokens sit in the model vocab at ids 3..258, not as
    added tokens (so the text "<0x41>" is not matched as a token); merges refer to strings and
    survive the renumbering."""
    data = json.loads(tokenizer.to_str())
    learned = [t for t, _ in sorted(data["model"]["vocab"].items(), key=lambda item: item[1])]
    learned = [t for t in learned if t not in LLAMA_SPECIAL_TOKENS and t not in BYTE_TOKENS]
    ordered = LLAMA_SPECIAL_TOKENS + BYTE_TOKENS + learned
    data["model"]["vocab"] = {token: index for index, token in enumerate(ordered)}
    return Tokenizer.from_str(json.dumps(data))


@functools.cache
def gemma_style_bpe() -> str:
    """Gemma style: Replace(' ' -> '▁') alone (no Prepend), no pre-tokenizer, byte fallback.
    Trained on ▁-led words (Metaspace), so no merge joins a character to a following ▁."""
    if not TRAINABLE:
        import pytest

        pytest.skip("tokenizers 1.x has no trainers (and no fast engine to test)")
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    trainer = trainers.BpeTrainer(
        vocab_size=900, special_tokens=LLAMA_SPECIAL_TOKENS, limit_alphabet=120, show_progress=False
    )
    _train(tokenizer, trainer)
    tokenizer = _with_byte_tokens_first(tokenizer)
    data = json.loads(tokenizer.to_str())
    data["pre_tokenizer"] = None
    tokenizer = Tokenizer.from_str(json.dumps(data))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B:1", special_tokens=[("<s>", 1)]
    )
    return _save(tokenizer, "gemma_style_bpe")


@functools.cache
def wordpiece() -> str:
    """BERT style: lowercasing normalizer, WordPiece, "[CLS] $A [SEP]"."""
    if not TRAINABLE:
        return str(COMMITTED / "wordpiece.json")
    special_tokens = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=500, special_tokens=special_tokens, show_progress=False)
    _train(tokenizer, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")), ("[SEP]", tokenizer.token_to_id("[SEP]"))],
    )
    tokenizer.decoder = decoders.WordPiece()
    return _save(tokenizer, "wordpiece")


TRAINED = {"bytelevel_bpe": bytelevel_bpe, "llama_style_bpe": llama_style_bpe, "wordpiece": wordpiece}


# ----------------------------------------------------------------------------------------------
# Byte-level BPE families beyond GPT-2 / Llama-3, each in the shape its tokenizer.json declares
# (the regexes are those files' exact strings). Trained only under tokenizers 0.2x: the fast
# engine they exist for is not available under 1.x, so nothing there needs them.

# Qwen2 / 2.5 / 3: the Llama-3 regex with single digits.
QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
# Qwen3.5: marks in letter runs, single digits.
QWEN35_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _bos_first(tokenizer: Tokenizer, bos: str) -> processors.TemplateProcessing:
    """The post-processor of the BOS-first families: `bos` before each sequence."""
    return processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, tokenizer.token_to_id(bos))]
    )


def _byte_level_family(pre_tokenizer, special_tokens: list[str], normalizer=None) -> Tokenizer:
    if not TRAINABLE:
        import pytest

        pytest.skip("tokenizers 1.x has no trainers (and no fast engine to test)")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    _train(tokenizer, trainer)
    return tokenizer


def _digits_then_byte_level():
    return pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )


def _split_then_byte_level(regex: str):
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(regex), "isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False),
        ]
    )


@functools.cache
def refact_style_bpe() -> str:
    """StarCoder2 / SmolLM / Refact: Digits(individual_digits=true) then ByteLevel with the GPT-2
    regex, no normalizer; like Refact's, the vocabulary has no token for the byte 0xF1 (the
    UTF-8 lead byte of U+40000..U+7FFFF), so those characters take tokenizers' unknown path."""
    tokenizer = _byte_level_family(_digits_then_byte_level(), ["<|endoftext|>", "<fim_prefix>"])
    data = json.loads(tokenizer.to_str())
    missing = chr(0xF1)  # GPT-2's byte map keeps the printable Latin-1 bytes as their own characters
    vocab = data["model"]["vocab"]
    assert missing in vocab
    data["model"]["vocab"] = {token: i for token, i in vocab.items() if missing not in token}
    data["model"]["merges"] = [m for m in data["model"]["merges"] if missing not in "".join(m)]
    return _save(Tokenizer.from_str(json.dumps(data)), "refact_style_bpe")


@functools.cache
def command_r_style_bpe() -> str:
    """Command-R: NFC, Digits(individual_digits=true) then ByteLevel (GPT-2 regex), a BOS added
    by the post-processor, special tokens not normalized and chat tokens normalized."""
    tokenizer = _byte_level_family(
        _digits_then_byte_level(),
        ["<PAD>", "<BOS_TOKEN>", "<EOS_TOKEN>"],
        normalizer=normalizers.NFC(),
    )
    tokenizer.add_tokens([AddedToken("<|START_OF_TURN_TOKEN|>", normalized=True, special=False)])
    tokenizer.post_processor = _bos_first(tokenizer, "<BOS_TOKEN>")
    return _save(tokenizer, "command_r_style_bpe")


@functools.cache
def qwen2_style_bpe() -> str:
    """Qwen2 / 2.5 / 3: NFC, Split(Qwen2 regex) then ByteLevel(use_regex=false), chat tokens."""
    tokenizer = _byte_level_family(
        _split_then_byte_level(QWEN2_REGEX),
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        normalizer=normalizers.NFC(),
    )
    return _save(tokenizer, "qwen2_style_bpe")


@functools.cache
def qwen35_style_bpe() -> str:
    """Qwen3.5: Split(Qwen3.5 regex: marks in letter runs) then ByteLevel(use_regex=false)."""
    tokenizer = _byte_level_family(
        _split_then_byte_level(QWEN35_REGEX), ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    )
    return _save(tokenizer, "qwen35_style_bpe")


# o200k (GPT-4o, gpt-oss) and Tekken (Mistral-Nemo), as their tokenizer.json files declare them.
O200K_REGEX = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
TEKKEN_REGEX = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


# tiktoken's cl100k pattern (0.12), possessive forms and all, as a converted tokenizer.json holds it.
CL100K_TIKTOKEN_REGEX = (
    r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$"
    r"|\s*[\r\n]|\s+(?!\S)|\s"
)


@functools.cache
def cl100k_tiktoken_style_bpe() -> str:
    """cl100k as tiktoken writes its regex: Split(that regex) then ByteLevel(use_regex=false)."""
    tokenizer = _byte_level_family(_split_then_byte_level(CL100K_TIKTOKEN_REGEX), ["<|endoftext|>", "<|fim_prefix|>"])
    return _save(tokenizer, "cl100k_tiktoken_style_bpe")


@functools.cache
def o200k_style_bpe() -> str:
    """GPT-4o / gpt-oss: Split(o200k regex) then ByteLevel(use_regex=false), no normalizer."""
    tokenizer = _byte_level_family(_split_then_byte_level(O200K_REGEX), ["<|endoftext|>", "<|return|>"])
    return _save(tokenizer, "o200k_style_bpe")


@functools.cache
def tekken_style_bpe() -> str:
    """Mistral-Nemo's Tekken: Split(Tekken regex) then ByteLevel(use_regex=false), ignore_merges."""
    tokenizer = _byte_level_family(_split_then_byte_level(TEKKEN_REGEX), ["<unk>", "<s>", "</s>"])
    data = json.loads(tokenizer.to_str())
    data["model"]["ignore_merges"] = True
    return _save(Tokenizer.from_str(json.dumps(data)), "tekken_style_bpe")


# DeepSeek-LLM's pre-tokenizer shape (its letter class shortened to its first ranges; the
# real file is ../shared/tokenizers/deepseek-llm.json): a Sequence of Splits, each cutting
# the pieces the ones before it left, then single digits.
DEEPSEEK_LLM_SPLITS = (
    "[\r\n]",
    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕ]+",
    "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
    "\\s+$",
    "[一-龥ࠀ-一가-퟿]+",
)


@functools.cache
def deepseek_llm_style_bpe() -> str:
    """DeepSeek-LLM: five Splits (line breaks, letter runs, punctuation runs, trailing
    whitespace, CJK runs), Digits(individual_digits=true), ByteLevel(use_regex=false); a BOS
    added by the post-processor."""
    sequence = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(regex), "isolated") for regex in DEEPSEEK_LLM_SPLITS]
        + [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False),
        ]
    )
    tokenizer = _byte_level_family(sequence, ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"])
    tokenizer.post_processor = _bos_first(tokenizer, "<｜begin▁of▁sentence｜>")
    return _save(tokenizer, "deepseek_llm_style_bpe")


# DeepSeek-V3 / R1: three Splits (digit runs of up to 3, CJK runs, then its words regex) and
# ByteLevel(use_regex=false), as its tokenizer.json declares them.
DEEPSEEK_V3_SPLITS = (
    "\\p{N}{1,3}",
    "[一-龥\u3040-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
)


@functools.cache
def deepseek_v3_style_bpe() -> str:
    """DeepSeek-V3: Split(\\p{N}{1,3}), Split([CJK]+), Split(words), ByteLevel(use_regex=false);
    a BOS added by the post-processor."""
    sequence = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(regex), "isolated") for regex in DEEPSEEK_V3_SPLITS]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False)]
    )
    tokenizer = _byte_level_family(sequence, ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"])
    tokenizer.post_processor = _bos_first(tokenizer, "<｜begin▁of▁sentence｜>")
    return _save(tokenizer, "deepseek_v3_style_bpe")


# SentencePiece-style BPE (no pre-tokenizer, byte fallback): with Prepend and merges across
# '▁' (characters that stay joined to the next unit), without either, and with rstrip tokens.
SENTENCEPIECE_FAMILIES = {
    "llama_style_bpe": llama_style_bpe,
    "gemma_style_bpe": gemma_style_bpe,
    "phi3_style_bpe": phi3_style_bpe,
}
BYTE_LEVEL_FAMILIES = {
    "refact_style_bpe": refact_style_bpe,
    "command_r_style_bpe": command_r_style_bpe,
    "qwen2_style_bpe": qwen2_style_bpe,
    "qwen35_style_bpe": qwen35_style_bpe,
    "deepseek_llm_style_bpe": deepseek_llm_style_bpe,
    "deepseek_v3_style_bpe": deepseek_v3_style_bpe,
    "o200k_style_bpe": o200k_style_bpe,
    "cl100k_tiktoken_style_bpe": cl100k_tiktoken_style_bpe,
    "tekken_style_bpe": tekken_style_bpe,
}
SHARED_NAMES = ("gpt2", "gpt-neox-20b", "llama3", "llama2")


def shared_tokenizer(name: str) -> str | None:
    """Path of a real tokenizer.json from ../shared/tokenizers, or None when it is not there."""
    path = SHARED_TOKENIZERS / f"{name}.json"
    return str(path) if path.is_file() else None


def path_or_skip(name: str, trained: dict = TRAINED) -> str:
    """A trained tokenizer's path by name, else the shared one; skips the test when absent."""
    if name in trained:
        return trained[name]()
    path = shared_tokenizer(name)
    if path is None:
        import pytest

        pytest.skip(f"../shared/tokenizers/{name}.json is not there")
    return path


if __name__ == "__main__":
    import sys

    COMMITTED.mkdir(parents=True, exist_ok=True)
    for name, train in TRAINED.items():
        shutil.copy(train(), COMMITTED / f"{name}.json")
        print(f"wrote {COMMITTED / name}.json", file=sys.stderr)
