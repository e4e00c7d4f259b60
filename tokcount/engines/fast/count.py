"""count_documents, the kernel that counts a batch of documents by driving the others (pretokenize,
bpe, cache); like them, a pure function over arrays (no I/O, no Python objects).

Text arrives as UTF-8 bytes (valid: Python encoded it). The pipeline per document is the one
`tokenizers` runs in ``encode``, restricted to what counting needs:

1. added tokens: leftmost-longest literal matches, first of the non-normalized set over the
   whole text, then of the normalized set inside each gap (each match is one token; one with
   rstrip drops the whitespace after it);
2. pre-tokenization of each remaining piece with a hand-written matcher of the GPT-2 or the
   Llama-3 regex, or a sequence of simple splits (code point classes come from tables derived
   from the regex engine);
3. per pre-token, a count cache (open addressing, keys verified byte for byte); a miss runs
   byte-level BPE with the merge order of tokenizers' ``Word::merge_all`` and caches the count.

With no pre-tokenizer (SentencePiece-style BPE), the pre-tokens are units no merge can span
(pretokenize.sentencepiece_unit_end) and the BPE is over characters with byte fallback.

The stages live in their own modules so that each can be read and tested alone.
"""

from __future__ import annotations

import numba
import numpy as np

from .bpe import hash_bytes, pack_short_key, prepended_token_count
from .cache import (
    INFO_COUNT_SHIFT,
    INFO_LENGTH_MASK,
    META_ADDED_TOKENS,
    META_HITS,
    META_HOT_HITS,
    META_SLOT_MASK,
    SHORT_KEY_BYTES,
    cached_long_count_hashed,
    cached_short_count_hashed,
    count_pending,
    short_key_hash,
)
from .pretokenize import (
    PATTERN_SENTENCEPIECE_PREPEND,
    PATTERN_SPLIT_SEQUENCE,
    added_token_index,
    next_added_token,
    pretoken_end,
    sentencepiece_unit_end,
    sequence_cuts,
    stripped_end,
)
from .primitives import borrowed, prefetch_row

# Cache misses are counted in batches of this many: BPE back to back keeps the merge tables in
# the CPU caches, where BPE interleaved with pre-tokenizing found them evicted (half again slower).
PENDING_MISSES = 1024
# Pre-tokens split ahead of their cache lookups (see count_documents).
RING = 16


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
    program,
    unnormalized_tokens,
    normalized_tokens,
    strip,
    cache,
    model,
    pretokens_only,
):
    """Adds to counts[d], for each d in `documents`, the tokens of buf[starts[d]:ends[d]]
    (post-processor tokens excluded).

    `pattern`, `classes`, `folds`: the matcher (pretokenize.PATTERN_*) and its tables; for
    PATTERN_SPLIT_SEQUENCE, `classes` is the sequence's membership table and `program` its
    steps (pretokenize.sequence_cuts), which other patterns leave empty.
    `unnormalized_tokens` / `normalized_tokens`: (patterns, starts, lengths, first_begin,
    first_end, first_mask, second_mask, uniform, lone_bytes) of the added tokens matched on the original and
    on the normalized text (for text that was normalized here, the caller passes an empty first
    set: tokenizers matches it only before normalizing).
    `strip`: (rstrip flag per unnormalized pattern, or none at all; stripped[code point]): an
    added token with rstrip also takes the whitespace after it, which then counts for nothing.
    `cache`: (slots, arena, meta, max_key_length, hot): PretokenCache.as_tuple().
    `model`: (byte_ids, byte_pair_ranks, merges, merge_ids, id_bits, rank_bits, scan_ok, ignore_merges,
    vocab_filter, vocab_slots, vocab_keys, vocab_starts, vocab_lengths, sentencepiece, char_ids,
    byte_token_ids, meta_id): plan.BpeModel.as_tuple().
    `pretokens_only`: count each pre-token as 1 (tests compare the splitting with tokenizers'
    pre-tokenizer under a one-token-per-word model).
    """
    # Every array a per-pre-token helper takes, as a view without reference counts (see
    # primitives.borrowed; the caller holds them all for the whole call).
    buf, starts, ends, documents, counts, classes, folds, program, model = borrowed(
        (buf, starts, ends, documents, counts, classes, folds, program, model)
    )
    (u_patterns, u_starts, u_lengths, u_first_begin, u_first_end, u_pair, u_single, u_uniform, u_lone) = borrowed(
        unnormalized_tokens
    )
    n_patterns, n_starts, n_lengths, n_first_begin, n_first_end, n_pair, n_single, n_uniform, n_lone = borrowed(
        normalized_tokens
    )
    strip_right, stripped = borrowed(strip)
    slots, arena, meta, max_key_length, hot = borrowed(cache)
    hot_mask = np.uint64(hot.shape[0] - 1)
    workspace = np.empty((6, 3 * 64 + 1), dtype=np.int64)
    pending = np.empty((3, PENDING_MISSES), dtype=np.int64)  # rows: start, end, document
    ring = np.empty((4, RING), dtype=np.int64)  # rows: start, end, key word, hash
    n_pending = 0
    sequence = pattern == PATTERN_SPLIT_SEQUENCE
    prepend = pattern == PATTERN_SENTENCEPIECE_PREPEND
    longest = 0
    if sequence:
        for di in range(documents.shape[0]):
            longest = max(longest, ends[documents[di]] - starts[documents[di]])
    cuts = np.zeros(longest + 1, dtype=np.uint8)  # sequence_cuts' marks for one text segment
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
                buf,
                pos,
                end,
                u_patterns,
                u_starts,
                u_lengths,
                u_first_begin,
                u_first_end,
                u_pair,
                u_single,
                u_uniform,
                u_lone,
            )
            if prepend and pos < outer_match:
                # The Prepend normalizer runs on each gap between non-normalized added tokens
                # (the plan allows no normalized ones): the gap's first unit has its meta
                # symbol, and a count of its own, outside the cache.
                # Only this pattern gets here: pretoken_end would inline a second copy of every
                # matcher, which more than doubled the kernel's compile time (425 s -> 175 s).
                unit_end = sentencepiece_unit_end(buf, pos, outer_match, classes)
                total += 1 if pretokens_only else prepended_token_count(model, buf, pos, unit_end, workspace)
                pretokens += 1
                pos = unit_end
            while pos < outer_match:
                inner_match, inner_length = next_added_token(
                    buf,
                    pos,
                    outer_match,
                    n_patterns,
                    n_starts,
                    n_lengths,
                    n_first_begin,
                    n_first_end,
                    n_pair,
                    n_single,
                    n_uniform,
                    n_lone,
                )
                segment = pos
                if sequence and pos < inner_match:
                    sequence_cuts(buf, pos, inner_match, classes, program, cuts)
                while pos < inner_match:
                    # Split up to RING pre-tokens and prefetch their cache slots, then look them
                    # up: the slots' cache misses overlap instead of coming one after another.
                    mask = np.uint64(meta[META_SLOT_MASK])
                    n_ring = 0
                    while pos < inner_match and n_ring < RING:
                        if sequence:
                            token_end = pos + 1
                            while cuts[token_end - segment] == 0:
                                token_end += 1
                        else:
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
                            count = cached_long_count_hashed(
                                buf, start, token_end, np.uint64(ring[3, k]), slots, arena, meta
                            )
                        if count >= 0:
                            hits += 1
                            total += count
                        else:
                            pending[0, n_pending] = start
                            pending[1, n_pending] = token_end
                            pending[2, n_pending] = d
                            n_pending += 1
                            if n_pending == PENDING_MISSES:
                                hits += count_pending(
                                    buf,
                                    pending,
                                    n_pending,
                                    counts,
                                    slots,
                                    arena,
                                    meta,
                                    max_key_length,
                                    model,
                                    workspace,
                                )
                                n_pending = 0
                if inner_length > 0:
                    total += 1
                    meta[META_ADDED_TOKENS] += 1
                    pos = inner_match + inner_length
            if outer_length > 0:
                total += 1
                meta[META_ADDED_TOKENS] += 1
                pos = outer_match + outer_length
                if strip_right.shape[0] > 0:
                    k = added_token_index(
                        buf, outer_match, outer_length, u_patterns, u_starts, u_lengths, u_first_begin, u_first_end
                    )
                    if strip_right[k]:
                        pos = stripped_end(buf, pos, end, stripped)
        counts[d] += total
    hits += count_pending(buf, pending, n_pending, counts, slots, arena, meta, max_key_length, model, workspace)
    meta[META_HITS] += hits + hot_hits
    meta[META_HOT_HITS] += hot_hits
    return pretokens
