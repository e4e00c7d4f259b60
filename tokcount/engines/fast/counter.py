"""FastCounter, the fast engine's counter, and the pre-token count cache it owns.

Apart from the plan: a counter holds per-process state (the cache, its statistics, the
reference for the slow path), a plan only facts about a tokenizer.
"""

from __future__ import annotations

import numpy as np
from tokenizers import normalizers

from ...tokenizer import TokenizerSpec
from ..hf import TokenCounter
from . import cache, count, pretokenize
from .codepoints import codepoint_tables
from .plan import NO_PROGRAM, LiteralSet, engine_plan, fast_support

# Pre-tokens longer than this are not cached (BPE each time): long runs are rare and would
# crowd the arena.
MAX_CACHED_PRETOKEN_BYTES = 256
assert MAX_CACHED_PRETOKEN_BYTES <= cache.MAX_KEY_BYTES  # lengths and counts fit the record


_ONE_READ_ONLY_BYTE = np.frombuffer(b"\0", dtype=np.uint8)


class PretokenCache:
    """The pre-token -> token count cache: numpy arrays the kernels work in place.

    Memory is fixed at construction and bounded by `cache_bytes`: the hot cache
    (cache.HOT_SLOTS records of 16 bytes, 128 KiB, or 1/8 of a small budget), a power-of-two
    table of 16-byte records (about 3/4 of the rest; at most half the records in use, and only
    the prefix the current entry count needs is touched) and a byte arena for keys longer than
    8 bytes. Eviction and growth re-insert the live records through temporary arrays of at
    most 16 bytes per live record (plus the arena's compaction order).
    """

    RECORD_BYTES = 16

    def __init__(self, cache_bytes: int):
        if cache_bytes < 64 << 10:
            raise ValueError(f"cache_bytes={cache_bytes} is below the minimum of 64 KiB")
        hot_slots = min(cache.HOT_SLOTS, 1 << (cache_bytes // 8 // self.RECORD_BYTES).bit_length() - 1)
        budget = cache_bytes - hot_slots * self.RECORD_BYTES
        slot_count = 1 << ((budget * 3 // 4) // self.RECORD_BYTES).bit_length() - 1
        arena_bytes = min(budget - slot_count * self.RECORD_BYTES, (1 << 31) - 1)  # offsets < 2^31
        self.hot = np.zeros((hot_slots, 2), dtype=np.int64)
        self.slots = np.zeros((slot_count, 2), dtype=np.int64)
        self.arena = np.zeros(arena_bytes, dtype=np.uint8)
        self.meta = np.zeros(cache.META_SIZE, dtype=np.int64)
        self.meta[cache.META_SLOT_MASK] = min(slot_count, cache.FIRST_SLOT_COUNT) - 1

    @property
    def allocated_bytes(self) -> int:
        return self.slots.nbytes + self.arena.nbytes + self.meta.nbytes + self.hot.nbytes

    @property
    def capacity_entries(self) -> int:
        return self.slots.shape[0] // 2

    def as_tuple(self) -> tuple:
        return (self.slots, self.arena, self.meta, MAX_CACHED_PRETOKEN_BYTES, self.hot)


class FastCounter:
    """Exact token counts, ``count(texts)[i] == len(encode(texts[i], add_special_tokens).ids)``.

    Single-threaded (one per worker process, like TokenCounter); keeps its cache across calls.
    """

    def __init__(
        self,
        spec: TokenizerSpec,
        add_special_tokens: bool = True,
        cache_bytes: int = 256 << 20,
        reference: TokenCounter | None = None,
    ):
        supported, why = fast_support(spec)
        if not supported:
            raise ValueError(f"the fast engine does not support this tokenizer: {why}")
        self.spec = spec
        self.add_special_tokens = add_special_tokens
        self.plan = engine_plan(spec)
        self.tables = codepoint_tables()
        sequence = self.plan.sequence
        if sequence is not None:
            self._classes = sequence.members
        elif self.plan.sticky is not None:
            self._classes = self.plan.sticky
        else:
            self._classes = getattr(self.tables, self.plan.class_table)
        self._program = sequence.program if sequence is not None else NO_PROGRAM
        self.cache = PretokenCache(cache_bytes)
        # The slow path's reference; a worker passes its own so the tokenizer is built once.
        if reference is None or reference.add_special_tokens != add_special_tokens:
            reference = TokenCounter(spec, add_special_tokens)
        self._reference = reference
        # The plan's NFC is the tokenizer's whole normalizer (alone or a one-step Sequence).
        self._normalizer = normalizers.NFC() if self.plan.nfc else None
        self._no_literals = LiteralSet.of([]).as_tuple()
        self._strip = (self.plan.unnormalized.strip_right, self.plan.stripped)
        self._no_strip = (np.zeros(0, dtype=np.uint8), np.zeros(1, dtype=np.uint8))
        self._counters = {
            "documents": 0,
            "bytes": 0,
            "pretokens": 0,
            "nfc_documents": 0,
            "nfc_bytes": 0,
            "slow_documents": 0,
            "slow_bytes": 0,
            "unencodable_documents": 0,  # of the slow ones: a byte without a token
        }

    @property
    def stats(self) -> dict:
        meta = self.cache.meta
        return {
            **self._counters,
            "fast_bytes": self._counters["bytes"] - self._counters["slow_bytes"],
            "added_tokens": int(meta[cache.META_ADDED_TOKENS]),
            "cache_hits": int(meta[cache.META_HITS]),
            "cache_hot_hits": int(meta[cache.META_HOT_HITS]),
            "cache_misses": int(meta[cache.META_MISSES]),
            "uncached_pretokens": int(meta[cache.META_UNCACHED]),
            "cache_evictions": int(meta[cache.META_EVICTIONS]),
            "cache_evicted_entries": int(meta[cache.META_EVICTED_ENTRIES]),
            "cache_entries": int(meta[cache.META_ENTRIES]),
            "cache_capacity_entries": self.cache.capacity_entries,
            "cache_key_bytes": int(meta[cache.META_ARENA_USED]),
            "cache_allocated_bytes": self.cache.allocated_bytes,
        }

    @property
    def bytes_counted(self) -> int:
        """UTF-8 bytes of every text counted so far (the size each text had as it was counted)."""
        return self._counters["bytes"]

    def count(self, texts: list[str]) -> np.ndarray:
        """int64 array: element i is len(encode(texts[i], add_special_tokens).ids)."""
        return self._count(texts, pretokens_only=False)

    def count_pieces(self, texts: list[str]) -> np.ndarray:
        """Pre-tokens plus added tokens of each text (no BPE, no post-processor): what a
        tokenizer with the same normalizer, added tokens and pre-tokenizer but a model giving
        one token per word would count. For checking the splitting on its own."""
        return self._count(texts, pretokens_only=True)

    def _count(self, texts: list[str], pretokens_only: bool) -> np.ndarray:
        if not isinstance(texts, list):
            texts = list(texts)
        n = len(texts)
        counts = np.zeros(n, dtype=np.int64)
        if n == 0:
            return counts
        try:
            encoded = [text.encode("utf-8") for text in texts]
        except (UnicodeEncodeError, AttributeError):
            return self._reference.count(texts)  # raises the reference's error for the bad text
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        buf = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        if buf.shape[0] == 0:
            # numba wants a real array (no document reads it), and read-only like frombuffer's:
            # a writable one is another type, which compiled every kernel a second time (+40 s)
            buf = _ONE_READ_ONLY_BYTE
        self._counters["documents"] += n
        self._counters["bytes"] += int(ends[-1])

        fast = np.ones(n, dtype=bool)
        slow: list[int] = []
        renormalized: list[tuple[int, str]] = []
        if self.plan.has_unencodable_bytes and not pretokens_only:  # splitting needs no vocabulary
            unencodable = pretokenize.documents_with_bytes(buf, starts, ends, self.plan.unencodable_bytes)
            fast[unencodable] = False
            slow.extend(unencodable.tolist())
            self._counters["unencodable_documents"] += int(unencodable.shape[0])
        if self.plan.nfc:
            suspects = pretokenize.documents_not_nfc_safe(buf, starts, ends, self.tables.nfc_safe)
            suspects = suspects[fast[suspects]]
            if suspects.shape[0]:
                fast[suspects] = False
                has_unnormalized = np.zeros(suspects.shape[0], dtype=np.uint8)
                if not self.plan.unnormalized.empty:
                    has_unnormalized = pretokenize.documents_with_added_token(
                        buf, starts, ends, suspects, *self.plan.unnormalized.as_tuple()
                    )
                for d, exact_only in zip(suspects.tolist(), has_unnormalized.tolist()):
                    if exact_only:
                        # Added tokens are matched before normalization, the rest after: leave
                        # that interleaving to tokenizers.
                        slow.append(d)
                        continue
                    assert self._normalizer is not None  # the plan's nfc
                    normalized = self._normalizer.normalize_str(texts[d])
                    if normalized == texts[d]:
                        fast[d] = True
                    else:
                        renormalized.append((d, normalized))

        documents = np.flatnonzero(fast)
        self._run(buf, starts, ends, documents, counts, self.plan.unnormalized.as_tuple(), self._strip, pretokens_only)
        if renormalized:
            indices = np.array([d for d, _ in renormalized], dtype=np.int64)
            sub_counts, unencodable_after = self._count_normalized([text for _, text in renormalized], pretokens_only)
            counts[indices] = sub_counts
            # NFC may compose a code point whose bytes have no token: those go to tokenizers too.
            slow.extend(indices[unencodable_after].tolist())
            self._counters["unencodable_documents"] += int(unencodable_after.shape[0])
            done = np.delete(indices, unencodable_after)
            self._counters["nfc_documents"] += int(done.shape[0])
            self._counters["nfc_bytes"] += int(lengths[done].sum())
        if self.add_special_tokens and self.plan.post_processor_tokens and not pretokens_only:
            counts += self.plan.post_processor_tokens
        if slow:
            slow_indices = np.array(slow, dtype=np.int64)
            if pretokens_only:
                raise ValueError("count_pieces: a text needs tokenizers' encode (added token + NFC)")
            counts[slow_indices] = self._reference.count([texts[d] for d in slow])
            self._counters["slow_documents"] += len(slow)
            self._counters["slow_bytes"] += int(lengths[slow_indices].sum())
        return counts

    def _count_normalized(self, normalized_texts: list[str], pretokens_only: bool) -> tuple[np.ndarray, np.ndarray]:
        """Counts of texts that are already normalized: the non-normalized added tokens were
        looked for before normalizing (none found), so only the normalized set is matched.
        Also the indices of those holding a byte without a token, which are left uncounted."""
        encoded = [text.encode("utf-8") for text in normalized_texts]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        ends = np.cumsum(lengths)
        starts = ends - lengths
        buf = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        if buf.shape[0] == 0:
            buf = _ONE_READ_ONLY_BYTE
        counts = np.zeros(len(encoded), dtype=np.int64)
        documents = np.arange(len(encoded), dtype=np.int64)
        unencodable = np.zeros(0, dtype=np.int64)
        if self.plan.has_unencodable_bytes and not pretokens_only:
            unencodable = pretokenize.documents_with_bytes(buf, starts, ends, self.plan.unencodable_bytes)
            documents = np.delete(documents, unencodable)
        self._run(buf, starts, ends, documents, counts, self._no_literals, self._no_strip, pretokens_only)
        return counts, unencodable

    def _run(self, buf, starts, ends, documents, counts, unnormalized, strip, pretokens_only: bool) -> None:
        if documents.shape[0] == 0:
            return
        self._counters["pretokens"] += int(
            count.count_documents(
                buf,
                starts,
                ends,
                documents,
                counts,
                self.plan.pattern,
                self._classes,
                self.tables.folds,
                self._program,
                unnormalized,
                self.plan.normalized.as_tuple(),
                strip,
                self.cache.as_tuple(),
                self.plan.model.as_tuple(),
                pretokens_only,
            )
        )

    def warm_up(self) -> None:
        """Load the compiled kernels (numba loads them on a first call) without counting anything
        the statistics would show: a scanning process warms up before forking its workers."""
        counters = dict(self._counters)
        self.count(["warm up 1", ""])
        self._counters = counters
