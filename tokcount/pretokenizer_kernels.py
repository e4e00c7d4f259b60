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
META_SIZE = 9

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


@numba.njit(inline="always")
def line_break_run_end(buf, pos, end):
    while pos < end and (buf[pos] == LF or buf[pos] == CR):
        pos += 1
    return pos


@numba.njit
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


@numba.njit
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
def next_added_token(buf, pos, end, patterns, pattern_starts, pattern_lengths, first_begin, first_end, pair_possible, single_possible):
    """(start, length) of the leftmost-longest match in buf[pos:end], or (end, 0).

    Patterns are sorted by first byte, then by decreasing length, so the first full match at a
    position is the longest. `pair_possible[b0*256+b1]` / `single_possible[b0]` reject most
    positions with one lookup.
    """
    if patterns.shape[0] == 0:
        return end, 0
    q = pos
    while q < end:
        b0 = np.int64(buf[q])
        if first_end[b0] > first_begin[b0]:
            candidate = single_possible[b0] != 0
            if not candidate and q + 1 < end:
                candidate = pair_possible[b0 * 256 + np.int64(buf[q + 1])] != 0
            if candidate:
                for k in range(first_begin[b0], first_end[b0]):
                    length = pattern_lengths[k]
                    if q + length > end:
                        continue
                    start = pattern_starts[k]
                    same = True
                    for i in range(1, length):
                        if buf[q + i] != patterns[start + i]:
                            same = False
                            break
                    if same:
                        return q, length
        q += 1
    return end, 0


@numba.njit(cache=True)
def documents_with_added_token(buf, starts, ends, documents, patterns, pattern_starts, pattern_lengths, first_begin, first_end, pair_possible, single_possible):
    """1 for each listed document containing a match of the pattern set."""
    found = np.zeros(documents.shape[0], dtype=np.uint8)
    for i in range(documents.shape[0]):
        d = documents[i]
        start, length = next_added_token(
            buf, starts[d], ends[d], patterns, pattern_starts, pattern_lengths, first_begin, first_end, pair_possible, single_possible
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


@numba.njit(inline="always")
def hash_bytes(buf, start, end):
    h = FNV_OFFSET
    for i in range(start, end):
        h = (h ^ np.uint64(buf[i])) * FNV_PRIME
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
def key_table_find(slots, keys, key_starts, key_lengths, buf, start, end):
    """Index of the key equal to buf[start:end], or -1."""
    h = hash_bytes(buf, start, end)
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
def pair_hash(left, right):
    h = (np.uint64(left) << np.uint64(32)) | np.uint64(right)
    h *= np.uint64(0x9E3779B97F4A7C15)
    return h ^ (h >> np.uint64(31))


@numba.njit(cache=True)
def build_merge_table(lefts, rights, ranks, new_ids, slot_count):
    """(left id, right id) -> (rank, new id) as rows [key, value] (one cache line per probe).
    Later duplicates overwrite earlier ones, as collecting into tokenizers' HashMap does."""
    table = np.empty((slot_count, 2), dtype=np.int64)
    table[:, 0] = -1
    table[:, 1] = 0
    mask = np.uint64(slot_count - 1)
    for k in range(lefts.shape[0]):
        key = (np.int64(lefts[k]) << 32) | np.int64(rights[k])
        i = pair_hash(lefts[k], rights[k]) & mask
        while table[i, 0] != -1 and table[i, 0] != key:
            i = (i + np.uint64(1)) & mask
        table[i, 0] = key
        table[i, 1] = (np.int64(ranks[k]) << 32) | np.int64(new_ids[k])
    return table


@numba.njit(inline="always")
def merge_lookup(merges, left, right):
    """(rank, new id) or (-1, -1)."""
    key = (np.int64(left) << 32) | np.int64(right)
    mask = np.uint64(merges.shape[0] - 1)
    i = pair_hash(left, right) & mask
    while True:
        k = merges[i, 0]
        if k == key:
            v = merges[i, 1]
            return v >> 32, v & 0xFFFFFFFF
        if k == -1:
            return -1, -1
        i = (i + np.uint64(1)) & mask


@numba.njit(inline="always")
def heap_push(heap_keys, heap_ids, heap_pairs, size, key, new_id, pair):
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if heap_keys[parent] <= key:
            break
        heap_keys[i] = heap_keys[parent]
        heap_ids[i] = heap_ids[parent]
        heap_pairs[i] = heap_pairs[parent]
        i = parent
    heap_keys[i] = key
    heap_ids[i] = new_id
    heap_pairs[i] = pair
    return size + 1


@numba.njit(inline="always")
def heap_pop(heap_keys, heap_ids, heap_pairs, size):
    """Removes the minimum (caller read it at index 0); returns the new size."""
    size -= 1
    key = heap_keys[size]
    new_id = heap_ids[size]
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
        heap_ids[i] = heap_ids[child]
        heap_pairs[i] = heap_pairs[child]
        i = child
    heap_keys[i] = key
    heap_ids[i] = new_id
    heap_pairs[i] = pair
    return size


@numba.njit
def bpe_token_count(buf, start, end, byte_ids, merges, workspace):
    """Number of tokens tokenizers' BPE produces for the byte-level word buf[start:end].

    Follows ``Word::merge_all``: a min-heap of (rank, position) candidates; a popped candidate
    is applied when its position is still alive, has a right neighbour, and the current pair
    there maps to the candidate's new id (tokenizers checks the id, not the rank, and so do
    we; when the pair is the one the candidate was made for, that holds without a lookup).
    """
    n = end - start
    if n <= 1:
        return n
    if workspace.shape[1] < 3 * n + 1:
        workspace = np.empty((7, 3 * n + 1), dtype=np.int64)
    symbol = workspace[0]
    prev = workspace[1]
    nxt = workspace[2]
    alive = workspace[3]
    heap_keys = workspace[4]
    heap_ids = workspace[5]
    heap_pairs = workspace[6]
    for i in range(n):
        symbol[i] = byte_ids[buf[start + i]]
        prev[i] = i - 1
        nxt[i] = i + 1
        alive[i] = 1
    nxt[n - 1] = -1
    size = 0
    for i in range(n - 1):
        rank, new_id = merge_lookup(merges, symbol[i], symbol[i + 1])
        if rank >= 0:
            size = heap_push(heap_keys, heap_ids, heap_pairs, size, (rank << 32) | i, new_id, (symbol[i] << 32) | symbol[i + 1])
    remaining = n
    while size > 0:
        top = heap_keys[0]
        top_id = heap_ids[0]
        top_pair = heap_pairs[0]
        size = heap_pop(heap_keys, heap_ids, heap_pairs, size)
        pos = top & 0xFFFFFFFF
        if alive[pos] == 0:
            continue
        right = nxt[pos]
        if right == -1:
            continue
        current_pair = (symbol[pos] << 32) | symbol[right]
        if current_pair != top_pair:
            current_rank, current_id = merge_lookup(merges, symbol[pos], symbol[right])
            if current_rank < 0 or current_id != top_id:
                continue
        symbol[pos] = top_id
        nxt[pos] = nxt[right]
        alive[right] = 0
        remaining -= 1
        if nxt[right] != -1:
            prev[nxt[right]] = pos
        p = prev[pos]
        if p >= 0:
            r, new_id = merge_lookup(merges, symbol[p], symbol[pos])
            if r >= 0:
                size = heap_push(heap_keys, heap_ids, heap_pairs, size, (r << 32) | p, new_id, (symbol[p] << 32) | symbol[pos])
        q = nxt[pos]
        if q != -1:
            r, new_id = merge_lookup(merges, symbol[pos], symbol[q])
            if r >= 0:
                size = heap_push(heap_keys, heap_ids, heap_pairs, size, (r << 32) | pos, new_id, (symbol[pos] << 32) | symbol[q])
    return remaining


@numba.njit
def word_token_count(buf, start, end, byte_ids, merges, ignore_merges, vocab_slots, vocab_keys, vocab_starts, vocab_lengths, workspace):
    if ignore_merges and key_table_find(vocab_slots, vocab_keys, vocab_starts, vocab_lengths, buf, start, end) >= 0:
        return 1
    return bpe_token_count(buf, start, end, byte_ids, merges, workspace)


@numba.njit(cache=True)
def words_token_counts(buf, starts, ends, byte_ids, merges, ignore_merges, vocab_slots, vocab_keys, vocab_starts, vocab_lengths):
    """BPE token count of each word buf[starts[i]:ends[i]] (for tests: BPE alone vs tokenizers)."""
    workspace = np.empty((7, 3 * 64 + 1), dtype=np.int64)
    out = np.empty(starts.shape[0], dtype=np.int64)
    for i in range(starts.shape[0]):
        out[i] = word_token_count(
            buf, starts[i], ends[i], byte_ids, merges, ignore_merges, vocab_slots, vocab_keys, vocab_starts, vocab_lengths, workspace
        )
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
def pack_short_key(buf, start, length):
    key = np.uint64(0)
    for i in range(length):
        key |= np.uint64(buf[start + i]) << np.uint64(8 * i)
    return key


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
def cached_count(buf, start, end, slots, arena, meta):
    """The cached count of buf[start:end], or -1 (the hot path: kept small so it stays fast)."""
    length = end - start
    if length <= SHORT_KEY_BYTES:
        key = pack_short_key(buf, start, length)
        h = short_key_hash(key, length)
    else:
        h = hash_bytes(buf, start, end)
        key = h
    mask = np.uint64(meta[META_SLOT_MASK])
    i = h & mask
    while True:
        info = slots[i, 1]
        if info == 0:
            return -1
        if np.uint64(slots[i, 0]) == key and (info & INFO_LENGTH_MASK) == length:
            if length <= SHORT_KEY_BYTES or same_bytes(arena, info >> INFO_OFFSET_SHIFT, buf, start, length):
                if ((info >> INFO_HITS_SHIFT) & INFO_HITS_MASK) < INFO_HITS_MASK:
                    slots[i, 1] = info + (np.int64(1) << INFO_HITS_SHIFT)
                return (info >> INFO_COUNT_SHIFT) & INFO_COUNT_MASK
        i = (i + np.uint64(1)) & mask


@numba.njit(cache=True)
def count_and_cache(buf, start, end, slots, arena, meta, max_key_length, model, workspace):
    """Cache miss: BPE, then insert (evicting or growing first when needed)."""
    byte_ids, merges, ignore_merges, vocab_slots, vocab_keys, vocab_starts, vocab_lengths = model
    length = end - start
    count = word_token_count(
        buf, start, end, byte_ids, merges, ignore_merges, vocab_slots, vocab_keys, vocab_starts, vocab_lengths, workspace
    )
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
    first_end, pair_possible, single_possible) of the added tokens matched on the original and
    on the normalized text (for text that was normalized here, the caller passes an empty first
    set: tokenizers matches it only before normalizing).
    `cache`: (slots, arena, meta, max_key_length).
    `model`: (byte_ids, merges, ignore_merges, vocab_slots, vocab_keys,
    vocab_starts, vocab_lengths).
    `pretokens_only`: count each pre-token as 1 (tests compare the splitting with tokenizers'
    pre-tokenizer under a one-token-per-word model).
    """
    u_patterns, u_starts, u_lengths, u_first_begin, u_first_end, u_pair, u_single = unnormalized_tokens
    n_patterns, n_starts, n_lengths, n_first_begin, n_first_end, n_pair, n_single = normalized_tokens
    slots, arena, meta, max_key_length = cache
    workspace = np.empty((7, 3 * 64 + 1), dtype=np.int64)
    pretokens = np.int64(0)
    hits = np.int64(0)
    for di in range(documents.shape[0]):
        d = documents[di]
        end = ends[d]
        pos = starts[d]
        total = np.int64(0)
        while pos < end:
            outer_match, outer_length = next_added_token(
                buf, pos, end, u_patterns, u_starts, u_lengths, u_first_begin, u_first_end, u_pair, u_single
            )
            while pos < outer_match:
                inner_match, inner_length = next_added_token(
                    buf, pos, outer_match, n_patterns, n_starts, n_lengths, n_first_begin, n_first_end, n_pair, n_single
                )
                while pos < inner_match:
                    token_end = pretoken_end(pattern, buf, pos, inner_match, classes, folds)
                    count = np.int64(-1)
                    if pretokens_only:
                        count = 1
                    elif token_end - pos <= max_key_length:
                        count = cached_count(buf, pos, token_end, slots, arena, meta)
                    if count >= 0:
                        hits += 1
                    else:
                        count = count_and_cache(buf, pos, token_end, slots, arena, meta, max_key_length, model, workspace)
                    total += count
                    pretokens += 1
                    pos = token_end
                if inner_length > 0:
                    total += 1
                    meta[META_ADDED_TOKENS] += 1
                    pos = inner_match + inner_length
            if outer_length > 0:
                total += 1
                meta[META_ADDED_TOKENS] += 1
                pos = outer_match + outer_length
        counts[d] += total
    meta[META_HITS] += hits
    return pretokens
