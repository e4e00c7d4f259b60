"""numba kernels of the fast exact counter: pure functions over arrays (no I/O, no Python objects).

Text arrives as UTF-8 bytes (valid: Python encoded it). The pipeline per document is the one
`tokenizers` runs in ``encode``, restricted to what counting needs:

1. added tokens: leftmost-longest literal matches, first of the non-normalized set over the
   whole text, then of the normalized set inside each gap (each match is one token);
2. pre-tokenization of each remaining piece with a hand-written matcher of the GPT-2 or the
   Llama-3 regex (code point classes come from tables derived from the regex engine);
3. per pre-token, a count cache (open addressing, keys verified byte for byte); a miss runs
   byte-level BPE with the merge order of tokenizers' ``Word::merge_all`` and caches the count.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from tokcount.codepoint_classes import (
    CLASS_LETTER,
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

PATTERN_GPT2 = 0
PATTERN_LLAMA3 = 1

APOSTROPHE = 39
SPACE = 32
LF = 10
CR = 13

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)

# meta[] slots of the pre-token cache
META_ENTRIES = 0
META_ARENA_USED = 1
META_HITS = 2
META_MISSES = 3
META_EVICTIONS = 4
META_EVICTED_ENTRIES = 5
META_ADDED_TOKENS = 6
META_UNCACHED = 7  # pre-tokens longer than the key limit: BPE every time
META_SLOT_MASK = 8  # slots in use - 1: the table grows inside the allocated slot array
META_HOT_HITS = 9  # hits answered by the hot cache (included in META_HITS)
META_SIZE = 10

FIRST_SLOT_COUNT = 1 << 12

SHORT_KEY_BYTES = 8
# Cache record info word: offset << 32 | hits << 18 | count << 9 | length
INFO_LENGTH_MASK = (1 << 9) - 1
INFO_COUNT_SHIFT = 9
INFO_COUNT_MASK = (1 << 9) - 1
INFO_HITS_SHIFT = 18
INFO_HITS_MASK = (1 << 14) - 1
INFO_OFFSET_SHIFT = 32
INFO_LOW_MASK = (1 << 32) - 1
MAX_KEY_BYTES = INFO_LENGTH_MASK  # counts never exceed lengths (a token has >= 1 byte)


# ----------------------------------------------------------------------------------------------
# Machine words


@intrinsic
def load_u64(typingctx, buf, index):
    """The 8 bytes buf[index:index+8] as a little-endian uint64, in one unaligned load (the
    caller guarantees they are inside the array)."""
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.dtype == types.uint8 and buf.layout == "C"):
        return None  # the pointer arithmetic below assumes contiguous bytes
    sig = types.uint64(buf, index)

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        at = context.cast(builder, args[1], signature.args[1], types.intp)
        pointer = builder.bitcast(builder.gep(array.data, [at]), ir.IntType(64).as_pointer())
        return builder.load(pointer, align=1)

    return sig, codegen


@intrinsic
def trailing_zeros(typingctx, value):
    """Count of trailing zero bits of a uint64 (64 for zero)."""
    if value != types.uint64:
        return None
    sig = types.uint64(value)

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return sig, codegen


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
            return pos if pos < end else end
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
    alternative wins, as in Oniguruma)."""
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
        if next_cls != CLASS_SPACE:
            return class_run_end(buf, after + next_width, end, next_cls, classes)
    if cls != CLASS_SPACE:
        return class_run_end(buf, after, end, cls, classes)
    return whitespace_end(buf, pos, end, classes, False)


@numba.njit(inline="always")
def whitespace_end(buf, pos, end, classes, line_breaks_end_match):
    """\\s+(?!\\S)|\\s+ over the whitespace run at `pos`; with `line_breaks_end_match`, first
    \\s*[\\r\\n]+ (Llama-3), which ends right after the run's last line break."""
    last_start = pos
    count = 0
    after_line_break = -1
    q = pos
    while q < end:
        cp, width = decode_utf8(buf, q)
        if classes[cp] != CLASS_SPACE:
            break
        if cp == LF or cp == CR:
            after_line_break = q + width
        last_start = q
        count += 1
        q += width
    if line_breaks_end_match and after_line_break >= 0:
        return after_line_break
    if q == end or count == 1:
        return q
    # Followed by non-space: the lookahead gives back the last whitespace character.
    return last_start


@numba.njit(inline="always")
def llama3_pretoken_end(buf, pos, end, classes, folds):
    """End of the pre-token at `pos` for the Llama-3 / cl100k pattern
    (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*
    |\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"""
    cp, width = decode_utf8(buf, pos)
    after = pos + width
    if cp == APOSTROPHE and after < end:
        c1, w1 = decode_utf8(buf, after)
        f1 = folds[c1]
        if f1 & (FOLD_S | FOLD_T | FOLD_M | FOLD_D):
            return after + w1
        if f1 & (FOLD_R | FOLD_V | FOLD_L) and after + w1 < end:
            c2, w2 = decode_utf8(buf, after + w1)
            f2 = folds[c2]
            if ((f1 & (FOLD_R | FOLD_V)) and (f2 & FOLD_E)) or ((f1 & FOLD_L) and (f2 & FOLD_L)):
                return after + w1 + w2
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
        while digits < 3 and q < end:
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
    return whitespace_end(buf, pos, end, classes, True)


@numba.njit(inline="always")
def pretoken_end(pattern, buf, pos, end, classes, folds):
    if pattern == PATTERN_GPT2:
        return gpt2_pretoken_end(buf, pos, end, classes)
    return llama3_pretoken_end(buf, pos, end, classes, folds)


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
        start = pattern_starts[k]
        same = True
        for i in range(1, length):
            if buf[q + i] != patterns[start + i]:
                same = False
                break
        if same:
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
                return q if q < end else end
            q += 7  # the last byte's partner is in the next word
    else:
        while q < end and q + 8 <= buf.shape[0]:
            hits = zero_bytes(load_u64(buf, q) ^ first_word)
            if hits != 0:
                q += np.int64(trailing_zeros(hits) >> np.uint64(3))
                return q if q < end else end
            q += 8
    while q < end and buf[q] != first:
        q += 1
    return q if q < end else end


@numba.njit(inline="always")
def next_added_token(buf, pos, end, patterns, pattern_starts, pattern_lengths, first_begin, first_end, first_mask, second_mask, uniform, lone_bytes):
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
            length = first_added_token_at(buf, q, end, patterns, pattern_starts, pattern_lengths, first_begin, first_end, uniform)
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
        length = first_added_token_at(buf, q, end, patterns, pattern_starts, pattern_lengths, first_begin, first_end, uniform)
        if length > 0:
            return q, length
    return end, 0


@numba.njit(cache=True)
def documents_with_added_token(buf, starts, ends, documents, patterns, pattern_starts, pattern_lengths, first_begin, first_end, first_mask, second_mask, uniform, lone_bytes):
    """1 for each listed document containing a match of the pattern set."""
    found = np.zeros(documents.shape[0], dtype=np.uint8)
    for i in range(documents.shape[0]):
        d = documents[i]
        start, length = next_added_token(
            buf, starts[d], ends[d], patterns, pattern_starts, pattern_lengths, first_begin, first_end, first_mask, second_mask, uniform,
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


# ----------------------------------------------------------------------------------------------
# Hashing and byte-keyed tables


@intrinsic
def prefetch_row(typingctx, table, row):
    """Hint the CPU to fetch table[row, 0] into its caches (no effect on results)."""
    if not (isinstance(table, types.Array) and table.ndim == 2):
        return None
    sig = types.void(table, row)

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        at = context.cast(builder, args[1], signature.args[1], types.intp)
        zero = context.get_constant(types.intp, 0)
        pointer = cgutils.get_item_pointer(context, builder, signature.args[0], array, [at, zero])
        byte_pointer = builder.bitcast(pointer, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer.type, i32, i32, i32]), "llvm.prefetch.p0")
        builder.call(prefetch, [byte_pointer, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(inline="always")
def pack_short_key(buf, start, length):
    """buf[start:start+length] (1 to 8 bytes), little-endian and zero padded: one load and a
    mask, without the byte loop whose varying trip count the CPU mispredicts."""
    if start + 8 <= buf.shape[0]:
        return load_u64(buf, start) & (np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(64 - 8 * length))
    key = np.uint64(0)
    for i in range(length):
        key |= np.uint64(buf[start + i]) << np.uint64(8 * i)
    return key


@numba.njit(inline="always")
def hash_bytes(buf, start, end):
    """64-bit hash of buf[start:end], eight bytes per multiply (a multiply per byte made the
    hash of long pre-tokens cost as much as their table probe)."""
    h = FNV_OFFSET ^ (np.uint64(end - start) * np.uint64(0x9E3779B97F4A7C15))
    i = start
    while i + 8 <= end:
        h = (h ^ load_u64(buf, i)) * FNV_PRIME
        h ^= h >> np.uint64(32)
        i += 8
    w = np.uint64(0)
    if i < end:
        w = pack_short_key(buf, i, end - i)
    h = (h ^ w) * FNV_PRIME
    # Final avalanche so that the low bits (slot index) depend on every byte.
    h ^= h >> np.uint64(29)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    return h


@numba.njit(inline="always")
def same_bytes(a, a_start, b, b_start, length):
    for i in range(length):
        if a[a_start + i] != b[b_start + i]:
            return False
    return True


@numba.njit(inline="always")
def slot_word(h, entry):
    # High 32 hash bits as a tag (most mismatching probes stop here), entry + 1 below (0 = empty).
    return np.int64(((h >> np.uint64(32)) << np.uint64(32)) | np.uint64(entry + 1))


@numba.njit(inline="always")
def slot_tag_matches(word, h):
    return (np.uint64(word) >> np.uint64(32)) == (h >> np.uint64(32))


@numba.njit(cache=True)
def build_key_table(keys, key_starts, key_lengths, slot_count):
    """Open-addressing table over byte-string keys (the vocabulary, for ignore_merges)."""
    slots = np.zeros(slot_count, dtype=np.int64)
    mask = np.uint64(slot_count - 1)
    for k in range(key_starts.shape[0]):
        h = hash_bytes(keys, key_starts[k], key_starts[k] + key_lengths[k])
        i = h & mask
        while slots[i] != 0:
            i = (i + np.uint64(1)) & mask
        slots[i] = slot_word(h, k)
    return slots


@numba.njit(inline="always")
def filter_bit(h, bits):
    # high hash bits: the table's slot index uses the low ones
    return np.int64((h >> np.uint64(24)) & np.uint64(bits.shape[0] * 64 - 1))


@numba.njit(cache=True)
def build_key_filter(keys, key_starts, key_lengths, word_count):
    """Bitset (word_count 64-bit words, a power of two) with the filter_bit of every key set."""
    bits = np.zeros(word_count, dtype=np.uint64)
    for k in range(key_starts.shape[0]):
        bit = filter_bit(hash_bytes(keys, key_starts[k], key_starts[k] + key_lengths[k]), bits)
        bits[bit >> 6] |= np.uint64(1) << np.uint64(bit & 63)
    return bits


@numba.njit(inline="always")
def key_table_find(slots, keys, key_starts, key_lengths, buf, start, end):
    """Index of the key equal to buf[start:end], or -1."""
    return key_table_find_hashed(slots, keys, key_starts, key_lengths, buf, start, end, hash_bytes(buf, start, end))


@numba.njit(inline="always")
def key_table_find_hashed(slots, keys, key_starts, key_lengths, buf, start, end, h):
    mask = np.uint64(slots.shape[0] - 1)
    i = h & mask
    length = end - start
    while True:
        word = slots[i]
        if word == 0:
            return -1
        if slot_tag_matches(word, h):
            k = (word & 0xFFFFFFFF) - 1
            if key_lengths[k] == length and same_bytes(keys, key_starts[k], buf, start, length):
                return k
        i = (i + np.uint64(1)) & mask


# ----------------------------------------------------------------------------------------------
# BPE: the merge map and tokenizers' merge order


@numba.njit(inline="always")
def pair_hash(key):
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    return h ^ (h >> np.uint64(31))


@numba.njit(cache=True)
def build_merge_table(pair_keys, ranks, slot_count, rank_bits):
    """(left id << id_bits | right id) -> rank, packed as pair key << rank_bits | rank in one
    int64 per slot (-1 = empty): 8 bytes a slot keeps the table twice as dense in the CPU
    caches as [key, value] rows, and the new id is read by rank (merge_ids) only when a merge
    is applied. Later duplicates overwrite earlier ones, as collecting into tokenizers' HashMap
    does."""
    table = np.full(slot_count, -1, dtype=np.int64)
    mask = np.uint64(slot_count - 1)
    for k in range(pair_keys.shape[0]):
        key = pair_keys[k]
        i = pair_hash(key) & mask
        while table[i] != -1 and (table[i] >> rank_bits) != key:
            i = (i + np.uint64(1)) & mask
        table[i] = (key << rank_bits) | np.int64(ranks[k])
    return table


@numba.njit(inline="always")
def table_rank(merges, key, rank_bits):
    mask = np.uint64(merges.shape[0] - 1)
    rank_mask = (np.int64(1) << rank_bits) - 1
    i = pair_hash(key) & mask
    while True:
        w = merges[i]
        if w < 0:
            return np.int64(-1)
        if (w >> rank_bits) == key:
            return w & rank_mask
        i = (i + np.uint64(1)) & mask


@numba.njit(inline="always")
def pair_filter_bit(key, bits):
    # high hash bits: the table's slot index uses the low ones
    return np.int64((pair_hash(key) >> np.uint64(40)) & np.uint64(bits.shape[0] * 64 - 1))


@numba.njit(cache=True)
def build_pair_filter(pair_keys, word_count):
    """Bitset (word_count 64-bit words, a power of two) with the pair_filter_bit of every key set."""
    bits = np.zeros(word_count, dtype=np.uint64)
    for k in range(pair_keys.shape[0]):
        bit = pair_filter_bit(pair_keys[k], bits)
        bits[bit >> 6] |= np.uint64(1) << np.uint64(bit & 63)
    return bits


@numba.njit(inline="always")
def merge_rank(merges, key, rank_bits):
    """Rank of the merge of the pair `key` (left << id_bits | right), or -1.

    `merges` is (hot, rest, hot_below, id_bits, rest_filter): `hot` holds every merge whose two
    ids are below `hot_below` and `rest` the others, so each pair has one table to look in.
    Frequent tokens have small ids (ids follow the merge order), so many lookups land in the
    small hot table, which stays in the CPU caches while the full one (megabytes) does not.
    Most lookups in `rest` find nothing (the pair is not a merge): a bit filter of its keys,
    small enough for the CPU caches, answers most of those without touching the table.
    """
    hot, rest, hot_below, id_bits, rest_filter = merges
    if (key >> id_bits) < hot_below and (key & ((np.int64(1) << id_bits) - 1)) < hot_below:
        return table_rank(hot, key, rank_bits)
    bit = pair_filter_bit(key, rest_filter)
    if not ((rest_filter[bit >> 6] >> np.uint64(bit & 63)) & np.uint64(1)):
        return np.int64(-1)
    return table_rank(rest, key, rank_bits)


@numba.njit(cache=True)
def build_byte_pair_ranks(byte_ids, merges, id_bits, rank_bits):
    """rank of the merge of bytes (b0, b1) at b0 << 8 | b1, or -1: a word's first n - 1
    lookups are all byte pairs, and this direct table keeps the frequent ones in a few lines."""
    out = np.full(65536, -1, dtype=np.int32)
    for b0 in range(256):
        if byte_ids[b0] < 0:
            continue
        for b1 in range(256):
            if byte_ids[b1] >= 0:
                out[b0 * 256 + b1] = merge_rank(merges, (byte_ids[b0] << id_bits) | byte_ids[b1], rank_bits)
    return out


@numba.njit(inline="always")
def heap_push(heap_keys, heap_pairs, size, key, pair):
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if heap_keys[parent] <= key:
            break
        heap_keys[i] = heap_keys[parent]
        heap_pairs[i] = heap_pairs[parent]
        i = parent
    heap_keys[i] = key
    heap_pairs[i] = pair
    return size + 1


@numba.njit(inline="always")
def heap_pop(heap_keys, heap_pairs, size):
    """Removes the minimum (caller read it at index 0); returns the new size."""
    size -= 1
    key = heap_keys[size]
    pair = heap_pairs[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and heap_keys[child + 1] < heap_keys[child]:
            child += 1
        if heap_keys[child] >= key:
            break
        heap_keys[i] = heap_keys[child]
        heap_pairs[i] = heap_pairs[child]
        i = child
    heap_keys[i] = key
    heap_pairs[i] = pair
    return size


@numba.njit
def bpe_token_count(buf, start, end, byte_ids, byte_pair_ranks, merges, merge_ids, id_bits, rank_bits, workspace):
    """Number of tokens tokenizers' BPE produces for the byte-level word buf[start:end].

    Follows ``Word::merge_all``: a min-heap of (rank, position) candidates; a popped candidate
    is applied when its position is still alive, has a right neighbour, and the current pair
    there maps to the candidate's new id (tokenizers checks the id, not the rank, and so do
    we; when the pair is the one the candidate was made for, that holds without a lookup).
    The candidate's new id is merge_ids[rank] (the map is single-valued, so the rank pushed
    for a pair determines the id tokenizers pushed).
    """
    n = end - start
    if n <= 1:
        return n
    if workspace.shape[1] < 3 * n + 1:
        workspace = np.empty((6, 3 * n + 1), dtype=np.int64)
    symbol = workspace[0]
    prev = workspace[1]
    nxt = workspace[2]
    alive = workspace[3]
    heap_keys = workspace[4]
    heap_pairs = workspace[5]
    for i in range(n):
        symbol[i] = byte_ids[buf[start + i]]
        prev[i] = i - 1
        nxt[i] = i + 1
        alive[i] = 1
    nxt[n - 1] = -1
    size = 0
    for i in range(n - 1):
        rank = np.int64(byte_pair_ranks[(np.int64(buf[start + i]) << 8) | np.int64(buf[start + i + 1])])
        if rank >= 0:
            size = heap_push(heap_keys, heap_pairs, size, (rank << 32) | i, (symbol[i] << id_bits) | symbol[i + 1])
    remaining = n
    while size > 0:
        top = heap_keys[0]
        top_pair = heap_pairs[0]
        size = heap_pop(heap_keys, heap_pairs, size)
        pos = top & 0xFFFFFFFF
        if alive[pos] == 0:
            continue
        right = nxt[pos]
        if right == -1:
            continue
        new_id = np.int64(merge_ids[top >> 32])
        current_pair = (symbol[pos] << id_bits) | symbol[right]
        if current_pair != top_pair:
            current_rank = merge_rank(merges, current_pair, rank_bits)
            if current_rank < 0 or merge_ids[current_rank] != new_id:
                continue
        symbol[pos] = new_id
        nxt[pos] = nxt[right]
        alive[right] = 0
        remaining -= 1
        if nxt[right] != -1:
            prev[nxt[right]] = pos
        p = prev[pos]
        if p >= 0:
            pair = (symbol[p] << id_bits) | new_id
            r = merge_rank(merges, pair, rank_bits)
            if r >= 0:
                size = heap_push(heap_keys, heap_pairs, size, (r << 32) | p, pair)
        q = nxt[pos]
        if q != -1:
            pair = (new_id << id_bits) | symbol[q]
            r = merge_rank(merges, pair, rank_bits)
            if r >= 0:
                size = heap_push(heap_keys, heap_pairs, size, (r << 32) | pos, pair)
    return remaining


# Words up to this many bytes use the rank scan below instead of the heap.
SCAN_BPE_MAX_BYTES = 32
NO_MERGE = np.int64(1) << 62


@numba.njit(inline="always")
def scan_bpe_token_count(buf, start, end, byte_ids, byte_pair_ranks, merges, merge_ids, id_bits, rank_bits, workspace):
    """bpe_token_count for short words (no heap: short scans are cheaper than heap upkeep).

    Repeatedly merges the current pair of lowest rank, leftmost on ties. That is what
    ``Word::merge_all`` does when distinct vocabulary strings have distinct ids (the caller
    checks): a popped entry whose pair has changed since its push is skipped there, because
    the pair now spans more bytes and so maps to another id; each current pair has exactly
    one live heap entry, with its own rank.
    """
    n = end - start
    symbol = workspace[0]
    rank = workspace[1]
    for i in range(n):
        symbol[i] = byte_ids[buf[start + i]]
    for i in range(n - 1):
        r = np.int64(byte_pair_ranks[(np.int64(buf[start + i]) << 8) | np.int64(buf[start + i + 1])])
        rank[i] = r if r >= 0 else NO_MERGE
    m = n
    while m > 1:
        best = NO_MERGE
        at = -1
        for i in range(m - 1):
            if rank[i] < best:
                best = rank[i]
                at = i
        if at < 0:
            break
        new_id = np.int64(merge_ids[best])
        symbol[at] = new_id
        for j in range(at + 1, m - 1):
            symbol[j] = symbol[j + 1]
            rank[j] = rank[j + 1]
        m -= 1
        if at > 0:
            r = merge_rank(merges, (symbol[at - 1] << id_bits) | new_id, rank_bits)
            rank[at - 1] = r if r >= 0 else NO_MERGE
        if at < m - 1:
            r = merge_rank(merges, (new_id << id_bits) | symbol[at + 1], rank_bits)
            rank[at] = r if r >= 0 else NO_MERGE
    return m


@numba.njit(inline="always")
def word_token_count(model, buf, start, end, workspace):
    """Tokens of the word: 1 when ignore_merges is on and the word is a vocabulary token, else
    its BPE count. The vocabulary is asked first, as tokenizers does: a quarter of Llama-3's
    new words are vocabulary tokens, whose BPE is the costliest kind (every byte merges), and
    a bit filter of the vocabulary's hashes answers most of the others without the table
    (whose lines are rarely in the CPU caches). Distinct words of 16 MB, A/B: -3 % time."""
    byte_ids, byte_pair_ranks, merges, merge_ids, id_bits, rank_bits, scan_ok, ignore_merges, vocab_filter, vocab_slots, vocab_keys, vocab_starts, vocab_lengths = model
    n = end - start
    if n <= 1:
        return n
    if ignore_merges:
        h = hash_bytes(buf, start, end)
        bit = filter_bit(h, vocab_filter)
        if (vocab_filter[bit >> 6] >> np.uint64(bit & 63)) & np.uint64(1):
            if key_table_find_hashed(vocab_slots, vocab_keys, vocab_starts, vocab_lengths, buf, start, end, h) >= 0:
                return 1
    if scan_ok and n <= SCAN_BPE_MAX_BYTES:
        return scan_bpe_token_count(buf, start, end, byte_ids, byte_pair_ranks, merges, merge_ids, id_bits, rank_bits, workspace)
    return bpe_token_count(buf, start, end, byte_ids, byte_pair_ranks, merges, merge_ids, id_bits, rank_bits, workspace)


@numba.njit(cache=True)
def words_token_counts(buf, starts, ends, *model):
    """BPE token count of each word buf[starts[i]:ends[i]] (for tests: BPE alone vs tokenizers)."""
    workspace = np.empty((6, 3 * 64 + 1), dtype=np.int64)
    out = np.empty(starts.shape[0], dtype=np.int64)
    for i in range(starts.shape[0]):
        out[i] = word_token_count(model, buf, starts[i], ends[i], workspace)
    return out


# ----------------------------------------------------------------------------------------------
# The pre-token count cache
#
# One 16-byte record per slot (slots[i, 0], slots[i, 1]), so a hit reads one cache line:
#   key word: keys of at most 8 bytes are stored inline (little-endian, zero padded); longer
#             keys store their 64-bit hash and their bytes live in the arena;
#   info:     arena offset << 32 | hits << 18 | count << 9 | length   (0 = empty slot).
# Lookups compare key word and length; long keys then compare the arena bytes, so a hash
# collision can never return another key's count.


@numba.njit(inline="always")
def mix64(h):
    h ^= h >> np.uint64(31)
    h *= np.uint64(0x7FB5D329728EA185)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x81DADEF4BC2DD44D)
    h ^= h >> np.uint64(33)
    return h


@numba.njit(inline="always")
def short_key_hash(key, length):
    return mix64(key + np.uint64(length) * np.uint64(0x9E3779B97F4A7C15))


@numba.njit(inline="always")
def record_hash(key, info):
    length = np.int64(info & INFO_LENGTH_MASK)
    if length <= SHORT_KEY_BYTES:
        return short_key_hash(key, length)
    return key


@numba.njit(inline="always")
def insert_record(slots, mask, key, info):
    i = record_hash(key, info) & mask
    while slots[i, 1] != 0:
        i = (i + np.uint64(1)) & mask
    slots[i, 0] = np.int64(key)
    slots[i, 1] = info


@numba.njit
def live_records(slots, meta):
    slot_count = meta[META_SLOT_MASK] + 1
    keys = np.empty(meta[META_ENTRIES], dtype=np.uint64)
    infos = np.empty(meta[META_ENTRIES], dtype=np.int64)
    n = 0
    for i in range(slot_count):
        if slots[i, 1] != 0:
            keys[n] = np.uint64(slots[i, 0])
            infos[n] = slots[i, 1]
            n += 1
    return keys[:n], infos[:n]


@numba.njit
def grow(slots, meta):
    """Double the slots in use (within the allocated array) and re-insert every record."""
    keys, infos = live_records(slots, meta)
    meta[META_SLOT_MASK] = 2 * meta[META_SLOT_MASK] + 1
    slot_count = meta[META_SLOT_MASK] + 1
    slots[:slot_count, :] = 0
    mask = np.uint64(meta[META_SLOT_MASK])
    for k in range(keys.shape[0]):
        insert_record(slots, mask, keys[k], infos[k])


@numba.njit(cache=True)
def evict(slots, arena, meta):
    """Keep at most half the records: those hit most since the last eviction (never-hit ones
    go); halve their hits (ageing), compact the arena, re-insert. Amortised O(1) per insert."""
    keys, infos = live_records(slots, meta)
    n = keys.shape[0]
    hits = (infos >> INFO_HITS_SHIFT) & INFO_HITS_MASK
    keep_at_most = n // 2
    threshold = np.int64(0)
    if keep_at_most > 0:
        threshold = np.partition(hits.copy(), n - keep_at_most)[n - keep_at_most]
    kept = np.flatnonzero((hits > threshold) & (hits > 0))
    # Compact long keys' bytes in increasing offset order, so copies never overwrite unread keys.
    offsets = infos[kept] >> INFO_OFFSET_SHIFT
    order = np.argsort(offsets)
    arena_used = 0
    slot_count = meta[META_SLOT_MASK] + 1
    slots[:slot_count, :] = 0
    mask = np.uint64(meta[META_SLOT_MASK])
    for j in range(order.shape[0]):
        k = kept[order[j]]
        info = infos[k]
        length = info & INFO_LENGTH_MASK
        aged = ((info >> INFO_HITS_SHIFT) & INFO_HITS_MASK) >> 1
        info = (info & ~(INFO_HITS_MASK << INFO_HITS_SHIFT)) | (aged << INFO_HITS_SHIFT)
        if length > SHORT_KEY_BYTES:
            old = info >> INFO_OFFSET_SHIFT
            for b in range(length):
                arena[arena_used + b] = arena[old + b]
            info = (info & INFO_LOW_MASK) | (np.int64(arena_used) << INFO_OFFSET_SHIFT)
            arena_used += length
        insert_record(slots, mask, keys[k], info)
    meta[META_EVICTIONS] += 1
    meta[META_EVICTED_ENTRIES] += n - kept.shape[0]
    meta[META_ENTRIES] = kept.shape[0]
    meta[META_ARENA_USED] = arena_used


@numba.njit(inline="always")
def hit(slots, i, info):
    """A lookup found record i: count the hit (saturating) and return the cached count."""
    if ((info >> INFO_HITS_SHIFT) & INFO_HITS_MASK) < INFO_HITS_MASK:
        slots[i, 1] = info + (np.int64(1) << INFO_HITS_SHIFT)
    return (info >> INFO_COUNT_SHIFT) & INFO_COUNT_MASK


@numba.njit(inline="always")
def cached_short_count(buf, start, length, slots, meta):
    """The cached count of the short key buf[start:start+length], or -1 (the hot path: ~90% of
    pre-tokens; kept apart from the long-key path, which made it a third slower)."""
    key = pack_short_key(buf, start, length)
    return cached_short_count_hashed(key, short_key_hash(key, length), length, slots, meta)


@numba.njit(inline="always")
def cached_short_count_hashed(key, h, length, slots, meta):
    mask = np.uint64(meta[META_SLOT_MASK])
    i = h & mask
    while True:
        info = slots[i, 1]
        if info == 0:
            return np.int64(-1)
        if np.uint64(slots[i, 0]) == key and (info & INFO_LENGTH_MASK) == length:
            return hit(slots, i, info)
        i = (i + np.uint64(1)) & mask


@numba.njit(inline="always")
def cached_long_count(buf, start, end, slots, arena, meta):
    """The cached count of buf[start:end] (more than SHORT_KEY_BYTES bytes), or -1."""
    return cached_long_count_hashed(buf, start, end, hash_bytes(buf, start, end), slots, arena, meta)


@numba.njit(inline="always")
def cached_long_count_hashed(buf, start, end, h, slots, arena, meta):
    length = end - start
    mask = np.uint64(meta[META_SLOT_MASK])
    i = h & mask
    while True:
        info = slots[i, 1]
        if info == 0:
            return np.int64(-1)
        if np.uint64(slots[i, 0]) == h and (info & INFO_LENGTH_MASK) == length:
            if same_bytes(arena, info >> INFO_OFFSET_SHIFT, buf, start, length):
                return hit(slots, i, info)
        i = (i + np.uint64(1)) & mask


@numba.njit(cache=True)
def count_and_cache(buf, start, end, slots, arena, meta, max_key_length, model, workspace):
    """Cache miss: BPE, then insert (evicting or growing first when needed)."""
    length = end - start
    count = word_token_count(model, buf, start, end, workspace)
    if length > max_key_length:
        meta[META_UNCACHED] += 1
        return count
    meta[META_MISSES] += 1
    if length <= SHORT_KEY_BYTES:
        key = pack_short_key(buf, start, length)
    else:
        key = hash_bytes(buf, start, end)
    arena_needed = length if length > SHORT_KEY_BYTES else 0
    max_entries = slots.shape[0] // 2  # load factor at most 1/2
    if meta[META_ENTRIES] >= max_entries or meta[META_ARENA_USED] + arena_needed > arena.shape[0]:
        evict(slots, arena, meta)
        if meta[META_ENTRIES] >= max_entries or meta[META_ARENA_USED] + arena_needed > arena.shape[0]:
            return count  # what was kept still fills the arena: count without caching
    elif 2 * (meta[META_ENTRIES] + 1) > meta[META_SLOT_MASK] + 1:
        # Grow only as needed: a small table stays in the CPU caches.
        grow(slots, meta)
    offset = np.int64(0)
    if arena_needed:
        offset = meta[META_ARENA_USED]
        for k in range(length):
            arena[offset + k] = buf[start + k]
        meta[META_ARENA_USED] = offset + length
    info = (offset << INFO_OFFSET_SHIFT) | (np.int64(count) << INFO_COUNT_SHIFT) | np.int64(length)
    insert_record(slots, np.uint64(meta[META_SLOT_MASK]), key, info)
    meta[META_ENTRIES] += 1
    return count


# Cache misses are counted in batches of this many: BPE back to back keeps the merge tables in
# the CPU caches, where BPE interleaved with pre-tokenizing found them evicted (half again slower).
PENDING_MISSES = 1024
# Pre-tokens split ahead of their cache lookups (see count_documents).
RING = 16
# The hot cache: a small direct-mapped table of short pre-tokens (key word, count << 9 |
# length), 128 KiB, which stays in the CPU's L2 where the main table (megabytes) does not. The
# 8k most frequent short pre-tokens are ~80 % of all pre-tokens, so most lookups end here.
# Entries are facts about a key (its count), never slot positions, so they stay valid when
# the main table grows or evicts.
HOT_SLOTS = 1 << 13


@numba.njit
def count_pending(buf, pending, n_pending, counts, slots, arena, meta, max_key_length, model, workspace):
    """Adds each pending pre-token's count to its document's; returns how many were cache hits
    by now (a pre-token missed twice within one batch is counted and inserted once)."""
    hits = 0
    for k in range(n_pending):
        start = pending[0, k]
        end = pending[1, k]
        length = end - start
        count = np.int64(-1)
        if length <= SHORT_KEY_BYTES:
            count = cached_short_count(buf, start, length, slots, meta)
        elif length <= max_key_length:
            count = cached_long_count(buf, start, end, slots, arena, meta)
        if count >= 0:
            hits += 1
        else:
            count = count_and_cache(buf, start, end, slots, arena, meta, max_key_length, model, workspace)
        counts[pending[2, k]] += count
    return hits


@numba.njit(cache=True)
def count_documents(
    buf,
    starts,
    ends,
    documents,
    counts,
    pattern,
    classes,
    folds,
    unnormalized_tokens,
    normalized_tokens,
    cache,
    model,
    pretokens_only,
):
    """Adds to counts[d], for each d in `documents`, the tokens of buf[starts[d]:ends[d]]
    (post-processor tokens excluded).

    `unnormalized_tokens` / `normalized_tokens`: (patterns, starts, lengths, first_begin,
    first_end, first_mask, second_mask, uniform, lone_bytes) of the added tokens matched on the original and
    on the normalized text (for text that was normalized here, the caller passes an empty first
    set: tokenizers matches it only before normalizing).
    `cache`: (slots, arena, meta, max_key_length, hot): PretokenCache.as_tuple().
    `model`: (byte_ids, byte_pair_ranks, merges, merge_ids, id_bits, rank_bits, scan_ok, ignore_merges,
    vocab_filter, vocab_slots, vocab_keys, vocab_starts, vocab_lengths).
    `pretokens_only`: count each pre-token as 1 (tests compare the splitting with tokenizers'
    pre-tokenizer under a one-token-per-word model).
    """
    u_patterns, u_starts, u_lengths, u_first_begin, u_first_end, u_pair, u_single, u_uniform, u_lone = unnormalized_tokens
    n_patterns, n_starts, n_lengths, n_first_begin, n_first_end, n_pair, n_single, n_uniform, n_lone = normalized_tokens
    slots, arena, meta, max_key_length, hot = cache
    hot_mask = np.uint64(hot.shape[0] - 1)
    workspace = np.empty((6, 3 * 64 + 1), dtype=np.int64)
    pending = np.empty((3, PENDING_MISSES), dtype=np.int64)  # rows: start, end, document
    ring = np.empty((4, RING), dtype=np.int64)  # rows: start, end, key word, hash
    n_pending = 0
    pretokens = np.int64(0)
    hits = np.int64(0)
    hot_hits = np.int64(0)
    for di in range(documents.shape[0]):
        d = documents[di]
        end = ends[d]
        pos = starts[d]
        total = np.int64(0)
        while pos < end:
            outer_match, outer_length = next_added_token(
                buf, pos, end, u_patterns, u_starts, u_lengths, u_first_begin, u_first_end, u_pair, u_single, u_uniform, u_lone
            )
            while pos < outer_match:
                inner_match, inner_length = next_added_token(
                    buf, pos, outer_match, n_patterns, n_starts, n_lengths, n_first_begin, n_first_end, n_pair, n_single, n_uniform,
                    n_lone,
                )
                while pos < inner_match:
                    # Split up to RING pre-tokens and prefetch their cache slots, then look them
                    # up: the slots' cache misses overlap instead of coming one after another.
                    mask = np.uint64(meta[META_SLOT_MASK])
                    n_ring = 0
                    while pos < inner_match and n_ring < RING:
                        token_end = pretoken_end(pattern, buf, pos, inner_match, classes, folds)
                        # Written out: a helper returning (key, hash) measured 10% slower here.
                        length = token_end - pos
                        if length <= SHORT_KEY_BYTES:
                            key = pack_short_key(buf, pos, length)
                            h = short_key_hash(key, length)
                            if not pretokens_only:
                                j = h & hot_mask
                                if np.uint64(hot[j, 0]) == key and (hot[j, 1] & INFO_LENGTH_MASK) == length:
                                    total += hot[j, 1] >> INFO_COUNT_SHIFT
                                    hot_hits += 1
                                    pretokens += 1
                                    pos = token_end
                                    continue
                        elif length <= max_key_length:
                            h = hash_bytes(buf, pos, token_end)
                            key = h
                        else:
                            h = np.uint64(0)
                            key = h
                        prefetch_row(slots, h & mask)
                        ring[0, n_ring] = pos
                        ring[1, n_ring] = token_end
                        ring[2, n_ring] = np.int64(key)
                        ring[3, n_ring] = np.int64(h)
                        n_ring += 1
                        pos = token_end
                    pretokens += n_ring
                    for k in range(n_ring):
                        start = ring[0, k]
                        token_end = ring[1, k]
                        length = token_end - start
                        count = np.int64(-1)
                        if pretokens_only:
                            count = 1
                        elif length <= SHORT_KEY_BYTES:
                            h = np.uint64(ring[3, k])
                            count = cached_short_count_hashed(np.uint64(ring[2, k]), h, length, slots, meta)
                            if count >= 0:
                                j = h & hot_mask
                                hot[j, 0] = ring[2, k]
                                hot[j, 1] = (count << INFO_COUNT_SHIFT) | length
                        elif length <= max_key_length:
                            count = cached_long_count_hashed(buf, start, token_end, np.uint64(ring[3, k]), slots, arena, meta)
                        if count >= 0:
                            hits += 1
                            total += count
                        else:
                            pending[0, n_pending] = start
                            pending[1, n_pending] = token_end
                            pending[2, n_pending] = d
                            n_pending += 1
                            if n_pending == PENDING_MISSES:
                                hits += count_pending(buf, pending, n_pending, counts, slots, arena, meta, max_key_length, model, workspace)
                                n_pending = 0
                if inner_length > 0:
                    total += 1
                    meta[META_ADDED_TOKENS] += 1
                    pos = inner_match + inner_length
            if outer_length > 0:
                total += 1
                meta[META_ADDED_TOKENS] += 1
                pos = outer_match + outer_length
        counts[d] += total
    hits += count_pending(buf, pending, n_pending, counts, slots, arena, meta, max_key_length, model, workspace)
    meta[META_HITS] += hits + hot_hits
    meta[META_HOT_HITS] += hot_hits
    return pretokens
