"""The result of a scan: per-file counts, failures, totals and the plan. JSON keys are stable
(documented in the README)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._version import __version__
from .errors import FileCheckError
from .lengths import SequenceSizes


@dataclass
class FileReport:
    path: str
    format: str
    documents: int
    sequences: int
    empty_documents: int
    tokens: int
    dtype: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # format-specific fields, flattened into JSON
    warnings: list[str] = field(default_factory=list)
    # Tokens per sequence, for the plan: an index's memory-mapped array, or for raw text a
    # SequenceSizes read back from the scan's spill file (array-like: np.asarray, tolist).
    sizes: np.ndarray | SequenceSizes | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        out = {
            "path": self.path,
            "format": self.format,
            "documents": self.documents,
            "sequences": self.sequences,
            "empty_documents": self.empty_documents,
            "tokens": self.tokens,
            "dtype": self.dtype,
        }
        out.update(self.extra)
        out["warnings"] = list(self.warnings)
        return out


def length_stats(lengths: np.ndarray) -> dict | None:
    """Exact order statistics of tokens per document, and a log2 histogram for the table."""
    if lengths.size == 0:
        return None
    p50, p90, p99 = np.percentile(lengths, [50, 90, 99], method="inverted_cdf")
    top = int(lengths.max())
    # bin 0 holds empty documents; bin k >= 1 holds lengths in [2^(k-1), 2^k)
    nonzero = lengths[lengths > 0]
    bins = np.bincount(np.floor(np.log2(nonzero)).astype(np.int64) + 1, minlength=max(2, top.bit_length() + 1))
    bins[0] = lengths.size - nonzero.size
    return {
        "min": int(lengths.min()),
        "p50": int(p50),
        "p90": int(p90),
        "p99": int(p99),
        "max": top,
        "mean": float(lengths.mean()),
        "log2_histogram": bins.tolist(),
    }


def failure_to_dict(error: FileCheckError) -> dict:
    return {"path": error.path, "check": error.check, "position": error.position, "message": str(error)}


@dataclass
class Report:
    files: list[FileReport] = field(default_factory=list)
    failures: list[FileCheckError] = field(default_factory=list)
    plan: Any = None  # tokcount.planning.Plan for all files as one dataset
    blend: Any = None  # tokcount.planning.BlendPlan when several files
    split_datasets: Any = None  # tokcount.split_datasets.SplitDatasetsPlan with separate valid/test datasets
    complete: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # about the run as a whole (files carry their own)
    skipped_inputs: list[dict] = field(default_factory=list)  # files a directory walk left out, and why
    merged_inputs: list[dict] = field(default_factory=list)  # inputs that named a file already listed
    groups: list[dict] | None = None  # --group-by: tokcount.grouping.group_rows
    cache: dict | None = None  # the unit cache's statistics (tokcount.unit_cache.CacheStats), when it was used

    @property
    def total(self) -> dict:
        return {
            "files": len(self.files),
            "documents": sum(f.documents for f in self.files),
            "sequences": sum(f.sequences for f in self.files),
            "empty_documents": sum(f.empty_documents for f in self.files),
            "tokens": sum(f.tokens for f in self.files),
        }

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {
            "tokcount_version": __version__,
            "complete": self.complete,
            "options": self.options,
            "files": [f.to_dict() for f in self.files],
            "failures": [failure_to_dict(e) for e in self.failures],
            "warnings": list(self.warnings),
            "skipped_inputs": [dict(s) for s in self.skipped_inputs],
            "merged_inputs": [dict(m) for m in self.merged_inputs],
            "total": self.total,
            "plan": self.plan.to_dict() if self.plan is not None else None,
            "blend": self.blend.to_dict() if self.blend is not None else None,
            "groups": self.groups,
            "cache": self.cache,
            "split_datasets": self.split_datasets.to_dict() if self.split_datasets is not None else None,
        }
