"""tokcount: exact token counts for LLM training data, and the training plan they imply.

import tokcount
report = tokcount.scan(["data/x_text_document"], tokcount.TrainingOptions(seq_len=2048, global_batch_size=1024))
tokcount.plan(tokens=64_035_813_377, seq_len=2048, global_batch_size=1024).iterations_per_epoch
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import FileCheckError, PlanError, TokcountError, UsageError
from .options import (
    CacheOptions,
    CheckOptions,
    Progress,
    SplitDatasets,
    TextOptions,
    TokenCheckOptions,
    TokenFileOptions,
    TrainingOptions,
)

if TYPE_CHECKING:
    from .planning import ChunkedPlan, Plan, SamplesPlan
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


def plan(
    sizes: Any = None,
    *,
    tokens: int | None = None,
    samples: int | None = None,
    from_log: str | None = None,
    seq_len: int,
    global_batch_size: int,
    framework: str = "megatron",
    extra_token: bool = True,
    split: str | None = None,
    train_iters: int | None = None,
    eval_interval: int = 1000,
    eval_iters: int = 100,
) -> Plan | SamplesPlan | ChunkedPlan:
    """The trainers' math, from exactly one of:

    - ``sizes``: tokens per sequence (e.g. ``report.files[0].sizes``, or an index's sizes);
    - ``tokens``: a token total T (no split: sequences are unknown);
    - ``samples``: samples per epoch, or with ``from_log="neox"|"megatron"`` the "total number of
      samples" a training log printed (NeoX logs B + 1): gives the token range it implies.

    ``framework`` is "megatron" or "neox", or with ``tokens`` "nanotron" or "olmo" (a
    ``planning.ChunkedPlan`` of one file); ``extra_token`` is Megatron's
    add_extra_token_to_sequence (NeoX always uses 1); ``split``, ``train_iters``,
    ``eval_interval`` and ``eval_iters`` as the trainers take them. Returns a ``planning.Plan``
    (``SamplesPlan`` from ``samples``); ``.to_dict()`` gives its JSON, ``.refusals()`` the
    splits the real trainer would hang or abort on.
    """
    from . import planning

    given = [name for name, value in (("sizes", sizes), ("tokens", tokens), ("samples", samples)) if value is not None]
    if len(given) != 1:
        raise UsageError(f"plan() takes exactly one of sizes, tokens or samples (got {', '.join(given) or 'none'})")
    if samples is not None:
        if split is not None or train_iters is not None:
            raise UsageError("plan(samples=...) works back from one epoch: split and train_iters do not apply")
        return planning.plan_from_samples(
            samples,
            seq_len=seq_len,
            global_batch_size=global_batch_size,
            framework=framework,
            extra_token=extra_token,
            from_log=from_log,
        )
    if from_log is not None:
        raise UsageError("from_log applies to samples=")
    if framework in planning.CHUNKING_FRAMEWORKS:
        if tokens is None:
            raise UsageError(f"plan(framework={framework!r}) takes tokens= (one file of that many tokens)")
        planning.check_chunking_options(framework, split=split, extra_token=extra_token)
        return planning.chunked_plan(
            [tokens], seq_len=seq_len, global_batch_size=global_batch_size, framework=framework, train_iters=train_iters
        )
    return planning.make_plan(
        sizes,
        tokens=tokens,
        seq_len=seq_len,
        global_batch_size=global_batch_size,
        framework=framework,
        extra_token=extra_token,
        split=split,
        train_iters=train_iters,
        eval_interval=eval_interval,
        eval_iters=eval_iters,
    )


__all__ = [
    "__version__",
    "scan",
    "plan",
    "Report",
    "TextOptions",
    "SplitDatasets",
    "TrainingOptions",
    "TokenCheckOptions",
    "TokenFileOptions",
    "CheckOptions",
    "CacheOptions",
    "Progress",
    "TokcountError",
    "UsageError",
    "PlanError",
    "FileCheckError",
]
