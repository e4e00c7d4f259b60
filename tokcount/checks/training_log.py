"""What a training run printed about its dataset, checked against this data: the log lines of §3.5
(GPT-NeoX) and §4.9 (Megatron-LM): "total number of samples/epochs", NeoX's "document indices in
[a, b)", Megatron's "total number of sequences/documents" and split matrix."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .. import planning
from ..errors import FileCheckError
from ..formats.indexed import IndexedShard

_SPLIT_OF_NAME = {"train": "train", "valid": "valid", "test": "test", "validation": "valid"}
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
            raise FileCheckError(
                path,
                "log",
                "no GPT-NeoX or Megatron dataset lines found "
                "('total number of samples', 'document indices in [a, b)', ...)",
            )
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
        return {
            "log": self.log,
            "framework": self.framework,
            "ok": self.ok,
            "splits": self.rows,
            "disagreements": list(self.disagreements),
            "notes": list(self.notes),
        }


def check_log(
    shard: IndexedShard,
    log_path: str,
    seq_len: int | None = None,
    framework: str | None = None,
    extra_token: bool = True,
) -> LogCheck:
    """Do this data's sizes give the samples and epochs the run printed?"""
    summary = parse_log(log_path, framework)
    fw = summary.framework
    x = planning.extra_token_for(fw, extra_token)
    S = seq_len or summary.seq_len
    dis, notes, rows = [], [], []
    if summary.sequences is not None and summary.sequences != shard.sequences:
        dis.append(f"the run loaded {summary.sequences:,} sequences; {shard.prefix} has {shard.sequences:,}")
    if summary.documents is not None and summary.documents != shard.documents:
        dis.append(f"the run loaded {summary.documents:,} documents; {shard.prefix} has {shard.documents:,}")
    ranges = {name: s.range for name, s in summary.splits.items()}
    matrix = summary.split_matrix
    if fw == "megatron" and matrix:
        fractions = [
            tuple(float(v) for v in re.findall(r"[-+0-9.eE]+", p)) if p.strip() != "None" else None
            for p in re.findall(r"\([^)]*\)|None", matrix)
        ]
        for name, fr in zip(planning.SPLIT_NAMES, fractions):
            if fr:
                ranges[name] = planning.megatron_split_range(fr, shard.sequences)
    if fw == "neox":
        ends = [r[1] for r in ranges.values() if r]
        if ends and max(ends) != shard.sequences:
            dis.append(
                f"the run's split ranges end at sequence {max(ends):,}; {shard.prefix} has {shard.sequences:,} "
                "sequences (NeoX's 'documents' are sequences)"
            )
    for name in planning.SPLIT_NAMES:
        s = summary.splits.get(name)
        if s is None or (s.logged_samples is None and s.cpp_samples is None):
            continue
        rng = ranges.get(name)
        if rng is None:
            rng = (0, shard.sequences)
            notes.append(f"{name}: no split range in the log; assuming all {shard.sequences:,} sequences")
        T = int(np.sum(shard.sizes[max(0, rng[0]) : rng[1]], dtype=np.int64))
        if s.cpp_samples is not None:
            B = s.cpp_samples
        else:
            assert s.logged_samples is not None  # splits with neither were skipped above
            B = planning.builds_from_logged(s.logged_samples, fw)  # §3.5 / §4.9
        E = s.epochs
        row = {
            "split": name,
            "range": list(rng),
            "tokens": T,
            "logged_samples": s.logged_samples,
            "samples_built": B,
            "epochs": E,
            "expected_samples_built": None,
            "seq_len_range": None,
            "verdict": "",
        }
        if E is None:
            row["verdict"] = "no epochs line (a cache load): samples only"
            E_try = [1]
        else:
            E_try = [E]
        Ev = E_try[0]
        if S is not None:
            expect = max(0, planning.samples_built(T, Ev, S, x, fw))
            row["expected_samples_built"] = expect
            if E is None and expect != B:
                # without the epochs line any E is possible: find one that fits
                fits = [e for e in range(1, 10_000) if planning.samples_built(T, e, S, x, fw) == B] if T > 0 else []
                if fits:
                    row["verdict"] = f"consistent with {fits[0]} epoch(s)"
                    row["expected_samples_built"] = B
                    rows.append(row)
                    continue
            if expect == B:
                row["verdict"] = row["verdict"] or "matches"
            else:
                row["verdict"] = "DIFFERS"
                dis.append(
                    f"{name}: the run built {B:,} samples over {Ev} epoch(s); this data's {T:,} tokens give "
                    f"({Ev}·{T:,} − {x})//{S} = {expect:,}"
                )
        elif (bounds := planning.seq_lens_giving(B, T, Ev, x)) is not None:
            lo, hi = bounds
            row["seq_len_range"] = [lo, hi] if lo <= hi else None
            if lo <= hi:
                row["verdict"] = (
                    row["verdict"] or f"consistent with seq_len in [{lo:,}, {hi:,}] (pass --seq-len to pin it)"
                )
            else:
                row["verdict"] = "DIFFERS"
                dis.append(f"{name}: no seq_len turns this data's {T:,} tokens × {Ev} epoch(s) into {B:,} samples")
        rows.append(row)
    if not rows:
        raise FileCheckError(log_path, "log", "no 'total number of samples' line found")
    return LogCheck(log_path, fw, rows, dis, notes)
