"""Coverage of ``--estimate``'s intervals, cheaply: every sampling unit of a corpus is measured
once with the real counting code, then the real estimator (``sample_strata``, over the real
``build_strata``) runs for many seeds, reading the measured units from a memo instead of
tokenizing the same byte ranges again. Used by tests/test_estimate.py and benches/.

Also the skewed corpora: heavy-tailed document lengths, a few huge files among many small
ones, and files of different scripts (tokens per byte differ several-fold between them).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tokcount.engines import choose_engine
from tokcount.estimate import BYTES, build_strata, one_by_one, sample_strata
from tokcount.executors import LocalExecutor
from tokcount.formats.jsonl import line_extents
from tokcount.options import NoProgress, TextOptions
from tokcount.sampling_units import RoundReader
from tokcount.sources import find_sources
from tokcount.tokenizer import load_tokenizer_spec

ALPHABETS = {
    "latin": "abcdefghijklmnopqrstuvwxyz",
    "cyrillic": "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "cjk": "的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年",
    "code": "abcdefxyz_(){}[];=+-*/<>0123456789",
}


def _words(rng: np.random.Generator, alphabet: str, n_words: int) -> str:
    lengths = rng.integers(1, 9, n_words)
    letters = rng.integers(0, len(alphabet), int(lengths.sum()))
    chars = np.array(list(alphabet))[letters]
    out, k = [], 0
    for length in lengths:
        out.append("".join(chars[k : k + length]))
        k += length
    joiner = "" if alphabet == ALPHABETS["cjk"] else " "
    return joiner.join(out)


def _documents(rng: np.random.Generator, n: int, alphabet: str, tail: float | None) -> list[str]:
    """n documents; with ``tail`` (a Pareto shape) their lengths in words are heavy-tailed."""
    if tail is None:
        sizes = rng.integers(5, 400, n)
    else:
        sizes = np.minimum((rng.pareto(tail, n) + 1) * 20, 400_000).astype(int)
    return [_words(rng, alphabet, int(s)) for s in sizes]


def write_jsonl(path: Path, texts: list[str], sources: list[str | None] | None = None) -> None:
    records = [{"text": t} for t in texts]
    for record, source in zip(records, sources or ()):
        if source is not None:  # None: the document has no source key
            record["source"] = source
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def write_parquet(path: Path, texts: list[str], row_group: int) -> None:
    pq.write_table(pa.table({"text": texts}), path, row_group_size=row_group)


def heavy_tailed_corpus(directory: Path, seed: int = 1, documents: int = 3000) -> list[str]:
    """One jsonl file whose document lengths follow a Pareto tail (a few documents of megabytes)."""
    rng = np.random.default_rng(seed)
    path = directory / "heavy.jsonl"
    write_jsonl(path, _documents(rng, documents, ALPHABETS["latin"], tail=1.1))
    return [str(path)]


def huge_and_small_files_corpus(directory: Path, seed: int = 2, small_files: int = 40) -> list[str]:
    """Two big jsonl files, many small ones (pooled into strata by size), Parquet row groups and
    gzip files (whole-file units)."""
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(2):
        p = directory / f"big{k}.jsonl"
        write_jsonl(p, _documents(rng, 2500, ALPHABETS["latin" if k == 0 else "code"], tail=None))
        paths.append(p)
    for k in range(small_files):
        p = directory / f"small{k:03d}.jsonl"
        write_jsonl(p, _documents(rng, int(rng.integers(5, 60)), ALPHABETS["latin"], tail=1.5))
        paths.append(p)
    for k in range(3):
        p = directory / f"rows{k}.parquet"
        write_parquet(p, _documents(rng, 600, ALPHABETS["cyrillic"], tail=None), row_group=20)
        paths.append(p)
    for k in range(12):
        p = directory / f"packed{k:02d}.jsonl.gz"
        write_jsonl(p, _documents(rng, int(rng.integers(20, 80)), ALPHABETS["code"], tail=None))
        paths.append(p)
    return [str(p) for p in paths]


def languages_corpus(directory: Path, seed: int = 3, documents: int = 900) -> list[str]:
    """One file per script: tokens per byte differ several-fold between the strata."""
    rng = np.random.default_rng(seed)
    paths = []
    for name, alphabet in ALPHABETS.items():
        p = directory / f"{name}.jsonl"
        write_jsonl(p, _documents(rng, documents, alphabet, tail=1.8))
        paths.append(str(p))
    return paths


# (source, share of the documents, alphabet, Pareto tail of the lengths or None): groups from
# about 40 % of the tokens down to a fraction of a percent; None is a missing key
SOURCES = [
    ("web", 0.44, "latin", 1.5),
    ("code", 0.24, "code", None),
    ("ru", 0.12, "cyrillic", 1.8),
    ("zh", 0.08, "cjk", None),
    ("math", 0.05, "code", 1.3),
    ("books", 0.03, "latin", 1.05),
    ("forum", 0.02, "latin", None),
    (None, 0.015, "latin", None),
    ("legal", 0.005, "cyrillic", None),
]


def sources_corpus(directory: Path, seed: int = 4, documents: int = 2500) -> list[str]:
    """A mixture with a ``source`` key (--group-by source): one file shuffled, one sorted by
    source (as data often is), and a Parquet file with a ``source`` column."""
    rng = np.random.default_rng(seed)

    def draw(n: int) -> tuple[list[str], list[str | None]]:
        shares = np.array([s[1] for s in SOURCES])
        picks = rng.choice(len(SOURCES), n, p=shares / shares.sum())
        texts, names = [], []
        for k in picks:
            name, _, alphabet, tail = SOURCES[int(k)]
            texts.extend(_documents(rng, 1, ALPHABETS[alphabet], tail))
            names.append(name)
        return texts, names

    shuffled, sorted_, table = directory / "shuffled.jsonl", directory / "sorted.jsonl", directory / "rows.parquet"
    write_jsonl(shuffled, *draw(documents))
    texts, names = draw(documents)
    order = sorted(range(len(texts)), key=lambda i: str(names[i]))
    write_jsonl(sorted_, [texts[i] for i in order], [names[i] for i in order])
    texts, names = draw(documents // 2)
    pq.write_table(pa.table({"text": texts, "source": names}), table, row_group_size=25)
    return [str(shuffled), str(sorted_), str(table)]


@dataclass
class Population:
    strata: list
    measures: dict  # sampling unit -> Measure
    exact_tokens: int
    exact_documents: int
    spans: dict  # sampling unit -> [(path, begin, end)] of the bytes reading it reads
    total_bytes: int
    group_by: str | None = None
    exact_groups: dict | None = None  # group -> (tokens, documents), the measures' sums

    def bytes_read(self, units: list) -> int:
        """Bytes a run that drew ``units`` reads: the union of their spans (a line that several
        ranges overlap is read once, as the estimator's memo of long lines does)."""
        by_path: dict[str, list[tuple[int, int]]] = {}
        for unit in units:
            for path, begin, end in self.spans[unit]:
                by_path.setdefault(path, []).append((begin, end))
        total = 0
        for spans in by_path.values():
            reach = -1
            for begin, end in sorted(spans):
                total += max(0, end - max(begin, reach))
                reach = max(reach, end)
        return total


def measure_population(paths: list[str], text: TextOptions, unit_bytes: int | None = None) -> Population:
    """The strata of ``paths`` and every sampling unit measured once, with the real code."""
    sources = find_sources(paths).sources
    files = [(i, s.path, s.format) for i, s in enumerate(sources)]
    strata, _ = build_strata(files, text, unit_bytes)
    assert text.tokenizer is not None
    spec = load_tokenizer_spec(text.tokenizer)
    reader = RoundReader(LocalExecutor(1), spec, text, choose_engine(spec, text.engine), NoProgress())
    measures, spans = {}, {}
    for stratum in strata:
        for unit, measure in zip(stratum.units, reader([(unit, stratum.aux) for unit in stratum.units])):
            measures[unit] = measure
            if stratum.aux == BYTES:
                begin, lengths = line_extents(unit[0].path, unit[0].start, unit[0].stop)
                spans[unit] = [(unit[0].path, begin, begin + sum(lengths))]
            else:  # row groups and whole files do not overlap
                spans[unit] = [(f"{u.path}#{u.part}", 0, measures[unit].nbytes) for u in unit[:1]]
    exact_groups = None
    if text.group_by is not None:
        exact_groups = {}
        for m in measures.values():
            for g, (t, d) in m.groups.items():
                before = exact_groups.get(g, (0.0, 0.0))
                exact_groups[g] = (before[0] + t, before[1] + d)
        exact_groups = {g: (round(t), round(d)) for g, (t, d) in exact_groups.items()}
    return Population(
        strata,
        measures,
        # byte ranges hold fractions of lines: the shares add up to whole documents (float rounding aside)
        round(sum(m.tokens for m in measures.values())),
        round(sum(m.documents for m in measures.values())),
        spans,
        sum(s.bytes_total for s in strata),
        text.group_by,
        exact_groups,
    )


@dataclass
class GroupCoverage:
    """Of one group, over the runs: how often it was listed, marked not trusted, and covered."""

    tokens_share: float  # of the exact total
    listed: int = 0
    untrusted: int = 0
    tokens_covered: int = 0  # runs whose tokens' interval held the exact total
    share_covered: int = 0
    covered_when_trusted: int = 0  # ... of the runs that marked it trusted

    def to_dict(self, runs: int) -> dict:
        trusted = self.listed - self.untrusted
        return {
            "tokens_share": self.tokens_share,
            "listed": self.listed / runs,
            "untrusted": self.untrusted / runs,
            "tokens_coverage": self.tokens_covered / runs,
            "share_coverage": self.share_covered / runs,
            "coverage_when_trusted": self.covered_when_trusted / trusted if trusted else None,
            "runs_trusted": trusted,
        }


@dataclass
class Coverage:
    runs: int
    tokens_covered: int
    documents_covered: int
    mean_fraction_read: float
    max_fraction_read: float
    mean_relative_error: float
    stopped_by: dict
    # --group-by: group -> GroupCoverage
    groups: dict | None = None

    def to_dict(self) -> dict:
        groups = {str(g): c.to_dict(self.runs) for g, c in (self.groups or {}).items()}
        return {
            "runs": self.runs,
            "tokens_coverage": self.tokens_covered / self.runs,
            "documents_coverage": self.documents_covered / self.runs,
            "mean_fraction_read": self.mean_fraction_read,
            "max_fraction_read": self.max_fraction_read,
            "mean_relative_error": self.mean_relative_error,
            "stopped_by": self.stopped_by,
            **({"groups": groups} if self.groups is not None else {}),
        }


def coverage(population: Population, seeds: range, **options) -> Coverage:
    """Run the real estimator once per seed over the measured units; count the intervals that
    hold the exact totals."""
    tokens = documents = 0
    fractions, errors = [], []
    stopped: dict[str, int] = {}
    exact_groups = population.exact_groups
    total = sum(t for t, _ in (exact_groups or {}).values())
    groups = None if exact_groups is None else {g: GroupCoverage(t / total) for g, (t, _) in exact_groups.items()}
    for seed in seeds:
        drawn: list = []

        def replay(unit, aux, drawn=drawn):
            drawn.append(unit)
            return population.measures[unit]

        est = sample_strata(population.strata, one_by_one(replay), seed=seed, group_by=population.group_by, **options)
        if groups is not None:
            assert exact_groups is not None and est.groups is not None
            for row in est.groups:
                tally, (exact, _) = groups[row["key"]], exact_groups[row["key"]]
                covered = _holds(row["tokens"], exact)
                tally.listed += 1
                tally.untrusted += not row["trusted"]
                tally.tokens_covered += covered
                tally.share_covered += _holds(row["share"], exact / total)
                tally.covered_when_trusted += covered and row["trusted"]
        tokens += est.tokens.low <= population.exact_tokens <= est.tokens.high
        documents += est.documents.low <= population.exact_documents <= est.documents.high
        fractions.append(population.bytes_read(drawn) / population.total_bytes)
        errors.append(est.relative_error)
        stopped[est.stopped_by] = stopped.get(est.stopped_by, 0) + 1
    return Coverage(
        len(seeds),
        tokens,
        documents,
        float(np.mean(fractions)),
        float(np.max(fractions)),
        float(np.mean(errors)),
        stopped,
        groups,
    )


def _holds(interval: dict, value: float) -> bool:
    # a null bound is an infinite one; the slack absorbs the float sums of line shares
    low, high = interval["low"], interval["high"]
    return (low is None or low - 1e-6 <= value) and (high is None or value <= high + 1e-6)
