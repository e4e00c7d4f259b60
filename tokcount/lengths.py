"""What the scanning process keeps of the per-document lengths, in memory bounded by the number of
distinct lengths and of work units rather than of documents:

- ``LengthHistogram``: tokens per document as an exact sparse histogram (length -> documents),
  mergeable across units, from which the report's order statistics come out exactly as
  ``numpy.percentile(..., method="inverted_cdf")`` would give them on the full array;
- ``SizeSpill`` and ``SequenceSizes``: tokens per sequence in file order, written to a local spill
  file as units finish and read back only for the few pieces a split boundary falls in. Every
  piece's count and token sum stay in memory, so a range's tokens are whole pieces' sums plus
  at most two partial reads.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

PERCENTILES = (50, 90, 99)


@dataclass
class LengthHistogram:
    values: np.ndarray  # distinct lengths, ascending (int64)
    counts: np.ndarray  # documents of each length (int64, > 0)

    @classmethod
    def of(cls, lengths: np.ndarray) -> LengthHistogram:
        values, counts = np.unique(np.asarray(lengths, dtype=np.int64), return_counts=True)
        return cls(values, counts.astype(np.int64))

    @classmethod
    def merge(cls, histograms: Iterable[LengthHistogram]) -> LengthHistogram:
        parts = list(histograms)
        if len(parts) == 1:
            return parts[0]
        values = np.concatenate([np.zeros(0, np.int64)] + [h.values for h in parts])
        counts = np.concatenate([np.zeros(0, np.int64)] + [h.counts for h in parts])
        distinct, where = np.unique(values, return_inverse=True)
        merged = np.zeros(distinct.size, np.int64)
        np.add.at(merged, where, counts)
        return cls(distinct, merged)

    @property
    def documents(self) -> int:
        return int(self.counts.sum())

    def stats(self) -> dict | None:
        """The report's ``document_tokens``: bit for bit what ``report.length_stats`` gives on
        the full array of lengths (the same float operations pick the ranks and the mean)."""
        n = self.documents
        if n == 0:
            return None
        values, counts = self.values, self.counts
        # numpy's inverted_cdf rank: index n*q - 1, up to the next integer unless it is one
        index = n * np.true_divide(np.asarray(PERCENTILES), 100) - 1
        previous = np.floor(index)
        ranks = np.where(index - previous == 0, previous, previous + 1).astype(np.intp)
        ranks[ranks < 0] = 0
        at = np.searchsorted(np.cumsum(counts), ranks, side="right")
        p50, p90, p99 = (int(values[i]) for i in at)
        top = int(values[-1])
        total = int(np.dot(values, counts)) if values.size else 0
        positive = values > 0
        keys = np.floor(np.log2(values[positive])).astype(np.int64) + 1
        bins = np.zeros(max(2, top.bit_length() + 1, int(keys.max(initial=0)) + 1), np.int64)
        np.add.at(bins, keys, counts[positive])
        bins[0] = n - int(counts[positive].sum())
        return {
            "min": int(values[0]),
            "p50": p50,
            "p90": p90,
            "p99": p99,
            "max": top,
            "mean": float(np.float64(total) / n),  # numpy's mean: a float64 sum (exact below 2^53) over n
            "log2_histogram": bins.tolist(),
        }


@dataclass(frozen=True)
class Piece:
    """A run of consecutive sequences: how many, their tokens, and how to read them back."""

    count: int
    tokens: int
    read: Callable[[int, int], np.ndarray]  # (lo, hi) within the piece -> its sizes there


class SequenceSizes:
    """Tokens per sequence, in order, held as pieces. Array-like where a caller needs the
    values (``np.asarray``, ``tolist``, ``sum``, slicing read them back); the plan needs only
    ``size`` and ``range_tokens``."""

    ndim = 1
    dtype = np.dtype(np.int64)

    def __init__(self, pieces: Sequence[Piece]):
        self.pieces = [p for p in pieces if p.count]
        counts = np.asarray([p.count for p in self.pieces], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._tokens = np.concatenate([[0], np.cumsum([p.tokens for p in self.pieces], dtype=np.int64)])
        self.size = int(self._starts[-1])

    @classmethod
    def of_array(cls, sizes: np.ndarray) -> SequenceSizes:
        """An array (e.g. an index's memory-mapped sizes) as one piece."""
        return cls([Piece(int(sizes.shape[0]), int(np.sum(sizes, dtype=np.int64)), lambda lo, hi: sizes[lo:hi])])

    @property
    def shape(self) -> tuple[int]:
        return (self.size,)

    def __len__(self) -> int:
        return self.size

    def range_tokens(self, beg: int, end: int) -> int:
        """Tokens of sequences [beg, end), 0 <= beg <= end <= size: whole pieces from their
        sums, the pieces the ends fall in read back."""
        if end <= beg:
            return 0
        first = int(np.searchsorted(self._starts, beg, side="right")) - 1
        last = int(np.searchsorted(self._starts, end, side="left")) - 1
        if first == last:
            lo = beg - int(self._starts[first])
            return int(np.sum(self.pieces[first].read(lo, lo + end - beg), dtype=np.int64))
        head = self._partial(first, beg - int(self._starts[first]), self.pieces[first].count)
        tail = self._partial(last, 0, end - int(self._starts[last]))
        return head + int(self._tokens[last] - self._tokens[first + 1]) + tail

    def _partial(self, i: int, lo: int, hi: int) -> int:
        piece = self.pieces[i]
        if lo == 0 and hi == piece.count:
            return piece.tokens
        return int(np.sum(piece.read(lo, hi), dtype=np.int64))

    def total(self) -> int:
        return int(self._tokens[-1])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        values = np.concatenate([np.zeros(0, np.int64)] + [np.asarray(p.read(0, p.count)) for p in self.pieces])
        return values.astype(dtype or np.int64, copy=False)

    def __getitem__(self, key):
        return np.asarray(self)[key]

    def tolist(self) -> list[int]:
        return np.asarray(self).tolist()

    def sum(self, dtype=None) -> int:
        return self.total()

    def astype(self, dtype, copy: bool = True) -> np.ndarray:
        return np.asarray(self).astype(dtype)

    @classmethod
    def concatenate(cls, parts: Sequence[np.ndarray | SequenceSizes]) -> SequenceSizes:
        pieces: list[Piece] = []
        for part in parts:
            pieces.extend((part if isinstance(part, SequenceSizes) else cls.of_array(part)).pieces)
        return cls(pieces)


def compact(sizes: np.ndarray) -> np.ndarray:
    """The sizes in the narrowest unsigned type that holds them: what travels from a worker and
    lands in the spill file (tiny documents: 2 bytes each, not 8)."""
    sizes = np.asarray(sizes)
    top = int(sizes.max()) if sizes.size else 0
    for dtype in (np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return sizes.astype(dtype)
    return sizes.astype(np.int64)


# Sizes are spilled in pieces of at most this many sequences, so that reading back the piece a
# split boundary falls in costs at most a few MB, however large the work unit was.
SPILL_PIECE = 1 << 20


class SizeSpill:
    """One scan's spill file of sequence sizes (appended as units finish, each piece in its own
    narrow type), in a temporary directory that lives as long as a ``SequenceSizes`` reading
    from it."""

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="tokcount-sizes-")
        self.path = os.path.join(self._directory.name, "sizes.bin")
        self._file = open(self.path, "ab")
        self._offset = 0

    def write(self, sizes: np.ndarray) -> list[Piece]:
        pieces = []
        for lo in range(0, int(sizes.shape[0]), SPILL_PIECE):
            chunk = np.ascontiguousarray(sizes[lo : lo + SPILL_PIECE])
            self._file.write(chunk.data)
            pieces.append(
                Piece(int(chunk.shape[0]), int(chunk.sum(dtype=np.int64)), self._reader(self._offset, chunk.dtype))
            )
            self._offset += chunk.nbytes
        self._file.flush()  # read back by this process while the scan goes on
        return pieces

    def _reader(self, offset: int, dtype: np.dtype) -> Callable[[int, int], np.ndarray]:
        def read(lo: int, hi: int) -> np.ndarray:
            # keeps the spill (and its directory) alive as long as a piece can be read
            return np.fromfile(self.path, dtype=dtype, count=hi - lo, offset=offset + dtype.itemsize * lo)

        return read

    def close(self) -> None:
        self._file.close()
