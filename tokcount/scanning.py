"""``tokcount.scan``: count every source, validate it, and attach the training plan. Orchestration
only: formats read, engines count, executors run, ``planning`` does the trainers' math."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from . import storage
from .counting import (
    WORKER_ENV,
    ReferenceElsewhere,
    UnitResult,
    count_unit,
    forget_worker,
    prepare_worker,
    reference_counter,
    start_worker,
)
from .engines import HF_REQUESTED, EngineChoice, choose_engine
from .engines.hf import worker_start_method
from .engines.parity import GuardBudget, ParityGuard, ParityTotals, check_deferred, recount_on_disagreement
from .errors import FileCheckError, UsageError
from .executors import LocalExecutor, TaskFailed, default_workers
from .formats.base import TEXT, TextFormat, TokenFormat, WorkUnit
from .formats.indexed import IndexedShard, check_tokens
from .formats.registry import JSONL, TOKEN_MEMMAP
from .lengths import LengthHistogram, SequenceSizes, SizeSpill
from .options import (
    TOKEN_DTYPES,
    CacheOptions,
    NoProgress,
    Progress,
    TextOptions,
    TokenCheckOptions,
    TokenFileOptions,
    TrainingOptions,
)
from .planning import CHUNKING_FRAMEWORKS, check_chunking_options
from .report import FileReport, Report
from .sources import Source, find_sources
from .unit_cache import UnitCache, open_cache

if TYPE_CHECKING:
    from .engines.hf import TokenCounter
    from .ray_executor import RayExecutor


def scan(
    paths: Sequence[str] | str,
    training: TrainingOptions | None = None,
    verify_tokens: TokenCheckOptions | None = None,
    progress: Progress | None = None,
    text: TextOptions | None = None,
    token_files: TokenFileOptions | None = None,
    cache: CacheOptions | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Report:
    """Count the tokens of every input exactly, validate it, and attach the training plan.

    ``paths``: files, ``.bin/.idx`` prefixes, directories (walked recursively) and globs (``**``
    matches any depth): Megatron/NeoX ``.bin/.idx``, datatrove ``.ds`` (with ``.ds.index``),
    OLMo/dolma ``.npy`` token memmaps, JSON lines (plain, ``.gz``, ``.zst``, ``.bz2``, ``.xz``),
    Parquet and Arrow IPC. The same file named twice is counted once.

    ``training`` (``TrainingOptions``): ``seq_len``, ``global_batch_size``, ``framework``
    ("megatron" or "neox"), ``extra_token`` (Megatron's add_extra_token_to_sequence), ``split``
    ("969, 30, 1"), ``train_iters``, ``eval_interval``, ``eval_iters``, ``weights`` (one per
    file): with it, ``report.plan`` (all files as one dataset) and, for several files or with
    weights, ``report.blend`` hold the trainers' samples, epochs and iterations. ``mixture``
    (``(("group", weight), ...)``, with ``text.group_by`` and ``train_iters``): the epochs each
    group needs. ``datasets``
    (``SplitDatasets``: ``valid``, ``test`` paths and their ``valid_weights``, ``test_weights``)
    makes ``paths`` the train datasets of separate train/valid/test datasets (no ``split``):
    ``report.split_datasets`` then holds each split's plan, and ``plan``/``blend`` are None.

    ``verify_tokens`` (``TokenCheckOptions``): ``vocab_size`` and optional ``eod``: read every
    token of the ``.bin`` (``.ds``, ``.npy``) files and fail a file with ids >= vocab_size or,
    with ``eod``, non-empty documents that do not end in it.

    ``token_files`` (``TokenFileOptions``), for ``.npy`` token memmaps: ``dtype`` ("uint16" or
    "uint32") when the file has no header and its size fits both, and ``eod`` (the EOS id that
    ends documents) when no ``.csv.gz`` offsets file lies beside it (default: ``verify_tokens.eod``).

    ``text`` (``TextOptions``), for raw text: ``tokenizer`` (a tokenizer.json, a directory
    holding one, or a hub name), ``add_special_tokens`` (default True, as preprocessing does),
    ``append_eod`` (+1 per document with tokens), ``text_key`` (jsonl; dotted paths reach
    nested fields), ``text_column`` (Parquet/Arrow: text, list of texts, or token-id lists),
    ``skip_bad_records`` (count and list malformed records instead of failing the file),
    ``group_by`` (a jsonl key or a column: ``report.groups`` holds documents, bytes and tokens
    per value, shards as one group each),
    ``workers`` (default: every core), ``engine`` ("auto", "fast", "gigatoken" or "hf"),
    ``unit_bytes`` and ``in_process_bytes`` (how work is cut and when to stay in this process),
    ``executor`` ("local", or "ray": one task per work unit on a Ray cluster,
    ``pip install 'tokcount[ray]'``) and ``ray_address`` (default: ``RAY_ADDRESS``, else a Ray
    started for the scan).

    ``cache`` (``CacheOptions``): keep each text unit's result on disk (``enabled``, ``directory``,
    ``max_bytes``), so that a scan of unchanged files counts nothing again and an interrupted one
    resumes; ``report.cache`` says how much came from it. Default: no cache.

    ``storage_options``: for URIs (``s3://``, ``gs://``, ``az://``, ``hf://``, ``https://``), the
    options of the store's fsspec filesystem (``endpoint_url``, ``region``, ``anon``; dotted keys
    reach nested ones). Credentials come from the store's standard chain, never from here.

    ``progress``: an object with ``start(total_bytes)``, ``advance(nbytes, tokens, documents)``
    and optionally ``status(message)``.

    Returns a ``Report``. A file that fails a check is listed in ``report.failures`` (with its
    path, check and position) and left out of every count and of the plan; nothing is raised
    for it. So ``report.ok`` (no failure) is the check to make: when every input failed, the
    report has no files and ``report.plan`` is None. ``report.complete`` is False after an
    interruption (KeyboardInterrupt), with what was finished. Raises ``UsageError`` for bad
    arguments (naming the parameter) and ``PlanError`` for plans the trainer would refuse to
    even start (e.g. GPT-NeoX with seq_len 1).
    """
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise UsageError("no input paths given")
    if verify_tokens is not None and verify_tokens.vocab_size < 1:
        raise UsageError("TokenCheckOptions.vocab_size (--vocab-size) must be a positive integer")
    text = text or TextOptions()
    stated_layout = token_files is not None and token_files != TokenFileOptions()
    token_files = _token_file_options(token_files, verify_tokens)
    for name in ("text_key", "text_column"):
        if not getattr(text, name).strip():
            raise UsageError(f"TextOptions.{name} is empty: name the jsonl key or the column that holds the text")
    progress = progress or NoProgress()
    storage.new_scan(storage_options)
    split_paths = _split_dataset_paths(list(paths), training)
    discovery = find_sources([p for split_list in split_paths.values() for p in split_list] or list(paths))
    sources = discovery.sources
    if training is not None and training.framework in CHUNKING_FRAMEWORKS:
        if training.datasets is not None:
            raise UsageError(f"--valid-data/--test-data are GPT-NeoX's and Megatron's, not {training.framework}'s")
        check_chunking_options(
            training.framework, split=training.split, extra_token=training.extra_token, weights=training.weights
        )
    if training is not None:
        _check_split_weights(training, split_paths, len(sources))  # before the counting, not after it
    report = Report(
        failures=list(discovery.failures),
        options=_options_dict(training, verify_tokens),
        skipped_inputs=discovery.skipped,
        merged_inputs=discovery.merged,
    )
    outcomes: dict[int, FileReport | FileCheckError] = {}
    unit_groups: dict[int, list[dict | None]] = {}  # --group-by: each text file's unit tallies

    shards: list[tuple[int, Source, IndexedShard]] = []
    text_sources: list[tuple[int, Source, str]] = []
    for i, source in enumerate(sources):
        try:
            if isinstance(source.format, TextFormat):
                text_sources.append((i, source, source.format.inspect(source.path, text.policy())))
            else:
                assert isinstance(source.format, TokenFormat)
                shards.append((i, source, source.format.open(source.path, token_files.layout())))
        except FileCheckError as e:
            outcomes[i] = e
    if stated_layout and not any(s.format is TOKEN_MEMMAP for s in sources):
        report.warnings.append("--dtype and --eod without --verify-tokens only apply to .npy token memmaps; none here")

    _require_tokenizer(text_sources, text)
    if not text_sources and shards:
        report.warnings.extend(_unused_text_options(text))
    executor: LocalExecutor | RayExecutor | None = _executor_for(
        text
    )  # connects to a Ray cluster now: its CPUs decide how work is cut
    workers = executor.workers if executor is not None else text.workers or default_workers()
    unit_bytes = text.unit_bytes or _balanced_unit_bytes([s for _, s, _ in text_sources], workers)
    # Fewer files than cores: compressed streams are read as interleaved parts to use them all.
    compressed_parts = workers if len(text_sources) < workers else 1
    units: list[WorkUnit] = []
    for i, source, kind in text_sources:
        try:
            assert isinstance(source.format, TextFormat)
            file_units = source.format.units(i, source.path, text.policy(), unit_bytes, compressed_parts)
        except FileCheckError as e:
            outcomes[i] = e
            continue
        units.extend(file_units)
        if not file_units:  # e.g. an Arrow IPC file with no record batch: listed with 0 documents
            outcomes[i] = _assemble(source, kind, [], complete=True)
    text_cost = sum(u.cost for u in units)  # bytes of the text units (compressed where they are)
    unit_cache = open_cache(cache.enabled, cache.directory, cache.max_bytes) if cache is not None and units else None
    pending = units
    # Decided before any worker starts: the cache key holds the engine, and each worker is set up
    # for this engine only (the spec and the engine's verdict are cached on disk: ~0.1 s).
    spec, choice = _engine_for(text_sources, text, report, progress)
    if unit_cache is not None:
        units = _plan_with_cache(unit_cache, units, text_sources, text, spec, choice)
        pending = [u for u in units if not unit_cache.cached(u, choice.engine)]
    if text.workers is None and sum(u.cost for u in pending) < text.in_process_bytes:
        workers = 1  # starting worker processes would cost more than it saves
    if any(u.path == "-" for u in units):
        if executor is not None:
            executor.close()
            raise UsageError(
                "standard input ('-') is read by this process: it cannot be counted on Ray (--executor local)"
            )
        workers = 1  # standard input is this process's: it is read here, once
    reference: ReferenceElsewhere | None = None
    if executor is None:
        worker_env = {**WORKER_ENV, **storage.worker_env()}
        executor = LocalExecutor(workers, worker_env=worker_env, start_method=worker_start_method())
    with executor:
        if len(pending) > 1:
            worker_args = (spec, text.add_special_tokens, choice, False)  # the guard's checks are made here
            if isinstance(executor, LocalExecutor) and executor.start_method == "fork" and executor.workers > 1:
                if choice.guarded:
                    # Started first: the guard's reference builds on the core the set-up below leaves idle.
                    reference = ReferenceElsewhere(spec, text.add_special_tokens, WORKER_ENV)
                # Set up once here, inherited by every forked worker: one tokenizer load and one
                # kernel load instead of one per worker, and no worker waits on its own.
                prepare_worker(*worker_args)
                executor.start()
            else:
                # Spawned workers set themselves up while this process reads the cached units.
                executor.start(functools.partial(prepare_worker, *worker_args))
        total_bytes = text_cost
        if verify_tokens is not None:
            total_bytes += sum(shard.bin_bytes for _, _, shard in shards)
        if total_bytes:
            progress.start(total_bytes)
        try:
            for i, source, shard in shards:
                try:
                    outcomes[i] = _count_shard(source, shard, verify_tokens, progress)
                except FileCheckError as e:
                    outcomes[i] = e
            _count_text(
                units,
                text_sources,
                text,
                spec,
                choice,
                progress,
                outcomes,
                report,
                executor,
                unit_cache,
                unit_groups,
                reference,
            )
        except KeyboardInterrupt:
            report.complete = False
        finally:
            forget_worker()  # this process's copy of the workers' state (tokenizers, engine caches)
            if reference is not None:
                reference.close()
    if unit_cache is not None:
        unit_cache.finish()
        report.cache = unit_cache.stats.to_dict()
    for i in range(len(sources)):
        outcome = outcomes.get(i)
        if isinstance(outcome, FileCheckError):
            report.failures.append(outcome)
        elif outcome is not None:
            report.files.append(outcome)
    if training is not None and report.files and report.complete:
        if split_paths:
            report.split_datasets = _split_datasets_plan(report, training, split_paths)
        else:
            report.plan, report.blend = _plan(report.files, training)
    if text.group_by is not None:
        # interrupted: the groups of the units counted so far (the report says it is incomplete),
        # and no plan per group, as there is none for the files
        report.groups = _groups(sources, outcomes, unit_groups, text.group_by, training if report.complete else None)
    return report


def _token_file_options(given: TokenFileOptions | None, verify: TokenCheckOptions | None) -> TokenFileOptions:
    given = given or TokenFileOptions()
    if given.dtype is not None and given.dtype not in TOKEN_DTYPES:
        raise UsageError(
            f"TokenFileOptions.dtype (--dtype) must be one of {', '.join(TOKEN_DTYPES)}, got {given.dtype!r}"
        )
    if given.eod is None and verify is not None and verify.eod is not None:
        return TokenFileOptions(given.dtype, verify.eod)  # one EOS id: the verified one also ends documents
    return given


def _groups(sources, outcomes, unit_groups: dict[int, list[dict | None]], key: str, training) -> list[dict]:
    """The report's groups: the text files' tallies added up, and each counted shard as one."""
    from . import grouping

    text_groups: dict = {}
    shard_groups = []
    for i, source in enumerate(sources):
        outcome = outcomes.get(i)
        if not isinstance(outcome, FileReport):
            continue
        if isinstance(source.format, TextFormat):
            for groups in unit_groups.get(i, ()):
                grouping.merge(text_groups, groups, key)
        else:
            shard_groups.append((outcome.path, outcome.documents, outcome.empty_documents, outcome.tokens))
    mixture = dict(training.mixture) if training is not None and training.mixture else None
    return grouping.group_rows(text_groups, shard_groups, training, mixture)


EXECUTORS = ("local", "ray")


def _executor_for(text: TextOptions):
    """The Ray executor, connected, when asked for; None for the local one (sized later)."""
    if text.executor not in EXECUTORS:
        raise UsageError(f"the executor (--executor) must be one of {', '.join(EXECUTORS)}, not {text.executor!r}")
    if text.executor == "local":
        if text.ray_address is not None:
            raise UsageError("--ray-address only applies with --executor ray")
        return None
    from .ray_executor import RayExecutor

    executor = RayExecutor(text.ray_address, text.workers, worker_env={**WORKER_ENV, **storage.worker_env()})
    executor.start()
    return executor


def _split_dataset_paths(paths: list[str], training: TrainingOptions | None) -> dict[str, list[str]]:
    """With separate valid/test datasets: each split's files, in order (directories and globs
    expanded); else {}."""
    if training is None or training.datasets is None:
        return {}
    if training.split is not None:
        # megatron-core asserts "split and blend_per_split are incompatible"; NeoX ignores the split.
        raise UsageError("--split does not apply to separate valid/test datasets: each dataset is wholly its split")
    given = {"train": paths, "valid": list(training.datasets.valid), "test": list(training.datasets.test)}
    return {name: [s.path for s in find_sources(p).sources] if p else [] for name, p in given.items()}


def _check_split_weights(training: TrainingOptions, split_paths: dict[str, list[str]], sources: int) -> None:
    if not split_paths:
        if training.weights is not None:
            _check_weights(training.weights, sources)
        return
    assert training.datasets is not None
    for name, weights in (
        ("train", training.weights),
        ("valid", training.datasets.valid_weights),
        ("test", training.datasets.test_weights),
    ):
        if weights is not None:
            flag = "--weights" if name == "train" else f"--{name}-weights"
            if not split_paths[name]:
                raise UsageError(f"{flag} given without {name} datasets")
            _check_weights(weights, len(split_paths[name]), flag)


def _split_datasets_plan(report: Report, training: TrainingOptions, split_paths: dict[str, list[str]]):
    """The plan of separate train/valid/test datasets, from the files' exact sizes; None (with
    a warning) when a file of a split failed, since its plan would be built from a wrong list."""
    from .split_datasets import split_datasets_plan

    by_path = {f.path: f for f in report.files}
    missing = [p for paths in split_paths.values() for p in paths if p not in by_path]
    if missing:
        report.warnings.append(f"no plan of the separate split datasets: {missing[0]} was not counted")
        return None
    assert training.datasets is not None
    weights = {
        "train": training.weights,
        "valid": training.datasets.valid_weights,
        "test": training.datasets.test_weights,
    }
    datasets = {name: [by_path[p].sizes for p in paths] for name, paths in split_paths.items()}
    return split_datasets_plan(datasets, weights, training)


def _unused_text_options(text: TextOptions) -> list[str]:
    """Text options given to a scan with no text to count: probably a mistake worth a word."""
    defaults = TextOptions()
    given = [
        name
        for name in ("tokenizer", "append_eod", "text_key", "text_column", "skip_bad_records", "engine")
        if getattr(text, name) != getattr(defaults, name)
    ]
    if not given:
        return []
    shown = ", ".join(f"--{name.replace('_', '-')}" for name in given)
    return [
        f"{shown} only apply to raw text (jsonl, parquet, arrow); the token files here (.bin/.idx, .ds, .npy) "
        "are counted from their own metadata, whatever the tokenizer"
    ]


def _check_weights(weights: Sequence[float], sources: int, flag: str = "--weights") -> None:
    name = "TrainingOptions.weights" if flag == "--weights" else f"SplitDatasets.{flag[2:].replace('-', '_')}"
    if len(weights) != sources:
        raise UsageError(f"{name} ({flag}) has {len(weights)} values for {sources} files")
    if any(not (w >= 0) or w == float("inf") for w in weights) or sum(weights) <= 0:
        raise UsageError(f"{name} ({flag}) must be finite, >= 0 and not all 0, got {list(weights)}")


def _balanced_unit_bytes(sources: list[Source], workers: int) -> int:
    """About four ranges per worker over the plain jsonl, so that the last ones to finish are
    small; never below 1 MB (per-unit overhead) or above 64 MB (progress and Ctrl-C latency)."""
    plain = sum(JSONL.plain_bytes(s.path) for s in sources if s.format is JSONL)
    target = plain // (4 * workers) if plain else 0
    return int(min(64 << 20, max(1 << 20, target)))


def _require_tokenizer(text_sources: list[tuple[int, Source, str]], text: TextOptions) -> None:
    needing = [source.path for _, source, kind in text_sources if kind == TEXT]
    if needing and text.tokenizer is None:
        raise UsageError(
            f"a tokenizer (TextOptions.tokenizer, --tokenizer) is needed to count the text in {needing[0]}"
            + (f" and {len(needing) - 1} more" if len(needing) > 1 else "")
        )


def _engine_for(text_sources: list[tuple[int, Source, str]], text: TextOptions, report: Report, progress: Progress):
    """The tokenizer spec (None when no text is tokenized) and the engine that counts."""
    spec = _tokenizer_for(text_sources, text, report)
    choice = choose_engine(spec, text.engine) if spec is not None else HF_REQUESTED
    if spec is not None:
        _record_engine(report, choice)
        if choice.engine == "fast":
            from .engines.fast.code_version import announce_first_compile

            announce_first_compile(progress)
    return spec, choice


def _plan_with_cache(
    unit_cache: UnitCache,
    units: list[WorkUnit],
    text_sources: list[tuple[int, Source, str]],
    text: TextOptions,
    spec,
    choice: EngineChoice,
) -> list[WorkUnit]:
    """Each file's units as an earlier scan cut them, when some of those are cached."""
    fingerprint = spec.fingerprint if spec is not None else None
    by_source: dict[int, list[WorkUnit]] = {}
    for u in units:
        by_source.setdefault(u.source, []).append(u)
    planned: list[WorkUnit] = []
    for i, source, kind in text_sources:
        if i not in by_source:
            continue
        unit_cache.add_file(i, source.path, fingerprint, text.policy(), source.format.name, kind)
        planned.extend(unit_cache.reuse_plan(i, by_source[i], choice.engine))
    return planned


def _tokenizer_for(text_sources: list[tuple[int, Source, str]], text: TextOptions, report: Report):
    if not any(kind == TEXT for _, _, kind in text_sources):
        return None
    from .tokenizer import load_tokenizer_spec

    assert text.tokenizer is not None
    spec = load_tokenizer_spec(text.tokenizer)
    report.options["tokenizer"] = spec.info()
    report.options["text"] = {
        k: v
        for k, v in asdict(text).items()
        if k not in ("tokenizer", "unit_bytes", "in_process_bytes", "executor", "ray_address")
    }
    return spec


def _count_text(
    units: list[WorkUnit],
    text_sources: list[tuple[int, Source, str]],
    text: TextOptions,
    spec,
    choice: EngineChoice,
    progress: Progress,
    outcomes: dict,
    report: Report,
    executor: LocalExecutor | RayExecutor,
    unit_cache: UnitCache | None = None,
    unit_groups: dict[int, list[dict | None]] | None = None,
    reference: ReferenceElsewhere | None = None,
) -> None:
    if not units:
        return
    by_source: dict[int, list[UnitResult]] = {}
    expected: dict[int, int] = {}
    for u in units:
        expected[u.source] = expected.get(u.source, 0) + 1
    parity = ParityTotals() if choice.guarded else None
    runs = 0
    spill = SizeSpill()  # sequence sizes go to disk as units finish; the plan reads back a few

    def run(current: EngineChoice) -> dict | None:
        nonlocal runs
        runs += 1
        by_source.clear()
        if runs > 1:
            progress.start(sum(u.cost for u in units))  # the recount starts the bar over
        guard = parity if current.guarded else None
        initargs = (spec, text.add_special_tokens, current, False)  # the guard's checks are made here
        return _run_units(units, text, executor, initargs, progress, by_source, spill, guard, unit_cache, reference)

    def disagreement(mismatch: dict | None) -> str | None:
        if parity is not None:
            report.options["parity"] = parity.summary(mismatch)
        if mismatch is None:
            return None
        # Never a silently wrong total: every unit is recounted with the reference.
        return (
            f"the {choice.engine} engine disagreed with Hugging Face on {mismatch['path']} {mismatch['position']} "
            f"({mismatch['fast']} vs {mismatch['reference']} tokens); every file was recounted with hf"
        )

    try:
        _, final = recount_on_disagreement(run, choice, disagreement)
        if spec is not None:
            _record_engine(report, final)
    finally:
        spill.close()
        # Even when interrupted, files whose units all finished are complete and reported.
        kinds = {i: (source, kind) for i, source, kind in text_sources}
        for i, unit_results in by_source.items():
            if i in outcomes:
                continue
            source, kind = kinds[i]
            outcomes[i] = _assemble(source, kind, unit_results, complete=len(unit_results) == expected[i])
            if unit_groups is not None:
                unit_groups[i] = [r.groups for r in unit_results]


def _record_engine(report: Report, choice: EngineChoice) -> None:
    report.options["engine"], report.options["engine_reason"] = choice.engine, choice.reason


def _run_units(
    units: list[WorkUnit],
    text: TextOptions,
    executor: LocalExecutor | RayExecutor,
    initargs: tuple,
    progress: Progress,
    by_source: dict[int, list[UnitResult]],
    spill: SizeSpill,
    parity: ParityTotals | None = None,
    unit_cache: UnitCache | None = None,
    reference: ReferenceElsewhere | TokenCounter | None = None,
) -> dict | None:
    """Fill by_source as units finish, so an interrupt keeps what was done (and the cache
    holds it). With the parity guard on (it runs in the workers), the first disagreement a unit
    reports stops the run (its workers too) and is returned."""
    engine = initargs[2].engine
    pending = units
    if unit_cache is not None:
        pending = []
        unit_cache.begin_run(len(units))
        for u in units:
            hit = unit_cache.load(u, engine)
            if hit is None:
                pending.append(u)
                continue
            if parity is not None:
                parity.add(hit.parity_tally)
            _keep_bounded(hit, by_source.setdefault(u.source, []), spill)
            progress.advance(nbytes=u.cost, tokens=hit.tokens, documents=hit.documents)
    if not pending:
        return None  # no worker, and no tokenizer built
    policy = text.policy()
    tasks = [(u, policy) for u in pending]
    running = executor.run(
        count_unit,
        tasks,
        [u.cost for u in pending],
        progress.advance,
        start_worker,
        initargs,
        on_retry=functools.partial(_say_unit_retried, pending, progress, executor.max_retries),
    )
    budget = GuardBudget()  # the run's: the guard's time grows with the engine's
    with contextlib.closing(running) as done, _unit_failures_named(pending):
        for _, unit_result in done:
            if parity is not None:
                if reference is None:
                    # Built here once, while the workers count on: none of them builds one.
                    reference = reference_counter(initargs[0], initargs[1])
                _check_deferred_samples(unit_result, reference, budget)
                parity.add(unit_result.parity_tally)
                mismatch = unit_result.parity_mismatch
                if mismatch is not None:
                    return dict(mismatch, path=unit_result.unit.path, position=str(mismatch["position"]))
            if unit_cache is not None:
                unit_cache.save(unit_result, engine)  # whole, before its sizes go to the spill file
            _keep_bounded(unit_result, by_source.setdefault(unit_result.unit.source, []), spill)
    return None


def _check_deferred_samples(unit_result: UnitResult, reference, budget: GuardBudget) -> None:
    """The guard's check of a unit's samples, with this process's reference, within the run's
    budget; the unit's result then holds the tally and any disagreement, as when its worker
    checked (and so does its cache entry)."""
    budget.earn(unit_result.count_seconds)
    if not unit_result.parity_samples:
        return
    guard = ParityGuard(reference.spec, reference.add_special_tokens, reference=reference, budget=budget)
    unit_result.parity_mismatch, unit_result.parity_tally = check_deferred(unit_result.parity_samples, guard)
    unit_result.parity_samples = []


def _keep_bounded(unit_result: UnitResult, file_results: list[UnitResult], spill: SizeSpill) -> None:
    """Add a finished unit to its file's results, keeping in memory only what does not grow
    with the documents: its sequence sizes go to the spill file (block by block for an
    interleaved part), its length histogram is folded into the file's first result's."""
    sizes = unit_result.sequence_sizes
    if unit_result.unit.parts == 1:
        unit_result.spilled = [(0, piece) for piece in spill.write(sizes)]
    else:
        s = 0
        for block, _, sequences in unit_result.blocks:
            unit_result.spilled.extend((block, piece) for piece in spill.write(sizes[s : s + sequences]))
            s += sequences
    unit_result.sequence_sizes = sizes[:0]
    if file_results and unit_result.document_lengths is not None:
        first = file_results[0]
        if first.document_lengths is None:
            first.document_lengths, unit_result.document_lengths = unit_result.document_lengths, None
        else:
            first.document_lengths = LengthHistogram.merge([first.document_lengths, unit_result.document_lengths])
            unit_result.document_lengths = None
    file_results.append(unit_result)


@contextlib.contextmanager
def _unit_failures_named(units: list[WorkUnit]):
    """A unit whose worker process died on every attempt (the executor retries it) fails the
    scan, named by its file and where the unit lies in it."""
    try:
        yield
    except TaskFailed as e:
        raise worker_died(e, units[e.index], "counting", "counting") from None


def worker_died(failed: TaskFailed, unit: WorkUnit, check: str, doing: str) -> FileCheckError:
    """A unit whose worker process died on every attempt, as a failure naming its file and place."""
    return FileCheckError(
        unit.path,
        check,
        f"the worker process {doing} it died on all {failed.attempts} attempts ({failed.reason})",
        describe_unit(unit),
    )


def _say_unit_retried(units: list[WorkUnit], progress: Progress, retries: int, index: int, attempt: int, reason: str):
    unit = units[index]
    status = getattr(progress, "status", None)  # optional in a Progress
    if status is not None:
        status(
            f"{unit.path} ({describe_unit(unit)}): the worker process counting it died ({reason});"
            f" counting it again, attempt {attempt} of {retries + 1}"
        )


def describe_unit(unit: WorkUnit) -> str:
    """Where a work unit lies in its file, in words."""
    if unit.parts > 1:
        return f"interleaved part {unit.part + 1} of {unit.parts}"
    if unit.stop > unit.start:
        return f"bytes {unit.start}-{unit.stop}"
    if unit.format == JSONL.name:
        return "its stream"
    return f"{'row group' if unit.format == 'parquet' else 'record batch'} {unit.part}"


def _in_file_order(unit_results: list[UnitResult]) -> SequenceSizes:
    """A file's sequence sizes, in file order: units by part (sorted by the caller), and the
    blocks of interleaved parts back in stream order."""
    pieces = [spilled for r in unit_results for spilled in r.spilled]
    if any(r.unit.parts > 1 for r in unit_results):
        pieces.sort(key=lambda spilled: spilled[0])
    return SequenceSizes([piece for _, piece in pieces])


def _assemble(source: Source, kind: str, unit_results: list[UnitResult], complete: bool) -> FileReport | FileCheckError:
    unit_results.sort(key=lambda r: r.unit.part)
    failed = [r.failure for r in unit_results if r.failure is not None]
    if failed:
        # The earliest in the file: units are in file order, except interleaved parts, whose
        # failures say where they fall (a stable sort keeps unit order for the others).
        failed.sort(key=lambda e: e.order if e.order is not None else 0)
        return failed[0]
    fmt = source.format
    assert isinstance(fmt, TextFormat)
    sizes = _in_file_order(unit_results)
    lengths = [r.document_lengths for r in unit_results if r.document_lengths is not None]
    documents = sum(r.documents for r in unit_results)
    tokens = sum(r.tokens for r in unit_results)
    text_bytes = sum(r.text_bytes for r in unit_results)
    # Each unit keeps its first examples; interleaved parts' are merged back into file order.
    examples = sorted(
        (b for r in unit_results for b in r.skipped_examples), key=lambda b: b.order if b.order is not None else 0
    )
    skipped_examples = [b.describe() for b in examples[:5]]
    try:
        footer = fmt.footer_documents(source.path)
    except FileCheckError as e:
        return e
    report = FileReport(
        path=source.path,
        format=fmt.display_name(source.path),
        documents=documents,
        sequences=sizes.size,
        empty_documents=sum(r.empty_documents for r in unit_results),
        tokens=tokens,
        dtype=None,
        sizes=sizes,
    )
    report.extra.update(
        {
            "identity": _identity([source.path]),
            "content": kind,
            "text_bytes": text_bytes if kind == TEXT else None,
            "tokens_per_byte": (tokens / text_bytes) if kind == TEXT and text_bytes else None,
            "document_tokens": LengthHistogram.merge(lengths).stats() if lengths else None,
            "skipped_records": sum(r.skipped for r in unit_results),
            "skipped_examples": skipped_examples,
        }
    )
    report.warnings.extend(dict.fromkeys(w for r in unit_results for w in r.warnings))  # parts repeat them
    if source.path == "-" and not documents and complete:
        report.warnings.append("standard input held no document: did the command feeding the pipe fail?")
    if not complete:
        report.extra["complete"] = False
        report.warnings.append("interrupted: only part of this file was counted")
    elif footer is not None and footer != documents + report.extra["skipped_records"]:
        return FileCheckError(source.path, "row count", f"read {documents} rows, the footer says {footer}")
    return report


def _count_shard(
    source: Source, shard: IndexedShard, verify: TokenCheckOptions | None, progress: Progress
) -> FileReport:
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
    result.extra.update(shard.details)
    result.extra["identity"] = _identity([shard.idx_path, shard.bin_path])
    if verify is not None:
        check = check_tokens(shard, verify.vocab_size, verify.eod, progress.advance)
        result.extra["token_check"] = check.to_dict()
        if check.out_of_range:
            raise FileCheckError(
                shard.bin_path,
                "token ids < vocab size",
                f"{check.out_of_range} ids outside [0, {verify.vocab_size}), max id {check.max_token_id}",
                f"token {check.first_out_of_range}",
            )
        if check.documents_missing_eod:
            raise FileCheckError(
                shard.bin_path,
                "documents end in EOD",
                f"{check.documents_missing_eod} non-empty documents do not end in EOD id {verify.eod}",
                f"document {check.first_document_missing_eod}",
            )
    return result


def _identity(paths: list[str]) -> list[dict] | None:
    """Each file's size and version (mtime, ETag, generation), so a later run can tell that the
    data changed; None for standard input."""
    if "-" in paths:
        return None
    try:
        return [storage.file_identity(p) for p in paths]
    except OSError:
        return None  # the file went away after it was read: its counts stand, its identity is unknown


def _plan(files: list[FileReport], training: TrainingOptions):
    """The plan of all files as one dataset and, for several files or with weights, the blend;
    the blend's merged plan is that same plan, computed once."""
    from . import planning

    if training.framework in planning.CHUNKING_FRAMEWORKS:
        # nanotron / OLMo-core floor each file on its own: the plan needs the files, not one stream
        chunked = planning.chunked_plan(
            [f.tokens for f in files],
            seq_len=training.seq_len,
            global_batch_size=training.global_batch_size,
            framework=training.framework,
            paths=[f.path for f in files],
            train_iters=training.train_iters,
        )
        return chunked, None
    sizes = [f.sizes for f in files]
    if len(files) == 1 and training.weights is None:
        return planning.make_plan(sizes[0], **training.plan_kwargs()), None
    if training.weights is not None and len(training.weights) != len(files):
        raise UsageError(
            f"TrainingOptions.weights (--weights) has {len(training.weights)} values for {len(files)} files"
        )
    weights = list(training.weights) if training.weights else None
    blend = planning.blend_plan(sizes, weights, **training.plan_kwargs())
    return blend.merged_plan, blend


def _options_dict(training: TrainingOptions | None, verify: TokenCheckOptions | None) -> dict:
    out = {}
    if training is not None:
        out["training"] = asdict(training)
    if verify is not None:
        out["verify_tokens"] = asdict(verify)
    return out
