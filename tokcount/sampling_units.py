"""Reading ``--estimate``'s sampling units on the executor's workers, and crediting them in the
scanning process.

A worker reads and counts one sampling unit with the scan's own counting code (``Reading``):
for a plain jsonl byte range, every line it overlaps with its tokens, whether it is a document
(``--skip-bad-records``: a bad line is none) and its group; for a row group or a whole file,
its totals. The scanning process credits the readings in the order they were drawn
(``Crediting``): a line across a range's ends is credited to each range by its share of the
line's bytes, and its bytes and bad records are counted once, by the first range credited with
it. What a unit is credited with so depends only on the draws before it, never on which worker
read it or when, so a run gives the same estimate for a ``--seed`` whatever the workers.

Workers are told the counts of the lines across a range's ends that earlier rounds counted, so
that they do not count them again (within a round, two neighbouring ranges may both count one).
"""

from __future__ import annotations

import bisect
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import FileCheckError
from .executors import TaskFailed
from .formats.base import BadRecord, TextPolicy, WorkUnit

BYTES = "bytes"  # plain jsonl byte ranges: x = bytes of the lines a range owns
ROWS = "rows"  # Parquet row groups: x = rows (the footer has their total)
FILE_BYTES = "file_bytes"  # a file read whole (compressed jsonl, Arrow): x = its size

MAX_EXAMPLES = 5  # bad records listed by position

SamplingUnit = tuple[WorkUnit, ...]  # work units read together: one range or row group, or a whole file's
# One line across a range's ends: (tokens, 1 if a document else 0, group, 1 if a bad record)
LineCount = tuple[int, int, "str | None", int]


@dataclass(frozen=True)
class Measure:
    """What reading one sampling unit gave: the auxiliaries of the tokens' and of the
    documents' ratios, the tokens and documents it is credited with, and the bytes read."""

    x: float
    x_documents: float
    tokens: float
    documents: float
    nbytes: int
    groups: dict | None = None  # --group-by: group -> (tokens, documents) credited to this unit
    skipped: int = 0  # --skip-bad-records: bad records first read with this unit


@dataclass
class Reading:
    """A worker's reading of one sampling unit, before it is credited."""

    aux: str
    parity_mismatch: dict | None = None
    # a byte range: where its first line begins, every line's length and count
    begin: int = 0
    lengths: list[int] = field(default_factory=list)
    lines: list[LineCount] = field(default_factory=list)
    # a row group or whole file: its totals
    tokens: int = 0
    documents: int = 0
    skipped: int = 0
    cost: int = 0
    groups: dict | None = None
    examples: list[BadRecord] = field(default_factory=list)


class EngineDisagreed(Exception):
    """The parity guard caught the fast engine disagreeing with the reference: the sample is
    counted again, from its first unit, with the reference (the scan's policy)."""


# --------------------------------------------------------------------------------------------
# in a worker


@dataclass
class _SamplingWorker:
    run: str
    counter: object  # counting.UnitCounter


_worker: _SamplingWorker | None = None


def start_sampling_worker(run: str, spec, add_special_tokens: bool, choice) -> None:
    """A worker's counting state for the estimate ``run``, built once however many rounds it serves."""
    global _worker
    if _worker is not None and _worker.run == run:
        return
    from .counting import UnitCounter

    counter = UnitCounter(spec, add_special_tokens, choice)
    counter.keep_document_tokens = True  # a byte range is credited line by line
    _worker = _SamplingWorker(run, counter)


def prepare_sampling_worker(run: str, spec, add_special_tokens: bool, choice) -> None:
    """``start_sampling_worker``, then the tokenizer and kernels loaded now: in the scanning
    process before it forks its workers, they inherit it all."""
    start_sampling_worker(run, spec, add_special_tokens, choice)
    assert _worker is not None
    _worker.counter.warm_up()  # type: ignore[attr-defined]


def forget_sampling_worker() -> None:
    global _worker
    _worker = None


def read_sampling_unit(task: tuple[SamplingUnit, str, TextPolicy, dict[int, LineCount]]) -> Reading:
    units, aux, policy, known = task
    if _worker is None:
        raise AssertionError("start_sampling_worker has not run in this process")
    counter = _worker.counter
    if aux == BYTES:
        return _read_byte_range(counter, units[0], policy, known)
    reading = Reading(aux, groups={} if policy.group_by is not None else None)
    for unit in units:
        result = counter.count_unit(unit, policy)  # type: ignore[attr-defined]
        if result.failure is not None:
            raise result.failure
        if result.parity_mismatch is not None:
            reading.parity_mismatch = result.parity_mismatch
            return reading
        reading.tokens += result.tokens
        reading.documents += result.documents
        reading.skipped += result.skipped
        reading.examples.extend(result.skipped_examples[: MAX_EXAMPLES - len(reading.examples)])
        reading.cost += unit.cost
        if reading.groups is not None:
            for name, (d, _, _, t) in (result.groups or {}).items():
                before = reading.groups.get(name, (0, 0))
                reading.groups[name] = (before[0] + t, before[1] + d)
    return reading


def _read_byte_range(counter, unit: WorkUnit, policy: TextPolicy, known: dict[int, LineCount]) -> Reading:
    """Every line that overlaps [a, b): the lines across its ends that ``known`` holds are not
    counted again."""
    from .formats.jsonl import line_extents

    a, b = unit.start, unit.stop
    begin, lengths = line_extents(unit.path, a, b)
    reading = Reading(BYTES, begin=begin, lengths=lengths)
    if not lengths:
        return reading
    starts = _starts(begin, lengths)
    first = known.get(int(starts[0]))
    last = known.get(int(starts[-1])) if len(lengths) > 1 else None
    lo = int(starts[0]) + lengths[0] if first is not None else int(starts[0])
    hi = int(starts[-1]) if last is not None else b
    middle_lines = sum(1 for s in starts if lo <= s < hi)
    middle: list[LineCount] = []
    if lo < hi:
        result = counter.count_unit(WorkUnit(unit.source, unit.path, unit.format, unit.part, lo, hi, hi - lo), policy)
        if result.failure is not None:
            raise result.failure
        if result.parity_mismatch is not None:
            reading.parity_mismatch = result.parity_mismatch
            return reading
        # a line without a document is a bad record (--skip-bad-records)
        middle = [(0, 0, None, 1)] * middle_lines
        tokens = [] if result.document_tokens is None else result.document_tokens.tolist()
        positions = result.document_positions or []
        groups = result.document_groups or [None] * len(tokens)
        if len(positions) != len(tokens) or len(tokens) + result.skipped != middle_lines:
            raise AssertionError(f"{unit.path} [{lo}, {hi}): {middle_lines} lines, {len(tokens)} documents")
        for position, t, g in zip(positions, tokens, groups):
            middle[position] = (int(t), 1, g, 0)
        reading.examples = list(result.skipped_examples[:MAX_EXAMPLES])
    reading.lines = ([first] if first is not None else []) + middle + ([last] if last is not None else [])
    if len(reading.lines) != len(lengths):
        raise AssertionError(f"{unit.path} [{begin}, {b}): {len(lengths)} lines, {len(reading.lines)} counted")
    return reading


def _starts(begin: int, lengths: list[int]) -> np.ndarray:
    return begin + np.concatenate([[0], np.cumsum(lengths[:-1])]).astype(np.int64)


# --------------------------------------------------------------------------------------------
# in the scanning process


class Crediting:
    """The scanning process's side: readings in, measures out, in the order the units were drawn."""

    def __init__(self, grouped: bool):
        self.grouped = grouped
        # per path: the starts (sorted) and counts of the lines across range ends credited so far
        self._starts: dict[str, list[int]] = {}
        self._lines: dict[str, dict[int, tuple[int, LineCount]]] = {}  # start -> (length, count)
        self.skipped = 0
        self.examples: list[BadRecord] = []

    def known(self, unit: WorkUnit) -> dict[int, LineCount]:
        """The counted lines that overlap a byte range, for its worker."""
        starts, lines = self._starts.get(unit.path), self._lines.get(unit.path)
        if not starts or lines is None:
            return {}
        out = {}
        k = max(0, bisect.bisect_right(starts, unit.start) - 1)
        while k < len(starts) and starts[k] < unit.stop:
            length, line = lines[starts[k]]
            if starts[k] + length > unit.start:
                out[starts[k]] = line
            k += 1
        return out

    def credit(self, units: SamplingUnit, reading: Reading) -> Measure:
        if reading.parity_mismatch is not None:
            raise EngineDisagreed(reading.parity_mismatch)
        self._note_examples(reading.examples)
        if reading.aux != BYTES:
            self.skipped += reading.skipped
            if reading.aux == ROWS:
                # rows read: documents and the rows skipped as bad records
                rows = reading.documents + reading.skipped
                return Measure(
                    float(reading.cost),
                    float(rows),
                    reading.tokens,
                    reading.documents,
                    reading.cost,
                    reading.groups,
                    reading.skipped,
                )
            size = os.path.getsize(units[0].path)
            return Measure(
                float(size), float(size), reading.tokens, reading.documents, size, reading.groups, reading.skipped
            )
        return self._byte_range(units[0], reading)

    def _note_examples(self, examples: list[BadRecord]) -> None:
        for bad in examples:
            if len(self.examples) < MAX_EXAMPLES and all(bad.position != e.position for e in self.examples):
                self.examples.append(bad)

    def _byte_range(self, unit: WorkUnit, reading: Reading) -> Measure:
        """A byte range [a, b) is credited with each line it overlaps in proportion to the bytes
        it holds of it: the ranges partition every line's tokens, so a document of megabytes
        spreads over the ranges it spans instead of weighing on one."""
        a, b = unit.start, unit.stop
        lengths = reading.lengths
        if not lengths:
            return Measure(float(b - a), float(b - a), 0.0, 0.0, 0, {} if self.grouped else None)
        starts = _starts(reading.begin, lengths)
        lines = self._lines.setdefault(unit.path, {})
        # The lines across a range's ends are met again by the neighbouring ranges: read once.
        first_known = int(starts[0]) in lines
        last_known = len(lengths) > 1 and int(starts[-1]) in lines
        lo = int(starts[0]) + lengths[0] if first_known else int(starts[0])
        end = int(starts[-1]) if last_known else int(starts[-1]) + lengths[-1]
        nbytes = max(0, end - lo)
        skipped = 0
        for k, (start, size, line) in enumerate(zip(starts.tolist(), lengths, reading.lines)):
            new = not ((k == 0 and first_known) or (k == len(lengths) - 1 and last_known))
            skipped += line[3] if new else 0
            if (start < a or start + size > b) and start not in lines:
                lines[start] = (size, line)
                bisect.insort(self._starts.setdefault(unit.path, []), start)
        self.skipped += skipped
        sizes = np.asarray(lengths, dtype=np.float64)
        share = (np.minimum(starts + sizes, b) - np.maximum(starts, a)) / np.maximum(sizes, 1)
        line_tokens = share * np.array([line[0] for line in reading.lines], dtype=np.float64)
        line_documents = share * np.array([line[1] for line in reading.lines], dtype=np.float64)
        groups: dict[str | None, tuple[float, float]] | None = None
        if self.grouped:
            groups = {}
            for line, t, d in zip(reading.lines, line_tokens, line_documents):
                if line[1]:
                    before = groups.get(line[2], (0.0, 0.0))
                    groups[line[2]] = (before[0] + float(t), before[1] + float(d))
        return Measure(
            float(b - a), float(b - a), float(line_tokens.sum()), float(line_documents.sum()), nbytes, groups, skipped
        )


class RoundReader:
    """Measures a round of draws: the units read on the executor (all of the round's at once),
    the measures handed back in draw order as soon as each and those before it are read."""

    def __init__(self, executor, spec, text, choice, progress):
        self.executor = executor
        self.spec = spec
        self.text = text
        self.policy: TextPolicy = text.policy()
        self.progress = progress
        self.crediting = Crediting(self.policy.group_by is not None)
        self.use(choice)

    def use(self, choice) -> None:
        """Count with ``choice`` from now on (a fresh state in every worker)."""
        self.choice = choice
        self.run = uuid.uuid4().hex
        self.crediting = Crediting(self.policy.group_by is not None)

    def initargs(self) -> tuple:
        return (self.run, self.spec, self.text.add_special_tokens, self.choice)

    def __call__(self, draws: Sequence[tuple[SamplingUnit, str]]) -> Iterator[Measure]:
        tasks = [
            (units, aux, self.policy, self.crediting.known(units[0]) if aux == BYTES else {}) for units, aux in draws
        ]
        costs = [sum(u.cost for u in units) for units, _ in draws]
        initargs = self.initargs()
        done: dict[int, Reading] = {}
        received = 0
        running = self.executor.run(
            read_sampling_unit, tasks, costs, self.progress.advance, start_sampling_worker, initargs
        )
        try:
            for k in range(len(draws)):
                while k not in done:
                    try:
                        i, reading = next(running)
                    except TaskFailed as failed:
                        raise _named(failed, draws[failed.index][0]) from None
                    done[i] = reading
                    received += 1
                    if received == len(draws):
                        for _ in running:  # let the run end by itself: closed, it would stop the workers
                            pass
                yield self.crediting.credit(draws[k][0], done.pop(k))
        finally:
            running.close()  # stopped early (a budget, Ctrl-C, a disagreement): the workers stop


def _named(failed: TaskFailed, units: SamplingUnit) -> FileCheckError:
    """A draw whose worker process died on every attempt, named by its file and place."""
    from .scanning import worker_died  # here only: the workers that import this module need none of it

    return worker_died(failed, units[0], "sampling", "reading")


__all__ = [
    "BYTES",
    "FILE_BYTES",
    "ROWS",
    "Crediting",
    "EngineDisagreed",
    "Measure",
    "Reading",
    "RoundReader",
    "SamplingUnit",
    "forget_sampling_worker",
    "prepare_sampling_worker",
    "read_sampling_unit",
    "start_sampling_worker",
]
