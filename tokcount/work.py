"""Work units of a text scan and the code that runs one, in whatever process an executor picks.

A unit is one byte range of a plain jsonl file, one compressed jsonl file or one interleaved
part of it (jsonl.read_documents), one Parquet row group or one Arrow record batch. Its result
holds the counts and the per-document lengths, in order (for an interleaved part, block by
block), so the scan can put files back together exactly.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from dataclasses import dataclass, field

import numpy as np

from . import columnar, jsonl
from .documents import BadRecord, DocumentBatch, TokenIdBatch
from .engines import make_counter
from .errors import FileCheckError
from .executors import report_progress

MAX_EXAMPLES = 5  # skipped records listed by position


@dataclass(frozen=True)
class TextPolicy:
    """How a document's count is defined: len(encode(text, add_special_tokens).ids), summed over
    the parts of a list value, plus 1 EOD per document with at least one token."""

    add_special_tokens: bool = True
    append_eod: bool = False
    text_key: str = "text"
    text_column: str = "text"
    skip_bad_records: bool = False


@dataclass(frozen=True)
class WorkUnit:
    source: int  # index of the source in the scan
    path: str
    format: str  # "jsonl", "parquet" or "arrow"
    part: int  # byte-range / row-group / record-batch number
    start: int
    stop: int
    cost: int  # bytes, for balancing and progress
    parts: int = 1  # > 1: `part` is one of this many interleaved parts of a compressed stream
    block_bytes: int = 0  # their block size, decided once by the planner for every part


@dataclass
class UnitResult:
    unit: WorkUnit
    documents: int = 0
    empty_documents: int = 0
    tokens: int = 0
    text_bytes: int = 0
    document_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sequence_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    skipped: int = 0
    skipped_examples: list[BadRecord] = field(default_factory=list)
    failure: FileCheckError | None = None
    engine: str = "hf"
    parity_checked: int = 0  # texts also counted with the reference by the parity guard
    parity_mismatch: dict | None = None
    blocks: list = field(default_factory=list)  # [block, documents, sequences] in reading order


class ParityMismatch(Exception):
    def __init__(self, detail: dict):
        super().__init__(detail)
        self.detail = detail


class ParityGuard:
    """Counts a sample of texts with the Hugging Face reference as well as the fast engine.

    The sample is the first texts of every file plus random texts spread through the data,
    drawn while the reference's time stays under ``budget`` of the fast engine's time, so the
    guard costs about 1 % of the run whatever the speed ratio.
    """

    def __init__(self, reference, budget: float = 0.01, first_texts: int = 32, seed: int = 0):
        self.reference = reference
        self.budget = budget
        self.first_texts = first_texts
        self.rng = random.Random(seed)
        self.fast_seconds = 0.0
        self.reference_seconds = 0.0

    def check(self, texts: list[str], fast_counts: np.ndarray, at_file_start: bool) -> int:
        """Raise ParityMismatch on the first disagreement; return how many texts were checked."""
        chosen = list(range(min(self.first_texts, len(texts)))) if at_file_start else []
        if texts and self.reference_seconds < self.budget * self.fast_seconds:
            chosen.append(self.rng.randrange(len(texts)))
        if not chosen:
            return 0
        started = time.perf_counter()
        expected = self.reference.count([texts[i] for i in chosen])
        self.reference_seconds += time.perf_counter() - started
        for i, n in zip(chosen, expected):
            if int(fast_counts[i]) != int(n):
                raise ParityMismatch({"text_index": i, "fast": int(fast_counts[i]), "reference": int(n),
                                      "preview": texts[i][:120]})
        return len(chosen)


_counter = None  # this process's reference TokenCounter
_fast = None  # this process's FastCounter, when the fast engine is in use
_guard: ParityGuard | None = None


def init_worker(tokenizer_spec, add_special_tokens: bool, engine: str = "hf", guard: bool = False) -> None:
    global _counter, _fast, _guard
    _counter = _fast = _guard = None
    if tokenizer_spec is None:
        return
    from .tokenizer import TokenCounter

    _counter = TokenCounter(tokenizer_spec, add_special_tokens=add_special_tokens)
    if engine == "fast":
        _skip_numba_extensions()
        _fast = make_counter(tokenizer_spec, add_special_tokens, "fast", reference=_counter)
        _guard = ParityGuard(_counter) if guard else None


def _skip_numba_extensions() -> None:
    """The kernels use no numba extension, but numba imports every installed one (awkward, for
    one, costs 0.13 s) before its first compile or cache load; in a worker process, skip them."""
    from numba.core import entrypoints

    if multiprocessing.parent_process() is not None:
        entrypoints._already_initialized = True


def run_unit(args: tuple[WorkUnit, TextPolicy]) -> UnitResult:
    unit, policy = args
    result = UnitResult(unit, engine="fast" if _fast is not None else "hf")
    doc_chunks, seq_chunks = [], []
    try:
        for batch in _batches(unit, policy):
            batch.at_file_start = unit.part == 0 and not doc_chunks
            if isinstance(batch, TokenIdBatch):
                docs, seqs = _count_token_ids(batch, result)
            else:
                docs, seqs = _count_texts(batch, policy, result)
            doc_chunks.append(docs)
            seq_chunks.append(seqs)
            block = getattr(batch, "block", 0)
            if result.blocks and result.blocks[-1][0] == block:
                result.blocks[-1][1] += len(docs)
                result.blocks[-1][2] += len(seqs)
            else:
                result.blocks.append([block, len(docs), len(seqs)])
            result.skipped += len(batch.bad)
            room = MAX_EXAMPLES - len(result.skipped_examples)
            if room > 0:
                result.skipped_examples.extend(batch.bad[:room])
            report_progress(nbytes=batch.input_bytes, tokens=int(docs.sum()), documents=len(docs))
    except FileCheckError as e:
        result.failure = e
        return result
    except ParityMismatch as e:
        # The caller recounts everything with the reference; this unit's numbers are void.
        result.parity_mismatch = e.detail
        return result
    if doc_chunks:
        result.document_tokens = np.concatenate(doc_chunks)
        result.sequence_sizes = np.concatenate(seq_chunks)
    return result


def _batches(unit: WorkUnit, policy: TextPolicy):
    if unit.format == "jsonl":
        if unit.parts > 1:
            return jsonl.read_documents(unit.path, unit.start, unit.stop, policy.text_key, policy.skip_bad_records,
                                        unit.part, unit.parts, unit.block_bytes)
        return jsonl.read_documents(unit.path, unit.start, unit.stop, policy.text_key, policy.skip_bad_records)
    return columnar.read_documents(unit.path, unit.part, policy.text_column, policy.skip_bad_records)


def _count_token_ids(batch: TokenIdBatch, result: UnitResult):
    lengths = np.asarray(batch.lengths, dtype=np.int64)
    result.documents += len(lengths)
    result.empty_documents += int(np.count_nonzero(lengths == 0))
    result.tokens += int(lengths.sum())
    return lengths, lengths[lengths > 0]


def _count_texts(batch: DocumentBatch, policy: TextPolicy, result: UnitResult):
    from .tokenizer import UnencodableText

    if _counter is None:
        raise AssertionError("text unit without a tokenizer")
    try:
        part_tokens = _count(batch.texts, result, getattr(batch, "at_file_start", False))
    except UnencodableText:
        part_tokens = _count_one_by_one(batch, policy, result)
    except ParityMismatch as e:
        e.detail["position"] = batch.locate(batch.positions[_document_of(batch, e.detail["text_index"])])
        raise
    # An ASCII str's length is its UTF-8 size (isascii is a flag check): encode only the others.
    result.text_bytes += sum(len(t) if t.isascii() else len(t.encode("utf-8", "surrogatepass")) for t in batch.texts)
    parts = np.asarray(batch.parts, dtype=np.int64)
    part_tokens = np.asarray(part_tokens, dtype=np.int64)
    ends = np.cumsum(parts)
    cumulative = np.concatenate([[0], np.cumsum(part_tokens)])
    doc_tokens = cumulative[ends] - cumulative[ends - parts]
    nonempty = doc_tokens > 0
    eod = 1 if policy.append_eod else 0
    if np.all(parts == 1):
        sequences = doc_tokens[nonempty] + eod
    else:
        sequences = _list_document_sequences(part_tokens, parts, eod)
    doc_tokens = doc_tokens + eod * nonempty
    result.documents += len(parts)
    result.empty_documents += int(np.count_nonzero(~nonempty))
    result.tokens += int(doc_tokens.sum())
    return doc_tokens, sequences


def _count(texts: list[str], result: UnitResult, at_file_start: bool) -> np.ndarray:
    if _fast is None:
        return _counter.count(texts)
    started = time.perf_counter()
    counts = _fast.count(texts)
    if _guard is not None:
        _guard.fast_seconds += time.perf_counter() - started
        result.parity_checked += _guard.check(texts, counts, at_file_start)
    return counts


def _document_of(batch: DocumentBatch, text_index: int) -> int:
    return int(np.searchsorted(np.cumsum(batch.parts), text_index, side="right"))


def _count_one_by_one(batch: DocumentBatch, policy: TextPolicy, result: UnitResult) -> list[int]:
    """Rare slow path: find the documents the tokenizer cannot take, raise or drop them."""
    from .tokenizer import UnencodableText

    counts, texts, parts, positions = [], [], [], []
    k = 0
    for n, position in zip(batch.parts, batch.positions):
        doc_texts = batch.texts[k:k + n]
        k += n
        try:
            doc_counts = list(_counter.count(doc_texts))
        except UnencodableText as e:
            where = batch.locate(position)
            if not policy.skip_bad_records:
                raise FileCheckError(result.unit.path, "unencodable text", str(e), where) from None
            batch.bad.append(BadRecord(where, "unencodable text", str(e)))
            continue
        counts.extend(doc_counts)
        texts.extend(doc_texts)
        parts.append(n)
        positions.append(position)
    batch.texts, batch.parts, batch.positions = texts, parts, positions
    return counts


def _list_document_sequences(part_tokens: np.ndarray, parts: np.ndarray, eod: int) -> np.ndarray:
    """Megatron preprocessing: each part with tokens is a sequence; EOD joins the last one."""
    out = []
    k = 0
    for n in parts:
        seqs = [int(t) for t in part_tokens[k:k + n] if t > 0]
        k += n
        if seqs:
            seqs[-1] += eod
        out.extend(seqs)
    return np.asarray(out, dtype=np.int64)


def plan_units(source_index: int, path: str, fmt: str, policy: TextPolicy, target_bytes: int,
               compressed_parts: int = 1) -> list[WorkUnit]:
    """Units of one file; a compressed jsonl file becomes up to `compressed_parts` interleaved
    parts (jsonl.interleaved_parts decides)."""
    if fmt == "jsonl":
        ranges = jsonl.split_ranges(path, target_bytes)
        parts = jsonl.interleaved_parts(path, compressed_parts) if jsonl.compression_of(path) else 1
        if parts > 1:
            size = ranges[0][1]
            block = jsonl.INTERLEAVE_BLOCK_BYTES
            return [WorkUnit(source_index, path, fmt, k, 0, size, max(1, size // parts), parts, block)
                    for k in range(parts)]
        return [WorkUnit(source_index, path, fmt, k, a, b, max(1, b - a)) for k, (a, b) in enumerate(ranges)]
    return [WorkUnit(source_index, path, fmt, part, 0, 0, cost)
            for part, cost in columnar.units(path, policy.text_column)]
