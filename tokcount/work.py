"""Work units of a text scan and the code that runs one, in whatever process an executor picks.

A unit is one byte range of a plain jsonl file, one compressed jsonl file or one interleaved
part of it (jsonl.read_documents), one Parquet row group or one Arrow record batch. Its result
holds the counts and the per-document lengths, in order (for an interleaved part, block by
block), so the scan can put files back together exactly.
"""

from __future__ import annotations

import multiprocessing
import random
import sys
from dataclasses import dataclass, field

import numpy as np

from . import columnar, jsonl
from .documents import BadRecord, DocumentBatch, TokenIdBatch
from .engine_choice import make_counter
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
    parity_samples: list = field(default_factory=list)  # (text, fast count, position) for the guard
    blocks: list = field(default_factory=list)  # [block, documents, sequences] in reading order


class ParitySampler:
    """Picks the texts the parity guard (engine_choice.ParityGuard, in the parent) recounts with the
    Hugging Face reference: the first texts of every file, plus random texts spread through
    the data while the sampled bytes stay under ``fraction`` of the bytes counted. The
    reference is ~15x slower than the fast engine, so 1/1500 of the bytes costs about 1 % of
    the run."""

    def __init__(self, seed: str, fraction: float = 1 / 1500, first_texts: int = 32):
        self.rng = random.Random(seed)
        self.fraction = fraction
        self.first_texts = first_texts
        self.counted_bytes = 0
        self.sampled_bytes = 0

    def pick(self, texts: list[str], text_bytes: int, at_file_start: bool) -> list[int]:
        self.counted_bytes += text_bytes
        chosen = list(range(min(self.first_texts, len(texts)))) if at_file_start else []
        if texts and self.sampled_bytes < self.fraction * self.counted_bytes:
            chosen.append(self.rng.randrange(len(texts)))
        self.sampled_bytes += sum(len(texts[i]) for i in chosen)
        return chosen


# The environment workers start with. tokenizers must not use its thread pool in a worker:
# the workers are the parallelism, and a forked worker has no pool threads (tokenizers only
# warns about this, on stderr, when the variable is unset).
WORKER_ENV = {"TOKENIZERS_PARALLELISM": "false"}

_counter = None  # this process's reference TokenCounter (its tokenizer is built on first use)
_fast = None  # this process's FastCounter, when the fast engine is in use
_sample_for_parity = False


def init_worker(tokenizer_spec, add_special_tokens: bool, engine: str = "hf", guard: bool = False) -> None:
    global _counter, _fast, _sample_for_parity
    _counter = _fast = None
    _sample_for_parity = False
    if tokenizer_spec is None:
        return
    from .tokenizer import TokenCounter

    _counter = TokenCounter(tokenizer_spec, add_special_tokens=add_special_tokens)
    if engine == "fast":
        _quiet_numba_start()
        _fast = make_counter(tokenizer_spec, add_special_tokens, "fast", reference=_counter)
        _sample_for_parity = guard


def prepare_worker(fast_engine: bool) -> None:
    """Runs in each worker as it starts, while the scanning process still loads the tokenizer:
    the imports and numba's one-off set-up that the first unit would otherwise wait for."""
    if fast_engine:
        _quiet_numba_start()
        from numba.core.registry import cpu_target

        from .engines import fast as _  # noqa: F401  (numba and the kernels' modules)

        cpu_target.target_context.refresh()  # numba's registries, loaded before a first cache load
        cpu_target.typing_context.refresh()


def _quiet_numba_start() -> None:
    """In a worker process, skip what numba loads before its first compile or cache load that
    the kernels never use: every installed numba extension (awkward's alone costs 0.13 s),
    and SciPy's BLAS, which numba imports to offer np.dot (0.19 s when SciPy is installed)."""
    if multiprocessing.parent_process() is None:
        return
    from numba.core import entrypoints

    entrypoints._already_initialized = True
    if "numba.np.arraymath" not in sys.modules:
        blocked = "scipy.linalg.cython_blas"
        sys.modules.setdefault(blocked, None)  # an import of a None entry raises ImportError
        try:
            import numba.np.arraymath  # noqa: F401  (finds no BLAS: the kernels need none)
        finally:
            if sys.modules.get(blocked, 0) is None:
                del sys.modules[blocked]


def run_unit(args: tuple[WorkUnit, TextPolicy]) -> UnitResult:
    unit, policy = args
    result = UnitResult(unit, engine="fast" if _fast is not None else "hf")
    sampler = ParitySampler(f"{unit.path}:{unit.part}") if _sample_for_parity else None
    doc_chunks, seq_chunks = [], []
    try:
        for batch in _batches(unit, policy):
            batch.at_file_start = unit.part == 0 and not doc_chunks
            if isinstance(batch, TokenIdBatch):
                docs, seqs = _count_token_ids(batch, result)
            else:
                docs, seqs = _count_texts(batch, policy, result, sampler)
            doc_chunks.append(docs)
            seq_chunks.append(seqs)
            note_block(result.blocks, getattr(batch, "block", 0), len(docs), len(seqs))
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


def note_block(blocks: list, block: int, *counts: int) -> None:
    """Add a batch's counts to ``blocks`` ([block, count, ...] in reading order): what an
    interleaved part's results need to be put back in stream order."""
    if blocks and blocks[-1][0] == block:
        for k, n in enumerate(counts, 1):
            blocks[-1][k] += n
    else:
        blocks.append([block, *counts])


def _batches(unit: WorkUnit, policy: TextPolicy):
    if unit.format == "jsonl":
        return jsonl_documents(unit, policy.text_key, policy.skip_bad_records)
    return columnar.read_documents(unit.path, unit.part, policy.text_column, policy.skip_bad_records)


def jsonl_documents(unit: WorkUnit, text_key: str, skip_bad_records: bool):
    """The document batches of a jsonl unit: a byte range, or one interleaved part."""
    if unit.parts > 1:
        return jsonl.read_documents(unit.path, unit.start, unit.stop, text_key, skip_bad_records,
                                    unit.part, unit.parts, unit.block_bytes)
    return jsonl.read_documents(unit.path, unit.start, unit.stop, text_key, skip_bad_records)


def _count_token_ids(batch: TokenIdBatch, result: UnitResult):
    lengths = np.asarray(batch.lengths, dtype=np.int64)
    result.documents += len(lengths)
    result.empty_documents += int(np.count_nonzero(lengths == 0))
    result.tokens += int(lengths.sum())
    return lengths, lengths[lengths > 0]


def _count_texts(batch: DocumentBatch, policy: TextPolicy, result: UnitResult, sampler: ParitySampler | None):
    from .tokenizer import UnencodableText

    if _counter is None:
        raise AssertionError("text unit without a tokenizer")
    counter = _fast if _fast is not None else _counter
    bytes_before = _fast.bytes_counted if _fast is not None else 0
    try:
        part_tokens = counter.count(batch.texts)
        text_bytes = _fast.bytes_counted - bytes_before if _fast is not None else None  # it encoded them
    except UnencodableText:
        part_tokens = _count_one_by_one(batch, policy, result)
        text_bytes = None
    if text_bytes is None:
        # An ASCII str's length is its UTF-8 size (isascii is a flag check): encode only the others.
        text_bytes = sum(len(t) if t.isascii() else len(t.encode("utf-8", "surrogatepass")) for t in batch.texts)
    result.text_bytes += text_bytes
    if sampler is not None:
        for i in sampler.pick(batch.texts, text_bytes, batch.at_file_start):
            locate = batch.locate_later or batch.locate  # no I/O per sample: lines are counted only if one is reported
            where = locate(batch.positions[_document_of(batch, i)])
            result.parity_samples.append((batch.texts[i], int(part_tokens[i]), where))
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


def sample_location(where) -> str:
    """A parity sample's position as text (jsonl leaves a range's line count for later)."""
    return jsonl.resolve_location(where)


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
            where, order = batch.where(position)
            if not policy.skip_bad_records:
                raise FileCheckError(result.unit.path, "unencodable text", str(e), where, order=order) from None
            batch.bad.append(BadRecord(where, "unencodable text", str(e), order=order))
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
