"""numba kernels: pure functions over arrays (no I/O, no Python objects).

Each kernel returns plain numbers; a negative position means "nothing found". Callers decide
what a finding means for the user.
"""

from __future__ import annotations

import numba
import numpy as np

NOT_FOUND = -1


BLOCK = 1 << 20  # elements per parallel block: big enough to amortise scheduling


@numba.njit(cache=True, parallel=True)
def index_sizes_summary(sizes, pointers, itemsize):
    """Sum the sizes and check them and the pointers, on all cores.

    Returns (total tokens as int64, first negative size position, first position where the
    pointer is not the exclusive cumulative sum of size*itemsize). The hot loops only count, so
    they vectorise; positions are searched for only when something is wrong.
    """
    n = sizes.shape[0]
    nblocks = (n + BLOCK - 1) // BLOCK
    totals = np.zeros(nblocks, dtype=np.int64)
    negatives = np.zeros(nblocks, dtype=np.int64)
    bad_steps = np.zeros(nblocks, dtype=np.int64)
    for b in numba.prange(nblocks):
        # Loops over local slices with explicit int64 casts: this is the form LLVM vectorises.
        lo = b * BLOCK
        hi = min(n, lo + BLOCK)
        block = sizes[lo:hi]
        total = np.int64(0)
        negative = np.int64(0)
        for i in range(block.shape[0]):
            size = np.int64(block[i])
            total += size
            negative += np.int64(size < 0)
        step_end = min(hi, n - 1)
        nxt = pointers[lo + 1 : step_end + 1]
        cur = pointers[lo:step_end]
        step_sizes = sizes[lo:step_end]
        bad = np.int64(0)
        for i in range(cur.shape[0]):
            bad += np.int64((nxt[i] - cur[i]) != np.int64(step_sizes[i]) * itemsize)
        totals[b] = total
        negatives[b] = negative
        bad_steps[b] = bad
    first_negative = NOT_FOUND
    if negatives.sum() > 0:
        for i in range(n):
            if sizes[i] < 0:
                first_negative = i
                break
    first_bad_pointer = NOT_FOUND
    if n > 0 and (bad_steps.sum() > 0 or pointers[0] != 0):
        expected = np.int64(0)
        for i in range(n):
            if pointers[i] != expected:
                first_bad_pointer = i
                break
            expected += np.int64(sizes[i]) * itemsize
    return totals.sum(), first_negative, first_bad_pointer


@numba.njit(cache=True, parallel=True)
def document_index_summary(doc_idx, num_sequences):
    """Check a doc_idx array and count empty documents.

    Returns (empty documents, first position where doc_idx decreases or exceeds
    num_sequences). doc_idx[0] == 0 and doc_idx[-1] == num_sequences are checked by the caller,
    where the message can say which end is wrong.
    """
    n = doc_idx.shape[0] - 1
    nblocks = (n + BLOCK - 1) // BLOCK
    empties = np.zeros(nblocks, dtype=np.int64)
    bads = np.zeros(nblocks, dtype=np.int64)
    for b in numba.prange(nblocks):
        lo = b * BLOCK
        hi = min(n, lo + BLOCK)
        nxt = doc_idx[lo + 1 : hi + 1]
        cur = doc_idx[lo:hi]
        empty = np.int64(0)
        bad = np.int64(0)
        for j in range(cur.shape[0]):
            step = nxt[j] - cur[j]
            empty += np.int64(step == 0)
            bad += np.int64((step < 0) | (nxt[j] > num_sequences))
        empties[b] = empty
        bads[b] = bad
    first_bad = NOT_FOUND
    if bads.sum() > 0:
        for j in range(n):
            if doc_idx[j + 1] < doc_idx[j] or doc_idx[j + 1] > num_sequences:
                first_bad = j + 1
                break
    return empties.sum(), first_bad


@numba.njit(cache=True, parallel=True)
def token_stats(tokens, vocab_size):
    """Max token id, count of ids outside [0, vocab_size), first such position.

    Blocks run on all cores. The per-block loop has no branches, so LLVM vectorises it; the
    first bad position is searched for only when there is one.
    """
    n = tokens.shape[0]
    nblocks = (n + BLOCK - 1) // BLOCK
    tops = np.zeros(nblocks, dtype=np.int64)
    counts = np.zeros(nblocks, dtype=np.int64)
    for b in numba.prange(nblocks):
        lo = b * BLOCK
        hi = min(n, lo + BLOCK)
        block = tokens[lo:hi]
        top = block[0]
        bad = np.int64(0)
        for i in range(block.shape[0]):
            t = block[i]
            top = max(top, t)
            bad += np.int64((t < 0) | (np.int64(t) >= vocab_size))
        tops[b] = top
        counts[b] = bad
    first = NOT_FOUND
    total = counts.sum()
    if total > 0:
        for i in range(n):
            t = np.int64(tokens[i])
            if t < 0 or t >= vocab_size:
                first = i
                break
    top = tops.max() if nblocks > 0 else np.int64(-1)
    return top, total, first


@numba.njit(cache=True, nogil=True)
def count_missing_eod(tokens, window_start, last_positions, eod):
    """Count documents whose last token (absolute positions, sorted) is not eod.

    Only positions inside [window_start, window_start + len(tokens)) are looked at.
    Returns (count, index into last_positions of the first miss).
    """
    missing = 0
    first = NOT_FOUND
    end = window_start + tokens.shape[0]
    lo = np.searchsorted(last_positions, window_start)
    for k in range(lo, last_positions.shape[0]):
        p = last_positions[k]
        if p >= end:
            break
        if tokens[p - window_start] != eod:
            missing += 1
            if first == NOT_FOUND:
                first = k
    return missing, first


@numba.njit(cache=True, nogil=True)
def hash_documents(tokens, starts, ends):
    """A 64-bit, order-sensitive hash of tokens[starts[k]:ends[k]] for each k (the same function
    runs over tokenizer output and over .bin windows, so equal ids give equal hashes)."""
    out = np.empty(starts.shape[0], dtype=np.uint64)
    for k in range(starts.shape[0]):
        h = np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(ends[k] - starts[k])
        for i in range(starts[k], ends[k]):
            h ^= np.uint64(np.int64(tokens[i]))
            h *= np.uint64(0xFF51AFD7ED558CCD)
            h ^= h >> np.uint64(33)
        out[k] = h
    return out


@numba.njit(cache=True, parallel=True)
def value_positions(tokens, value):
    """Positions (int64, ascending) where tokens[i] == value: counted per block on all cores,
    then written per block at its offset."""
    n = tokens.shape[0]
    nblocks = (n + BLOCK - 1) // BLOCK
    counts = np.zeros(nblocks, dtype=np.int64)
    for b in numba.prange(nblocks):
        lo = b * BLOCK
        hi = min(n, lo + BLOCK)
        block = tokens[lo:hi]
        c = np.int64(0)
        for i in range(block.shape[0]):
            c += np.int64(np.int64(block[i]) == value)
        counts[b] = c
    starts = np.zeros(nblocks + 1, dtype=np.int64)
    for b in range(nblocks):
        starts[b + 1] = starts[b] + counts[b]
    out = np.empty(starts[nblocks], dtype=np.int64)
    for b in numba.prange(nblocks):
        lo = b * BLOCK
        hi = min(n, lo + BLOCK)
        k = starts[b]
        for i in range(lo, hi):
            if np.int64(tokens[i]) == value:
                out[k] = i
                k += 1
    return out
