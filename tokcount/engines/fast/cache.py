"""The pre-token -> token count cache: records in an open-addressing table, growth, eviction,
lookups and the insert after a miss (which runs BPE), and the meta[] slots of its statistics.

Its layout (meta slots, record info words, the hot cache's size) is shared with PretokenCache,
which allocates the arrays, and with count_documents, which inlines the lookups.
"""

from __future__ import annotations

import numba
import numpy as np

from .bpe import hash_bytes, pack_short_key, same_bytes, word_token_count
from .primitives import borrowed

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
        if np.uint64(slots[i, 0]) == h and (info & INFO_LENGTH_MASK) == length:  # noqa: SIM102  (hash, then bytes)
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
    workspace = borrowed(workspace)  # BPE's inlined helpers take it per word: no atomic counts
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
