"""Pre-tokenization kernels: UTF-8 decoding, code point class runs, the GPT-2 and Llama-3
pre-token matchers, added-token literal matching, and the scans for text NFC might change and
for bytes the vocabulary lacks.

Two matchers cover four patterns, their knobs being class tables (codepoints) and arguments:
GPT-2's regex, alone or after Digits(individual_digits=true) (its digits are CLASS_DIGIT, each
a pre-token that ends the regex's piece); the Llama-3 regex with \\p{N}{1,3}, or \\p{N} for
Qwen2 and Qwen3.5 (whose marks are letters in its table).

Everything here only decides where pieces end (no tokens, no cache), so the splitting can be
tested on its own against tokenizers' pre-tokenizer.
"""

from __future__ import annotations

import numba
import numpy as np

from .codepoints import (
    CASE_LOWER,
    CASE_UPPER,
    CLASS_DIGIT,
    CLASS_LETTER,
    CLASS_MASK,
    CLASS_NUMBER,
    CLASS_OTHER,
    CLASS_SPACE,
    FOLD_D,
    FOLD_E,
    FOLD_L,
    FOLD_M,
    FOLD_R,
    FOLD_S,
    FOLD_T,
    FOLD_V,
)
from .primitives import load_u64, trailing_zeros

PATTERN_GPT2 = 0
PATTERN_LLAMA3 = 1  # digit runs of up to 3
PATTERN_QWEN2 = 2  # the Llama-3 matcher, single digits
PATTERN_SPLIT_SEQUENCE = 3  # no matcher: the pieces come from sequence_cuts
PATTERN_O200K = 4  # case-structured letter runs, contraction suffix, digit runs of up to 3
PATTERN_TEKKEN = 5  # the o200k matcher, no contraction suffix, single digits
# tiktoken's cl100k regex as tokenizers runs it: the Llama-3 matcher, where \p{N}{1,3}+ is
# Oniguruma's nested repeat (any run of digits, not a possessive {1,3}) and \s++$ keeps a
# whitespace run that reaches the end whole.
PATTERN_CL100K_TIKTOKEN = 6
# No pre-tokenizer (SentencePiece-style BPE over whole texts): units that no merge spans, see
# sentencepiece_unit_end; the PREPEND form also has the Prepend normalizer's meta symbol.
PATTERN_SENTENCEPIECE = 7
PATTERN_SENTENCEPIECE_PREPEND = 8
UNBOUNDED_DIGITS = 1 << 62

APOSTROPHE = 39
SLASH = 47
SPACE = 32
LF = 10
CR = 13


# ----------------------------------------------------------------------------------------------
# UTF-8 and code point classes


@numba.njit(inline="always")
def decode_utf8(buf, pos):
    """(code point, byte width) at `pos` of valid UTF-8."""
    b0 = np.int64(buf[pos])
    if b0 < 0x80:
        return b0, 1
    if b0 < 0xE0:
        return ((b0 & 0x1F) << 6) | (np.int64(buf[pos + 1]) & 0x3F), 2
    if b0 < 0xF0:
        return ((b0 & 0x0F) << 12) | ((np.int64(buf[pos + 1]) & 0x3F) << 6) | (np.int64(buf[pos + 2]) & 0x3F), 3
    return (
        ((b0 & 0x07) << 18)
        | ((np.int64(buf[pos + 1]) & 0x3F) << 12)
        | ((np.int64(buf[pos + 2]) & 0x3F) << 6)
        | (np.int64(buf[pos + 3]) & 0x3F)
    ), 4


@numba.njit(inline="always")
def class_run_end(buf, pos, end, cls, classes):
    """End of the run of code points of class `cls` starting at `pos`."""
    if cls == CLASS_LETTER:
        pos = ascii_letters_end(buf, pos, end)
    while pos < end:
        b0 = buf[pos]
        if b0 < 0x80:
            if classes[b0] != cls:
                return pos
            pos += 1
        else:
            cp, width = decode_utf8(buf, pos)
            if classes[cp] != cls:
                return pos
            pos += width
    return pos


ASCII_HIGH_BITS = np.uint64(0x8080808080808080)


@numba.njit(inline="always")
def ascii_letters_end(buf, pos, end):
    """Skips ASCII letters [A-Za-z] eight bytes at a time (bit tricks on a 64-bit word: no
    per-byte branch, whose exit at a word's end the CPU mispredicts); stops at the first other
    byte (non-ASCII bytes included: the caller's class table takes over from there)."""
    while pos + 8 <= buf.shape[0]:
        raw = load_u64(buf, pos)
        low7 = (raw | np.uint64(0x2020202020202020)) & np.uint64(0x7F7F7F7F7F7F7F7F)  # folded to lower case
        at_least_a = low7 + np.uint64(0x1F1F1F1F1F1F1F1F)  # high bit set: byte >= 'a'
        above_z = low7 + np.uint64(0x0505050505050505)  # high bit set: byte > 'z'
        letters = at_least_a & ~above_z & ~raw & ASCII_HIGH_BITS
        stops = ~letters & ASCII_HIGH_BITS
        if stops != 0:
            pos += np.int64(trailing_zeros(stops) >> np.uint64(3))
            return pos if pos < end else end  # noqa: FURB136  (moved unchanged)
        pos += 8
        if pos >= end:
            return end
    return pos


@numba.njit(inline="always")
def line_break_run_end(buf, pos, end):
    while pos < end and (buf[pos] == LF or buf[pos] == CR):
        pos += 1
    return pos


@numba.njit(inline="always")
def gpt2_pretoken_end(buf, pos, end, classes):
    """End of the pre-token at `pos` for
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+ (leftmost
    alternative wins, as in Oniguruma).

    A CLASS_DIGIT code point (only in the table of Digits(individual_digits=true) before the
    regex) is a piece of its own, and the regex's pieces end at it: no run takes it in, a space
    before it stays alone, and whitespace before it is kept whole (its lookahead sees the
    piece's end)."""
    cp, width = decode_utf8(buf, pos)
    after = pos + width
    if cp == APOSTROPHE and after < end:
        b1 = buf[after]
        if b1 == 115 or b1 == 116 or b1 == 109 or b1 == 100:  # s t m d
            return after + 1
        if after + 1 < end:
            b2 = buf[after + 1]
            if (b1 == 114 and b2 == 101) or (b1 == 118 and b2 == 101) or (b1 == 108 and b2 == 108):  # re ve ll
                return after + 2
    cls = classes[cp]
    if cp == SPACE and after < end:
        next_cp, next_width = decode_utf8(buf, after)
        next_cls = classes[next_cp]
        if next_cls == CLASS_DIGIT:
            return after
        if next_cls != CLASS_SPACE:
            return class_run_end(buf, after + next_width, end, next_cls, classes)
    if cls == CLASS_DIGIT:
        return after
    if cls != CLASS_SPACE:
        return class_run_end(buf, after, end, cls, classes)
    return whitespace_end(buf, pos, end, classes, False, False)


@numba.njit(inline="always")
def whitespace_end(buf, pos, end, classes, line_breaks_end_match, whole_at_end):
    """\\s+(?!\\S)|\\s+ over the whitespace run at `pos`; with `line_breaks_end_match`, first
    \\s*[\\r\\n]+ (Llama-3), which ends right after the run's last line break; with
    `whole_at_end`, before that \\s++$ (tiktoken's cl100k): a run that reaches the end is whole."""
    last_start = pos
    count = 0
    after_line_break = -1
    q = pos
    stop = CLASS_SPACE
    while q < end:
        cp, width = decode_utf8(buf, q)
        stop = classes[cp]
        if stop != CLASS_SPACE:
            break
        if cp == LF or cp == CR:
            after_line_break = q + width
        last_start = q
        count += 1
        q += width
    if whole_at_end and q == end:
        return q
    if line_breaks_end_match and after_line_break >= 0:
        return after_line_break
    if q == end or count == 1 or stop == CLASS_DIGIT:
        return q
    # Followed by non-space: the lookahead gives back the last whitespace character.
    return last_start


@numba.njit(inline="always")
def contraction_end(buf, pos, end, folds):
    """End of (?i:'s|'t|'re|'ve|'m|'ll|'d) at `pos`, or `pos` where none matches."""
    if pos >= end or buf[pos] != APOSTROPHE or pos + 1 >= end:
        return pos
    after = pos + 1
    c1, w1 = decode_utf8(buf, after)
    f1 = folds[c1]
    if f1 & (FOLD_S | FOLD_T | FOLD_M | FOLD_D):
        return after + w1
    if f1 & (FOLD_R | FOLD_V | FOLD_L) and after + w1 < end:
        c2, w2 = decode_utf8(buf, after + w1)
        f2 = folds[c2]
        if ((f1 & (FOLD_R | FOLD_V)) and (f2 & FOLD_E)) or ((f1 & FOLD_L) and (f2 & FOLD_L)):
            return after + w1 + w2
    return pos


@numba.njit(inline="always")
def llama3_pretoken_end(buf, pos, end, classes, folds, max_digits, whole_at_end):
    """End of the pre-token at `pos` for the Llama-3 / cl100k pattern
    (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*
    |\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+, with \\p{N}{1,max_digits}.

    Qwen3.5's [^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+ and [^\\s\\p{L}\\p{M}\\p{N}] are this with marks as
    letters: a mark after the optional prefix extends the letter run either way, and the prefix
    may be a mark only where the run could start with it."""
    cp, width = decode_utf8(buf, pos)
    after = pos + width
    if cp == APOSTROPHE:
        q = contraction_end(buf, pos, end, folds)
        if q > pos:
            return q
    cls = classes[cp]
    if cls == CLASS_LETTER:
        return class_run_end(buf, after, end, CLASS_LETTER, classes)
    if cls != CLASS_NUMBER and cp != LF and cp != CR and after < end:
        c1, w1 = decode_utf8(buf, after)
        if classes[c1] == CLASS_LETTER:
            return class_run_end(buf, after + w1, end, CLASS_LETTER, classes)
    if cls == CLASS_NUMBER:
        q = after
        digits = 1
        while digits < max_digits and q < end:
            c1, w1 = decode_utf8(buf, q)
            if classes[c1] != CLASS_NUMBER:
                break
            q += w1
            digits += 1
        return q
    if cp == SPACE and after < end:
        c1, w1 = decode_utf8(buf, after)
        if classes[c1] == CLASS_OTHER:
            q = class_run_end(buf, after + w1, end, CLASS_OTHER, classes)
            return line_break_run_end(buf, q, end)
    if cls == CLASS_OTHER:
        q = class_run_end(buf, after, end, CLASS_OTHER, classes)
        return line_break_run_end(buf, q, end)
    return whitespace_end(buf, pos, end, classes, True, whole_at_end)


@numba.njit(inline="always")
def case_run_end(buf, pos, end, cased, bit):
    """(end of the run of code points with `bit` at `pos`, end of the last one in it that has
    both case bits, or -1)."""
    last_both = np.int64(-1)
    while pos < end:
        cp, width = decode_utf8(buf, pos)
        t = cased[cp]
        if not (t & bit):
            break
        pos += width
        if (t & (CASE_UPPER | CASE_LOWER)) == (CASE_UPPER | CASE_LOWER):
            last_both = pos
    return pos, last_both


@numba.njit(inline="always")
def upper_then_lower_end(buf, pos, end, cased):
    """End of UPPER*LOWER+ at `pos` as a backtracking engine finds it, or -1: the upper run
    greedily, then a lower run; if none follows, the upper run gives back code points until
    one in both sets can be the lower part (it then ends the match: what follows it in the
    run is upper only)."""
    q, last_both = case_run_end(buf, pos, end, cased, CASE_UPPER)
    if q < end:
        cp, _ = decode_utf8(buf, q)
        if cased[cp] & CASE_LOWER:
            r, _ = case_run_end(buf, q, end, cased, CASE_LOWER)
            return r
    return last_both


@numba.njit(inline="always")
def upper_and_lower_end(buf, pos, end, cased):
    """End of UPPER+LOWER* at `pos`, or -1."""
    q, _ = case_run_end(buf, pos, end, cased, CASE_UPPER)
    if q == pos:
        return np.int64(-1)
    r, _ = case_run_end(buf, q, end, cased, CASE_LOWER)
    return r


@numba.njit(inline="always")
def o200k_pretoken_end(buf, pos, end, cased, folds, max_digits, contractions):
    r"""End of the pre-token at `pos` for o200k's pattern
    [^\r\n\p{L}\p{N}]?UPPER*LOWER+C?|[^\r\n\p{L}\p{N}]?UPPER+LOWER*C?|\p{N}{1,3}
    | ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+ (C: the (?i) contractions),
    or Tekken's (no C, \p{N}). UPPER is [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}], LOWER
    [\p{Ll}\p{Lm}\p{Lo}\p{M}]: `cased` holds the class and the two set bits.

    Alternatives are tried in order, each with the optional prefix first and then without it,
    as Oniguruma backtracks."""
    cp, width = decode_utf8(buf, pos)
    after = pos + width
    t = cased[cp]
    cls = t & CLASS_MASK
    prefix = cls != CLASS_LETTER and cls != CLASS_NUMBER and cp != LF and cp != CR and after < end
    r = np.int64(-1)
    if prefix:
        r = upper_then_lower_end(buf, after, end, cased)
    if r < 0:
        r = upper_then_lower_end(buf, pos, end, cased)
    if r < 0 and prefix:
        r = upper_and_lower_end(buf, after, end, cased)
    if r < 0:
        r = upper_and_lower_end(buf, pos, end, cased)
    if r >= 0:
        return contraction_end(buf, r, end, folds) if contractions else r
    if cls == CLASS_NUMBER:
        q = after
        digits = 1
        while digits < max_digits and q < end:
            c1, w1 = decode_utf8(buf, q)
            if (cased[c1] & CLASS_MASK) != CLASS_NUMBER:
                break
            q += w1
            digits += 1
        return q
    q = -1
    if cls == CLASS_OTHER:
        q = after
    elif cp == SPACE and after < end:
        c1, w1 = decode_utf8(buf, after)
        if (cased[c1] & CLASS_MASK) == CLASS_OTHER:
            q = after + w1
    if q >= 0:
        while q < end:
            c2, w2 = decode_utf8(buf, q)
            if (cased[c2] & CLASS_MASK) != CLASS_OTHER:
                break
            q += w2
        while q < end and (buf[q] == LF or buf[q] == CR or buf[q] == SLASH):
            q += 1
        return q
    return whitespace_end(buf, pos, end, cased, True, False)


@numba.njit(inline="always")
def meta_width(buf, pos):
    """Bytes of the meta character at pos (a space, or U+2581 as E2 96 81; the Replace
    normalizer makes both the meta symbol), or 0. The text is valid UTF-8 to its segment's
    end, so the two bytes after an E2 lead byte are there."""
    b0 = buf[pos]
    if b0 == SPACE:
        return 1
    if b0 == 0xE2 and buf[pos + 1] == 0x96 and buf[pos + 2] == 0x81:
        return 3
    return 0


@numba.njit(inline="always")
def utf8_width(b0):
    if b0 < 0x80:
        return 1
    if b0 < 0xE0:
        return 2
    if b0 < 0xF0:
        return 3
    return 4


@numba.njit(inline="always")
def sentencepiece_unit_end(buf, pos, end, sticky):
    """End of the unit at pos: a run of meta characters, then of others, up to the next meta
    run unless the character before it is sticky (`sticky[cp]` is 1 when some merge's result
    holds that character followed by the meta symbol; a one-element table means none is).
    No merge can then join symbols across a unit's end, so BPE over the units one by one
    gives the counts of BPE over the whole text, and units can be cached."""
    while pos < end:
        width = meta_width(buf, pos)
        if width == 0:
            break
        pos += width
    while pos < end:
        last = pos
        while pos < end:
            if meta_width(buf, pos):
                break
            last = pos
            pos += utf8_width(buf[pos])
        if pos >= end or sticky.shape[0] == 1:
            return pos
        cp, _ = decode_utf8(buf, last)
        if sticky[cp] == 0:
            return pos
        while pos < end:
            width = meta_width(buf, pos)
            if width == 0:
                break
            pos += width
    return pos


@numba.njit(inline="always")
def pretoken_end(pattern, buf, pos, end, classes, folds):
    if pattern == PATTERN_GPT2:
        return gpt2_pretoken_end(buf, pos, end, classes)
    if pattern == PATTERN_O200K or pattern == PATTERN_TEKKEN:
        return o200k_pretoken_end(
            buf, pos, end, classes, folds, 3 if pattern == PATTERN_O200K else 1, pattern == PATTERN_O200K
        )
    if pattern == PATTERN_SENTENCEPIECE or pattern == PATTERN_SENTENCEPIECE_PREPEND:
        return sentencepiece_unit_end(buf, pos, end, classes)
    # One inlined copy of the Llama-3 matcher for its three patterns: a copy per pattern cost
    # a third of the kernel's compile time (175 s -> 117 s with one).
    cl100k = pattern == PATTERN_CL100K_TIKTOKEN
    max_digits = UNBOUNDED_DIGITS if cl100k else 3 if pattern == PATTERN_LLAMA3 else 1
    return llama3_pretoken_end(buf, pos, end, classes, folds, max_digits, cl100k)


@numba.njit(cache=True)
def pretoken_boundaries(pattern, buf, classes, folds):
    """All pre-token ends of one piece (for tests and diagnostics)."""
    ends = np.empty(buf.shape[0], dtype=np.int64)
    n = 0
    pos = 0
    while pos < buf.shape[0]:
        pos = pretoken_end(pattern, buf, pos, buf.shape[0], classes, folds)
        ends[n] = pos
        n += 1
    return ends[:n]


# ----------------------------------------------------------------------------------------------
# Added tokens: leftmost-longest literal matching


@numba.njit(inline="always")
def pattern_rest_matches(buf, q, patterns, start, length):
    """Whether buf[q + 1:q + length] is the pattern's bytes after its first (already compared)."""
    for i in range(1, length):
        if buf[q + i] != patterns[start + i]:
            return False
    return True


@numba.njit(inline="always")
def first_added_token_at(buf, q, end, patterns, pattern_starts, pattern_lengths, first_begin, first_end, uniform):
    """Length of the longest pattern matching at q, or 0. Patterns are sorted by first byte,
    then by decreasing length, so the first full match is the longest. A pattern that repeats
    one byte (NeoX's runs of spaces) matches when the run at q is at least as long: the run is
    measured once, instead of comparing every such pattern byte by byte."""
    b0 = buf[q]
    run = np.int64(-1)
    for k in range(first_begin[b0], first_end[b0]):
        length = pattern_lengths[k]
        if q + length > end:
            continue
        if uniform[k]:
            if run < 0:
                # the first uniform pattern seen is the longest: no need to measure beyond it
                run = 1
                while run < length and buf[q + run] == b0:
                    run += 1
            if run >= length:
                return length
            continue
        if pattern_rest_matches(buf, q, patterns, pattern_starts[k], length):
            return length
    return np.int64(0)


ONE_PER_BYTE = np.uint64(0x0101010101010101)


@numba.njit(inline="always")
def zero_bytes(x):
    """High bit set in each zero byte of x: exact for the lowest one; a byte above a zero byte
    may be flagged too (the borrow), so callers only trust the lowest flag or re-check."""
    return (x - ONE_PER_BYTE) & ~x & ASCII_HIGH_BITS


@numba.njit(inline="always")
def next_candidate(buf, q, end, first, second):
    """A position q' >= q where buf[q'] == first (and buf[q' + 1] == second when second >= 0)
    may start, never beyond the first one that does; `end` when there is none. Eight bytes per
    step: the zero-byte test on the word xor the broadcast byte."""
    first_word = np.uint64(first) * ONE_PER_BYTE
    if second >= 0:
        second_word = np.uint64(second) * ONE_PER_BYTE
        while q < end and q + 8 <= buf.shape[0]:
            word = load_u64(buf, q)
            hits = zero_bytes(word ^ first_word) & (zero_bytes(word ^ second_word) >> np.uint64(8))
            if hits != 0:
                q += np.int64(trailing_zeros(hits) >> np.uint64(3))
                return q if q < end else end  # noqa: FURB136  (moved unchanged)
            q += 7  # the last byte's partner is in the next word
    else:
        while q < end and q + 8 <= buf.shape[0]:
            hits = zero_bytes(load_u64(buf, q) ^ first_word)
            if hits != 0:
                q += np.int64(trailing_zeros(hits) >> np.uint64(3))
                return q if q < end else end  # noqa: FURB136  (moved unchanged)
            q += 8
    while q < end and buf[q] != first:
        q += 1
    return q if q < end else end  # noqa: FURB136  (moved unchanged)


# Called, not inlined: count_documents has two call sites, and inlining it into both made the
# first run's compile longer (55 -> 47 s, 920 -> 720 MB, two runs each) for no measurable speed.
@numba.njit
def next_added_token(
    buf,
    pos,
    end,
    patterns,
    pattern_starts,
    pattern_lengths,
    first_begin,
    first_end,
    first_mask,
    second_mask,
    uniform,
    lone_bytes,
):
    """(start, length) of the leftmost-longest match in buf[pos:end], or (end, 0).

    Prefilter: each first byte of a pattern has a group bit (of 8); `first_mask[b0]` holds the
    groups of b0 and `second_mask[b1]` the groups in which b1 may follow (all of them after a
    one-byte pattern). Positions where the two masks share no bit cannot start a match: two
    L1 loads and a branch that is almost never taken, even when a frequent byte (a space)
    starts some pattern. When every pattern starts with the same byte, `lone_bytes` is (that
    byte, the second byte all share or -1), else (-1, -1) ("<|" for Llama-3's special tokens,
    two spaces for NeoX's space runs): the scan then jumps from one candidate to the next.
    """
    if patterns.shape[0] == 0:
        return end, 0
    lone_first, lone_second = lone_bytes
    q = pos
    if lone_first >= 0:
        q = next_candidate(buf, q, end, lone_first, lone_second)
    if q >= end:
        return end, 0
    m0 = first_mask[buf[q]]
    while q + 1 < end:
        m1 = second_mask[buf[q + 1]]
        if m0 & m1:
            length = first_added_token_at(
                buf, q, end, patterns, pattern_starts, pattern_lengths, first_begin, first_end, uniform
            )
            if length > 0:
                return q, length
        q += 1
        if lone_first >= 0:
            q = next_candidate(buf, q, end, lone_first, lone_second)
            if q >= end:
                return end, 0
        m0 = first_mask[buf[q]]
    if m0:
        # last byte: only a one-byte pattern fits, which first_added_token_at checks
        length = first_added_token_at(
            buf, q, end, patterns, pattern_starts, pattern_lengths, first_begin, first_end, uniform
        )
        if length > 0:
            return q, length
    return end, 0


@numba.njit(cache=True)  # not inlined: called once per rstrip token matched, and count_documents is big
def added_token_index(buf, q, length, patterns, pattern_starts, pattern_lengths, first_begin, first_end):
    """Which pattern matched buf[q:q + length] (next_added_token's match), for its flags."""
    for k in range(first_begin[buf[q]], first_end[buf[q]]):
        if pattern_lengths[k] != length:
            continue
        if pattern_rest_matches(buf, q, patterns, pattern_starts[k], length):
            return k
    return np.int64(-1)


@numba.njit(cache=True)
def stripped_end(buf, pos, end, stripped):
    """End of the run of code points at `pos` that an added token's rstrip removes
    (`stripped[code point]` is 1: tokenizers' own whitespace, codepoints.stripped_by_added_tokens)."""
    while pos < end:
        cp, width = decode_utf8(buf, pos)
        if cp >= stripped.shape[0] or stripped[cp] == 0:
            break
        pos += width
    return pos


@numba.njit(cache=True)
def documents_with_added_token(
    buf,
    starts,
    ends,
    documents,
    patterns,
    pattern_starts,
    pattern_lengths,
    first_begin,
    first_end,
    first_mask,
    second_mask,
    uniform,
    lone_bytes,
):
    """1 for each listed document containing a match of the pattern set."""
    found = np.zeros(documents.shape[0], dtype=np.uint8)
    for i in range(documents.shape[0]):
        d = documents[i]
        _, length = next_added_token(
            buf,
            starts[d],
            ends[d],
            patterns,
            pattern_starts,
            pattern_lengths,
            first_begin,
            first_end,
            first_mask,
            second_mask,
            uniform,
            lone_bytes,
        )
        found[i] = length > 0
    return found


@numba.njit(cache=True)
def documents_not_nfc_safe(buf, starts, ends, nfc_safe):
    """Indices of documents with a code point outside the NFC-safe table (ASCII always is)."""
    out = np.empty(starts.shape[0], dtype=np.int64)
    n = 0
    for d in range(starts.shape[0]):
        pos = starts[d]
        end = ends[d]
        while pos < end:
            if buf[pos] < 0x80:
                # ASCII is the common case: skip it eight bytes at a time
                while pos + 8 <= end and (load_u64(buf, pos) & ASCII_HIGH_BITS) == 0:
                    pos += 8
                while pos < end and buf[pos] < 0x80:
                    pos += 1
                continue
            cp, width = decode_utf8(buf, pos)
            if nfc_safe[cp] == 0:
                out[n] = d
                n += 1
                break
            pos += width
    return out[:n]


@numba.njit(cache=True)
def documents_with_bytes(buf, starts, ends, marked):
    """Indices of documents holding a byte b with marked[b] (a byte-level vocabulary's missing
    single-byte tokens: Refact has none for 0xF1, a 4-byte UTF-8 lead). Runs of ASCII skip
    eight bytes at a time when no ASCII byte is marked, as in the usual case."""
    out = np.empty(starts.shape[0], dtype=np.int64)
    ascii_marked = False
    for b in range(0x80):
        if marked[b]:
            ascii_marked = True
    n = 0
    for d in range(starts.shape[0]):
        pos = starts[d]
        end = ends[d]
        while pos < end:
            if not ascii_marked:
                while pos + 8 <= end and (load_u64(buf, pos) & ASCII_HIGH_BITS) == 0:
                    pos += 8
                if pos >= end:
                    break
            if marked[buf[pos]]:
                out[n] = d
                n += 1
                break
            pos += 1
    return out[:n]


# ----------------------------------------------------------------------------------------------
# Sequences of simple splits (DeepSeek-LLM): each step cuts every piece the steps before it left


STEP_ISOLATE = 0  # [C]: each member a piece of its own (also Digits(individual_digits=true))
STEP_RUN = 1  # [C]+: each run of members a piece (also Digits(individual_digits=false))
STEP_SPACE_RUN = 2  # \s?[C]+: a run of members, with the whitespace character before it
STEP_TRAILING_SPACE = 3  # \s+$: the whitespace a piece ends with
STEP_BOUNDED_RUN = 4  # [C]{1,k}: each run of members cut into pieces of at most k (the row's limit)
# DeepSeek-V3's last Split (the row's class bits are those of \p{L}, \p{M}, \p{P}, \p{S}, a byte
# each): [ASCII punctuation][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*
# |\s*[\r\n]+|\s+(?!\S)|\s+, whose matches and the gaps between them are the pieces.
STEP_DEEPSEEK_V3_WORDS = 5
SEQUENCE_SPACE_BIT = 1  # bit of \s in a sequence's membership table; the steps' classes get others


@numba.njit(cache=True)
def sequence_cuts(buf, start, end, members, program, cuts):
    """Marks cuts[k] = 1 at every offset k from `start` where a piece of buf[start:end] begins
    or ends (cuts[0] and cuts[end - start] included), for a Sequence of Split(regex, Isolated)
    steps whose regexes have the shapes STEP_*. `members[cp]` holds a bit per class (bit
    SEQUENCE_SPACE_BIT: \\s); `program` rows are (STEP_*, class bit, limit of a bounded run).

    Each step works as tokenizers' Sequence does: on every piece the steps before it left, on
    its own (a match never crosses a cut; `$` is a piece's end), scanning leftmost-first as
    Oniguruma does; a piece is the text between two cuts, so steps only ever add cuts."""
    n = end - start
    for k in range(n + 1):
        cuts[k] = 0
    cuts[0] = 1
    cuts[n] = 1
    for s in range(program.shape[0]):
        kind = program[s, 0]
        bit = program[s, 1]
        p = start
        if kind == STEP_ISOLATE:
            while p < end:
                cp, width = decode_utf8(buf, p)
                if members[cp] & bit:
                    cuts[p - start] = 1
                    cuts[p + width - start] = 1
                p += width
        elif kind == STEP_RUN:
            inside = False
            while p < end:
                cp, width = decode_utf8(buf, p)
                member = (members[cp] & bit) != 0
                if member != inside:
                    cuts[p - start] = 1
                    inside = member
                p += width
        elif kind == STEP_SPACE_RUN:
            while p < end:
                cp, width = decode_utf8(buf, p)
                after = p + width
                run_from = -1
                # \s? takes the whitespace when a member follows it in the same piece; else it
                # matches empty and the run must start here (U+3000 is both \s and CJK punctuation)
                if (members[cp] & SEQUENCE_SPACE_BIT) and after < end and cuts[after - start] == 0:
                    c1, w1 = decode_utf8(buf, after)
                    if members[c1] & bit:
                        run_from = after + w1
                if run_from < 0 and (members[cp] & bit):
                    run_from = after
                if run_from < 0:
                    p = after
                    continue
                q = run_from
                while q < end and cuts[q - start] == 0:
                    c2, w2 = decode_utf8(buf, q)
                    if not (members[c2] & bit):
                        break
                    q += w2
                cuts[p - start] = 1
                cuts[q - start] = 1
                p = q
        elif kind == STEP_BOUNDED_RUN:
            limit = program[s, 2]
            taken = 0  # members in the current piece of the run
            while p < end:
                cp, width = decode_utf8(buf, p)
                if members[cp] & bit:
                    if taken == 0 or taken == limit or cuts[p - start]:
                        cuts[p - start] = 1
                        taken = 0
                    taken += 1
                elif taken:
                    cuts[p - start] = 1
                    taken = 0
                p += width
        elif kind == STEP_DEEPSEEK_V3_WORDS:
            while p < end:
                piece_end = p + 1
                while cuts[piece_end - start] == 0:
                    piece_end += 1
                q = p
                while q < piece_end:
                    match_end = deepseek_v3_match_end(buf, q, piece_end, members, bit)
                    if match_end > q:
                        cuts[q - start] = 1
                        cuts[match_end - start] = 1
                        q = match_end
                    else:  # no match here: the gap up to the next match is a piece
                        q += utf8_width(buf[q])
                p = piece_end
        else:  # STEP_TRAILING_SPACE
            # Oniguruma's $ also matches before a line feed: a whitespace run that does not end
            # the piece still matches up to its last LF (one after its first character).
            run_from = -1  # where the current whitespace run begins, if in one
            last_line_feed = -1
            while p < end:
                cp, width = decode_utf8(buf, p)
                if members[cp] & SEQUENCE_SPACE_BIT:
                    if run_from < 0:
                        run_from = p
                        last_line_feed = -1
                    elif cp == LF:
                        last_line_feed = p
                else:
                    if run_from >= 0 and last_line_feed > run_from:
                        cuts[run_from - start] = 1
                        cuts[last_line_feed - start] = 1
                    run_from = -1
                p += width
                if cuts[p - start]:  # the piece ends here, and so does its final run
                    if run_from >= 0:
                        cuts[run_from - start] = 1
                    run_from = -1
    return cuts


@numba.njit(inline="always")
def members_run_end(buf, pos, end, members, bits):
    while pos < end:
        cp, width = decode_utf8(buf, pos)
        if not (members[cp] & bits):
            return pos
        pos += width
    return pos


@numba.njit(inline="always")
def is_ascii_letter(b):
    return (65 <= b <= 90) or (97 <= b <= 122)


@numba.njit(inline="always")
def is_ascii_punctuation(cp):
    # The regex's first class lists exactly these 32 characters.
    return (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126)


@numba.njit
def deepseek_v3_match_end(buf, pos, end, members, class_bits):
    """End of the match of DeepSeek-V3's last Split regex at `pos` within buf[pos:end] (a piece
    the steps before left), or `pos` where no alternative matches (leftmost alternative wins,
    greedy, as in Oniguruma). `class_bits` packs the membership bits of \\p{L}, \\p{M}, \\p{P},
    \\p{S}, a byte each."""
    letter = class_bits & 0xFF
    mark = (class_bits >> 8) & 0xFF
    punctuation = ((class_bits >> 16) & 0xFF) | ((class_bits >> 24) & 0xFF)
    letter_or_mark = letter | mark
    cp, width = decode_utf8(buf, pos)
    after = pos + width
    own = members[cp]
    # [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+
    if is_ascii_punctuation(cp) and after < end and is_ascii_letter(buf[after]):
        q = after + 1
        while q < end and is_ascii_letter(buf[q]):
            q += 1
        return q
    # [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+: the prefix first, then without it
    if cp != LF and cp != CR and not (own & (letter | punctuation)) and after < end:
        c1, w1 = decode_utf8(buf, after)
        if members[c1] & letter_or_mark:
            return members_run_end(buf, after + w1, end, members, letter_or_mark)
    if own & letter_or_mark:
        return members_run_end(buf, after, end, members, letter_or_mark)
    # ' ?[\p{P}\p{S}]+[\r\n]*'
    run_from = -1
    if cp == SPACE and after < end:
        c1, w1 = decode_utf8(buf, after)
        if members[c1] & punctuation:
            run_from = after + w1
    if run_from < 0 and own & punctuation:
        run_from = after
    if run_from >= 0:
        return line_break_run_end(buf, members_run_end(buf, run_from, end, members, punctuation), end)
    if not (own & SEQUENCE_SPACE_BIT):
        return pos
    # \s*[\r\n]+ ends after the run's last line break; else \s+(?!\S) gives back the last
    # whitespace character before a non-space one, unless it is the only one (\s+).
    q = pos
    last_start = pos
    count = 0
    after_line_break = -1
    while q < end:
        c1, w1 = decode_utf8(buf, q)
        if not (members[c1] & SEQUENCE_SPACE_BIT):
            break
        if c1 == LF or c1 == CR:
            after_line_break = q + w1
        last_start = q
        count += 1
        q += w1
    if after_line_break >= 0:
        return after_line_break
    if q == end or count == 1:
        return q
    return last_start


@numba.njit(cache=True)
def sequence_boundaries(buf, members, program):
    """All piece ends of one text (for tests and diagnostics, like pretoken_boundaries)."""
    cuts = np.zeros(buf.shape[0] + 1, dtype=np.uint8)
    sequence_cuts(buf, 0, buf.shape[0], members, program, cuts)
    ends = np.empty(buf.shape[0], dtype=np.int64)
    n = 0
    for k in range(1, buf.shape[0] + 1):
        if cuts[k]:
            ends[n] = k
            n += 1
    return ends[:n]
