"""Counting one text work unit, in whatever process an executor picks: its format reads it into
batches, the chosen engine counts them, and the parity guard's sampler picks texts to recount.

A unit's result holds the counts, a histogram of its documents' lengths and its sequence sizes
in order (for an interleaved part, block by block), so the scan can put files back together
exactly.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import formats
from .engines import EngineChoice, make_counter
from .engines.parity import (
    MAX_SAMPLE_CHARS,
    DeferredGuard,
    GuardBudget,
    ParityGuard,
    ParitySampler,
    Sample,
    sample_fraction,
)
from .errors import FileCheckError
from .executors import ServiceProcess, ServiceUnavailable, report_progress
from .formats.base import BadRecord, DocumentBatch, TextPolicy, TokenIdBatch, WorkUnit, note_block
from .lengths import LengthHistogram, Piece, compact

if TYPE_CHECKING:
    from .engines import Counter
    from .engines.hf import TokenCounter
    from .tokenizer import TokenizerSpec

MAX_EXAMPLES = 5  # skipped records listed by position

# The environment workers start with. tokenizers must not use its thread pool in a worker:
# the workers are the parallelism, and a forked worker has no pool threads (tokenizers only
# warns about this, on stderr, when the variable is unset).
WORKER_ENV = {"TOKENIZERS_PARALLELISM": "false", "RAYON_NUM_THREADS": "1"}


@dataclass
class UnitResult:
    unit: WorkUnit
    documents: int = 0
    empty_documents: int = 0
    tokens: int = 0
    text_bytes: int = 0
    input_bytes: int = 0  # bytes of input the unit read (a jsonl range: the bytes of the lines it owns)
    document_lengths: LengthHistogram | None = None  # tokens per document; the scan folds them per file
    # tokens per document in reading order, kept only for a counter that asks (--estimate's)
    document_tokens: np.ndarray | None = None
    document_groups: list | None = None  # ... and with --group-by, each document's group in that order
    document_positions: list[int] | None = None  # ... and each one's position (a jsonl range: its line)
    sequence_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # In the scanning process: the sizes written to its spill file, as (block, piece) in reading order.
    spilled: list[tuple[int, Piece]] = field(default_factory=list)
    skipped: int = 0
    skipped_examples: list[BadRecord] = field(default_factory=list)
    failure: FileCheckError | None = None
    engine: str = "hf"
    parity_mismatch: dict | None = None  # the guard's first disagreement in this unit (the unit stops there)
    parity_tally: dict[str, float] = field(default_factory=dict)  # what the guard checked
    parity_samples: list[Sample] = field(default_factory=list)  # with the check deferred to the scanning process
    count_seconds: float = 0.0  # the engine's time on the unit's texts: what earns the guard its budget
    blocks: list[list[int]] = field(default_factory=list)  # [block, documents, sequences] in reading order
    warnings: list[str] = field(default_factory=list)
    groups: dict | None = None  # --group-by: value -> [documents, empty_documents, text_bytes, tokens]


class UnitCounter:
    """A process's counting state: the reference counter (its tokenizer built on first use),
    the engine's counter (``fast``) when another engine is chosen, and whether to sample for the
    parity guard."""

    def __init__(
        self, spec: TokenizerSpec | None, add_special_tokens: bool, choice: EngineChoice, check_parity_here: bool = True
    ):
        self.spec = spec
        self.add_special_tokens = add_special_tokens
        self.choice = choice
        # False: the guard's samples go back with the unit, for the scanning process to check
        self.check_parity_here = check_parity_here
        self.reference: TokenCounter | None = None
        self.fast: Counter | None = None
        self.engine = "hf"
        self.sample_for_parity = False
        self.keep_document_tokens = False  # --estimate reads each document's count in order
        self.guard_budget = GuardBudget()  # the run's, in this process, when the guard checks here
        if spec is None:
            return  # token-id columns only: nothing to tokenize
        from .engines.hf import TokenCounter

        self.reference = TokenCounter(spec, add_special_tokens=add_special_tokens)
        if choice.engine != "hf":
            if choice.engine == "fast":
                from .engines.warmup import quiet_numba_start

                quiet_numba_start()
            self.fast = make_counter(spec, add_special_tokens, choice.engine, reference=self.reference)
            self.engine = choice.engine
            self.sample_for_parity = choice.guarded

    def started_with(
        self, spec: TokenizerSpec | None, add_special_tokens: bool, choice: EngineChoice, check_parity_here: bool
    ) -> bool:
        mine = self.spec.fingerprint if self.spec is not None else None
        same_spec = mine == (spec.fingerprint if spec is not None else None)
        same_policy = add_special_tokens == self.add_special_tokens and check_parity_here == self.check_parity_here
        return same_spec and same_policy and choice == self.choice

    def warm_up(self) -> None:
        """Build the reference when it will be used (it counts, or the guard checks the engine)
        and load the engine's compiled kernels."""
        if self.reference is not None and (self.fast is None or (self.sample_for_parity and self.check_parity_here)):
            self.reference.load()
        warm_up = getattr(self.fast, "warm_up", None)
        if warm_up is not None:
            warm_up()

    def count_unit(self, unit: WorkUnit, policy: TextPolicy) -> UnitResult:
        result = UnitResult(unit, engine=self.engine)
        sampler = (
            ParitySampler(f"{unit.path}:{unit.part}", sample_fraction(self.engine)) if self.sample_for_parity else None
        )
        guard: ParityGuard | DeferredGuard | None = None
        if sampler is not None:
            assert self.spec is not None
            guard = (
                ParityGuard(self.spec, self.add_special_tokens, reference=self.reference, budget=self.guard_budget)
                if self.check_parity_here
                else DeferredGuard()
            )
        doc_chunks: list[np.ndarray] = []
        seq_chunks: list[np.ndarray] = []
        doc_groups: list | None = [] if self.keep_document_tokens and policy.group_by is not None else None
        doc_positions: list[int] = []
        try:
            for batch in formats.text_format(unit.format).read(unit, policy):
                batch.at_file_start = unit.part == 0 and not doc_chunks
                if isinstance(batch, TokenIdBatch):
                    docs, seqs = _count_token_ids(batch, result)
                    if batch.groups is not None:
                        _tally_groups(result, policy, batch.groups, docs, None)
                else:
                    docs, seqs = self._count_texts(batch, policy, result, sampler, guard)
                    if result.parity_mismatch is not None:
                        break  # the run is counted again with hf: the rest of this unit is not needed
                doc_chunks.append(docs)
                seq_chunks.append(seqs)
                if doc_groups is not None and batch.groups is not None:
                    doc_groups.extend(batch.groups)
                if self.keep_document_tokens and isinstance(batch, DocumentBatch):
                    doc_positions.extend(batch.positions)
                note_block(result.blocks, batch.block, len(docs), len(seqs))
                result.skipped += len(batch.bad)
                result.input_bytes += batch.input_bytes
                result.warnings.extend(getattr(batch, "warnings", ()))
                room = MAX_EXAMPLES - len(result.skipped_examples)
                if room > 0:
                    result.skipped_examples.extend(batch.bad[:room])
                report_progress(nbytes=batch.input_bytes, tokens=int(docs.sum()), documents=len(docs))
        except FileCheckError as e:
            result.failure = e
            return result
        finally:
            if isinstance(guard, DeferredGuard):
                result.parity_samples = guard.samples
            elif guard is not None:
                result.parity_tally = guard.tally()
        if doc_chunks:
            document_tokens = np.concatenate(doc_chunks)
            result.document_lengths = LengthHistogram.of(document_tokens)
            if self.keep_document_tokens:
                result.document_tokens = document_tokens
                result.document_groups = doc_groups
                result.document_positions = doc_positions
            result.sequence_sizes = compact(np.concatenate(seq_chunks))
        return result

    def _count_texts(
        self,
        batch: DocumentBatch,
        policy: TextPolicy,
        result: UnitResult,
        sampler: ParitySampler | None,
        guard: ParityGuard | DeferredGuard | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        from .engines.hf import UnencodableText

        if self.reference is None:
            raise AssertionError("text unit without a tokenizer")
        fast = self.fast
        counter = fast if fast is not None else self.reference
        knows_bytes = hasattr(fast, "bytes_counted")  # the fast engine encodes the texts anyway
        bytes_before = fast.bytes_counted if knows_bytes else 0  # type: ignore[union-attr]
        text_bytes: int | None
        started = time.perf_counter()
        try:
            part_tokens = counter.count(batch.texts)
            text_bytes = fast.bytes_counted - bytes_before if knows_bytes else None  # type: ignore[union-attr]
        except UnencodableText:
            part_tokens = np.asarray(self._count_one_by_one(batch, policy, result), dtype=np.int64)
            text_bytes = None
        if text_bytes is None:
            # An ASCII str's length is its UTF-8 size (isascii is a flag check): encode only the others.
            text_bytes = sum(len(t) if t.isascii() else len(t.encode("utf-8", "surrogatepass")) for t in batch.texts)
        result.text_bytes += text_bytes
        seconds = time.perf_counter() - started
        result.count_seconds += seconds
        if sampler is not None and guard is not None:
            guard.earn(seconds)
            chosen = sampler.pick(batch.texts, text_bytes, batch.at_file_start)
            self._check_parity(batch, chosen, sampler.chars, np.asarray(part_tokens), guard, result)
        parts = np.asarray(batch.texts_per_document, dtype=np.int64)
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
        if batch.groups is not None:
            _tally_groups(result, policy, batch.groups, doc_tokens, _document_bytes(batch.texts, ends, parts))
        result.documents += len(parts)
        result.empty_documents += int(np.count_nonzero(~nonempty))
        result.tokens += int(doc_tokens.sum())
        return doc_tokens, sequences

    def _check_parity(
        self,
        batch: DocumentBatch,
        chosen: list[int],
        chars: dict[int, int],
        part_tokens: np.ndarray,
        guard: ParityGuard | DeferredGuard,
        result: UnitResult,
    ) -> None:
        samples: list[Sample] = []
        for i in chosen:
            text, fast_count = batch.texts[i], int(part_tokens[i])
            limit = chars.get(i, MAX_SAMPLE_CHARS)
            on_prefix = len(text) > limit
            if on_prefix:
                # a bounded check: both engines count the same prefix
                text = text[:limit]
                assert self.fast is not None
                fast_count = int(self.fast.count([text])[0])
            # unresolved: a range's line number is worked out only if this sample is reported
            samples.append((text, fast_count, batch.location(_document_of(batch, i)), on_prefix))
        result.parity_mismatch = guard.check(samples)

    def _count_one_by_one(self, batch: DocumentBatch, policy: TextPolicy, result: UnitResult) -> list[int]:
        """Rare slow path: find the documents the tokenizer cannot take, raise or drop them."""
        from .engines.hf import UnencodableText

        assert self.reference is not None
        counts: list[int] = []
        texts: list[str] = []
        parts: list[int] = []
        positions: list[int] = []
        groups: list[str | None] = []
        k = 0
        for d, (n, position) in enumerate(zip(batch.texts_per_document, batch.positions)):
            doc_texts = batch.texts[k : k + n]
            k += n
            try:
                doc_counts = list(self.reference.count(doc_texts))
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
            if batch.groups is not None:
                groups.append(batch.groups[d])
        batch.texts, batch.texts_per_document, batch.positions = texts, parts, positions
        if batch.groups is not None:
            batch.groups = groups
        return counts


# A process pool calls plain functions: this process's counting state is this one object,
# set by start_worker (each run of an executor brings its own) and used by count_unit.
_worker: UnitCounter | None = None
_prepared = False  # _worker was set up by prepare_worker, for the run about to start


def start_worker(
    spec: TokenizerSpec | None, add_special_tokens: bool, choice: EngineChoice, check_parity_here: bool = True
) -> None:
    """Set up this process's counting state, or keep the one ``prepare_worker`` set up for these
    same arguments (a forked worker inherits it from the scanning process)."""
    global _worker, _prepared
    args = (spec, add_special_tokens, choice, check_parity_here)
    if _worker is not None and _prepared and _worker.started_with(*args):
        _prepared = False  # kept once, by the run it was prepared for
        return
    forget_worker()
    _worker = UnitCounter(*args)


def prepare_worker(
    spec: TokenizerSpec | None, add_special_tokens: bool, choice: EngineChoice, check_parity_here: bool = True
) -> None:
    """Set up this process's counting state ahead of a run, and load now everything a first
    unit would otherwise wait for; the run's ``start_worker`` with the same arguments keeps it."""
    global _prepared
    start_worker(spec, add_special_tokens, choice, check_parity_here)
    current_worker().warm_up()
    _prepared = True


def forget_worker() -> None:
    """Drop this process's counting state (the scanning process's, once its workers are done)."""
    global _worker, _prepared
    _worker, _prepared = None, False


def reference_counter(spec: TokenizerSpec, add_special_tokens: bool) -> TokenCounter:
    """This process's reference for ``spec``: its counting state's when it has one (a scan in
    this process, or the state set up before forking), else a new one (built on first use)."""
    reference = _worker.reference if _worker is not None else None
    if (
        reference is not None
        and reference.spec.fingerprint == spec.fingerprint
        and reference.add_special_tokens == add_special_tokens
    ):
        return reference
    from .engines.hf import TokenCounter

    return TokenCounter(spec, add_special_tokens)


class ReferenceElsewhere:
    """The reference, built and run in a process of its own (``executors.ServiceProcess``),
    started before the scanning process sets its workers up: the reference's build (0.35-0.45 s
    for Llama-3's 280k merges) then runs on the core that set-up leaves idle, where it used to
    compete with both workers once they counted. Counts as a ``TokenCounter`` does; on any
    failure over there, the reference is built here and the call made again."""

    def __init__(self, spec: TokenizerSpec, add_special_tokens: bool, env: dict[str, str]):
        self.spec = spec
        self.add_special_tokens = add_special_tokens
        self._here: TokenCounter | None = None
        self._loaded = False
        self._service: ServiceProcess | None = ServiceProcess(
            functools.partial(_loaded_reference, spec, add_special_tokens), "fork", env
        )

    def load(self) -> None:
        if not self._loaded:  # the guard asks before every check: one round trip, not one each
            self._call("load")
            self._loaded = True

    def count(self, texts: list[str]) -> np.ndarray:
        return self._call("count", texts)

    def _call(self, method: str, *args):
        if self._service is not None:
            try:
                return self._service.call(method, *args)
            except ServiceUnavailable:
                self.close()  # e.g. a text it cannot encode: this process's reference says how
        if self._here is None:
            from .engines.hf import TokenCounter

            self._here = TokenCounter(self.spec, self.add_special_tokens)
        return getattr(self._here, method)(*args)

    def close(self) -> None:
        service, self._service = self._service, None
        if service is not None:
            service.close()


def _loaded_reference(spec: TokenizerSpec, add_special_tokens: bool) -> TokenCounter:
    from .engines.hf import TokenCounter

    reference = TokenCounter(spec, add_special_tokens)
    reference.load()
    return reference


def current_worker() -> UnitCounter:
    if _worker is None:
        raise AssertionError("start_worker has not run in this process")
    return _worker


def count_unit(args: tuple[WorkUnit, TextPolicy]) -> UnitResult:
    unit, policy = args
    return current_worker().count_unit(unit, policy)


def _count_token_ids(batch: TokenIdBatch, result: UnitResult) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.asarray(batch.lengths, dtype=np.int64)
    result.documents += len(lengths)
    result.empty_documents += int(np.count_nonzero(lengths == 0))
    result.tokens += int(lengths.sum())
    return lengths, lengths[lengths > 0]


def _tally_groups(result: UnitResult, policy: TextPolicy, names, doc_tokens: np.ndarray, doc_bytes) -> None:
    from .grouping import tally

    if result.groups is None:
        result.groups = {}
    tally(result.groups, names, doc_tokens, doc_bytes, result.unit.path, policy.group_by or "")


def _document_bytes(texts: list[str], ends: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """UTF-8 bytes of each document (the sum over its parts), for the per-group totals."""
    sizes = [len(t) if t.isascii() else len(t.encode("utf-8", "surrogatepass")) for t in texts]
    cumulative = np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))])
    return cumulative[ends] - cumulative[ends - parts]


def _document_of(batch: DocumentBatch, text_index: int) -> int:
    return int(np.searchsorted(np.cumsum(batch.texts_per_document), text_index, side="right"))


def _list_document_sequences(part_tokens: np.ndarray, parts: np.ndarray, eod: int) -> np.ndarray:
    """Megatron preprocessing: each part with tokens is a sequence; EOD joins the last one."""
    out: list[int] = []
    k = 0
    for n in parts:
        seqs = [int(t) for t in part_tokens[k : k + n] if t > 0]
        k += n
        if seqs:
            seqs[-1] += eod
        out.extend(seqs)
    return np.asarray(out, dtype=np.int64)
