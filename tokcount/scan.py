"""``tokcount.scan``: count every source, validate it, and attach the training plan."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from . import indexed_dataset
from .errors import FileCheckError, UsageError
from .report import FileReport, Report
from .sources import INDEXED, Source, find_sources


@dataclass(frozen=True)
class TrainingOptions:
    """What the trainer will be asked to do with the tokens (see tokcount.planning)."""

    seq_len: int
    global_batch_size: int
    framework: str = "megatron"
    extra_token: bool = True
    split: str | None = None
    train_iters: int | None = None
    eval_interval: int = 1000
    eval_iters: int = 100
    weights: tuple[float, ...] | None = None

    def plan_kwargs(self) -> dict:
        kw = asdict(self)
        kw.pop("weights")
        return kw


@dataclass(frozen=True)
class TokenCheckOptions:
    vocab_size: int
    eod: int | None = None


class Progress:
    """What a scan tells its caller while it runs. The default does nothing."""

    def start(self, total_bytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...


def scan(
    paths: Sequence[str] | str,
    training: TrainingOptions | None = None,
    verify_tokens: TokenCheckOptions | None = None,
    progress: Progress | None = None,
) -> Report:
    """Count tokens in every source. Files that fail a check are listed in ``report.failures``
    and left out of every count and of the plan."""
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise UsageError("no input paths given")
    if verify_tokens is not None and verify_tokens.vocab_size < 1:
        raise UsageError("--vocab-size must be a positive integer")
    progress = progress or Progress()
    sources, failures = find_sources(list(paths))
    report = Report(failures=list(failures), options=_options_dict(training, verify_tokens))
    opened = []
    for source in sources:
        try:
            opened.append((source, _open(source)))
        except FileCheckError as e:
            report.failures.append(e)
    if verify_tokens is not None:
        progress.start(sum(shard.bin_bytes for _, shard in opened))
    try:
        for source, shard in opened:
            try:
                report.files.append(_count(source, shard, verify_tokens, progress))
            except FileCheckError as e:
                report.failures.append(e)
    except KeyboardInterrupt:
        report.complete = False
    if training is not None and report.files:
        report.plan, report.blend = _plan(report.files, training)
    return report


def _open(source: Source):
    if source.format == INDEXED:
        return indexed_dataset.open_shard(source.path)
    raise AssertionError(f"no reader for format {source.format}")


def _count(source: Source, shard, verify: TokenCheckOptions | None, progress: Progress) -> FileReport:
    result = FileReport(
        path=source.path,
        format=shard.format,
        documents=shard.documents,
        sequences=shard.sequences,
        empty_documents=shard.empty_documents,
        tokens=shard.tokens,
        dtype=str(shard.dtype),
        warnings=list(shard.warnings),
        sizes=shard.sizes,
    )
    result.extra["bin_bytes"] = shard.bin_bytes
    if verify is not None:
        check = indexed_dataset.check_tokens(shard, verify.vocab_size, verify.eod, progress.advance)
        result.extra["token_check"] = check.to_dict()
        if check.out_of_range:
            raise FileCheckError(
                shard.bin_path, "token ids < vocab size",
                f"{check.out_of_range} ids outside [0, {verify.vocab_size}), max id {check.max_token_id}",
                f"token {check.first_out_of_range}",
            )
        if check.documents_missing_eod:
            raise FileCheckError(
                shard.bin_path, "documents end in EOD",
                f"{check.documents_missing_eod} non-empty documents do not end in EOD id {verify.eod}",
                f"document {check.first_document_missing_eod}",
            )
    return result


def _plan(files: list[FileReport], training: TrainingOptions):
    from . import planning

    sizes = [f.sizes for f in files]
    merged = sizes[0] if len(sizes) == 1 else np.concatenate(sizes)
    whole = planning.make_plan(merged, **training.plan_kwargs())
    blend = None
    if len(files) > 1 or training.weights is not None:
        if training.weights is not None and len(training.weights) != len(files):
            raise UsageError(f"--weights has {len(training.weights)} values for {len(files)} files")
        blend = planning.blend_plan(sizes, list(training.weights) if training.weights else None, **training.plan_kwargs())
    return whole, blend


def _options_dict(training, verify) -> dict:
    out = {}
    if training is not None:
        out["training"] = asdict(training)
    if verify is not None:
        out["verify_tokens"] = asdict(verify)
    return out
