"""``tokcount check RAW... --against X.ds|FOLDER --preset datatrove``: does datatrove's
``DocumentTokenizer`` output hold what the raw JSON lines say it should?

What the preset expects, read from datatrove 0.10.1 (``pipeline/tokens/tokenizer.py``,
``utils/tokenization.py``, ``pipeline/readers/base.py``, ``io.py``):

- each record with a non-empty text is a document; the others are skipped by the reader;
- the tokenizer's post-processor is replaced by ``$A <EOS>``: no BOS, the EOS id after every
  document (``eos_token``, here ``--eod`` or the tokenizer's end-of-document token);
- with N tasks, task i reads the sorted input files i, i + N, ... and writes
  ``[name_]{i:05d}_unshuffled.ds`` (``shuffle_documents=False``), or with document shuffling
  ``[name_]{i:05d}_{k:05d}_doc_shuffled.ds`` (k: a part, when ``max_tokens_per_file`` split it).

An unshuffled file is compared document by document, in order, as a ``.bin/.idx`` is
(``raw_index``). A shuffled one keeps no order: the multisets of document lengths (and, with
``--ids``, of id hashes) are compared, and the result says the order was not checked.
"""

from __future__ import annotations

import collections
import os
import re
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .. import counting
from ..engines import EngineChoice, choose_engine
from ..engines.hf import worker_start_method
from ..engines.parity import recount_on_disagreement
from ..errors import UsageError
from ..executors import LocalExecutor
from ..formats import datatrove, indexed
from ..options import CheckOptions, Progress
from . import raw_index

# get_output_filename(save_filename, rank, name, sub_rank): "_".join of the non-empty parts
OUTPUT_NAMES = {
    "unshuffled": re.compile(r"(?:^|_)(?P<rank>\d{5})_unshuffled\.ds$"),
    "doc_shuffled": re.compile(r"(?:^|_)(?P<rank>\d{5})_(?P<part>\d{5})_doc_shuffled\.ds$"),
    "chunk_shuffled": re.compile(r"(?:^|_)(?P<rank>\d{5})_(?P<part>\d{5})_chunk_shuffled\.ds$"),
}
ORDER_NOT_CHECKED = "documents were shuffled (doc_shuffled): the order is not checked, only the multiset of documents"


def output_files(against: str) -> dict[int, list[str]]:
    """Rank -> its .ds files in part order, from one file or a folder of them."""
    paths = (
        sorted(os.path.join(against, f) for f in os.listdir(against) if f.endswith(datatrove.DATA_SUFFIX))
        if os.path.isdir(against)
        else [datatrove.data_path_of(against)]
    )
    if not paths:
        raise UsageError(f"{against}: no .ds file in this folder")
    ranks: dict[int, list[tuple[int, str]]] = collections.defaultdict(list)
    for path in paths:
        kind, m = _output_name(path)
        if m is None:
            raise UsageError(
                f"{path}: not a DocumentTokenizer output name ([name_]RANK_unshuffled.ds or "
                "[name_]RANK_PART_doc_shuffled.ds): the task it came from is unknown"
            )
        if kind == "chunk_shuffled":
            raise UsageError(
                f"{path}: chunk-shuffled (shuffle_chunk_size): its index holds chunk ends, not documents, "
                "so it cannot be compared document by document"
            )
        ranks[int(m["rank"])].append((int(m.groupdict().get("part") or 0), path))
    return {rank: [p for _, p in sorted(parts)] for rank, parts in sorted(ranks.items())}


def _output_name(path: str) -> tuple[str | None, re.Match | None]:
    for kind, pattern in OUTPUT_NAMES.items():
        m = pattern.search(os.path.basename(path))
        if m is not None:
            return kind, m
    return None, None


def _is_shuffled(path: str) -> bool:
    return _output_name(path)[0] == "doc_shuffled"


def check_raw_datatrove(
    raw_paths: Sequence[str] | str,
    against: str,
    options: CheckOptions,
    progress: Progress | None = None,
    window_bytes: int = indexed.WINDOW_BYTES,
) -> list[raw_index.RawCheckResult]:
    """One result per ``.ds`` file. Against a folder, ``raw_paths`` are every input in the order
    datatrove lists them (sorted) and the folder's N ranks split them i, i + N, ...; against one
    file, ``raw_paths`` are the inputs of its task, in order."""
    if isinstance(raw_paths, (str, os.PathLike)):
        raw_paths = [raw_paths]
    raw_paths, against = [os.fspath(p) for p in raw_paths], os.fspath(against)
    # DocumentTokenizer(eos_token=...) replaces the post-processor: no BOS, EOS always.
    options = replace(options, preset="datatrove", append_eod=True, add_special_tokens=False)
    ranks = output_files(against)
    folder = os.path.isdir(against)
    tasks = max(ranks) + 1 if folder else 1
    results = []
    for rank, files in ranks.items():
        inputs = raw_paths[rank::tasks] if folder else raw_paths
        if len(files) > 1 and not all(_is_shuffled(f) for f in files):
            raise UsageError(f"rank {rank}: several unshuffled files {files}")
        if not inputs:
            raise UsageError(f"{files[0]}: task {rank} of {tasks} reads no raw file of the {len(raw_paths)} given")
        if _is_shuffled(files[0]):
            results.append(check_unordered(inputs, files, options, progress, window_bytes))
        else:
            shard = datatrove.open_ds(files[0])
            results.append(raw_index.check_raw(inputs, files[0], options, progress, window_bytes, shard=shard))
            results[-1].options["order_checked"] = True
        if folder:
            results[-1].warnings.append(
                f"task {rank} of {tasks}: raw files {rank}, {rank} + {tasks}, ... of those given"
            )
    return results


def check_unordered(
    raw_paths: list[str],
    ds_paths: list[str],
    options: CheckOptions,
    progress: Progress | None,
    window_bytes: int,
) -> raw_index.RawCheckResult:
    """The raw documents of one task against its shuffled files, as multisets."""
    from ..tokenizer import end_of_document_id, load_tokenizer_spec

    raw_index._check_options(options)
    shards = [datatrove.open_ds(p) for p in ds_paths]
    units = raw_index._raw_units(raw_paths, options)
    spec = load_tokenizer_spec(options.tokenizer)
    eod = options.eod if options.eod is not None else end_of_document_id(spec)
    if eod is None:
        raise UsageError(f"{options.tokenizer}: no end-of-document token found; pass --eod ID (datatrove's eos_token)")
    policy = raw_index.PresetPolicy("datatrove", True, eod, options.ids, options.text_key)
    choice = choose_engine(spec, "hf" if options.ids else options.engine)

    def run(current: EngineChoice) -> raw_index.RawCheckResult:
        return _compare_multisets(raw_paths, shards, units, policy, spec, options, current, eod, progress, window_bytes)

    result, _ = recount_on_disagreement(run, choice, raw_index.differences_found(choice))
    return result


def _found_documents(shard: indexed.IndexedShard, ids: bool, window_bytes: int) -> list[tuple[int, int]]:
    lengths = shard.sizes.astype(np.int64)
    if not ids:
        return [(int(n), 0) for n in lengths]
    ends = np.cumsum(lengths)
    comparator = raw_index._Comparator(shard, True, window_bytes)
    try:
        hashes = comparator._bin_hashes(0, ends - lengths, ends) if shard.tokens else np.zeros(lengths.size, np.uint64)
    finally:
        comparator.close()
    return list(zip(lengths.tolist(), hashes.tolist()))


def _compare_multisets(
    raw_paths, shards, units, policy, spec, options: CheckOptions, choice: EngineChoice, eod, progress, window_bytes
) -> raw_index.RawCheckResult:
    result = raw_index.RawCheckResult(
        raw_paths=list(raw_paths),
        index=", ".join(s.prefix for s in shards),
        options={
            "preset": "datatrove",
            "append_eod": True,
            "eod": eod,
            "add_special_tokens": False,
            "ids": options.ids,
            "text_key": options.text_key,
            "tokenizer": spec.info(),
            "engine": choice.engine,
            "engine_reason": choice.reason,
            "order_checked": False,
        },
        index_counts={
            "documents": sum(s.documents for s in shards),
            "sequences": sum(s.sequences for s in shards),
            "tokens": sum(s.tokens for s in shards),
            "empty_documents": sum(s.empty_documents for s in shards),
            "dtype": str(shards[0].dtype),
        },
        expected_counts={},
        raw_files=[],
        warnings=[ORDER_NOT_CHECKED],
    )
    expected_dtype = raw_index.expected_token_dtype("datatrove", spec.vocab_size)
    if str(shards[0].dtype) != expected_dtype:
        result.warnings.append(
            f"the files hold {shards[0].dtype} tokens; datatrove writes {expected_dtype} for a "
            f"{spec.vocab_size:,}-token vocabulary"
        )
    if progress is not None:
        progress.start(sum(u.cost for u in units))
    per_file = {i: {"path": p, "documents": 0, "sequences": 0, "tokens": 0} for i, p in enumerate(raw_paths)}
    expected: collections.Counter = collections.Counter()
    executor = LocalExecutor(
        options.workers,
        counting.start_worker,
        (spec, False, choice),
        worker_env=counting.WORKER_ENV,
        start_method=worker_start_method(),
    )
    outs: dict[int, raw_index._UnitOut] = {}
    try:
        for task, out in executor.run(
            raw_index._run_unit,
            [(u, policy) for u in units],
            [u.cost for u in units],
            on_progress=progress.advance if progress is not None else None,
        ):
            outs[task] = out
    except KeyboardInterrupt:
        result.complete = False
    failures = [o.failure for o in outs.values() if o.failure is not None]
    if failures:
        raise min(failures, key=lambda e: e.order if e.order is not None else 0)
    for task, out in sorted(outs.items()):
        row = per_file[units[task].source]
        row["documents"] += out.documents
        row["sequences"] += int(out.seq_sizes.shape[0])
        row["tokens"] += int(out.seq_sizes.sum())
        hashes = out.hashes.tolist() if out.hashes is not None else [0] * out.documents
        expected.update(zip(out.seq_sizes.tolist(), hashes))
    found: collections.Counter = collections.Counter()
    for shard in shards:
        found.update(_found_documents(shard, options.ids, window_bytes))
    result.raw_files = list(per_file.values())
    result.expected_counts = {
        "documents": sum(r["documents"] for r in per_file.values()),
        "sequences": sum(r["sequences"] for r in per_file.values()),
        "tokens": sum(r["tokens"] for r in per_file.values()),
    }
    if not result.complete:
        return result
    missing, extra = expected - found, found - expected
    result.compared_documents = sum(expected.values())
    result.missing_from_index = sum(missing.values())
    result.extra_in_index = sum(extra.values())
    if missing or extra:
        what = "lengths and id hashes" if options.ids else "lengths"
        raw_only = sorted(length for (length, _), n in missing.items() for _ in range(n))[:5]
        ds_only = sorted(length for (length, _), n in extra.items() for _ in range(n))[:5]
        result.diagnosis = (
            f"the multisets of document {what} differ (order not checked): {result.missing_from_index:,} raw "
            f"documents have no match in the .ds files (tokens: {raw_only}{'...' if result.missing_from_index > 5 else ''}), "
            f"{result.extra_in_index:,} .ds documents have none in the raw data (tokens: {ds_only}"
            f"{'...' if result.extra_in_index > 5 else ''})"
        )
    return result
