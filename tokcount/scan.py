"""``tokcount.scan``: count every source, validate it, and attach the training plan."""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from . import columnar, indexed_dataset, jsonl
from .engine_choice import ParityGuard, choose_engine
from .errors import FileCheckError, UsageError
from .executors import LocalExecutor, default_workers
from .report import FileReport, Report, length_stats
from .sources import INDEXED, JSONL, Source, find_sources
from .work import (WORKER_ENV, TextPolicy, UnitResult, WorkUnit, init_worker, plan_units, prepare_worker, run_unit,
                   sample_location)


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


@dataclass(frozen=True)
class TextOptions:
    """How raw text (jsonl, parquet, arrow) is counted."""

    tokenizer: str | None = None  # tokenizer.json, a directory holding one, or a hub name
    add_special_tokens: bool = True  # what Megatron / NeoX preprocessing does with HF tokenizers
    append_eod: bool = False
    text_key: str = "text"  # jsonl; dotted paths reach nested fields
    text_column: str = "text"  # parquet / arrow
    skip_bad_records: bool = False
    workers: int | None = None  # default: every core
    engine: str = "auto"  # "hf" (the reference), "fast" (numba), "auto": fast where supported, guarded
    unit_bytes: int | None = None  # plain jsonl byte range per work unit (default: sized to balance the workers)
    in_process_bytes: int = 4 << 20  # below this, starting worker processes costs more than it saves

    def policy(self) -> TextPolicy:
        return TextPolicy(self.add_special_tokens, self.append_eod, self.text_key, self.text_column, self.skip_bad_records)


class Progress:
    """What a scan tells its caller while it runs. The default does nothing."""

    def start(self, total_bytes: int) -> None: ...

    def advance(self, nbytes: int = 0, tokens: int = 0, documents: int = 0) -> None: ...


def scan(
    paths: Sequence[str] | str,
    training: TrainingOptions | None = None,
    verify_tokens: TokenCheckOptions | None = None,
    progress: Progress | None = None,
    text: TextOptions | None = None,
) -> Report:
    """Count tokens in every source. Files that fail a check are listed in ``report.failures``
    and left out of every count and of the plan."""
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise UsageError("no input paths given")
    if verify_tokens is not None and verify_tokens.vocab_size < 1:
        raise UsageError("--vocab-size must be a positive integer")
    text = text or TextOptions()
    progress = progress or Progress()
    sources, failures = find_sources(list(paths))
    report = Report(failures=list(failures), options=_options_dict(training, verify_tokens))
    results: dict[int, FileReport | FileCheckError] = {}

    shards, text_sources = [], []
    for i, source in enumerate(sources):
        try:
            if source.format == INDEXED:
                shards.append((i, source, indexed_dataset.open_shard(source.path)))
            else:
                text_sources.append((i, source, _text_kind(source, text)))
        except FileCheckError as e:
            results[i] = e

    _require_tokenizer(text_sources, text)
    workers = text.workers or default_workers()
    unit_bytes = text.unit_bytes or _balanced_unit_bytes([s for _, s, _ in text_sources], workers)
    # Fewer files than cores: compressed streams are read as interleaved parts to use them all.
    compressed_parts = workers if len(text_sources) < workers else 1
    units = []
    for i, source, _ in text_sources:
        try:
            units.extend(plan_units(i, source.path, source.format, text.policy(), unit_bytes, compressed_parts))
        except FileCheckError as e:
            results[i] = e
    text_cost = sum(u.cost for u in units)  # bytes of the text units (compressed where they are)
    if text.workers is None and text_cost < text.in_process_bytes:
        workers = 1  # starting worker processes would cost more than it saves
    with LocalExecutor(workers, worker_env=WORKER_ENV) as executor:
        if len(units) > 1:
            # The workers start up (imports, numba) while this process loads the tokenizer.
            executor.start(functools.partial(prepare_worker, text.engine != "hf"))
        spec = _tokenizer_for(text_sources, text, report)
        total_bytes = text_cost
        if verify_tokens is not None:
            total_bytes += sum(shard.bin_bytes for _, _, shard in shards)
        if total_bytes:
            progress.start(total_bytes)
        try:
            for i, source, shard in shards:
                try:
                    results[i] = _count_shard(source, shard, verify_tokens, progress)
                except FileCheckError as e:
                    results[i] = e
            _count_text(units, text_sources, text, spec, progress, results, report, executor)
        except KeyboardInterrupt:
            report.complete = False
    for i in range(len(sources)):
        outcome = results.get(i)
        if isinstance(outcome, FileCheckError):
            report.failures.append(outcome)
        elif outcome is not None:
            report.files.append(outcome)
    if training is not None and report.files and report.complete:
        report.plan, report.blend = _plan(report.files, training)
    return report


def _balanced_unit_bytes(sources: list[Source], workers: int) -> int:
    """About four ranges per worker over the plain jsonl, so that the last ones to finish are
    small; never below 1 MB (per-unit overhead) or above 64 MB (progress and Ctrl-C latency)."""
    plain = sum(os.path.getsize(s.path) for s in sources
                if s.format == JSONL and jsonl.compression_of(s.path) is None and os.path.isfile(s.path))
    target = plain // (4 * workers) if plain else 0
    return int(min(64 << 20, max(1 << 20, target)))


def _text_kind(source: Source, text: TextOptions) -> str:
    """"text" or "token_ids", after the cheap checks (magic bytes, column and its type)."""
    if source.format == JSONL:
        jsonl.check_magic(source.path)
        return columnar.TEXT
    kind, _ = columnar.column_kind(source.path, text.text_column)
    return kind


def _require_tokenizer(text_sources, text: TextOptions) -> None:
    needing = [source.path for _, source, kind in text_sources if kind == columnar.TEXT]
    if needing and text.tokenizer is None:
        raise UsageError(f"--tokenizer is needed to count the text in {needing[0]}" +
                         (f" and {len(needing) - 1} more" if len(needing) > 1 else ""))


def _tokenizer_for(text_sources, text: TextOptions, report: Report):
    if not any(kind == columnar.TEXT for _, _, kind in text_sources):
        return None
    from .tokenizer import load_tokenizer_spec

    spec = load_tokenizer_spec(text.tokenizer)
    report.options["tokenizer"] = spec.info()
    report.options["text"] = {k: v for k, v in asdict(text).items() if k not in ("tokenizer", "unit_bytes", "in_process_bytes")}
    report.options["engine"], report.options["engine_reason"] = choose_engine(spec, text.engine)
    return spec


def _count_text(units: list[WorkUnit], text_sources, text: TextOptions, spec, progress: Progress, results,
                report: Report, executor: LocalExecutor) -> None:
    if not units:
        return
    policy = text.policy()
    engine = report.options.get("engine", "hf") if spec is not None else "hf"
    guard = engine == "fast" and text.engine == "auto"
    by_source: dict[int, list[UnitResult]] = {}
    expected = {}
    for u in units:
        expected[u.source] = expected.get(u.source, 0) + 1
    parity = ParityGuard(spec, text.add_special_tokens) if guard else None
    try:
        mismatch = _run_units(units, policy, executor, (spec, text.add_special_tokens, engine, guard), progress,
                              by_source, parity)
        if parity is not None:
            report.options["parity"] = {"texts_checked": parity.texts_checked, "seconds": round(parity.seconds, 3),
                                        "mismatch": mismatch}
            if mismatch is not None:
                # Never a silently wrong total: every unit is recounted with the reference.
                report.options["engine"] = "hf"
                report.options["engine_reason"] = (
                    f"the fast engine disagreed with Hugging Face on {mismatch['path']} {mismatch['position']} "
                    f"({mismatch['fast']} vs {mismatch['reference']} tokens); every file was recounted with hf")
                by_source.clear()
                progress.start(sum(u.cost for u in units))
                _run_units(units, policy, executor, (spec, text.add_special_tokens, "hf", False), progress, by_source)
    finally:
        # Even when interrupted, files whose units all finished are complete and reported.
        kinds = {i: (source, kind) for i, source, kind in text_sources}
        for i, unit_results in by_source.items():
            if i in results:
                continue
            source, kind = kinds[i]
            results[i] = _assemble(source, kind, unit_results, complete=len(unit_results) == expected[i])


def _run_units(units, policy, executor: LocalExecutor, initargs: tuple, progress, by_source: dict[int, list[UnitResult]],
               parity: ParityGuard | None = None) -> dict | None:
    """Fill by_source as units finish, so an interrupt keeps what was done. With a parity
    guard, each unit's samples are checked as it arrives; the first disagreement stops the
    run (its workers too) and is returned."""
    tasks = [(u, policy) for u in units]
    on_progress = progress.advance
    if parity is not None:
        def on_progress(**counters):
            parity.prepare()  # the first report means the workers have their tasks
            progress.advance(**counters)
    running = executor.run(run_unit, tasks, [u.cost for u in units], on_progress, init_worker, initargs)
    with contextlib.closing(running) as done:
        for _, unit_result in done:
            if parity is not None:
                mismatch = parity.check(unit_result.parity_samples)
                unit_result.parity_samples = []
                if mismatch is not None:
                    return dict(mismatch, path=unit_result.unit.path, position=sample_location(mismatch["position"]))
            by_source.setdefault(unit_result.unit.source, []).append(unit_result)
    return None


def _in_file_order(unit_results: list[UnitResult]) -> tuple[np.ndarray, np.ndarray]:
    """Per-document tokens and sequence sizes of a file, in file order: units by part, and
    the blocks of interleaved parts back in stream order."""
    if all(r.unit.parts == 1 for r in unit_results):
        return (np.concatenate([r.document_tokens for r in unit_results]),
                np.concatenate([r.sequence_sizes for r in unit_results]))
    pieces = []
    for r in unit_results:
        d = s = 0
        for block, documents, sequences in r.blocks:
            pieces.append((block, r.document_tokens[d:d + documents], r.sequence_sizes[s:s + sequences]))
            d += documents
            s += sequences
    pieces.sort(key=lambda piece: piece[0])
    empty = np.zeros(0, np.int64)
    return (np.concatenate([empty] + [p[1] for p in pieces]), np.concatenate([empty] + [p[2] for p in pieces]))


def _assemble(source: Source, kind: str, unit_results: list[UnitResult], complete: bool):
    unit_results.sort(key=lambda r: r.unit.part)
    failed = [r.failure for r in unit_results if r.failure is not None]
    if failed:
        # The earliest in the file: units are in file order, except interleaved parts, whose
        # failures say where they fall (a stable sort keeps unit order for the others).
        failed.sort(key=lambda e: e.order if e.order is not None else 0)
        return failed[0]
    doc_tokens, sizes = _in_file_order(unit_results)
    documents = sum(r.documents for r in unit_results)
    tokens = sum(r.tokens for r in unit_results)
    text_bytes = sum(r.text_bytes for r in unit_results)
    # Each unit keeps its first examples; interleaved parts' are merged back into file order.
    examples = sorted((b for r in unit_results for b in r.skipped_examples),
                      key=lambda b: b.order if b.order is not None else 0)
    skipped_examples = [b.describe() for b in examples[:5]]
    footer = columnar.footer_documents(source.path) if source.format != JSONL else None
    fmt = jsonl.format_name(source.path) if source.format == JSONL else source.format
    report = FileReport(
        path=source.path,
        format=fmt,
        documents=documents,
        sequences=int(sizes.shape[0]),
        empty_documents=sum(r.empty_documents for r in unit_results),
        tokens=tokens,
        dtype=None,
        sizes=sizes,
    )
    report.extra.update({
        "content": kind,
        "text_bytes": text_bytes if kind == columnar.TEXT else None,
        "tokens_per_byte": (tokens / text_bytes) if kind == columnar.TEXT and text_bytes else None,
        "document_tokens": length_stats(doc_tokens),
        "skipped_records": sum(r.skipped for r in unit_results),
        "skipped_examples": skipped_examples,
    })
    if not complete:
        report.extra["complete"] = False
        report.warnings.append("interrupted: only part of this file was counted")
    elif footer is not None and footer != documents + report.extra["skipped_records"]:
        return FileCheckError(source.path, "row count", f"read {documents} rows, the footer says {footer}")
    return report


def _count_shard(source: Source, shard, verify: TokenCheckOptions | None, progress: Progress) -> FileReport:
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
