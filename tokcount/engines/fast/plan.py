"""The engine plan of a tokenizer: its added tokens, pre-tokenizer pattern, normalizer and BPE
model as the arrays the kernels take, or why the fast engine cannot count it exactly.

Plans are built once per tokenizer and machine (cached on disk, keyed by the code of this
package), apart from the counter, which only reads them.
"""

from __future__ import annotations

import functools
import json
import pickle
import re
from dataclasses import dataclass, field

import numpy as np
import tokenizers
from tokenizers import Tokenizer, pre_tokenizers

from ... import disk_cache
from ...tokenizer import TokenizerSpec, build_tokenizer
from ..hf import post_processor_tokens
from . import bpe, pretokenize
from .code_version import engine_code_version
from .codepoints import (
    CL100K_TIKTOKEN_PATTERN,
    CODE_POINTS,
    LLAMA3_PATTERN,
    O200K_PATTERN,
    QWEN2_PATTERN,
    QWEN35_PATTERN,
    TEKKEN_PATTERN,
    isolated_digit_members,
    regex_members,
    stripped_by_added_tokens,
)

PLANS_KEPT = 8  # on disk, least recently used first out (Llama-3's is 11 MB)
# Merges in the small table of frequent (small-id) pairs: 64 KiB, which stays in the CPU caches.
HOT_MERGES = 1 << 12
# Bytes that never occur in UTF-8 text, so the byte-level vocabulary may lack them.
IMPOSSIBLE_UTF8_BYTES = frozenset([0xC0, 0xC1, *range(0xF5, 0x100)])
# The Split regexes the Llama-3 matcher counts, by their exact string (not by what they look
# like): pattern constant, class table (codepoints.CLASS_TABLES), name.
SPLIT_PATTERNS = {
    LLAMA3_PATTERN: (pretokenize.PATTERN_LLAMA3, "classes", "Llama-3"),
    QWEN2_PATTERN: (pretokenize.PATTERN_QWEN2, "classes", "Qwen2 (single digits)"),
    QWEN35_PATTERN: (
        pretokenize.PATTERN_QWEN2,
        "classes_marks_as_letters",
        "Qwen3.5 (single digits, marks in letter runs)",
    ),
    CL100K_TIKTOKEN_PATTERN: (
        pretokenize.PATTERN_CL100K_TIKTOKEN,
        "classes",
        "cl100k as tiktoken writes it (any digit run, trailing whitespace whole)",
    ),
    O200K_PATTERN: (pretokenize.PATTERN_O200K, "classes_cased", "o200k (GPT-4o, gpt-oss)"),
    TEKKEN_PATTERN: (pretokenize.PATTERN_TEKKEN, "classes_cased", "Tekken (Mistral-Nemo, single digits)"),
}


def byte_level_alphabet() -> dict[int, str]:
    """GPT-2's byte -> character map (printable Latin-1 keeps its character, the rest 256+n)."""
    kept = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars = list(kept)
    extra = 0
    for b in range(256):
        if b not in kept:
            kept.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(kept, chars)}


@functools.lru_cache(maxsize=1)
def checked_byte_level_alphabet() -> dict[int, str]:
    """The map, checked against tokenizers' ByteLevel on a text holding every byte that UTF-8
    text can contain (1-, 2-, 3- and 4-byte sequences with every lead and continuation byte)."""
    alphabet = byte_level_alphabet()
    code_points = [*range(0x800), *range(0x800, 0x10000, 0x40), *range(0x10000, 0x110000, 0x1000)]
    text = "".join(chr(c) for c in code_points if not 0xD800 <= c < 0xE000)
    expected = "".join(alphabet[b] for b in text.encode("utf-8"))
    mapped = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False).pre_tokenize_str(text)
    if "".join(piece for piece, _ in mapped) != expected:
        raise RuntimeError("tokenizers' ByteLevel byte map differs from GPT-2's bytes_to_unicode")
    return alphabet


@dataclass(frozen=True)
class LiteralSet:
    """Added-token contents as arrays for pretokenize.next_added_token."""

    patterns: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    first_begin: np.ndarray
    first_end: np.ndarray
    first_mask: np.ndarray  # uint8[b0]: group bit of b0 if a pattern starts with it
    second_mask: np.ndarray  # uint8[b1]: groups whose first byte b1 may follow
    uniform: np.ndarray  # 1 for a pattern repeating one byte
    lone_bytes: tuple  # (first byte all patterns share or -1, second byte all share or -1)
    # uint8[pattern]: 1 for an added token with rstrip; empty when no token has it
    strip_right: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))

    @classmethod
    def of(cls, contents: list[bytes], rstrip: frozenset[bytes] = frozenset()) -> LiteralSet:
        unique = sorted(set(contents), key=lambda c: (c[0], -len(c), c))
        strip_right = np.array([content in rstrip for content in unique] if rstrip else [], dtype=np.uint8)
        lengths = np.array([len(c) for c in unique], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if unique else np.zeros(0, np.int64)
        patterns = np.frombuffer(b"".join(unique), dtype=np.uint8).copy() if unique else np.zeros(0, np.uint8)
        first_begin = np.zeros(256, dtype=np.int64)
        first_end = np.zeros(256, dtype=np.int64)
        first_mask = np.zeros(256, dtype=np.uint8)
        second_mask = np.zeros(256, dtype=np.uint8)
        uniform = np.zeros(max(1, len(unique)), dtype=np.uint8)
        for k, content in enumerate(unique):
            b0 = content[0]
            if first_end[b0] == first_begin[b0]:
                first_begin[b0] = k
            first_end[b0] = k + 1
            uniform[k] = content == bytes([b0]) * len(content)
            group = 1 << (b0 % 8)  # a superset prefilter: sharing a group only costs a check
            first_mask[b0] |= group
            if len(content) == 1:
                second_mask |= group  # any next byte (or none)
            else:
                second_mask[content[1]] |= group
        firsts = {content[0] for content in unique}
        seconds = {content[1] if len(content) > 1 else None for content in unique}
        lone_first = firsts.pop() if len(firsts) == 1 else -1
        lone_second = seconds.pop() if lone_first >= 0 and len(seconds) == 1 and None not in seconds else -1
        return cls(
            patterns,
            starts,
            lengths,
            first_begin,
            first_end,
            first_mask,
            second_mask,
            uniform,
            (lone_first, lone_second),
            strip_right,
        )

    def as_tuple(self) -> tuple:
        return (
            self.patterns,
            self.starts,
            self.lengths,
            self.first_begin,
            self.first_end,
            self.first_mask,
            self.second_mask,
            self.uniform,
            (np.int64(self.lone_bytes[0]), np.int64(self.lone_bytes[1])),
        )

    @property
    def empty(self) -> bool:
        return self.lengths.shape[0] == 0


NO_CHAR_IDS = np.full(1, -1, dtype=np.int32)
NOTHING_STRIPPED = np.zeros(1, dtype=np.uint8)
NO_BYTE_TOKENS = np.full(256, -1, dtype=np.int64)


@dataclass(frozen=True)
class BpeModel:
    """Arrays for bpe.word_token_count."""

    byte_ids: np.ndarray
    byte_pair_ranks: np.ndarray  # int32[b0 << 8 | b1]: rank of the merge of two bytes, or -1
    merges: tuple  # (hot table, table of the rest, hot_below, id_bits, filter of the rest): bpe.merge_rank
    merge_ids: np.ndarray  # int32[rank]: the merge's new id
    id_bits: int
    rank_bits: int
    scan_ok: bool  # distinct vocabulary strings have distinct ids: short words may skip the heap
    ignore_merges: bool
    vocab_filter: np.ndarray  # uint64 bitset of the vocabulary keys' hashes (bpe.filter_bit)
    vocab_slots: np.ndarray
    vocab_keys: np.ndarray
    vocab_starts: np.ndarray
    vocab_lengths: np.ndarray
    # SentencePiece-style BPE (bpe.sentencepiece_token_count): symbols are characters, not bytes
    sentencepiece: bool = False
    char_ids: np.ndarray = field(default_factory=lambda: NO_CHAR_IDS)  # int32[code point]: the character's token, or -1
    byte_token_ids: np.ndarray = field(
        default_factory=lambda: NO_BYTE_TOKENS
    )  # int64[byte]: <0xXX>, the byte fallback's token
    meta_id: int = -1  # the token of the meta symbol (U+2581), which spaces become

    def as_tuple(self) -> tuple:
        return (
            self.byte_ids,
            self.byte_pair_ranks,
            self.merges,
            self.merge_ids,
            self.id_bits,
            self.rank_bits,
            self.scan_ok,
            self.ignore_merges,
            self.vocab_filter,
            self.vocab_slots,
            self.vocab_keys,
            self.vocab_starts,
            self.vocab_lengths,
            self.sentencepiece,
            self.char_ids,
            self.byte_token_ids,
            np.int64(self.meta_id),
        )


@dataclass(frozen=True)
class SplitSequence:
    """A pre-tokenizer Sequence of simple splits, as pretokenize.sequence_cuts takes it."""

    members: np.ndarray  # uint8[0x110000]: a bit per class (SEQUENCE_SPACE_BIT is \s)
    program: np.ndarray  # int64[steps, 3]: (pretokenize.STEP_*, class bit(s), limit of a bounded run)


NO_PROGRAM = np.zeros((0, 3), dtype=np.int64)


@dataclass(frozen=True)
class EnginePlan:
    """Everything the kernels need for one tokenizer; shared by all counters of that tokenizer."""

    description: str
    pattern: int
    class_table: str  # which of codepoints.CodepointTables' class tables the matcher reads
    sequence: SplitSequence | None  # for PATTERN_SPLIT_SEQUENCE, which reads no class table
    nfc: bool
    unnormalized: LiteralSet
    normalized: LiteralSet
    post_processor_tokens: int  # added per text when add_special_tokens
    model: BpeModel
    # uint8[256]: 1 for a byte UTF-8 text can hold that has no token; a text holding one is
    # counted by tokenizers (what BPE does with an unknown character is not ours to redo).
    unencodable_bytes: np.ndarray
    # For the SentencePiece patterns, the classes the unit splitter reads (its sticky characters:
    # pretokenize.sentencepiece_unit_end), which are the tokenizer's, not a Unicode table.
    sticky: np.ndarray | None = None
    # uint8[code point]: what an added token's rstrip takes after it (the unnormalized set's
    # LiteralSet.strip_right says which tokens have it); one zero element when none has it.
    stripped: np.ndarray = field(default_factory=lambda: NOTHING_STRIPPED)

    @property
    def has_unencodable_bytes(self) -> bool:
        return bool(self.unencodable_bytes.any())


class Unsupported(Exception):
    pass


def fast_support(spec: TokenizerSpec) -> tuple[bool, str]:
    """(True, description) when FastCounter counts this tokenizer exactly, else (False, why not)."""
    try:
        plan = engine_plan(spec)
    except Unsupported as why:
        return False, str(why)
    return True, plan.description


@functools.lru_cache(maxsize=8)
def engine_plan(spec: TokenizerSpec) -> EnginePlan:
    """The plan for this tokenizer, from the on-disk cache when it is there: building it costs
    up to ~2 s (Llama-3's 280k merges), paid once per machine instead of once per worker."""
    path = _plan_cache_path(spec)
    stored = disk_cache.read_bytes(path)
    if stored is not None:
        try:
            return pickle.loads(stored)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            pass
    plan = _build_engine_plan(spec)
    disk_cache.store(path, lambda f: pickle.dump(plan, f, protocol=pickle.HIGHEST_PROTOCOL), keep=PLANS_KEPT)
    return plan


def _plan_cache_path(spec: TokenizerSpec):
    key = f"{spec.fingerprint[:32]}-code-{engine_code_version()}-tokenizers-{tokenizers.__version__}"
    return disk_cache.cache_directory() / "plans" / f"plan-{key}.pkl"


def _build_engine_plan(spec: TokenizerSpec) -> EnginePlan:
    config = json.loads(spec.json)
    model = config.get("model") or {}
    if model.get("type") != "BPE":
        raise Unsupported(f"model is {model.get('type')}, the fast engine handles BPE only")
    if config.get("pre_tokenizer") is None:
        return _sentencepiece_plan(spec, config, model)
    sequence = None
    try:
        pattern, class_table, pattern_name = _pre_tokenizer_pattern(config.get("pre_tokenizer"))
    except Unsupported as why:
        sequence = split_sequence(config.get("pre_tokenizer"))
        if sequence is None:
            raise why from None
        pattern, class_table = pretokenize.PATTERN_SPLIT_SEQUENCE, ""
        pattern_name = f"sequence of {sequence.program.shape[0]} splits"
    nfc = _normalizer_is_nfc(config.get("normalizer"))
    _check_plain_bpe(model)
    tokenizer = build_tokenizer(spec)
    if sequence is not None:
        _check_sequence_on_probes(sequence, tokenizer)
    if getattr(tokenizer, "encode_special_tokens", False):
        raise Unsupported("encode_special_tokens is on (special tokens are not split off)")
    unnormalized, normalized, stripped = _added_token_sets(config, tokenizer)
    post_tokens = _post_processor_tokens(tokenizer)
    bpe, unencodable = _bpe_model(model)
    normalizer_name = "NFC normalizer" if nfc else "no normalizer"
    description = f"byte-level BPE, {pattern_name} pattern, {normalizer_name}"
    missing = np.flatnonzero(unencodable)
    if missing.size:
        listed = ", ".join(f"0x{b:02X}" for b in missing.tolist())
        description += f"; texts with a byte that has no token ({listed}) are counted by tokenizers"
    return EnginePlan(
        description,
        pattern,
        class_table,
        sequence,
        nfc,
        unnormalized,
        normalized,
        post_tokens,
        bpe,
        unencodable,
        stripped=stripped,
    )


def _check_plain_bpe(model: dict) -> None:
    if model.get("dropout") not in (None, 0, 0.0):
        raise Unsupported("BPE dropout makes counts random")
    for option in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(option):
            raise Unsupported(f"BPE {option} is set")


META = "\u2581"  # SentencePiece's meta symbol, which stands for a space
SENTENCEPIECE_REPLACE = {"type": "Replace", "pattern": {"String": " "}, "content": META}
SENTENCEPIECE_PREPEND = {"type": "Prepend", "prepend": META}


def _sentencepiece_plan(spec: TokenizerSpec, config: dict, model: dict) -> EnginePlan:
    """The plan of BPE over whole texts (no pre-tokenizer) behind SentencePiece's normalizer,
    Replace(" " -> U+2581) with or without Prepend(U+2581) first, and byte fallback: Llama-2,
    Mistral-7B v0.1, Phi-3, Gemma. The counter splits texts into units no merge spans."""
    normalizer = config.get("normalizer")
    steps = normalizer.get("normalizers") if normalizer and normalizer.get("type") == "Sequence" else [normalizer]
    if steps == [SENTENCEPIECE_PREPEND, SENTENCEPIECE_REPLACE]:
        prepend = True
    elif steps == [SENTENCEPIECE_REPLACE]:
        prepend = False
    else:
        raise Unsupported(
            "no pre-tokenizer, and the normalizer is not SentencePiece's Replace(' ' -> U+2581), alone or after "
            f"Prepend(U+2581): {json.dumps(normalizer)[:200]}"
        )
    _check_plain_bpe(model)
    if model.get("ignore_merges"):
        raise Unsupported("ignore_merges with no pre-tokenizer")
    vocab: dict[str, int] = model.get("vocab") or {}
    byte_tokens = [vocab.get(f"<0x{b:02X}>") for b in range(256)]
    if not model.get("byte_fallback") or None in byte_tokens:
        raise Unsupported("no pre-tokenizer and no byte fallback over all 256 <0xXX> tokens (unknown characters)")
    if META not in vocab:
        raise Unsupported("no pre-tokenizer, and the meta symbol U+2581 has no token")
    tokenizer = build_tokenizer(spec)
    if getattr(tokenizer, "encode_special_tokens", False):
        raise Unsupported("encode_special_tokens is on (special tokens are not split off)")
    unnormalized, normalized, stripped = _added_token_sets(config, tokenizer)
    if not normalized.empty:
        raise Unsupported("added tokens matched after SentencePiece's normalizer (normalized=true)")
    merges, merge_ids, id_bits, rank_bits, results = _merge_tables(model)
    singles = {token: token_id for token, token_id in vocab.items() if len(token) == 1}
    char_ids = np.full(max(ord(c) for c in singles) + 1, -1, dtype=np.int32)
    for char, token_id in singles.items():
        char_ids[ord(char)] = token_id
    char_ids[ord(" ")] = vocab[META]  # the Replace normalizer's
    byte_token_ids = np.array(byte_tokens, dtype=np.int64)
    sticky = _sticky_characters(results, char_ids)
    bpe_model = BpeModel(
        byte_token_ids,
        np.full(1, -1, dtype=np.int32),
        merges,
        merge_ids,
        id_bits,
        rank_bits,
        len(set(vocab.values())) == len(vocab),
        False,
        np.zeros(1, dtype=np.uint64),
        np.zeros(16, dtype=np.int64),
        np.zeros(1, dtype=np.uint8),
        np.zeros(0, dtype=np.int64),
        np.zeros(0, dtype=np.int64),
        True,
        char_ids,
        byte_token_ids,
        vocab[META],
    )
    sticky_count = int(sticky.sum()) if sticky.shape[0] > 1 else 0
    description = (
        "SentencePiece-style BPE with byte fallback, no pre-tokenizer, "
        + ("Prepend + Replace" if prepend else "Replace")
        + " normalizer, "
        + (f"{sticky_count} code points joined to the next unit" if sticky_count else "units split at every space")
    )
    return EnginePlan(
        description,
        pretokenize.PATTERN_SENTENCEPIECE_PREPEND if prepend else pretokenize.PATTERN_SENTENCEPIECE,
        "",
        None,
        False,
        unnormalized,
        normalized,
        _post_processor_tokens(tokenizer),
        bpe_model,
        np.zeros(256, dtype=np.uint8),
        sticky,
        stripped,
    )


def _sticky_characters(merge_results: list[str], char_ids: np.ndarray) -> np.ndarray:
    """uint8[code point]: 1 for a character some merge's result holds right before the meta
    symbol, so a unit may not end after it; one zero element when there is none. A result
    holding '>' there makes every character without a token sticky too: its byte-fallback
    tokens' strings end in '>'."""
    found = {
        result[i - 1]
        for result in merge_results
        for i in range(1, len(result))
        if result[i] == META and result[i - 1] != META
    }
    if not found:
        return np.zeros(1, dtype=np.uint8)
    sticky = np.zeros(CODE_POINTS, dtype=np.uint8)
    if ">" in found:
        sticky[char_ids.shape[0] :] = 1
        sticky[: char_ids.shape[0]][char_ids < 0] = 1
    for char in found:
        sticky[ord(char)] = 1
    return sticky


def _pre_tokenizer_pattern(pre_tokenizer: dict | None) -> tuple[int, str, str]:
    """(pattern constant, class table, name) of a pre-tokenizer the matchers reproduce."""

    def byte_level(component: dict, use_regex: bool) -> bool:
        return (
            component.get("type") == "ByteLevel"
            and not component.get("add_prefix_space", True)
            and bool(component.get("use_regex", True)) == use_regex
        )

    def isolated_digits(component: dict) -> bool:
        return component.get("type") == "Digits" and bool(component.get("individual_digits", False))

    if pre_tokenizer is None:
        raise Unsupported("no pre-tokenizer (SentencePiece-style BPE over the whole text)")
    if byte_level(pre_tokenizer, True):
        return pretokenize.PATTERN_GPT2, "classes", "GPT-2"
    parts = pre_tokenizer.get("pretokenizers") if pre_tokenizer.get("type") == "Sequence" else None
    if parts and len(parts) == 1 and byte_level(parts[0], True):
        return pretokenize.PATTERN_GPT2, "classes", "GPT-2"
    if parts and len(parts) == 2 and isolated_digits(parts[0]) and byte_level(parts[1], True):
        return pretokenize.PATTERN_GPT2, "classes_isolated_digits", "Digits(individual) + GPT-2"
    if parts and len(parts) == 2 and byte_level(parts[1], False):
        split = parts[0]
        regex = (split.get("pattern") or {}).get("Regex")
        if (
            split.get("type") == "Split"
            and regex in SPLIT_PATTERNS
            and split.get("behavior") == "Isolated"
            and not split.get("invert", False)
        ):
            return SPLIT_PATTERNS[regex]
    described = json.dumps(pre_tokenizer)[:200]
    raise Unsupported(
        "pre-tokenizer is not ByteLevel(add_prefix_space=false) with the GPT-2 regex (alone or after "
        "Digits(individual_digits=true)) nor Split(the Llama-3, cl100k, Qwen2, Qwen3.5, o200k or Tekken regex) + "
        f"ByteLevel(use_regex=false): {described}"
    )


# A character class the regex engine evaluates for us (any bracket expression without nested
# brackets, or a \p{...} property): one code point, whatever it holds.
_CLASS = r"(\[(?:[^\[\]\\]|\\[rntfv])+\]|\\p\{[A-Za-z_]+\})"
SEQUENCE_STEP_SHAPES = (
    (re.compile(_CLASS), pretokenize.STEP_ISOLATE),
    (re.compile(_CLASS + r"\+"), pretokenize.STEP_RUN),
    (re.compile(r"\\s\?" + _CLASS + r"\+"), pretokenize.STEP_SPACE_RUN),
    (re.compile(r"\\s\+\$"), pretokenize.STEP_TRAILING_SPACE),
    (re.compile(_CLASS + r"\{1,([1-9])\}"), pretokenize.STEP_BOUNDED_RUN),
)
# DeepSeek-V3's (and R1's) last Split, as its tokenizer.json spells it (\r and \n as the
# characters themselves; the escaped spelling means the same to the regex engine).
DEEPSEEK_V3_WORDS = (
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"
)
DEEPSEEK_V3_CLASSES = (r"\p{L}", r"\p{M}", r"\p{P}", r"\p{S}")
DIGITS_CLASS = "Digits"  # the class of Digits: Rust's char::is_numeric, read off Digits itself


def split_sequence(pre_tokenizer: dict | None) -> SplitSequence | None:
    r"""The steps of Sequence([Split(regex, Isolated) or Digits, ..., ByteLevel(use_regex=false)])
    when every regex has one of the SEQUENCE_STEP_SHAPES (DeepSeek-LLM: [\r\n], \s?[letters]+,
    \s?[punctuation]+, \s+$, [CJK]+, then Digits(individual_digits=true); DeepSeek-V3: \p{N}{1,3},
    [CJK]+, then its words regex, DEEPSEEK_V3_WORDS); else None. Which code
    points each class holds is asked of tokenizers' own regex engine (or of Digits), one pass
    over every code point per class."""
    if not pre_tokenizer or pre_tokenizer.get("type") != "Sequence":
        return None
    parts = pre_tokenizer.get("pretokenizers") or []
    last = parts[-1] if parts else {}
    if not (
        last.get("type") == "ByteLevel" and not last.get("add_prefix_space", True) and not last.get("use_regex", True)
    ):
        return None
    steps: list[tuple[int, tuple[str, ...], int]] = []  # (STEP_*, its classes, limit)
    for part in parts[:-1]:
        if part.get("type") == "Digits":
            individual = bool(part.get("individual_digits", False))
            steps.append((pretokenize.STEP_ISOLATE if individual else pretokenize.STEP_RUN, (DIGITS_CLASS,), 0))
            continue
        regex = (part.get("pattern") or {}).get("Regex")
        if part.get("type") != "Split" or part.get("behavior") != "Isolated" or part.get("invert") or regex is None:
            return None
        if regex.replace("\\r", "\r").replace("\\n", "\n") == DEEPSEEK_V3_WORDS:
            steps.append((pretokenize.STEP_DEEPSEEK_V3_WORDS, DEEPSEEK_V3_CLASSES, 0))
            continue
        for shape, kind in SEQUENCE_STEP_SHAPES:
            matched = shape.fullmatch(regex)
            if matched:
                groups = matched.groups()
                steps.append((kind, groups[:1], int(groups[1]) if len(groups) > 1 else 0))
                break
        else:
            return None
    classes = sorted({cls for _, step_classes, _ in steps for cls in step_classes})
    if not steps or len(classes) > 7:  # a bit each, beside the one of \s
        return None
    bit_of = {cls: 2 << i for i, cls in enumerate(classes)}

    def packed_bits(step_classes: tuple[str, ...]) -> int:  # a byte per class, in the step's order
        return sum(bit_of[cls] << (8 * i) for i, cls in enumerate(step_classes))

    return SplitSequence(
        _sequence_members(tuple(classes)),
        np.array([(kind, packed_bits(cls), limit) for kind, cls, limit in steps], dtype=np.int64).reshape(-1, 3),
    )


def _sequence_members(classes: tuple[str, ...]) -> np.ndarray:
    members = np.zeros(CODE_POINTS, dtype=np.uint8)
    members[regex_members(r"\s")] |= pretokenize.SEQUENCE_SPACE_BIT
    for i, cls in enumerate(classes):
        found = isolated_digit_members() if cls == DIGITS_CLASS else regex_members(cls)
        members[found] |= 2 << i
    return members


SEQUENCE_PROBES = (
    "Hello, World! 123 4567  \r\n\n  tab\there\u3000\u3000x\u3000,",
    " héllo wörld ÀÖØ µ ﬀ Ｆｕｌｌ！ ‘quoted’ “双” 。 ，",
    "中文字符串，日本語のテキスト 한국어 텍스트 ١٢٣ ४५६ ๗๘  ",
    "a  \t b\x0b\x0c\x85\xa0\u1680\u2000\u2028\u2029\u202f\u205f end   ",
    "'s 've x'll ǅ ǈ Ⰰ Ꙁ 𐐀𐑏 𞤀 ⅰⅱ ½ ¹ 𝟘 🙂 \U00010000 ",
    "x.com/a?b=1234567&c=$d ¿Qué? \u0301a e\u0301\u0301 \x01\x02z 1st 2\u00b2 ..abc  .\n\n\r ++\n",
)


def _check_sequence_on_probes(sequence: SplitSequence, tokenizer: Tokenizer) -> None:
    """The derived steps split a few probe texts exactly as the tokenizer's pre-tokenizer does;
    the differential tests check far more, this catches a misread pre-tokenizer at load."""
    pre_tokenizer = tokenizer.pre_tokenizer
    assert pre_tokenizer is not None  # a Sequence was read from its JSON
    for text in SEQUENCE_PROBES:
        data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        ends = pretokenize.sequence_boundaries(data, sequence.members, sequence.program).tolist()
        expected = [len(text[:end].encode("utf-8")) for _, (_, end) in pre_tokenizer.pre_tokenize_str(text)]
        if ends != expected:
            raise Unsupported(f"the sequence of splits, as read, splits {text!r} unlike tokenizers")


def _normalizer_is_nfc(normalizer: dict | None) -> bool:
    """False for no normalizer, True for NFC (alone or as a one-element Sequence)."""
    kinds = [] if normalizer is None else [normalizer.get("type")]
    if normalizer is not None and kinds == ["Sequence"]:
        kinds = [n.get("type") for n in normalizer.get("normalizers") or []]
    if not kinds:
        return False
    if kinds == ["NFC"]:
        return True
    raise Unsupported(f"normalizer {kinds} changes text (only NFC is handled)")


def _added_token_sets(config: dict, tokenizer: Tokenizer) -> tuple[LiteralSet, LiteralSet, np.ndarray]:
    """The added tokens matched on the original text and on the normalized text, and what an
    rstrip token strips (uint8[code point], one zero element when no token has rstrip)."""
    unnormalized: list[bytes] = []
    normalized: list[bytes] = []
    rstrip: set[bytes] = set()
    for token in config.get("added_tokens") or []:
        content = token.get("content", "")
        if not content:
            continue  # tokenizers ignores empty added tokens
        for flag in ("lstrip", "single_word"):
            if token.get(flag):
                raise Unsupported(f"added token {content!r} has {flag}")
        if token.get("normalized", True):
            if token.get("rstrip"):
                raise Unsupported(f"added token {content!r} has rstrip and is matched after normalizing")
            normalizer = tokenizer.normalizer
            matched = normalizer.normalize_str(content) if normalizer is not None else content
            if not matched:
                raise Unsupported(f"added token {content!r} normalizes to nothing")
            normalized.append(matched.encode("utf-8"))
        else:
            unnormalized.append(content.encode("utf-8"))
            if token.get("rstrip"):
                rstrip.add(content.encode("utf-8"))
    stripped = NOTHING_STRIPPED
    if rstrip:
        stripped = stripped_by_added_tokens()
        for content in unnormalized + normalized:
            first = ord(content.decode("utf-8")[0])
            if first < stripped.shape[0] and stripped[first]:
                # An rstrip token's whitespace could hold the start of this one's match.
                raise Unsupported(
                    f"added token {content.decode('utf-8')!r} starts with whitespace an rstrip token strips"
                )
    return LiteralSet.of(unnormalized, frozenset(rstrip)), LiteralSet.of(normalized), stripped


def _post_processor_tokens(tokenizer: Tokenizer) -> int:
    try:
        return post_processor_tokens(tokenizer)
    except ValueError as why:
        raise Unsupported(str(why)) from None


def _next_power_of_two(n: int) -> int:
    return 1 << max(4, (max(1, n) - 1).bit_length())


def _merge_tables(model: dict) -> tuple[tuple, np.ndarray, int, int, list[str]]:
    """(merges for bpe.merge_rank, merge_ids, id_bits, rank_bits, each merge's result string)."""
    vocab: dict[str, int] = model.get("vocab") or {}
    # (left, right) -> (rank, new id), the map tokenizers' BpeBuilder builds.
    lefts, rights, new_ids = [], [], []
    results: list[str] = []
    for entry in model.get("merges") or []:
        left, right = entry.split(" ") if isinstance(entry, str) else entry
        lefts.append(vocab[left])
        rights.append(vocab[right])
        new_ids.append(vocab[left + right])
        results.append(left + right)
    # One int64 per merge-table slot: pair key and rank packed, non-negative (-1 = empty).
    id_bits = max(1, max(vocab.values(), default=0).bit_length())
    rank_bits = max(1, (len(lefts) - 1).bit_length())
    if 2 * id_bits + rank_bits > 63:
        raise Unsupported(f"vocabulary ({id_bits}-bit ids) and merges ({len(lefts)}) too large to pack")
    lefts_a = np.array(lefts, dtype=np.int64)
    rights_a = np.array(rights, dtype=np.int64)
    pair_keys = (lefts_a << id_bits) | rights_a
    ranks = np.arange(len(lefts), dtype=np.int64)
    # The hot table: merges among the smallest ids, at most HOT_MERGES of them.
    larger = np.maximum(lefts_a, rights_a)
    hot_below = 0
    if len(lefts):
        ordered = np.sort(larger)
        hot_below = int(ordered[min(HOT_MERGES, len(ordered)) - 1])  # ids strictly below are hot
    hot = larger < hot_below

    def table(selected):
        # Load factor at most 3/4 (8-byte slots: a probe run stays within a line or two).
        count = int(selected.sum())
        return bpe.build_merge_table(
            pair_keys[selected], ranks[selected], _next_power_of_two(count * 4 // 3 + 1), rank_bits
        )

    # 4 to 8 filter bits per merge of the rest (256 KiB for Llama-3): about one in eight missing
    # pairs gets through to the table.
    rest_filter = bpe.build_pair_filter(pair_keys[~hot], _next_power_of_two(int((~hot).sum()) // 16 + 1))
    merges = (table(hot), table(~hot), np.int64(hot_below), np.int64(id_bits), rest_filter)
    merge_ids = np.array(new_ids, dtype=np.int32) if new_ids else np.zeros(1, np.int32)
    return merges, merge_ids, id_bits, rank_bits, results


def _bpe_model(model: dict) -> tuple[BpeModel, np.ndarray]:
    """The model's arrays, and the bytes UTF-8 text can hold that have no token."""
    alphabet = checked_byte_level_alphabet()
    vocab: dict[str, int] = model.get("vocab") or {}
    byte_ids = np.full(256, -1, dtype=np.int64)
    unencodable = np.zeros(256, dtype=np.uint8)
    for b, char in alphabet.items():
        token_id = vocab.get(char)
        if token_id is None:
            # The unknown-token / byte-fallback path, which texts holding the byte take in
            # tokenizers (the counter sends them there); the kernels never see the byte.
            unencodable[b] = b not in IMPOSSIBLE_UTF8_BYTES
            continue
        byte_ids[b] = token_id

    merges, merge_ids, id_bits, rank_bits, _ = _merge_tables(model)
    byte_pair_ranks = bpe.build_byte_pair_ranks(byte_ids, merges, id_bits, rank_bits)

    ignore_merges = bool(model.get("ignore_merges", False))
    # Vocabulary as raw bytes, for ignore_merges' whole-word lookup; a token with a character
    # outside the byte alphabet can never equal a byte-level word.
    inverse = {char: b for b, char in alphabet.items()}
    keys = []
    if ignore_merges:
        for token in vocab:
            raw = [inverse.get(char) for char in token]
            if token and None not in raw:
                keys.append(bytes(b for b in raw if b is not None))
    lengths = np.array([len(k) for k in keys], dtype=np.int64)
    starts = (np.cumsum(lengths) - lengths).astype(np.int64)
    key_bytes = np.frombuffer(b"".join(keys), dtype=np.uint8).copy() if keys else np.zeros(1, np.uint8)
    vocab_slots = bpe.build_key_table(key_bytes, starts, lengths, _next_power_of_two(2 * len(keys) + 1))
    # About 8 bits per key: one in nine or so non-vocabulary words passes to the table.
    vocab_filter = bpe.build_key_filter(key_bytes, starts, lengths, _next_power_of_two(len(keys) // 8 + 1))
    model_arrays = BpeModel(
        byte_ids,
        byte_pair_ranks,
        merges,
        merge_ids,
        id_bits,
        rank_bits,
        len(set(vocab.values())) == len(vocab),
        ignore_merges,
        vocab_filter,
        vocab_slots,
        key_bytes,
        starts,
        lengths,
    )
    return model_arrays, unencodable
