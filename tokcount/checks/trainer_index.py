"""What training already built from a ``.bin/.idx`` pair: the trainers' index cache files,
checked against tokcount's own plan for the same parameters (the logs: ``training_log``).

- GPT-NeoX caches (§3.6), next to the data; the parameters are in the name:
  ``{prefix}_{name}_indexmap_{N}ns_{S}sl_{seed}s_{pack_impl}pi[_ac]_{doc,sample,shuffle}_idx.npy``
- Megatron-core caches (§4.7), in ``<prefix>/cache/GPTDataset_indices`` or ``--data-cache-path``;
  the parameters are in the description:
  ``{md5}-GPTDataset-{split}-{description.txt,document_index.npy,sample_index.npy,shuffle_index.npy}``

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

from .. import planning
from ..errors import FileCheckError, UsageError
from ..formats.indexed import IndexedShard

INT32_MAX = 2**31 - 1
UINT32_LIMIT = 2**32 - 2  # shuffle index is int64 from here on (§3.4, §4.5)
ROW_CHUNK = 1 << 20  # sample-index rows recomputed at a time

_NEOX_NAME = re.compile(
    r"_(?P<name>(?:train|valid|test)(?:_\d+)?)_indexmap_(?P<ns>\d+|None)ns_(?P<sl>\d+)sl_(?P<seed>\d+)s_"
    r"(?P<pi>[a-z_]+?)pi(?P<ac>_ac)?_(?P<kind>doc_idx|sample_idx|shuffle_idx)\.npy$"
)
_MEGATRON_NAME = re.compile(
    r"^(?P<md5>[0-9a-f]{32})-GPTDataset-(?P<split>train|valid|test)-"
    r"(?P<kind>description\.txt|document_index\.npy|sample_index\.npy|shuffle_index\.npy)$"
)
_MEGATRON_KINDS = {
    "document_index.npy": "doc",
    "sample_index.npy": "sample",
    "shuffle_index.npy": "shuffle",
    "description.txt": "description",
}


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
            m = _NEOX_NAME.search(os.path.basename(path)[len(base) :])
            if m is None or not os.path.basename(path).startswith(base + "_"):
                continue
            key = (m["name"], m["ns"], m["sl"], m["seed"], m["pi"], bool(m["ac"]))
            groups.setdefault(key, {})[m["kind"].split("_")[0]] = path
    for (name, ns, sl, seed, pi, ac), files in groups.items():
        if len(files) < 3:
            notes.append(
                f"NeoX {name} index files for {ns}ns_{sl}sl: only {', '.join(sorted(files))} present "
                "(NeoX rebuilds all three when one is missing)"
            )
            continue
        found.append(
            IndexFiles(
                "neox",
                name,
                files,
                None if ns == "None" else int(ns),
                int(sl),
                int(seed),
                {"pack_impl": pi, "allow_chopped": ac},
            )
        )

    megatron_dir = cache_dir or os.path.join(prefix, "cache", "GPTDataset_indices")
    sets: dict[tuple[str, str], dict[str, str]] = {}
    if os.path.isdir(megatron_dir):
        for entry in sorted(os.listdir(megatron_dir)):
            m = _MEGATRON_NAME.match(entry)
            if m:
                kind = _MEGATRON_KINDS[m["kind"]]
                sets.setdefault((m["md5"], m["split"]), {})[kind] = os.path.join(megatron_dir, entry)
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
        found.append(
            IndexFiles(
                "megatron", split, files, None if num_samples is None else int(num_samples), seq_len, seed, details
            )
        )
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
    return (
        recorded == prefix
        or os.path.realpath(recorded) == os.path.realpath(prefix)
        or os.path.basename(recorded) == os.path.basename(prefix)
    )


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
            "framework": f.framework,
            "split": f.split,
            "files": dict(f.files),
            "parameters": {
                "num_samples": f.num_samples,
                "seq_len": f.seq_len,
                "seed": f.seed,
                **{k: v for k, v in f.details.items() if k != "description"},
            },
            "sequence_range": list(self.sequence_range),
            "tokens": self.tokens,
            "found": self.found,
            "expected": self.expected,
            "ok": self.ok,
            "disagreements": list(self.disagreements),
            "warnings": list(self.warnings),
        }


def _split_range(files: IndexFiles, shard: IndexedShard, doc, split: str | None) -> tuple[tuple[int, int], list[str]]:
    n = shard.sequences
    notes: list[str] = []
    if files.framework == "megatron":
        index = planning.SPLIT_NAMES.index(files.split)
        matrix = files.details["split_matrix"]
        entry = matrix[index] if isinstance(matrix, list) and len(matrix) == 3 else None
        if entry is None:
            raise FileCheckError(files.files["description"], "description", f"split_matrix has no {files.split} entry")
        return planning.megatron_split_range(entry, n), notes
    name = files.split.split("_")[0]
    if files.split != name:  # blend member: the whole file is this split (§3.2)
        return (0, n), notes
    if split is not None:
        r = planning.split_ranges(split, n, "neox")[name]
        if r is None:
            raise UsageError(
                f"split {split!r} builds no {name} split for {n} sequences, yet {files.files['doc']} exists"
            )
        return r, notes
    if doc.shape[0] == 0:
        return (0, 0), notes
    lo, hi = int(doc.min()), int(doc.max()) + 1
    notes.append(f"sequence range [{lo}, {hi}) inferred from the document index (pass --split to check it)")
    return (lo, hi), notes


def expected_sample_rows(
    doc: np.ndarray, sizes: np.ndarray, seq_len: int, extra: int, lo: int, hi: int, cum_end: np.ndarray
) -> np.ndarray:
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


def check_index_files(
    shard: IndexedShard, files: IndexFiles, split: str | None = None, extra_token: bool = True
) -> IndexFilesCheck:
    """Compare one split's cache files with the plan for the same data and parameters."""
    doc, sample, shuffle = _load(files.files["doc"]), _load(files.files["sample"]), _load(files.files["shuffle"])
    framework = files.framework
    x = planning.extra_token_for(framework, extra_token)
    (beg, end), notes = _split_range(files, shard, doc, split)
    sizes = shard.sizes
    T = int(np.sum(np.asarray(sizes[beg:end]), dtype=np.int64))
    n = end - beg
    # A recorded 0 samples has always been checked as "no target" (one epoch); kept so verdicts stay the same.
    # The split is planned under the name "train" as before, so refusal texts are unchanged.
    sp = planning.plan_split(
        T,
        seq_len=files.seq_len,
        framework=framework,
        extra_token=bool(x),
        target_samples=files.num_samples or None,
        sequences=(0, n),
    )
    expected = {
        "epochs": sp.epochs,
        "samples_built": sp.samples_built,
        "dataset_length": sp.dataset_length,
        "logged_samples": sp.logged_samples,
        "separate_final_epoch": sp.separate_final_epoch,
        "samples_per_epoch": sp.samples_per_epoch,
        "refused": sp.refused,
    }
    B = int(sample.shape[0]) - 1 if sample.ndim == 2 else None
    E_found = doc.shape[0] / n if n else None
    found = {
        "epochs": int(E_found) if E_found is not None and E_found == int(E_found) else E_found,
        "samples_built": B,
        "dataset_length": None if B is None else planning.dataset_length(B, framework),
        "logged_samples": None if B is None else planning.logged_samples(B, framework),
        "document_index_length": int(doc.shape[0]),
        "shuffle_index_length": int(shuffle.shape[0]),
    }
    result = IndexFilesCheck(files, (beg, end), T, found, expected, warnings=notes)
    dis = result.disagreements
    if framework == "megatron" and not files.details.get("md5_matches_description", True):
        result.warnings.append("the md5 in the file names is not the md5 of description.txt (edited or copied?)")
    if sp.refused:
        dis.append(f"tokcount's plan refuses these parameters: {sp.refused}")
        return result
    E, Bx = sp.epochs, sp.samples_built
    if E is None or Bx is None:  # cannot happen: a plan that is not refused has both
        return result
    if sample.ndim != 2 or sample.shape[1] != 2:
        dis.append(f"sample index has shape {sample.shape}, expected (B + 1, 2)")
        return result
    if doc.shape[0] != E * n:
        dis.append(
            f"document index has {doc.shape[0]:,} entries; {E} epoch(s) of {n:,} sequences need {E * n:,} "
            "(the data or the split changed since the index was built?)"
        )
    if B != Bx:
        dis.append(
            f"{B:,} samples built in the files; the data's {T:,} tokens give {Bx:,} "
            f"(E = {E}, (E·T − {x})//{files.seq_len})"
        )
    if shuffle.shape[0] != Bx:
        dis.append(f"shuffle index has {shuffle.shape[0]:,} entries, expected {Bx:,}")
    _check_dtypes(result, doc, sample, shuffle, E, T, Bx, shard, framework, files.seq_len)
    if dis:
        return result
    separate = bool(sp.separate_final_epoch)
    _check_document_index(result, doc, beg, end, E, separate)
    if not dis:
        _check_sample_index(result, doc, sample, sizes, files.seq_len, x)
    _check_shuffle_index(result, shuffle, Bx, sp.samples_before_final_epoch if separate else None)
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
        result.warnings.append(
            f"sample index is {sample.dtype}; this {framework} version's rule gives "
            f"{np.dtype(want)} (an older trainer?)"
        )
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
        result.disagreements.append(
            f"document index entry {i} is {int(values[i])}, outside the split's sequences [{beg}, {end})"
        )
        return
    parts = [(values[: (E - 1) * n], E - 1), (values[(E - 1) * n :], 1)] if separate else [(values, E)]
    for part, times in parts:
        counts = np.bincount(part - beg, minlength=n)
        wrong = np.flatnonzero(counts != times)
        if wrong.size:
            s = int(wrong[0])
            result.disagreements.append(
                f"sequence {beg + s} appears {int(counts[s])} times in the document index"
                f"{' (final epoch part)' if separate and times == 1 else ''}, expected {times}"
            )
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
                f"{want[r - lo].tolist()} (the sequence sizes changed since the index was built?)"
            )
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


def check_trainer_index(
    shard: IndexedShard, cache_dir: str | None = None, split: str | None = None, extra_token: bool = True
) -> tuple[list[IndexFilesCheck], list[str]]:
    sets, notes = find_index_files(shard.prefix, cache_dir)
    if not sets:
        looked = [
            f"{shard.prefix}_*_indexmap_*.npy",
            cache_dir or os.path.join(shard.prefix, "cache", "GPTDataset_indices"),
        ]
        raise UsageError(
            f"no trainer index files found for {shard.prefix} (looked for {' and '.join(looked)})"
            + (f"; {notes[0]}" if notes else "")
        )
    return [check_index_files(shard, s, split, extra_token) for s in sets], notes
