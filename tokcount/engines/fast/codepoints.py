"""Per-code-point tables for the fast pre-tokenizers, derived from the reference implementation.

The pre-tokenizer regexes of the byte-level BPE families only ever ask four questions about a
code point: is it a letter (``\\p{L}``), a number (``\\p{N}``), whitespace (``\\s``), or none of
these; the Llama-3 family also asks which case-insensitive contraction letter it is (``(?i:s)``
matches U+017F LATIN SMALL LETTER LONG S too), and Qwen3.5's whether it is a mark (``\\p{M}``,
which its letter runs take in). We ask the regex engine that `tokenizers` itself uses
(Oniguruma, through ``pre_tokenizers.Split``) rather than Python's ``unicodedata``, whose
Unicode version may differ. One ``Split(..., "removed")`` call over a string holding every
scalar value answers a question for all of them at once (~0.5 s each). The digits that the
``Digits(individual_digits=true)`` pre-tokenizer isolates (StarCoder2, Refact, Command-R) are
read from that pre-tokenizer the same way: it uses Rust's ``char::is_numeric``, whose Unicode
version is not Oniguruma's (tokenizers 0.23.3 isolates 13 code points its ``\\p{N}`` lacks).

Each pattern family gets its class table (``classes``, ``classes_isolated_digits``,
``classes_marks_as_letters``): the matchers only compare classes, so a knob of the regex that
changes which class a code point falls in is a table, not another matcher.

The NFC table is the exception: it marks code points for which "this text is already NFC" is
provable from the code point alone (Unicode's quick check: a starter that no canonical
composition can absorb). It is read from ``unicodedata`` and restricted to code points assigned
in that Unicode version, which is sound whatever version the Rust side uses: Unicode's
normalization stability policy freezes decompositions, combining classes and compositions of
assigned characters, and an unassigned character always normalizes to itself. The result is
still checked against the tokenizers NFC normalizer before it is used.

Tables are cached on disk (``$TOKCOUNT_CACHE_DIR``, else ``$XDG_CACHE_HOME/tokcount``, else
``~/.cache/tokcount``), keyed by the tokenizers and unicodedata versions, and rebuilt when
missing or unreadable.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tokenizers
from tokenizers import Regex, normalizers, pre_tokenizers

from ... import disk_cache

CODE_POINTS = 0x110000
SURROGATES = range(0xD800, 0xE000)

CLASS_OTHER = 0
CLASS_LETTER = 1
CLASS_NUMBER = 2
CLASS_SPACE = 3
CLASS_DIGIT = 4  # a digit that Digits(individual_digits=true) isolates: always a piece of its own
# Added to the class in the o200k table (``classes_cased``): the two letter sets of the o200k
# and Tekken patterns' case-structured runs. Marks are in both (and CLASS_OTHER), as are \p{Lm}
# and \p{Lo}; \p{Lu} and \p{Lt} are only upper, \p{Ll} only lower.
CASE_UPPER = 0x10  # [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
CASE_LOWER = 0x20  # [\p{Ll}\p{Lm}\p{Lo}\p{M}]
CLASS_MASK = 0x0F

# Bits of the fold table: which letter of the contractions 's 't 're 've 'm 'll 'd a code point
# matches under (?i).
FOLD_S, FOLD_T, FOLD_R, FOLD_E, FOLD_V, FOLD_M, FOLD_L, FOLD_D = (1 << i for i in range(8))
FOLD_LETTERS = {"s": FOLD_S, "t": FOLD_T, "r": FOLD_R, "e": FOLD_E, "v": FOLD_V, "m": FOLD_M, "l": FOLD_L, "d": FOLD_D}

GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
# The Llama-3 pattern with single digits, as Qwen2 / 2.5 / 3 declare it.
QWEN2_PATTERN = LLAMA3_PATTERN.replace(r"\p{N}{1,3}", r"\p{N}")
# Qwen3.5: marks join letter runs and leave the punctuation runs.
QWEN35_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_CONTRACTIONS = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
# tiktoken's cl100k pattern (0.12), as a tokenizer.json converted from tiktoken may hold it.
CL100K_TIKTOKEN_PATTERN = (
    r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$"
    r"|\s*[\r\n]|\s+(?!\S)|\s"
)
# o200k (GPT-4o, gpt-oss) and Mistral's Tekken (as llama.cpp calls it, "nemo"): letter runs
# structured by case, a contraction suffix (o200k only), "/" after punctuation runs.
_UPPER_SET = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]"
_LOWER_SET = r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
O200K_PATTERN = (
    rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER_SET}*{_LOWER_SET}+{LLAMA3_CONTRACTIONS}?"
    rf"|[^\r\n\p{{L}}\p{{N}}]?{_UPPER_SET}+{_LOWER_SET}*{LLAMA3_CONTRACTIONS}?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
TEKKEN_PATTERN = (
    rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER_SET}*{_LOWER_SET}+"
    rf"|[^\r\n\p{{L}}\p{{N}}]?{_UPPER_SET}+{_LOWER_SET}*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

TABLES_FORMAT = 4  # bump when the derivation changes
CLASS_TABLES = ("classes", "classes_isolated_digits", "classes_marks_as_letters", "classes_cased")


@dataclass(frozen=True)
class CodepointTables:
    classes: np.ndarray  # uint8[0x110000]: CLASS_* (letter, number, space, other)
    classes_isolated_digits: np.ndarray  # classes, with Digits' digits as CLASS_DIGIT
    classes_marks_as_letters: np.ndarray  # classes, with \p{M} as CLASS_LETTER (Qwen3.5)
    classes_cased: np.ndarray  # classes, with CASE_UPPER / CASE_LOWER added (o200k, Tekken)
    folds: np.ndarray  # uint8[0x110000]: FOLD_* bits
    nfc_safe: np.ndarray  # uint8[0x110000]: 1 = a text made of such code points is already NFC

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in (*CLASS_TABLES, "folds", "nfc_safe")}


def _cache_path() -> Path:
    key = f"v{TABLES_FORMAT}-tokenizers-{tokenizers.__version__}-unicodedata-{unicodedata.unidata_version}"
    return disk_cache.cache_directory() / f"codepoint-tables-{key}.npz"


@functools.lru_cache(maxsize=1)
def codepoint_tables() -> CodepointTables:
    """The tables, from the disk cache or derived (a few seconds) and then cached."""
    path = _cache_path()
    try:
        with np.load(path) as stored:
            tables = CodepointTables(**{name: stored[name] for name in stored.files})
        if all(t.shape == (CODE_POINTS,) and t.dtype == np.uint8 for t in tables.arrays().values()):
            return tables
    except (OSError, ValueError, KeyError, TypeError):
        pass
    tables = derive_tables()
    _store(path, tables)
    return tables


def _store(path: Path, tables: CodepointTables) -> None:
    arrays: dict = tables.arrays()  # numpy's stubs type savez's keywords as allow_pickle
    disk_cache.store(path, lambda f: np.savez(f, **arrays))


def _scalar_values() -> np.ndarray:
    everything = np.arange(CODE_POINTS, dtype=np.int64)
    return everything[(everything < SURROGATES.start) | (everything >= SURROGATES.stop)]


@functools.lru_cache(maxsize=1)
def _all_scalars_text() -> str:
    return "".join(map(chr, _scalar_values().tolist()))


def regex_members(pattern: str, candidates: np.ndarray | None = None) -> np.ndarray:
    """Code points c (of `candidates`, default all) for which the tokenizers regex `pattern`
    matches the one-character text c.

    Split(..., "removed") drops every match from the concatenated candidates; what survives
    (with character offsets) is the complement. Only valid for patterns matching single
    characters.
    """
    scalars = _scalar_values() if candidates is None else candidates
    text = _all_scalars_text() if candidates is None else "".join(map(chr, candidates.tolist()))
    pieces = pre_tokenizers.Split(Regex(pattern), "removed").pre_tokenize_str(text)
    survives = np.zeros(scalars.shape[0], dtype=bool)
    for _, (begin, end) in pieces:
        survives[begin:end] = True
    return scalars[~survives]


def derive_tables() -> CodepointTables:
    classes = np.zeros(CODE_POINTS, dtype=np.uint8)
    letters, numbers, spaces = (regex_members(p) for p in (r"\p{L}", r"\p{N}", r"\s"))
    if (
        np.intersect1d(letters, numbers).size
        or np.intersect1d(letters, spaces).size
        or np.intersect1d(numbers, spaces).size
    ):
        raise RuntimeError("tokenizers' regex engine puts a code point in two of \\p{L}, \\p{N}, \\s")
    classes[letters] = CLASS_LETTER
    classes[numbers] = CLASS_NUMBER
    classes[spaces] = CLASS_SPACE
    if not (classes[ord("\r")] == classes[ord("\n")] == classes[ord(" ")] == CLASS_SPACE):
        raise RuntimeError("\\r, \\n or space is not \\s for tokenizers' regex engine")

    folds = np.zeros(CODE_POINTS, dtype=np.uint8)
    # One pass over every code point for the union, then each letter among the few found.
    union = regex_members("(?i:" + "|".join(FOLD_LETTERS) + ")")
    for letter, bit in FOLD_LETTERS.items():
        members = regex_members(f"(?i:{letter})", union)
        if np.any(folds[members]):
            raise RuntimeError(f"a code point matches two contraction letters under (?i) (one is {letter!r})")
        folds[members] |= bit
    _check_contractions(folds)
    _check_classes_in_full_patterns(classes)

    isolated_digits = classes.copy()
    isolated_digits[isolated_digit_members()] = CLASS_DIGIT
    marks = regex_members(r"\p{M}")
    if np.any(classes[marks] != CLASS_OTHER):
        raise RuntimeError("tokenizers' regex engine puts a code point in \\p{M} and in \\p{L}, \\p{N} or \\s")
    marks_as_letters = classes.copy()
    marks_as_letters[marks] = CLASS_LETTER
    _check_classes_in_qwen35_pattern(marks_as_letters)

    cased = classes.copy()
    upper, lower = regex_members(_UPPER_SET), regex_members(_LOWER_SET)
    if not np.array_equal(np.union1d(upper, lower), np.union1d(letters, marks)):
        raise RuntimeError("tokenizers' regex engine: o200k's two letter sets are not \\p{L} and \\p{M} together")
    cased[upper] |= CASE_UPPER
    cased[lower] |= CASE_LOWER

    nfc_safe = _nfc_safe_table()
    return CodepointTables(classes, isolated_digits, marks_as_letters, cased, folds, nfc_safe)


def isolated_digit_members() -> np.ndarray:
    """Code points that ``Digits(individual_digits=true)`` makes a piece of their own.

    Each candidate c follows an "x" (no digit): in "xc", a piece starts at c and ends after it
    exactly when c is a digit, since the pre-tokenizer merges the other code points with the
    x's around them. The digits, concatenated, must then come out one piece each."""
    scalars = _scalar_values()
    if pre_tokenizers.Digits(individual_digits=True).pre_tokenize_str("x") != [("x", (0, 1))]:
        raise RuntimeError("Digits splits 'x'")
    text = "".join("x" + chr(c) for c in scalars.tolist())
    pieces = pre_tokenizers.Digits(individual_digits=True).pre_tokenize_str(text)
    alone = np.zeros(len(text) + 1, dtype=bool)
    for _, (begin, end) in pieces:
        if end == begin + 1 and begin % 2 == 1:
            alone[begin] = True
    digits = scalars[alone[1::2][: scalars.shape[0]]]
    together = "".join(map(chr, digits.tolist()))
    if len(pre_tokenizers.Digits(individual_digits=True).pre_tokenize_str(together)) != digits.shape[0]:
        raise RuntimeError("Digits(individual_digits=true) does not isolate every digit it finds")
    return digits


def _check_contractions(folds: np.ndarray) -> None:
    """The full (?i) contraction alternation matches "'"+c exactly for the one-letter folds.

    Guards against multi-character case folds (a single code point matching 're, say), which
    the per-letter tables could not express.
    """
    scalars = _scalar_values()
    probe = "".join("'" + chr(c) + "#" for c in scalars.tolist())
    pieces = pre_tokenizers.Split(Regex(LLAMA3_CONTRACTIONS), "removed").pre_tokenize_str(probe)
    kept = np.zeros(len(probe), dtype=bool)
    for _, (begin, end) in pieces:
        kept[begin:end] = True
    removed_letter = ~kept[1::3]
    single = (folds[scalars] & (FOLD_S | FOLD_T | FOLD_M | FOLD_D)) != 0
    if not np.array_equal(removed_letter, single):
        raise RuntimeError("(?i) contractions match code points the per-letter fold tables do not predict")
    firsts = {"r": "e", "v": "e", "l": "l"}
    for first, second in firsts.items():
        for a in np.flatnonzero(folds & FOLD_LETTERS[first]).tolist():
            for b in np.flatnonzero(folds & FOLD_LETTERS[second]).tolist():
                text = "'" + chr(a) + chr(b)
                pieces = pre_tokenizers.Split(Regex(LLAMA3_CONTRACTIONS), "removed").pre_tokenize_str(text)
                if pieces:
                    raise RuntimeError(f"(?i) contraction {text!r} does not match as predicted")


def _check_classes_in_full_patterns(classes: np.ndarray) -> None:
    """Each class, concatenated, is one pre-token of the GPT-2 pattern: the classes mean there
    what the single-class regexes said."""
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    for cls in (CLASS_LETTER, CLASS_NUMBER, CLASS_SPACE, CLASS_OTHER):
        members = np.flatnonzero(classes == cls)
        members = members[(members < SURROGATES.start) | (members >= SURROGATES.stop)]
        if cls == CLASS_OTHER:
            members = members[members != ord("'")]  # "'" followed by s/t/m/d would be a contraction
        text = "".join(map(chr, members.tolist()))
        pieces = byte_level.pre_tokenize_str(text)
        if len(pieces) != 1:
            raise RuntimeError(f"class {cls} is not one GPT-2 pre-token ({len(pieces)} pieces)")


def _check_classes_in_qwen35_pattern(marks_as_letters: np.ndarray) -> None:
    """Letters and marks together, and the other class without marks, are each one pre-token
    of Qwen3.5's pattern: the merged table means there what the single-class regexes said."""
    split = pre_tokenizers.Split(Regex(QWEN35_PATTERN), "isolated")
    for cls in (CLASS_LETTER, CLASS_OTHER):
        members = np.flatnonzero(marks_as_letters == cls)
        members = members[(members < SURROGATES.start) | (members >= SURROGATES.stop)]
        if cls == CLASS_OTHER:
            members = members[members != ord("'")]  # "'" followed by s/t/m/d would be a contraction
        pieces = split.pre_tokenize_str("".join(map(chr, members.tolist())))
        if len(pieces) != 1:
            raise RuntimeError(f"class {cls} is not one Qwen3.5 pre-token ({len(pieces)} pieces)")


def _nfc_safe_table() -> np.ndarray:
    """Starters that no canonical composition can absorb, assigned in unicodedata's version.

    A precomposed starter (ü, が) qualifies when it is its own NFC and its decomposition starts
    with a starter that is not the second of any pair: decomposing then recomposing gives it
    back whatever surrounds it (the code point after it is checked on its own), and nothing
    before it can compose with its first code point.
    """
    second_of_pair = set()
    for c in range(CODE_POINTS):
        if c in SURROGATES:
            continue
        decomposition = unicodedata.decomposition(chr(c))
        if decomposition and not decomposition.startswith("<"):
            parts = decomposition.split()
            if len(parts) == 2:
                second_of_pair.add(int(parts[1], 16))
    # Hangul vowel and trailing jamo compose algorithmically (no decomposition entries).
    second_of_pair.update(range(0x1161, 0x1176))
    second_of_pair.update(range(0x11A8, 0x11C3))
    safe = np.zeros(CODE_POINTS, dtype=np.uint8)
    for c in range(CODE_POINTS):
        if c in SURROGATES or c in second_of_pair:
            continue
        ch = chr(c)
        if unicodedata.category(ch) == "Cn" or unicodedata.combining(ch) != 0:
            continue
        decomposition = unicodedata.decomposition(ch)
        if decomposition and not decomposition.startswith("<"):
            # has a canonical decomposition: safe only if NFC rebuilds it in any context
            if unicodedata.normalize("NFC", ch) != ch:
                continue
            first = unicodedata.normalize("NFD", ch)[0]
            if ord(first) in second_of_pair or unicodedata.combining(first) != 0:
                continue
        safe[c] = 1
    text = "".join(map(chr, np.flatnonzero(safe).tolist()))
    if normalizers.NFC().normalize_str(text) != text:
        raise RuntimeError("tokenizers' NFC changes a text made only of NFC-safe code points")
    return safe


_STRIP_PROBE = {
    "version": "1.0",
    "added_tokens": [
        {
            "id": 1,
            "content": "<x>",
            "single_word": False,
            "lstrip": False,
            "rstrip": True,
            "normalized": False,
            "special": True,
        }
    ],
    "normalizer": None,
    "pre_tokenizer": None,
    "post_processor": None,
    "decoder": None,
    "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "<x>": 1}, "unk_token": "[UNK]"},
}


@functools.lru_cache(maxsize=1)
def stripped_by_added_tokens() -> np.ndarray:
    """uint8[0x110000]: 1 for a code point that an added token with ``rstrip`` removes after
    itself (tokenizers strips Rust's ``char::is_whitespace``, not the regex engine's ``\\s``).

    Asked of tokenizers itself: in "<x>c<x>c..." with an rstrip "<x>" and a one-word-per-gap
    model, each c that survives is a gap of its own ([UNK] at its offset); the others were
    stripped. ~1 s, then kept in the engine plan of the tokenizer that needs it."""
    scalars = _scalar_values()
    probe = tokenizers.Tokenizer.from_str(json.dumps(_STRIP_PROBE))
    text = "".join("<x>" + chr(c) for c in scalars.tolist())
    encoding = probe.encode(text, add_special_tokens=False)
    ids = np.array(encoding.ids, dtype=np.int64)
    begins = np.array([begin for begin, _ in encoding.offsets], dtype=np.int64)
    survivors = begins[ids == 0]
    if np.any(survivors % 4 != 3) or np.count_nonzero(ids == 1) != scalars.shape[0]:
        raise RuntimeError("tokenizers' rstrip probe did not split as expected")
    kept = np.zeros(scalars.shape[0], dtype=bool)
    kept[survivors // 4] = True
    stripped = np.zeros(CODE_POINTS, dtype=np.uint8)
    stripped[scalars[~kept]] = 1
    if not stripped[ord(" ")] or stripped[ord("x")]:
        raise RuntimeError("tokenizers' rstrip probe: ' ' is not stripped, or 'x' is")
    return stripped
