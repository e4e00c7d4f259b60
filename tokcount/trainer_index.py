"""What training already built from a ``.bin/.idx`` pair: the trainers' index cache files and
their log lines, checked against tokcount's own plan for the same parameters.

- GPT-NeoX caches (§3.6): ``{prefix}_{name}_indexmap_{N}ns_{S}sl_{seed}s_{pack_impl}pi[_ac]_{doc,sample,shuffle}_idx.npy``
  next to the data; the parameters are in the name.
- Megatron-core caches (§4.7): ``{md5}-GPTDataset-{split}-{description.txt,document_index.npy,sample_index.npy,shuffle_index.npy}``
  in ``<prefix>/cache/GPTDataset_indices`` or ``--data-cache-path``; the parameters are in the description.
- Logs (§3.5, §4.9): "total number of samples/epochs", NeoX's "document indices in [a, b)",
  Megatron's "total number of sequences/documents" and split matrix.

Index arrays are read with memory maps. The sample index is recomputed from the file's own
document index and the data's sequence sizes (the walk of §3.4/§4.5 in closed form), in chunks.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from . import planning
from .errors import FileCheckError, UsageError
from .formats.indexed import IndexedShard

INT32_MAX = 2**31 - 1
UINT32_LIMIT = 2**32 - 2  # shuffle index is int64 from here on (§3.4, §4.5)
ROW_CHUNK = 1 << 20  # sample-index rows recomputed at a time

_NEOX_NAME = re.compile(
    r"_(?P<name>(?:train|valid|test)(?:_\d+)?)_indexmap_(?P<ns>\d+|None)ns_(?P<sl>\d+)sl_(?P<seed>\d+)s_"
    r"(?P<pi>[a-z_]+?)pi(?P<ac>_ac)?_(?P<kind>doc_idx|sample_idx|shuffle_idx)\.npy$")
_MEGATRON_NAME = re.compile(
    r"^(?P<md5>[0-9a-f]{32})-GPTDataset-(?P<split>train|valid|test)-"
    r"(?P<kind>description\.txt|document_index\.npy|sample_index\.npy|shuffle_index\.npy)$")
_MEGATRON_KINDS = {"document_index.npy": "doc", "sample_index.npy": "sample", "shuffle_index.npy": "shuffle",
                   "description.txt": "description"}
_SPLIT_OF_NAME = {"train": "train", "valid": "valid", "test": "test", "validation": "valid"}


@dataclass
class IndexFiles:
    """One split's cached index arrays as a trainer wrote them."""

    framework: str
    split: str  # "train", "valid", "test" (NeoX blends: "train_0", ...)
    files: dict[str, str]  # "doc", "sample", "shuffle" (, "description") -> path
    num_samples: int | None
    seq_len: int
    seed: int
    details: dict = field(default_factory=dict)  # pack_impl / allow_chopped, or the description


def find_index_files(prefix: str, cache_dir: str | None = None) -> tuple[list[IndexFiles], list[str]]:
    """Every complete set of cache files for this data prefix, and notes on what was skipped."""
    found, notes = [], []
    base = os.path.basename(prefix)
    neox_dirs = [os.path.dirname(prefix) or "."] + ([cache_dir] if cache_dir else [])
    groups: dict[tuple, dict[str, str]] = {}
    for directory in dict.fromkeys(neox_dirs):
        for path in sorted(glob.glob(os.path.join(glob.escape(directory), glob.escape(base) + "_*_indexmap_*.npy"))):
            m = _NEOX_NAME.search(os.path.basename(path)[len(base):])
            if m is None or not os.path.basename(path).startswith(base + "_"):
                continue
            key = (m["name"], m["ns"], m["sl"], m["seed"], m["pi"], bool(m["ac"]))
            groups.setdefault(key, {})[m["kind"].split("_")[0]] = path
    for (name, ns, sl, seed, pi, ac), files in groups.items():
        if len(files) < 3:
            notes.append(f"NeoX {name} index files for {ns}ns_{sl}sl: only {', '.join(sorted(files))} present "
                         "(NeoX rebuilds all three when one is missing)")
            continue
        found.append(IndexFiles("neox", name, files, None if ns == "None" else int(ns), int(sl), int(seed),
                                {"pack_impl": pi, "allow_chopped": ac}))

    megatron_dir = cache_dir or os.path.join(prefix, "cache", "GPTDataset_indices")
    sets: dict[tuple[str, str], dict[str, str]] = {}
    if os.path.isdir(megatron_dir):
        for entry in sorted(os.listdir(megatron_dir)):
            m = _MEGATRON_NAME.match(entry)
            if m:
                sets.setdefault((m["md5"], m["split"]), {})[_MEGATRON_KINDS[m["kind"]]] = os.path.join(megatron_dir, entry)
    for (md5, split), files in sets.items():
        if "description" not in files:
            notes.append(f"Megatron {md5}-{split}: no description.txt, parameters unknown")
            continue
        desc = _read_description(files["description"])
        if len(files) < 4:
            notes.append(f"Megatron {md5}-{split}: incomplete ({', '.join(sorted(files))})")
            continue
        if not _same_dataset(desc.get("dataset_path"), prefix):
            notes.append(f"Megatron {md5}-{split}: built for {desc.get('dataset_path')!r}, not this prefix")
            continue
        try:
            seq_len, seed = int(desc["sequence_length"]), int(desc["random_seed"])
            num_samples = desc["num_samples"]
            matrix = desc["split_matrix"]
        except (KeyError, TypeError, ValueError) as e:
            raise FileCheckError(files["description"], "description", f"missing or bad field {e}") from None
        details = {"md5": md5, "description": desc, "split_matrix": matrix}
        with open(files["description"], "rb") as f:
            details["md5_matches_description"] = hashlib.md5(f.read()).hexdigest() == md5
        found.append(IndexFiles("megatron", split, files, None if num_samples is None else int(num_samples),
                                seq_len, seed, details))
    return found, notes


def _read_description(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError) as e:
        raise FileCheckError(path, "description", f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise FileCheckError(path, "description", "not a JSON object")
    return value


def _same_dataset(recorded, prefix: str) -> bool:
    # Runs on another machine record another absolute path; the file name part must agree.
    if not isinstance(recorded, str):
        return False
    return recorded == prefix or os.path.realpath(recorded) == os.path.realpath(prefix) or \
        os.path.basename(recorded) == os.path.basename(prefix)


def _load(path: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise FileCheckError(path, "npy", str(e).splitlines()[0] if str(e) else type(e).__name__) from None


@dataclass
class IndexFilesCheck:
    files: IndexFiles
    sequence_range: tuple[int, int]
    tokens: int
    found: dict  # what the files imply
    expected: dict  # tokcount's plan for the same parameters
    disagreements: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.disagreements

    def to_dict(self) -> dict:
        f = self.files
        return {
            "framework": f.framework, "split": f.split, "files": dict(f.files),
            "parameters": {"num_samples": f.num_samples, "seq_len": f.seq_len, "seed": f.seed,
                           **{k: v for k, v in f.details.items() if k != "description"}},
            "sequence_range": list(self.sequence_range), "tokens": self.tokens,
            "found": self.found, "expected": self.expected, "ok": self.ok,
            "disagreements": list(self.disagreements), "warnings": list(self.warnings),
        }

    def lines(self) -> list[str]:
        f, fo = self.files, self.found
        head = (f"{'OK' if self.ok else 'MISMATCH'}: {f.framework} {f.split} index "
                f"(num_samples {f.num_samples}, seq_len {f.seq_len}, seed {f.seed}): sequences "
                f"[{self.sequence_range[0]:,}, {self.sequence_range[1]:,}), {self.tokens:,} tokens -> "
                f"{fo['epochs']} epoch(s), {fo['samples_built']:,} samples built, dataset length {fo['dataset_length']:,}"
                + (f", log prints {fo['logged_samples']:,}" if fo.get("logged_samples") is not None else ""))
        out = [head]
        out.extend(f"  disagreement: {d}" for d in self.disagreements)
        out.extend(f"  warning: {w}" for w in self.warnings)
        return out


def _split_range(files: IndexFiles, shard: IndexedShard, doc, split: str | None) -> tuple[tuple[int, int], list[str]]:
    n = shard.sequences
    notes = []
    if files.framework == "megatron":
        index = planning.SPLIT_NAMES.index(files.split)
        matrix = files.details["split_matrix"]
        entry = matrix[index] if isinstance(matrix, list) and len(matrix) == 3 else None
        if entry is None:
            raise FileCheckError(files.files["description"], "description", f"split_matrix has no {files.split} entry")
        # §4.2: beg/end = int(round(fraction · float(n)))
        return (int(round(float(entry[0]) * float(n))), int(round(float(entry[1]) * float(n)))), notes
    name = files.split.split("_")[0]
    if files.split != name:  # blend member: the whole file is this split (§3.2)
        return (0, n), notes
    if split is not None:
        r = planning.split_ranges(split, n, "neox")[name]
        if r is None:
            raise UsageError(f"split {split!r} builds no {name} split for {n} sequences, yet {files.files['doc']} exists")
        return r, notes
    if doc.shape[0] == 0:
        return (0, 0), notes
    lo, hi = int(doc.min()), int(doc.max()) + 1
    notes.append(f"sequence range [{lo}, {hi}) inferred from the document index (pass --split to check it)")
    return (lo, hi), notes


def expected_sample_rows(doc: np.ndarray, sizes: np.ndarray, seq_len: int, extra: int, lo: int, hi: int,
                         cum_end: np.ndarray) -> np.ndarray:
    """Rows lo..hi-1 of the sample index the walk of §3.4/§4.5 builds over ``doc``.

    Row r (r >= 1) is where sample r-1's last token lies: global position q = r·S + x − 1 along
    the concatenated documents, as (index into doc, offset) — for x = 0 the offset is one past it.
    """
    rows = np.empty((hi - lo, 2), dtype=np.int64)
    r = np.arange(lo, hi, dtype=np.int64)
    q = r * seq_len + extra - 1
    d = np.searchsorted(cum_end, q, side="right")
    past = d >= cum_end.shape[0]  # Megatron: the walk ran out of documents (partial last sample)
    d = np.minimum(d, cum_end.shape[0] - 1)
    start = cum_end[d] - sizes[doc[d]]
    off = q - start + (1 - extra)
    if past.any():
        off[past] = sizes[doc[-1]] - extra
    rows[:, 0], rows[:, 1] = d, off
    if lo == 0:
        rows[0] = (0, 0)
    return rows


def check_index_files(shard: IndexedShard, files: IndexFiles, split: str | None = None,
                      extra_token: bool = True) -> IndexFilesCheck:
    """Compare one split's cache files with the plan for the same data and parameters."""
    doc, sample, shuffle = _load(files.files["doc"]), _load(files.files["sample"]), _load(files.files["shuffle"])
    framework = files.framework
    x = 1 if (framework == "neox" or extra_token) else 0
    (beg, end), notes = _split_range(files, shard, doc, split)
    sizes = shard.sizes
    split_sizes = np.asarray(sizes[beg:end])
    T = int(np.sum(split_sizes, dtype=np.int64))
    n = end - beg
    N = files.num_samples
    plan = planning.make_plan(split_sizes, seq_len=files.seq_len, global_batch_size=max(1, N or 1),
                              framework=framework, extra_token=bool(x), train_iters=1 if N else None)
    sp = plan.splits["train"]
    expected = {"epochs": sp.epochs, "samples_built": sp.samples_built, "dataset_length": sp.dataset_length,
                "logged_samples": sp.logged_samples, "separate_final_epoch": sp.separate_final_epoch,
                "samples_per_epoch": sp.samples_per_epoch, "refused": sp.refused}
    B = int(sample.shape[0]) - 1 if sample.ndim == 2 else None
    E_found = doc.shape[0] / n if n else None
    found = {"epochs": int(E_found) if E_found is not None and E_found == int(E_found) else E_found,
             "samples_built": B, "dataset_length": None if B is None else (B - 1 if framework == "neox" else B),
             "logged_samples": None if B is None else (B + 1 if framework == "neox" else B),
             "document_index_length": int(doc.shape[0]), "shuffle_index_length": int(shuffle.shape[0])}
    result = IndexFilesCheck(files, (beg, end), T, found, expected, warnings=notes)
    dis = result.disagreements
    if framework == "megatron" and not files.details.get("md5_matches_description", True):
        result.warnings.append("the md5 in the file names is not the md5 of description.txt (edited or copied?)")
    if sp.refused:
        dis.append(f"tokcount's plan refuses these parameters: {sp.refused}")
        return result
    E, Bx = sp.epochs, sp.samples_built
    if sample.ndim != 2 or sample.shape[1] != 2:
        dis.append(f"sample index has shape {sample.shape}, expected (B + 1, 2)")
        return result
    if doc.shape[0] != E * n:
        dis.append(f"document index has {doc.shape[0]:,} entries; {E} epoch(s) of {n:,} sequences need {E * n:,} "
                   "(the data or the split changed since the index was built?)")
    if B != Bx:
        dis.append(f"{B:,} samples built in the files; the data's {T:,} tokens give {Bx:,} "
                   f"(E = {E}, (E·T − {x})//{files.seq_len})")
    if shuffle.shape[0] != Bx:
        dis.append(f"shuffle index has {shuffle.shape[0]:,} entries, expected {Bx:,}")
    _check_dtypes(result, doc, sample, shuffle, E, T, Bx, shard, framework, files.seq_len)
    if dis:
        return result
    separate = bool(sp.separate_final_epoch)
    sans = ((E - 1) * T - x) // files.seq_len if separate else 0
    _check_document_index(result, doc, beg, end, E, separate)
    if not dis:
        _check_sample_index(result, doc, sample, sizes, files.seq_len, x)
    _check_shuffle_index(result, shuffle, Bx, sans if separate else None)
    return result


def _check_dtypes(result, doc, sample, shuffle, E, T, B, shard, framework, S) -> None:
    if doc.dtype != np.int32:
        result.warnings.append(f"document index is {doc.dtype}; both trainers write int32")
    if framework == "neox":
        want = np.int32 if 2 * ((E * T - 1) / S + 1) < INT32_MAX else np.int64  # §3.4, float division
    else:
        top = max(doc.shape[0], int(shard.sizes.max()) if shard.sequences else 0)
        want = np.int32 if top <= INT32_MAX else np.int64  # §4.5: over all sequences of the file
    if sample.dtype != want:
        result.warnings.append(f"sample index is {sample.dtype}; this {framework} version's rule gives "
                               f"{np.dtype(want)} (an older trainer?)")
    want_shuffle = np.uint32 if B < UINT32_LIMIT else np.int64
    if shuffle.dtype != want_shuffle:
        result.warnings.append(f"shuffle index is {shuffle.dtype}, expected {np.dtype(want_shuffle)}")


def _check_document_index(result, doc, beg, end, E, separate) -> None:
    n = end - beg
    if n == 0:
        return
    values = np.asarray(doc, dtype=np.int64)
    outside = np.flatnonzero((values < beg) | (values >= end))
    if outside.size:
        i = int(outside[0])
        result.disagreements.append(f"document index entry {i} is {int(values[i])}, outside the split's "
                                    f"sequences [{beg}, {end})")
        return
    parts = [(values[: (E - 1) * n], E - 1), (values[(E - 1) * n:], 1)] if separate else [(values, E)]
    for part, times in parts:
        counts = np.bincount(part - beg, minlength=n)
        wrong = np.flatnonzero(counts != times)
        if wrong.size:
            s = int(wrong[0])
            result.disagreements.append(
                f"sequence {beg + s} appears {int(counts[s])} times in the document index"
                f"{' (final epoch part)' if separate and times == 1 else ''}, expected {times}")
            return


def _check_sample_index(result, doc, sample, sizes, S, x) -> None:
    doc = np.asarray(doc, dtype=np.int64)
    lengths = np.asarray(sizes, dtype=np.int64)[doc]
    cum_end = np.cumsum(lengths)
    rows = sample.shape[0]
    for lo in range(0, rows, ROW_CHUNK):
        hi = min(rows, lo + ROW_CHUNK)
        want = expected_sample_rows(doc, np.asarray(sizes, dtype=np.int64), S, x, lo, hi, cum_end)
        got = np.asarray(sample[lo:hi], dtype=np.int64)
        bad = np.flatnonzero((got != want).any(axis=1))
        if bad.size:
            r = lo + int(bad[0])
            result.disagreements.append(
                f"sample index row {r:,} is {got[r - lo].tolist()}, the walk over this data gives "
                f"{want[r - lo].tolist()} (the sequence sizes changed since the index was built?)")
            return


def _check_shuffle_index(result, shuffle, B, sans) -> None:
    values = np.asarray(shuffle, dtype=np.int64)
    pieces = [(0, B)] if sans is None else [(0, sans), (sans, B)]
    for a, b in pieces:
        part = values[a:b]
        if part.size == 0:
            continue
        ok = part.min() >= a and part.max() < b and np.bincount(part - a, minlength=b - a).max() == 1
        if not ok:
            what = "the samples" if sans is None else f"samples [{a:,}, {b:,}) (separate final epoch)"
            result.disagreements.append(f"shuffle index entries [{a:,}, {b:,}) are not a permutation of {what}")
            return


def check_trainer_index(shard: IndexedShard, cache_dir: str | None = None, split: str | None = None,
                        extra_token: bool = True) -> tuple[list[IndexFilesCheck], list[str]]:
    sets, notes = find_index_files(shard.prefix, cache_dir)
    if not sets:
        looked = [f"{shard.prefix}_*_indexmap_*.npy", cache_dir or os.path.join(shard.prefix, "cache", "GPTDataset_indices")]
        raise UsageError(f"no trainer index files found for {shard.prefix} (looked for {' and '.join(looked)})"
                         + (f"; {notes[0]}" if notes else ""))
    return [check_index_files(shard, s, split, extra_token) for s in sets], notes


# ---------------------------------------------------------------------------------------------
# logs

_NUM = r"([0-9][0-9,]*)"
_LOG_PATTERNS = {
    "sequences": re.compile(r"> total number of sequences:\s*" + _NUM),
    "documents": re.compile(r"> total number of documents:\s*" + _NUM),
    "samples": re.compile(r"total number of samples:\s*" + _NUM),
    "epochs": re.compile(r"total number of epochs:\s*" + _NUM),
    "cpp_seq_len": re.compile(r"^\s*sequence length:\s*" + _NUM),
    "range": re.compile(r"document indices in \[(\d+), (\d+)\) total of (\d+) documents"),
    "split_header": re.compile(r"^\s*(train|validation|test):\s*$"),
    "dataset_split": re.compile(r"> dataset split:"),
    "megatron_split": re.compile(r"(?:Build and save|Load) the GPTDataset (train|valid|test) indices"),
    "split_matrix": re.compile(r"Let split_matrix = (\[.*\])"),
}


@dataclass
class LogSplit:
    name: str
    range: tuple[int, int] | None = None
    logged_samples: int | None = None
    epochs: int | None = None
    cpp_samples: int | None = None  # NeoX helpers.cpp line: B


@dataclass
class LogSummary:
    framework: str
    splits: dict[str, LogSplit]
    sequences: int | None = None
    documents: int | None = None
    seq_len: int | None = None
    split_matrix: str | None = None  # Megatron's "Let split_matrix = [...]"


def parse_log(path: str, framework: str | None = None) -> LogSummary:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise FileCheckError(path, "open", e.strerror or str(e)) from None
    text = "\n".join(lines)
    if framework is None:
        if "GPTDataset" in text or "_IndexReader" in text or "split_matrix" in text:
            framework = "megatron"
        elif "document indices in [" in text or "> dataset split:" in text:
            framework = "neox"
        else:
            raise FileCheckError(path, "log", "no GPT-NeoX or Megatron dataset lines found "
                                 "('total number of samples', 'document indices in [a, b)', ...)")
    summary = LogSummary(framework, {})
    current: str | None = None
    pending: list[str] = []  # NeoX: built splits, in build order, still waiting for their sample lines
    after_seq_len = False
    for line in lines:
        m = _LOG_PATTERNS["cpp_seq_len"].search(line)
        if m:
            summary.seq_len = _int(m[1])
            after_seq_len = True
            continue
        if framework == "megatron":
            for key in ("sequences", "documents"):
                m = _LOG_PATTERNS[key].search(line)
                if m:
                    setattr(summary, key, _int(m[1]))
            m = _LOG_PATTERNS["megatron_split"].search(line)
            if m:
                current = m[1]
                summary.splits.setdefault(current, LogSplit(current))
            m = _LOG_PATTERNS["split_matrix"].search(line)
            if m:
                summary.split_matrix = m[1]
        else:
            if _LOG_PATTERNS["dataset_split"].search(line):
                pending, current = [], None
            m = _LOG_PATTERNS["split_header"].search(line)
            if m:
                current = _SPLIT_OF_NAME[m[1]]
            m = _LOG_PATTERNS["range"].search(line)
            if m and current is not None:
                a, b = int(m[1]), int(m[2])
                summary.splits[current] = LogSplit(current, (a, b))
                if b > a:  # NeoX builds a split only when its range is not empty (§3.2)
                    pending.append(current)
        m = _LOG_PATTERNS["samples"].search(line)
        if m:
            value = _int(m[1])
            if after_seq_len:  # the helpers.cpp block prints B (§3.4)
                if pending:
                    summary.splits[pending[0]].cpp_samples = value
                after_seq_len = False
                continue
            target = current if framework == "megatron" else (pending[0] if pending else None)
            if target is not None:
                summary.splits.setdefault(target, LogSplit(target)).logged_samples = value
            continue
        m = _LOG_PATTERNS["epochs"].search(line)
        if m:
            target = current if framework == "megatron" else (pending.pop(0) if pending else None)
            if target is not None:
                summary.splits.setdefault(target, LogSplit(target)).epochs = _int(m[1])
    return summary


def _int(text: str) -> int:
    return int(text.replace(",", ""))


@dataclass
class LogCheck:
    log: str
    framework: str
    rows: list[dict]
    disagreements: list[str]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return not self.disagreements

    def to_dict(self) -> dict:
        return {"log": self.log, "framework": self.framework, "ok": self.ok, "splits": self.rows,
                "disagreements": list(self.disagreements), "notes": list(self.notes)}

    def lines(self) -> list[str]:
        out = [f"{'OK' if self.ok else 'MISMATCH'}: {self.log} ({self.framework} log) "
               + ("matches this data" if self.ok else "does not match this data")]
        for r in self.rows:
            rng = f"[{r['range'][0]:,}, {r['range'][1]:,})" if r["range"] else "range not logged"
            out.append(f"  {r['split']}: sequences {rng}, {r['tokens']:,} tokens here; log: samples built "
                       f"{_fmt(r['samples_built'])}, epochs {_fmt(r['epochs'])}; {r['verdict']}")
        out.extend(f"  disagreement: {d}" for d in self.disagreements)
        out.extend(f"  note: {n}" for n in self.notes)
        return out


def _fmt(v) -> str:
    return "-" if v is None else f"{v:,}"


def check_log(shard: IndexedShard, log_path: str, seq_len: int | None = None, framework: str | None = None,
              extra_token: bool = True) -> LogCheck:
    """Do this data's sizes give the samples and epochs the run printed?"""
    summary = parse_log(log_path, framework)
    fw = summary.framework
    x = 1 if (fw == "neox" or extra_token) else 0
    S = seq_len or summary.seq_len
    dis, notes, rows = [], [], []
    if summary.sequences is not None and summary.sequences != shard.sequences:
        dis.append(f"the run loaded {summary.sequences:,} sequences; {shard.prefix} has {shard.sequences:,}")
    if summary.documents is not None and summary.documents != shard.documents:
        dis.append(f"the run loaded {summary.documents:,} documents; {shard.prefix} has {shard.documents:,}")
    ranges = {name: s.range for name, s in summary.splits.items()}
    matrix = summary.split_matrix
    if fw == "megatron" and matrix:
        fractions = [tuple(float(v) for v in re.findall(r"[-+0-9.eE]+", p)) if p.strip() != "None" else None
                     for p in re.findall(r"\([^)]*\)|None", matrix)]
        for name, fr in zip(planning.SPLIT_NAMES, fractions):
            if fr:
                ranges[name] = (int(round(fr[0] * float(shard.sequences))), int(round(fr[1] * float(shard.sequences))))
    if fw == "neox":
        ends = [r[1] for r in ranges.values() if r]
        if ends and max(ends) != shard.sequences:
            dis.append(f"the run's split ranges end at sequence {max(ends):,}; {shard.prefix} has {shard.sequences:,} "
                       "sequences (NeoX's 'documents' are sequences)")
    for name in planning.SPLIT_NAMES:
        s = summary.splits.get(name)
        if s is None or (s.logged_samples is None and s.cpp_samples is None):
            continue
        rng = ranges.get(name)
        if rng is None:
            rng = (0, shard.sequences)
            notes.append(f"{name}: no split range in the log; assuming all {shard.sequences:,} sequences")
        T = int(np.sum(shard.sizes[max(0, rng[0]):rng[1]], dtype=np.int64))
        if s.cpp_samples is not None:
            B = s.cpp_samples
        else:
            B = s.logged_samples - 1 if fw == "neox" else s.logged_samples  # §3.5 / §4.9
        E = s.epochs
        row = {"split": name, "range": list(rng), "tokens": T, "logged_samples": s.logged_samples,
               "samples_built": B, "epochs": E, "expected_samples_built": None, "seq_len_range": None, "verdict": ""}
        if E is None:
            row["verdict"] = "no epochs line (a cache load): samples only"
            E_try = [1]
        else:
            E_try = [E]
        Ev = E_try[0]
        total = Ev * T - x
        if S is not None:
            expect = total // S if total >= 0 else 0
            row["expected_samples_built"] = expect
            if E is None and expect != B:
                # without the epochs line any E is possible: find one that fits
                fits = [e for e in range(1, 10_000) if (e * T - x) // S == B] if T > 0 else []
                if fits:
                    row["verdict"] = f"consistent with {fits[0]} epoch(s)"
                    row["expected_samples_built"] = B
                    rows.append(row)
                    continue
            if expect == B:
                row["verdict"] = row["verdict"] or "matches"
            else:
                row["verdict"] = "DIFFERS"
                dis.append(f"{name}: the run built {B:,} samples over {Ev} epoch(s); this data's {T:,} tokens give "
                           f"({Ev}·{T:,} − {x})//{S} = {expect:,}")
        elif B > 0 and total > 0:
            lo, hi = total // (B + 1) + 1, total // B
            row["seq_len_range"] = [lo, hi] if lo <= hi else None
            if lo <= hi:
                row["verdict"] = row["verdict"] or f"consistent with seq_len in [{lo:,}, {hi:,}] (pass --seq-len to pin it)"
            else:
                row["verdict"] = "DIFFERS"
                dis.append(f"{name}: no seq_len turns this data's {T:,} tokens × {Ev} epoch(s) into {B:,} samples")
        rows.append(row)
    if not rows:
        raise FileCheckError(log_path, "log", "no 'total number of samples' line found")
    return LogCheck(log_path, fw, rows, dis, notes)
