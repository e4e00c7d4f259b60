"""Work units of a text scan and the code that runs one, in whatever process an executor picks.

A unit is one byte range of a plain jsonl file, one compressed jsonl file, one Parquet row
group or one Arrow record batch. Its result holds the counts and the per-document lengths, in
order, so the scan can put files back together exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import columnar, jsonl
from .documents import BadRecord, DocumentBatch, TokenIdBatch
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


_counter = None  # this process's TokenCounter


def init_worker(tokenizer_spec, add_special_tokens: bool) -> None:
    global _counter
    if tokenizer_spec is None:
        _counter = None
        return
    from .tokenizer import TokenCounter

    _counter = TokenCounter(tokenizer_spec, add_special_tokens=add_special_tokens)


def run_unit(args: tuple[WorkUnit, TextPolicy]) -> UnitResult:
    unit, policy = args
    result = UnitResult(unit)
    doc_chunks, seq_chunks = [], []
    try:
        for batch in _batches(unit, policy):
            if isinstance(batch, TokenIdBatch):
                docs, seqs = _count_token_ids(batch, result)
            else:
                docs, seqs = _count_texts(batch, policy, result)
            doc_chunks.append(docs)
            seq_chunks.append(seqs)
            result.skipped += len(batch.bad)
            room = MAX_EXAMPLES - len(result.skipped_examples)
            if room > 0:
                result.skipped_examples.extend(batch.bad[:room])
            report_progress(nbytes=batch.input_bytes, tokens=int(docs.sum()), documents=len(docs))
    except FileCheckError as e:
        result.failure = e
        return result
    if doc_chunks:
        result.document_tokens = np.concatenate(doc_chunks)
        result.sequence_sizes = np.concatenate(seq_chunks)
    return result


def _batches(unit: WorkUnit, policy: TextPolicy):
    if unit.format == "jsonl":
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
        part_tokens = _counter.count(batch.texts)
    except UnencodableText:
        part_tokens = _count_one_by_one(batch, policy, result)
    result.text_bytes += sum(len(t.encode("utf-8", "surrogatepass")) for t in batch.texts)
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


def plan_units(source_index: int, path: str, fmt: str, policy: TextPolicy, target_bytes: int) -> list[WorkUnit]:
    if fmt == "jsonl":
        return [WorkUnit(source_index, path, fmt, k, a, b, max(1, b - a))
                for k, (a, b) in enumerate(jsonl.split_ranges(path, target_bytes))]
    return [WorkUnit(source_index, path, fmt, part, 0, 0, cost)
            for part, cost in columnar.units(path, policy.text_column)]
