"""tokcount: exact token counts for LLM training data, and the training plan they imply.

import tokcount
report = tokcount.scan(["data/x_text_document"], tokcount.TrainingOptions(seq_len=2048, global_batch_size=1024))
tokcount.plan(tokens=64_035_813_377, seq_len=2048, global_batch_size=1024).iterations_per_epoch
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import FileCheckError, PlanError, TokcountError, UsageError
from .options import CheckOptions, Progress, TextOptions, TokenCheckOptions, TrainingOptions

if TYPE_CHECKING:
    from .report import Report
    from .scanning import scan


def __getattr__(name: str) -> Any:
    # scan (numba, pyarrow) and Report are imported on first use, so that `tokcount --version`
    # and `tokcount plan` start without them.
    if name == "scan":
        from .scanning import scan

        globals()["scan"] = scan
        return scan
    if name == "Report":
        from .report import Report

        return Report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def plan(*args: Any, **kwargs: Any) -> Any:
    """Trainer math from a per-sequence sizes array or a token total: see tokcount.planning.make_plan."""
    from .planning import make_plan

    return make_plan(*args, **kwargs)


__all__ = [
    "__version__",
    "scan",
    "plan",
    "Report",
    "TextOptions",
    "TrainingOptions",
    "TokenCheckOptions",
    "CheckOptions",
    "Progress",
    "TokcountError",
    "UsageError",
    "PlanError",
    "FileCheckError",
]
