"""``--estimate``: the token and document totals from a random sample of the data, with a
confidence interval, for a corpus too big to count now.

Design (a textbook stratified ratio estimator, e.g. Cochran, *Sampling Techniques*, ch. 5-6):

- The population is the scan's own work units, made small: byte ranges of plain jsonl files
  (a range owns the lines that start in it, so the ranges partition the documents exactly),
  Parquet row groups, and whole files where a file cannot be cut (compressed jsonl, Arrow).
  ``.bin/.idx`` shards are not sampled: their index gives the exact totals at once.
- Each unit has an auxiliary value x whose population total X is known exactly before any text
  is read: bytes for jsonl ranges (X = the file sizes; x = the bytes of the lines the range
  owns), rows for Parquet (X = the footers' row counts, so documents are exact), the file size
  for whole files.
- Strata: a file with enough units is a stratum of its own (a big jsonl file, contiguous
  segments of it); smaller files are pooled by kind and by size (a power of two). Within a stratum units are drawn at random without
  replacement; the separate ratio estimator T_h = X_h · Σy/Σx estimates each stratum, with
  the finite population correction, and the strata add up.
- Sequential: a pilot sample in every stratum, then rounds in proportion to the strata's sizes
  until the interval's relative half-width reaches the target, or the budget (bytes read or
  seconds) is spent, or every unit has been read (the estimate is then exact).

The counting itself is the scan's: each drawn unit is read and tokenized by ``counting``'s
``UnitCounter``. ``sample_strata`` takes the measuring function as an argument, so that a
harness can replay measured units (the coverage benchmark in ``benches/``).
"""

from __future__ import annotations

import functools
import math
import os
import re
import secrets
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import UsageError
from .formats.base import TextFormat
from .formats.registry import JSONL
from .options import Progress, TextOptions, TrainingOptions
from .sampling_units import BYTES, FILE_BYTES, ROWS, EngineDisagreed, Measure, SamplingUnit

OWN_STRATUM_UNITS = 16  # a file with at least this many units is a stratum of its own
SEGMENT_UNITS = 128  # ... and a big jsonl file, contiguous strata of about this many ranges
PILOT_UNITS = 8  # first draws per stratum, before any allocation (a variance needs a few)
# The interval is not trusted on fewer draws in all: skewed units (a few ranges of another
# script, of long documents) make small samples' variances too low (measured: benches/).
MIN_UNITS = 60
MIN_RANGE_BYTES = 64 << 10  # jsonl ranges: small enough to spread the sample, big enough to be cheap
MAX_RANGE_BYTES = 4 << 20
RANGES_PER_FILE = 1024  # a file is cut into about this many ranges (within the bounds above)


@dataclass
class Stratum:
    name: str
    aux: str  # BYTES, ROWS or FILE_BYTES
    units: list[SamplingUnit]
    aux_total: float  # X_h of the tokens' auxiliary, exact
    documents_aux_total: float  # X_h of the documents' auxiliary, exact
    bytes_total: int  # what reading every unit would read


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float
    confidence: float

    def to_dict(self) -> dict:
        # an infinite bound (a budget spent before a stratum had two draws) is null in JSON
        bound = lambda v: v if math.isfinite(v) else None
        return {"value": self.value, "low": bound(self.low), "high": bound(self.high), "confidence": self.confidence}


@dataclass
class Estimate:
    tokens: Interval
    documents: Interval
    tokens_per_document: Interval | None
    confidence: float
    target_error: float
    seed: int
    stopped_by: str  # "target", "budget", "exhausted" (every unit read: exact) or "interrupted"
    bytes_read: int
    bytes_total: int
    units_read: int
    units_total: int
    strata: int
    exact_tokens: int = 0  # from .bin/.idx shards, included in the totals
    exact_documents: int = 0
    files: list[dict] = field(default_factory=list)
    plan: dict | None = None
    notes: list[str] = field(default_factory=list)
    groups: list[dict] | None = None  # --group-by: estimate_groups.group_estimates' rows
    group_by: str | None = None
    skipped_records: int | None = None  # --skip-bad-records: bad records in the bytes read
    skipped_examples: list[dict] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """False when interrupted: the estimate is of the draws made so far."""
        return self.stopped_by != "interrupted"

    @property
    def fraction_read(self) -> float:
        return self.bytes_read / self.bytes_total if self.bytes_total else 1.0

    @property
    def relative_error(self) -> float:
        t = self.tokens
        return (t.high - t.low) / 2 / t.value if t.value else 0.0

    def to_dict(self) -> dict:
        return {
            "kind": "estimate",
            "complete": self.complete,
            "tokens": self.tokens.to_dict(),
            "documents": self.documents.to_dict(),
            "tokens_per_document": self.tokens_per_document.to_dict() if self.tokens_per_document else None,
            "relative_error": self.relative_error,
            "target_error": self.target_error,
            "confidence": self.confidence,
            "seed": self.seed,
            "stopped_by": self.stopped_by,
            "fraction_read": self.fraction_read,
            "bytes_read": self.bytes_read,
            "bytes_total": self.bytes_total,
            "units_read": self.units_read,
            "units_total": self.units_total,
            "strata": self.strata,
            "exact_tokens": self.exact_tokens,
            "exact_documents": self.exact_documents,
            "files": [dict(f) for f in self.files],
            "plan": self.plan,
            "notes": list(self.notes),
            **({"group_by": self.group_by, "groups": self.groups} if self.groups is not None else {}),
            **(
                {"skipped_records": self.skipped_records, "skipped_examples": list(self.skipped_examples)}
                if self.skipped_records is not None
                else {}
            ),
        }


# --------------------------------------------------------------------------------------------
# the statistics (pure: units in, numbers out)


def _quantile(confidence: float, df: int) -> float:
    """Two-sided Student t quantile by the Cornish-Fisher expansion (no scipy): within 1 % of
    the exact value for df >= 5, and the normal quantile as df grows."""
    z = statistics.NormalDist().inv_cdf((1 + confidence) / 2)
    v = max(df, 1)
    return z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)


@dataclass
class _Draws:
    """One stratum's draws so far, in its random order."""

    stratum: Stratum
    order: np.ndarray
    measures: list[Measure] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return len(self.order) - len(self.measures)

    def next_unit(self, ahead: int = 0) -> SamplingUnit:
        return self.stratum.units[int(self.order[len(self.measures) + ahead])]

    def moments(self) -> tuple[float, float, float, float, float]:
        """(tokens, documents, var tokens, var documents, cov) of this stratum's ratio estimates."""
        n, N = len(self.measures), len(self.order)
        x = np.array([m.x for m in self.measures], dtype=np.float64)
        xd = np.array([m.x_documents for m in self.measures], dtype=np.float64)
        t = np.array([m.tokens for m in self.measures], dtype=np.float64)
        d = np.array([m.documents for m in self.measures], dtype=np.float64)
        if n == N:  # every unit read: the stratum's totals are exact
            return float(t.sum()), float(d.sum()), 0.0, 0.0, 0.0
        rt = t.sum() / x.sum() if x.sum() > 0 else 0.0
        rd = d.sum() / xd.sum() if xd.sum() > 0 else 0.0
        tokens, documents = rt * self.stratum.aux_total, rd * self.stratum.documents_aux_total
        if n < 2:
            return tokens, documents, math.inf, math.inf, 0.0
        et, ed = t - rt * x, d - rd * xd
        # x's mean over the population against the sample's: the residuals are on the x scale
        scale = N * N * (1 - n / N) / n / (n - 1)
        return tokens, documents, scale * float(et @ et), scale * float(ed @ ed), scale * float(et @ ed)


def _totals(draws: list[_Draws], confidence: float, exact: tuple[int, int]):
    T, D, vt, vd, cov = float(exact[0]), float(exact[1]), 0.0, 0.0, 0.0
    df = 0
    for dr in draws:
        t, d, a, b, c = dr.moments()
        T, D, vt, vd, cov = T + t, D + d, vt + a, vd + b, cov + c
        if dr.remaining:
            df += len(dr.measures) - 1
    q = _quantile(confidence, df)
    return T, D, vt, vd, cov, q


def _interval(value: float, variance: float, q: float, confidence: float, floor: float = 0.0) -> Interval:
    half = q * math.sqrt(variance) if math.isfinite(variance) else math.inf
    return Interval(value, max(floor, value - half), value + half, confidence)


RoundMeasurer = Callable[[Sequence[tuple[SamplingUnit, str]]], Iterator[Measure]]


def one_by_one(measure: Callable[[SamplingUnit, str], Measure]) -> RoundMeasurer:
    """A round measurer from a function of one unit."""
    return lambda draws: (measure(units, aux) for units, aux in draws)


def sample_strata(
    strata: Sequence[Stratum],
    measure: RoundMeasurer,
    *,
    target_error: float = 0.01,
    confidence: float = 0.95,
    seed: int = 0,
    budget_bytes: int | None = None,
    budget_seconds: float | None = None,
    exact: tuple[int, int] = (0, 0),
    clock: Callable[[], float] = time.monotonic,
    group_by: str | None = None,
    exact_groups: dict | None = None,
) -> Estimate:
    """Draw units until the tokens' interval is within ``target_error`` (relative) at
    ``confidence``, or a budget is spent, or every unit is read, or Ctrl-C. ``measure`` reads a
    round's draws (all at once, on workers) and yields their measures in draw order. ``exact``: (tokens, documents)
    known exactly, added to the totals. With ``group_by`` (the measures then carry their
    groups), each group's estimate from the same draws; ``exact_groups``: group -> (tokens,
    documents) known exactly. The stopping rule is the total's."""
    if not 0 < target_error < 1:
        raise UsageError(f"the target error (--target-error) must be between 0 and 100 %, got {target_error}")
    if not 0 < confidence < 1:
        raise UsageError(f"the confidence (--confidence) must be between 0 and 1, got {confidence}")
    rng = np.random.default_rng(seed)
    draws = [_Draws(s, rng.permutation(len(s.units))) for s in strata if s.units]
    started = clock()
    read = 0

    def over_budget() -> bool:
        return (budget_bytes is not None and read >= budget_bytes) or (
            budget_seconds is not None and clock() - started >= budget_seconds
        )

    def draw_round(chosen: list[_Draws]) -> bool:
        """Measure ``chosen`` (a stratum once per draw); False if the budget ran out first."""
        nonlocal read
        ahead: dict[int, int] = {}
        units = []
        for dr in chosen:
            k = ahead.get(id(dr), 0)
            ahead[id(dr)] = k + 1
            units.append((dr.next_unit(k), dr.stratum.aux))
        measures = measure(units)
        try:
            for dr in chosen:
                if over_budget():  # the serial rule: draws past the budget are not used
                    return False
                m = next(measures)
                dr.measures.append(m)
                read += m.nbytes
        finally:
            close = getattr(measures, "close", None)
            if close is not None:
                close()
        return True

    stopped_by = "exhausted"
    try:
        # the pilot: every stratum gets a few draws first
        if not draw_round([dr for dr in draws for _ in range(min(PILOT_UNITS, dr.remaining))]):
            raise _Stop("budget")
        while any(dr.remaining for dr in draws):
            T, _, vt, _, _, q = _totals(draws, confidence, exact)
            n = sum(len(dr.measures) for dr in draws)
            if n >= MIN_UNITS and T > 0 and q * math.sqrt(vt) <= target_error * T:
                raise _Stop("target")
            if over_budget():
                raise _Stop("budget")
            draw_round(_allocate(draws, max(8, n // 4)))
    except _Stop as stop:
        stopped_by = stop.reason
    except KeyboardInterrupt:
        stopped_by = "interrupted"  # the estimate of the draws so far
    T, D, vt, vd, cov, q = _totals(draws, confidence, exact)
    tokens = _interval(T, vt, q, confidence, floor=exact[0])
    documents = _interval(D, vd, q, confidence, floor=exact[1])
    per_document = None
    if D > 0:
        r = T / D
        # the delta method for a ratio of two estimated totals (their covariance included)
        var = (vt + r * r * vd - 2 * r * cov) / (D * D)
        per_document = _interval(r, max(var, 0.0), q, confidence)
    groups = None
    if group_by is not None:
        groups = _group_rows(draws, T, vt, confidence, exact_groups, group_by)
    return Estimate(
        groups=groups,
        group_by=group_by,
        tokens=tokens,
        documents=documents,
        tokens_per_document=per_document,
        confidence=confidence,
        target_error=target_error,
        seed=seed,
        stopped_by=stopped_by,
        bytes_read=read,
        bytes_total=sum(s.bytes_total for s in strata),
        units_read=sum(len(dr.measures) for dr in draws),
        units_total=sum(len(s.units) for s in strata),
        strata=len(draws),
        exact_tokens=exact[0],
        exact_documents=exact[1],
    )


def _group_rows(draws: list[_Draws], T: float, vt: float, confidence: float, exact_groups, key: str):
    from .estimate_groups import StratumSample, group_estimates

    samples = []
    for dr in draws:
        ms = dr.measures
        samples.append(
            StratumSample(
                units_total=len(dr.order),
                aux_total=dr.stratum.aux_total,
                documents_aux_total=dr.stratum.documents_aux_total,
                x=np.array([m.x for m in ms], dtype=np.float64),
                x_documents=np.array([m.x_documents for m in ms], dtype=np.float64),
                tokens=np.array([m.tokens for m in ms], dtype=np.float64),
                groups=[m.groups for m in ms],
            )
        )
    return group_estimates(samples, T, vt, confidence, exact_groups, key=key)


class _Stop(Exception):
    def __init__(self, reason: str):
        self.reason = reason


def _allocate(draws: list[_Draws], batch: int) -> list[_Draws]:
    """The next ``batch`` draws (about), in proportion to the strata's sizes: every stratum read
    to the same fraction. Neyman's allocation by the variances seen so far was measured to cover
    less often (benches/bench_estimate.py): it stops drawing where early draws happened to agree,
    and that is where the estimate is low."""
    units = sum(len(dr.order) for dr in draws)
    fraction = min(1.0, (sum(len(dr.measures) for dr in draws) + batch) / units)
    out: list[_Draws] = []
    for dr in draws:
        want = min(len(dr.order), math.ceil(fraction * len(dr.order))) - len(dr.measures)
        out.extend([dr] * max(0, want))
    return out or [next(dr for dr in draws if dr.remaining)]


# --------------------------------------------------------------------------------------------
# the population: sources cut into units, grouped into strata


def range_bytes(size: int) -> int:
    """Byte range length for a plain jsonl file of ``size`` bytes."""
    return int(min(MAX_RANGE_BYTES, max(MIN_RANGE_BYTES, size // RANGES_PER_FILE)))


def _file_units(
    source: int, path: str, fmt: TextFormat, text: TextOptions, unit_bytes: int | None
) -> tuple[str, list[SamplingUnit], float, float, int]:
    """(aux kind, sampling units, X of tokens, X of documents, bytes) of one file."""
    size = os.path.getsize(path)
    policy = text.policy()
    if fmt is JSONL and JSONL.plain_bytes(path):
        ranges = fmt.units(source, path, policy, unit_bytes or range_bytes(size))
        return BYTES, [(u,) for u in ranges], float(size), float(size), size
    units = fmt.units(source, path, policy, max(1, size))
    rows = fmt.footer_documents(path)
    if rows is not None:
        # Parquet: tokens against the text column's uncompressed bytes (a long document is long
        # there too), documents against the rows; both totals are in the footer.
        cost = sum(u.cost for u in units)
        return ROWS, [(u,) for u in units], float(cost), float(rows), cost
    # A compressed stream cannot be cut, and an Arrow batch's rows are not known before it is
    # read: the whole file is one sampling unit, its size the auxiliary.
    return FILE_BYTES, [tuple(units)] if units else [], float(size), float(size), size


def _segments(stratum: Stratum) -> list[Stratum]:
    """A big jsonl file as contiguous strata of about SEGMENT_UNITS ranges: data is often sorted
    (by source, by language, by date), and strata of neighbours take that out of the variance."""
    count = len(stratum.units) // SEGMENT_UNITS
    if stratum.aux != BYTES or count < 2:
        return [stratum]
    bounds = np.linspace(0, len(stratum.units), count + 1).astype(int)
    out = []
    for k in range(count):
        part = stratum.units[bounds[k] : bounds[k + 1]]
        covered = sum(u[0].stop - u[0].start for u in part)  # the ranges' bytes: X of the segment
        out.append(Stratum(f"{stratum.name} [{k}]", BYTES, part, float(covered), float(covered), covered))
    return out


def build_strata(
    files: Sequence[tuple[int, str, TextFormat]], text: TextOptions, unit_bytes: int | None = None
) -> tuple[list[Stratum], list[dict]]:
    """Strata over the files' sampling units, and one row per file (path, format, aux, units, bytes)."""
    strata: list[Stratum] = []
    pooled: dict[tuple[str, int], Stratum] = {}
    rows: list[dict] = []
    for source, path, fmt in files:
        aux, units, X, X_documents, nbytes = _file_units(source, path, fmt, text, unit_bytes)
        rows.append({"path": path, "format": fmt.display_name(path), "aux": aux, "units": len(units), "bytes": nbytes})
        if not units:
            continue
        if len(units) >= OWN_STRATUM_UNITS:
            strata.extend(_segments(Stratum(path, aux, units, X, X_documents, nbytes)))
            continue
        key = (aux, nbytes.bit_length())  # files of about the same size (a power of two) pool their units
        group = pooled.get(key)
        if group is None:
            group = pooled[key] = Stratum(f"{aux} files of {1 << max(0, key[1] - 1)}+ bytes", aux, [], 0.0, 0.0, 0)
            strata.append(group)
        group.units.extend(units)
        group.aux_total += X
        group.documents_aux_total += X_documents
        group.bytes_total += nbytes
    return strata, rows


# --------------------------------------------------------------------------------------------
# from the command line's inputs to an estimate


@dataclass(frozen=True)
class EstimateOptions:
    target_error: float = 0.01
    confidence: float = 0.95
    seed: int | None = None  # None: a random seed, reported so that the run can be repeated
    budget_bytes: int | None = None
    budget_seconds: float | None = None
    unit_bytes: int | None = None  # jsonl range length (default: range_bytes of each file)


_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_SIZE_UNITS.update({"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40})
_TIME_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def parse_budget(text: str) -> tuple[int | None, float | None]:
    """ "2GB", "500MiB", "100000" (bytes) or "30s", "5min", "1h" (seconds): (bytes, seconds)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    if m is None or (unit not in _SIZE_UNITS and unit not in _TIME_UNITS):
        raise UsageError(f"--budget {text!r}: give bytes (e.g. 2GB, 500MiB) or seconds (e.g. 30s, 5min)")
    value = float(m.group(1))
    if value <= 0:
        raise UsageError(f"--budget {text!r} must be positive")
    if unit in _TIME_UNITS:
        return None, value * _TIME_UNITS[unit]
    return int(value * _SIZE_UNITS[unit]), None


def parse_fraction(text: str, flag: str) -> float:
    """ "0.5%" or "0.005" as 0.005."""
    stripped = text.strip()
    try:
        value = float(stripped[:-1]) / 100 if stripped.endswith("%") else float(stripped)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: give a fraction (0.01) or a percentage (1%)") from None
    if not 0 < value < 1:
        raise UsageError(f"{flag} {text!r} must be between 0 and 100 %")
    return value


def estimate_scan(
    paths: Sequence[str],
    text: TextOptions,
    options: EstimateOptions,
    training: TrainingOptions | None = None,
    progress: Progress | None = None,
) -> Estimate:
    """Estimate the tokens and documents of ``paths`` (as ``scan`` finds them) from a sample."""
    from .formats.base import TokenFormat
    from .formats.indexed import IndexedShard
    from .options import NoProgress
    from .sources import find_sources

    progress = progress or NoProgress()
    if text.executor != "local":
        raise UsageError(
            "--estimate reads its sample on the local workers (--workers): --executor ray is not supported"
        )
    if training is not None and (training.weights is not None or training.datasets is not None):
        raise UsageError("--estimate plans all files as one dataset: --weights and --valid/--test-data need a count")
    if training is not None and training.mixture:
        raise UsageError("--mixture needs each group's exact tokens: it does not go with --estimate")
    if "-" in paths:
        raise UsageError("--estimate reads random parts of files: standard input cannot be sampled")
    discovery = find_sources(list(paths))
    if discovery.failures:
        raise discovery.failures[0]
    seed = options.seed if options.seed is not None else secrets.randbelow(2**31)
    files: list[tuple[int, str, TextFormat]] = []
    exact_tokens = exact_documents = 0
    exact_groups: dict[str, tuple[int, int]] | None = {} if text.group_by is not None else None
    needs_tokenizer = None
    shards = 0
    for i, source in enumerate(discovery.sources):
        if isinstance(source.format, TextFormat):
            from .formats.base import TEXT

            if source.format.inspect(source.path, text.policy()) == TEXT:
                needs_tokenizer = needs_tokenizer or source.path
            files.append((i, source.path, source.format))
        else:
            # token files (.bin/.idx, datatrove .ds, .npy) state their totals: exact, not sampled
            assert isinstance(source.format, TokenFormat)
            shard: IndexedShard = source.format.open(source.path, None)
            exact_tokens += shard.tokens
            exact_documents += shard.documents
            shards += 1
            if exact_groups is not None:  # grouped by file, as a scan groups them
                exact_groups[source.path] = (shard.tokens, shard.documents)
    if needs_tokenizer and text.tokenizer is None:
        raise UsageError(f"a tokenizer (--tokenizer) is needed to count the text in {needs_tokenizer}")
    spec = None
    if needs_tokenizer:
        from .tokenizer import load_tokenizer_spec

        assert text.tokenizer is not None
        spec = load_tokenizer_spec(text.tokenizer)
    strata, rows = build_strata(files, text, options.unit_bytes)
    result, choice = _sample(strata, spec, text, options, seed, progress, (exact_tokens, exact_documents), exact_groups)
    result.files = rows
    if shards:
        result.notes.append(
            f"{shards} token file(s) (.bin/.idx, .ds, .npy) counted exactly from their index (included)"
        )
    if result.stopped_by == "budget":
        result.notes.append("stopped by the budget before the target error was reached")
    if not result.complete:
        result.notes.append("INTERRUPTED: the estimate of the units drawn so far (partial)")
    result.notes.append(f"engine: {choice.engine} ({choice.reason})")
    if result.skipped_records:
        result.notes.append(
            f"{result.skipped_records:,} bad record(s) skipped in the {result.bytes_read:,} bytes read "
            "(--skip-bad-records): they are neither documents nor tokens"
        )
    if result.groups is not None:
        result.notes.append(
            "groups: estimated from the same sample (the stopping rule is the total's); groups that no "
            "sampled unit holds are not listed"
        )
        untrusted = sum(1 for g in result.groups if not g["trusted"])
        if untrusted:
            from .estimate_groups import RARE_UNITS

            result.notes.append(
                f"{untrusted} group(s) marked not trusted: held by fewer than {RARE_UNITS} sampled units, their "
                "intervals rest on too few values and cover less often than stated"
            )
    if training is not None and (result.complete or math.isfinite(result.tokens.high)):
        result.plan = plan_ranges(result, training)
    return result


def _sample(
    strata, spec, text: TextOptions, options: EstimateOptions, seed: int, progress: Progress, exact, exact_groups
):
    """Run the estimator with the units read on the local workers; with the reference engine
    again if the fast one disagreed with it."""
    from . import storage
    from .counting import WORKER_ENV
    from .engines import HF_REQUESTED, choose_engine
    from .engines.hf import worker_start_method
    from .executors import LocalExecutor
    from .sampling_units import RoundReader, forget_sampling_worker, prepare_sampling_worker

    choice = choose_engine(spec, text.engine) if spec is not None else HF_REQUESTED
    if choice.engine == "fast":
        from .engines.fast.code_version import announce_first_compile

        announce_first_compile(progress)
    worker_env = {**WORKER_ENV, **storage.worker_env()}
    with LocalExecutor(text.workers, worker_env=worker_env, start_method=worker_start_method()) as executor:
        reader = RoundReader(executor, spec, text, choice, progress)
        if spec is not None and executor.workers > 1:
            if executor.start_method == "fork":
                # set up once here, inherited by every forked worker (as a scan does)
                prepare_sampling_worker(*reader.initargs())
                executor.start()
            else:
                executor.start(functools.partial(prepare_sampling_worker, *reader.initargs()))
        run = functools.partial(
            sample_strata,
            strata,
            reader,
            target_error=options.target_error,
            confidence=options.confidence,
            seed=seed,
            budget_bytes=options.budget_bytes,
            budget_seconds=options.budget_seconds,
            exact=exact,
            group_by=text.group_by,
            exact_groups=exact_groups,
        )
        progress.start(sum(s.bytes_total for s in strata))
        try:
            result = run()
        except EngineDisagreed as disagreed:
            choice = HF_REQUESTED
            reader.use(choice)
            executor.start()  # the disagreement stopped the workers: one new pool for the recount
            progress.start(sum(s.bytes_total for s in strata))
            result = run()
            result.notes.append(
                f"the fast engine disagreed with Hugging Face ({disagreed}): the sample was counted with hf"
            )
        finally:
            forget_sampling_worker()  # this process's copy of the workers' state
    if text.skip_bad_records:
        result.skipped_records = reader.crediting.skipped
        result.skipped_examples = [bad.describe() for bad in reader.crediting.examples]
    return result, choice


def plan_ranges(result: Estimate, training: TrainingOptions) -> dict:
    """The plan's samples and iterations at both ends of the tokens' interval (the trainers'
    numbers grow with T, so the range is between them)."""
    from . import planning

    if not math.isfinite(result.tokens.high):
        raise UsageError("the budget ended before the sample could bound the tokens: give a larger --budget")
    # whole tokens; the slack keeps float noise in the shares of lines from widening an exact range
    tokens = [math.floor(result.tokens.low + 1e-6), math.ceil(result.tokens.high - 1e-6)]
    low = planning.make_plan(tokens=tokens[0], **training.plan_kwargs())
    high = planning.make_plan(tokens=tokens[1], **training.plan_kwargs())
    out = {
        "confidence": result.confidence,
        "tokens": tokens,
        "samples_per_epoch": [low.samples_per_epoch, high.samples_per_epoch],
        "iterations_per_epoch": [low.iterations_per_epoch, high.iterations_per_epoch],
    }
    if training.train_iters is not None:
        # fewer tokens need more epochs
        out["train_epochs"] = [high.splits["train"].epochs, low.splits["train"].epochs]
    return out


__all__ = [
    "Estimate",
    "EstimateOptions",
    "Interval",
    "Measure",
    "RoundMeasurer",
    "Stratum",
    "build_strata",
    "estimate_scan",
    "one_by_one",
    "parse_budget",
    "parse_fraction",
    "plan_ranges",
    "sample_strata",
]
