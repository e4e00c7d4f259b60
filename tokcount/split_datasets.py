"""Separate train / valid / test datasets: each split built from its own list of datasets.

GPT-NeoX: ``train_data_paths`` / ``valid_data_paths`` / ``test_data_paths`` with
``*_data_weights``; Megatron-LM: ``--train-data-path`` / ``--valid-data-path`` /
``--test-data-path`` (``blend_per_split``). No split string: every dataset is wholly the split it
is listed for. The formulas are ``tokcount.planning``'s; this module only composes them the way
each trainer does (``shared/spec/megatron_neox.md`` §3.2 "Blend mode", §3.8, §4.2 "Blends", §4.8;
checked against GPT-NeoX @ ea7aefd8 ``data_utils.py`` and megatron-core 0.16.1
``blended_megatron_dataset_builder.py``):

- NeoX always wraps a split in a ``BlendableDataset``, even one dataset of weight 1.0: weights
  default to 1.0 each, member i is built for ceil(N·w_i·1.005) samples, and the split's length
  is Σ len_i = Σ (B_i - 1). NeoX asserts that train, valid and test paths are all given.
- Megatron builds a split of one prefix as a plain ``GPTDataset`` for N samples (its weight, if
  any, is ignored); several weighted prefixes as a ``BlendedDataset`` of size Σ ceil(N·w_i) with
  members built for ceil(ceil(N·w_i)·1.005); several unweighted prefixes one epoch each, of
  size min(N, Σ len). A split without paths is not built.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import UsageError
from .options import TrainingOptions
from .planning import (
    MEGATRON,
    SPLIT_NAMES,
    _blending_draws,
    _check_int,
    _check_sizes,
    _check_weights,
    _normalized_weights,
    _sample_targets,
    _split_plan,
    check_training_arguments,
    rules_for,
    weighted_blend_of_members,
)

__all__ = ["SplitDatasetsPlan", "split_datasets_plan"]


@dataclass
class SplitDatasetsPlan:
    """``to_dict()`` keys: framework, seq_len, global_batch_size, extra_token, train_iters,
    eval_interval, eval_iters, splits ({"train"|"valid"|"test": row or None}), notes. A row:
    split, dataset_class, datasets, weights, normalized_weights, requested_samples,
    size (the split dataset's length), iterations (size // G), oversampled, draws_exact,
    refused, members (per dataset: dataset, weight, normalized_weight, blend_target,
    requested_samples, sequences, tokens, epochs, samples_built, dataset_length,
    separate_final_epoch, blend_draws, oversampled, refused)."""

    framework: str
    seq_len: int
    global_batch_size: int
    extra_token: int
    train_iters: int | None
    eval_interval: int
    eval_iters: int
    splits: dict[str, dict | None]
    notes: list[str] = field(default_factory=list)

    def refusals(self) -> list[str]:
        """ "split: why" for every split the real trainer would hang or abort on."""
        return [f"{name}: {row['refused']}" for name, row in self.splits.items() if row and row["refused"]]

    def to_dict(self) -> dict:
        return asdict(self)  # plain values, and rows that are dicts already (copied)


def _member(dataset: Any, name: str, k: int) -> tuple[tuple[int, int] | None, int]:
    """(sequence range, tokens) of one dataset: a per-sequence sizes array or a token total."""
    if isinstance(dataset, numbers.Integral) and not isinstance(dataset, bool):
        return None, _check_int(f"{name} dataset {k} tokens", dataset, 0)
    sizes = _check_sizes(dataset)
    return (0, int(sizes.size)), int(np.sum(sizes, dtype=np.int64))


def _plain_member_row(k: int, plan, weight: float | None) -> dict:
    return {
        "dataset": k,
        "weight": weight,
        "normalized_weight": None,
        "blend_target": None,
        "requested_samples": plan.requested_samples,
        "sequences": list(plan.sequences) if plan.sequences is not None else None,
        "tokens": plan.tokens,
        "epochs": plan.epochs,
        "samples_built": plan.samples_built,
        "dataset_length": plan.dataset_length,
        "separate_final_epoch": plan.separate_final_epoch,
        "blend_draws": None,
        "oversampled": None,
        "refused": plan.refused,
    }


def _row(name: str, dataset_class: str, members: list[dict], raw, normalized, N, size, G: int, **rest) -> dict:
    refused = [f"dataset {m['dataset']}: {m['refused']}" for m in members if m["refused"]]
    return {
        "split": name,
        "dataset_class": dataset_class,
        "datasets": len(members),
        "weights": raw,
        "normalized_weights": normalized,
        "requested_samples": N,
        "size": size,
        "iterations": size // G if size is not None and size >= 0 else None,
        "oversampled": rest.get("oversampled"),
        "draws_exact": rest.get("draws_exact"),
        "refused": rest.get("refused") or ("; ".join(refused) if refused else None),
        "members": members,
    }


def _weighted(name: str, members, raw: list[float], N: int | None, split_kw: dict, dataset_class: str):
    rules = rules_for(split_kw["framework"])
    normalized = _normalized_weights(raw, rules)
    split_members = [(k, True, seq_range, tokens) for k, (seq_range, tokens) in enumerate(members)]
    result = weighted_blend_of_members(name, split_members, raw, normalized, N, split_kw)
    assert result is not None  # every member is built
    blend, member_rows, notes = result
    rows = [{"dataset": m["shard"], **{k: v for k, v in m.items() if k not in ("split", "shard")}} for m in member_rows]
    row = _row(
        name,
        dataset_class,
        rows,
        raw,
        normalized,
        N,
        blend["blend_size"],
        split_kw["global_batch_size"],
        oversampled=blend["oversampled"],
        draws_exact=blend["draws_exact"],
        refused=blend["refused"],
    )
    return row, notes


def _megatron_unweighted(name: str, members, N: int | None, split_kw: dict) -> tuple[dict, list[str]]:
    """§4.8 weights None: members built for one epoch, weights = their lengths, size min(N, Σ len)."""
    plans = [_split_plan(name, seq_range, tokens, None, **split_kw) for seq_range, tokens in members]
    rows = [_plain_member_row(k, p, None) for k, p in enumerate(plans)]
    lengths = [p.dataset_length or 0 for p in plans]
    total = sum(lengths)
    size = min(N, total) if N is not None else total  # N None: exhaustive, each sample once
    notes: list[str] = []
    draws_exact: bool | None = None
    oversampled: bool | None = None
    if total > 0 and not any(p.refused for p in plans):
        draws, draws_exact = _blending_draws(_normalized_weights([float(n) for n in lengths], MEGATRON), size)
        for row, drawn, length in zip(rows, draws, lengths):
            row["blend_draws"], row["oversampled"] = drawn, drawn > length
        oversampled = any(r["oversampled"] for r in rows)
    if N is not None and total < N:
        notes.append(
            f"{name}: the {len(plans)} unweighted datasets (one epoch each) give only {total:,} samples, "
            f"fewer than the {N:,} requested (Megatron uses size min(N, Σ len))"
        )
    row = _row(
        name, "BlendedDataset", rows, None, None, N, size, split_kw["global_batch_size"], oversampled=oversampled
    )
    row["draws_exact"] = draws_exact
    return row, notes


def split_datasets_plan(
    datasets: Mapping[str, Sequence[Any] | None],
    weights: Mapping[str, Sequence[float] | None] | None,
    training: TrainingOptions,
) -> SplitDatasetsPlan:
    """Each split built from its own datasets (``datasets["train"|"valid"|"test"]``: lists of
    per-sequence sizes arrays or token totals), with optional weights per split, for the
    trainer ``training`` describes (its ``split`` must be None, its ``weights`` are not used)."""
    if training.split is not None:
        # megatron-core asserts "split and blend_per_split are incompatible"; NeoX ignores the split.
        raise UsageError("a split string does not apply to separate valid/test datasets: each is wholly its split")
    framework, x, S, G, train_iters, eval_interval, eval_iters = check_training_arguments(
        training.framework,
        training.extra_token,
        training.seq_len,
        training.global_batch_size,
        training.train_iters,
        training.eval_interval,
        training.eval_iters,
    )
    rules = rules_for(framework)
    unknown = set(datasets) - set(SPLIT_NAMES)
    if unknown:
        raise UsageError(f"datasets keys must be train, valid, test; got {sorted(unknown)}")
    weights = weights or {}
    targets = _sample_targets(train_iters, eval_interval, eval_iters, G)
    split_kw: dict[str, Any] = {"seq_len": S, "extra": x, "global_batch_size": G, "framework": framework}
    splits: dict[str, dict | None] = {}
    notes: list[str] = []
    for name in SPLIT_NAMES:
        given = datasets.get(name)
        raw_weights = weights.get(name)
        if not given:
            if raw_weights:
                raise UsageError(f"{name} weights given without {name} datasets")
            splits[name] = None
            continue
        members = [_member(d, name, k) for k, d in enumerate(given)]
        raw = _check_weights(raw_weights, len(members)) if raw_weights is not None else None
        N = targets[name]
        if framework == "neox":
            raw = raw if raw is not None else [1.0] * len(members)  # neox_args: default weight 1.0 each
            if N is None and any(w != 1.0 for w in raw):
                raise UsageError("GPT-NeoX train_epochs mode (no train_iters) requires all data weights to be 1.0")
            row, more = _weighted(name, members, raw, N, split_kw, "BlendableDataset")
        elif len(members) == 1:
            # megatron-core: a split of a single prefix is a plain GPTDataset, weight or not.
            plan = _split_plan(name, members[0][0], members[0][1], N, **split_kw)
            weight = raw[0] if raw is not None else None
            row = _row(name, "GPTDataset", [_plain_member_row(0, plan, weight)], raw, None, N, plan.dataset_length, G)
            more = []
            if raw is not None:
                more.append(f"{name}: a single prefix is a plain GPTDataset: its weight is ignored (no 1.005 surplus)")
        elif raw is not None:
            if N is None:
                raise UsageError("Megatron weighted blends need a sample target: give train_iters")
            row, more = _weighted(name, members, raw, N, split_kw, "BlendedDataset")
        else:
            row, more = _megatron_unweighted(name, members, N, split_kw)
        splits[name] = row
        notes.extend(more)
    if splits["train"] is None:
        raise UsageError("separate split datasets need train datasets")
    if framework == "neox":
        missing = [name for name in ("valid", "test") if splits[name] is None]
        if missing:
            # neox_arguments asserts all of train/valid/test_data_paths or none: a refusal, shown on the train row.
            why = f"GPT-NeoX asserts that train, valid and test data paths are all given ({' and '.join(missing)} missing)"
            train = splits["train"]
            train["refused"] = f"{train['refused']}; {why}" if train["refused"] else why
        notes.append(
            "NeoX wraps every split in a BlendableDataset, even one dataset of weight 1.0: members are built for "
            "ceil(N·w·1.005) samples, and the split's length is Σ (B_i - 1)"
        )
    elif rules.blend_member_targets and any(r and r["dataset_class"] == "BlendedDataset" for r in splits.values()):
        notes.append(
            "Megatron blend size = Σ ceil(N·w_i) (can exceed N); members are built for ceil(ceil(N·w_i)·1.005)"
        )
    return SplitDatasetsPlan(
        framework=framework,
        seq_len=S,
        global_batch_size=G,
        extra_token=x,
        train_iters=train_iters,
        eval_interval=eval_interval,
        eval_iters=eval_iters,
        splits=splits,
        notes=notes,
    )
