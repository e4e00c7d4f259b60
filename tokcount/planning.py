"""What GPT-NeoX and Megatron-LM training will do with a tokenized dataset.

Pure functions and dataclasses, no I/O. Every rule follows ``shared/spec/megatron_neox.md``
(section numbers in the comments). All trainer loops are replaced by closed forms, so nothing
here can hang where the trainers do (T == 0 with a target); such cases are recorded as refusals.

Notation: S = seq_len, G = global batch size, T = tokens of one split, N = requested samples,
E = epochs, x = extra token (1 for NeoX; Megatron's add_extra_token_to_sequence, default 1),
B = samples built.

Public API
----------
``split_ranges(split, num_sequences, framework)``
    ``{"train"|"valid"|"test": (beg, end) | None}`` over sequences (§3.2 NeoX, §4.2 Megatron).

``make_plan(sizes=None, *, tokens=None, seq_len, global_batch_size, ...) -> Plan``
    ``Plan.to_dict()`` keys: framework, seq_len, global_batch_size, extra_token, tokens,
    sequences, samples_per_epoch, estimated_tokens, overlap_tokens, unused_tail_tokens,
    iterations_per_epoch, remainder_samples, split, splits, train_iters, eval_interval,
    eval_iters, max_train_iters_single_epoch, notes.
    ``splits`` always has the keys "train", "valid", "test"; each value has the keys
    sequences, tokens, samples_per_epoch, requested_samples, epochs, samples_built,
    dataset_length, logged_samples, separate_final_epoch, iterations, refused.
    A split that is not built has samples_per_epoch None (and sequences None, tokens 0).
    ``split=None`` means the whole dataset is the train split (exactly like "1,0,0").
    With ``tokens=`` only, sequences are unknown: ``sequences`` is None everywhere.
    When no sample fits (samples_per_epoch 0), overlap_tokens is 0 and unused_tail_tokens = T.

``blend_plan(datasets, weights, *, seq_len, global_batch_size, ...) -> BlendPlan``
    ``BlendPlan.to_dict()`` keys:
      framework, seq_len, global_batch_size, extra_token, split, train_iters, eval_interval,
      eval_iters, weights, normalized_weights (None without weights),
      shard_plans: [Plan.to_dict() of each shard alone],
      merged_plan: Plan.to_dict() of all shards concatenated into one file,
      sum_over_shards: one row per built split, the shards as separate one-epoch datasets
        (Megatron's unweighted multi-prefix blend, §4.8): split, requested_samples, tokens,
        total_length (Σ dataset lengths), blend_size (Megatron min(N, Σ len); NeoX Σ len),
        iterations (blend_size // G), refused,
      sum_over_shards_members: one row per (split, shard): split, shard, sequences (2-list or
        None), tokens, samples_built, dataset_length, refused,
      weighted_blend: one row per split that has a weighted blend (empty without weights):
        split, requested_samples, blend_size, iterations, oversampled (bool, or None when a
        member is refused), draws_exact (True if per-member draws were computed exactly,
        False if only bounded), refused,
      weighted_blend_members: one row per (split, shard): split, shard, weight,
        normalized_weight, blend_target (Megatron ceil(N·w); None for NeoX),
        requested_samples (NeoX ceil(N·w·1.005); Megatron buffer ceil(ceil(N·w)·1.005)),
        sequences, tokens, epochs, samples_built, dataset_length, separate_final_epoch,
        blend_draws (samples the blend takes from it: exact count, or an upper bound),
        oversampled, refused,
      notes.

``plan_split(tokens, *, seq_len, framework="megatron", extra_token=True, target_samples=None,
global_batch_size=1, name="train", sequences=None) -> SplitPlan``
    One split alone: epochs, samples built, dataset length, logged samples, separate final epoch,
    refused; the same numbers as ``make_plan(...).splits[name]``.

``FrameworkRules``, ``NEOX``, ``MEGATRON``, ``rules_for(framework)``
    What differs between the trainers, as data. The single formulas, for other modules:
    ``extra_token_for``, ``samples_built``, ``samples_before_final_epoch``, ``dataset_length``,
    ``logged_samples``, ``builds_from_logged``, ``megatron_split_range``, ``seq_lens_giving``.

``plan_from_samples(samples, *, seq_len, global_batch_size, framework="megatron",
extra_token=True, from_log=None) -> SamplesPlan``
    ``SamplesPlan.to_dict()`` keys: framework, seq_len, global_batch_size, extra_token,
    from_log, given_samples, samples_built, samples_per_epoch, dataset_length,
    logged_samples, iterations_per_epoch, remainder_samples, dataset_iterations,
    max_train_iters_single_epoch, estimated_tokens, tokens_min, tokens_max, notes.
    ``from_log`` ("neox"/"megatron"), when given, decides the framework semantics.

``chunked_plan(file_tokens, *, seq_len, global_batch_size, framework, paths=None, train_iters=None)
-> ChunkedPlan``, for ``framework`` "nanotron" (datatrove's ``DatatroveFolderDataset``) or "olmo"
(OLMo-core's ``NumpyFSLDataset``): trainers that cut each file into disjoint windows of S + 1
(nanotron) or S (OLMo) tokens, floored per file. ``ChunkedPlan.to_dict()`` keys: framework,
dataset, rule_source, seq_len, global_batch_size, window_tokens, tokens, files (path, tokens,
samples, unused_tail_tokens), samples_per_epoch, iterations_per_epoch, remainder_samples,
estimated_tokens (samples × S), window_tokens_used, unused_tail_tokens, comparison (rule,
samples, difference: the same tokens under the other rules), train_iters, train_samples,
epochs_of_data, notes.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import PlanError, UsageError
from .lengths import SequenceSizes

__all__ = [
    "CHUNKING_FRAMEWORKS",
    "FRAMEWORKS",
    "NANOTRON",
    "OLMO",
    "ChunkedPlan",
    "ChunkingRules",
    "check_chunking_options",
    "chunked_plan",
    "chunked_samples",
    "MEGATRON",
    "NEOX",
    "SPLIT_NAMES",
    "BlendPlan",
    "FrameworkRules",
    "Plan",
    "SamplesPlan",
    "SplitPlan",
    "blend_plan",
    "builds_from_logged",
    "dataset_length",
    "extra_token_for",
    "logged_samples",
    "make_plan",
    "megatron_split_range",
    "plan_from_samples",
    "plan_split",
    "rules_for",
    "samples_before_final_epoch",
    "samples_built",
    "seq_lens_giving",
    "split_ranges",
]

FRAMEWORKS = ("megatron", "neox")
SPLIT_NAMES = ("train", "valid", "test")

# §4.4: Megatron separates the final epoch below this fraction of an epoch.
_SEPARATE_FINAL_EPOCH_THRESHOLD = 0.80
# §3.8: NeoX pads each blend member's target by this factor.
_NEOX_BLEND_PADDING = 1.005
# §4.8: Megatron's default mid_level_dataset_surplus.
_MEGATRON_MID_LEVEL_SURPLUS = 0.005
# Exact simulation of the blending greedy (§3.8) costs size·members steps; above this, bound it.
_MAX_EXACT_BLEND_STEPS = 300_000


# --------------------------------------------------------------------------------------------
# what differs between the two trainers, as data


@dataclass(frozen=True)
class FrameworkRules:
    """The rules in which GPT-NeoX and Megatron-LM differ; code reads these instead of comparing names."""

    name: str
    fixed_extra_token: int | None  # NeoX always x = 1 (§3.4); None: Megatron's add_extra_token_to_sequence
    min_seq_len: int  # §3.4: NeoX's helpers.cpp asserts seq_length > 1
    helpers_asserts: bool  # helpers.cpp asserts compiled in (NeoX) or out (Megatron's pip wheel, §4.5)
    c_division: bool  # B in C++ int64, truncating toward zero (§4.5), or python floor division (§3.4)
    length_offset: int  # len(dataset) = B + offset (§3.5 NeoX: B - 1; §4.6 Megatron: B)
    logged_offset: int  # log "total number of samples" = B + offset (§3.5 NeoX: B + 1; §4.9 Megatron: B)
    separates_final_epoch: bool  # §4.4; NeoX shuffles all epochs together
    per_part_split_rounding: bool  # §3.2 each part rounded, then shifted; §4.2 cumulative fractions
    epochs_loop: str  # the trainer's epoch loop, named when it would hang
    unweighted_blend_capped: bool  # §4.8: Megatron's unweighted blend size is min(N, Σ len); NeoX Σ len
    weighted_blend_split: bool  # §3.2: a NeoX blend has no split (each path list is one split)
    weighted_blend_needs_target: bool  # §4.8: Megatron weighted blends need num_samples
    blend_member_targets: bool  # §4.8 size Σ ceil(N·w), buffers padded from ceil(N·w); §3.8 pads N·w, size Σ len
    blend_padding: float  # §3.8 NeoX 1.005; §4.8 Megatron 1 + mid_level_dataset_surplus
    numpy_weight_normalisation: bool  # §4.8 float64 numpy; §3.8 python floats


NEOX = FrameworkRules(
    name="neox",
    fixed_extra_token=1,
    min_seq_len=2,
    helpers_asserts=True,
    c_division=False,
    length_offset=-1,
    logged_offset=1,
    separates_final_epoch=False,
    per_part_split_rounding=True,
    epochs_loop="_num_epochs",
    unweighted_blend_capped=False,
    weighted_blend_split=False,
    weighted_blend_needs_target=False,
    blend_member_targets=False,
    blend_padding=_NEOX_BLEND_PADDING,
    numpy_weight_normalisation=False,
)
MEGATRON = FrameworkRules(
    name="megatron",
    fixed_extra_token=None,
    min_seq_len=1,
    helpers_asserts=False,
    c_division=True,
    length_offset=0,
    logged_offset=0,
    separates_final_epoch=True,
    per_part_split_rounding=False,
    epochs_loop="_get_num_epochs",
    unweighted_blend_capped=True,
    weighted_blend_split=True,
    weighted_blend_needs_target=True,
    blend_member_targets=True,
    blend_padding=1 + _MEGATRON_MID_LEVEL_SURPLUS,
    numpy_weight_normalisation=True,
)
_RULES = {"neox": NEOX, "megatron": MEGATRON}


# --------------------------------------------------------------------------------------------
# argument checks


def _check_int(name: str, value: Any, minimum: int) -> int:
    # bool is an int subclass; accepting True as 1 would hide caller bugs.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UsageError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        raise UsageError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_framework(framework: Any) -> str:
    if framework not in FRAMEWORKS:
        raise UsageError(f"framework must be one of {', '.join(FRAMEWORKS)}, got {framework!r}")
    return framework


def _check_extra_token(framework: str, extra_token: Any) -> int:
    # Strict, for the planning API: asking NeoX for x = 0 is a caller error, not something to ignore.
    if not isinstance(extra_token, (bool, np.bool_)) and extra_token not in (0, 1):
        raise UsageError(f"extra_token must be True or False, got {extra_token!r}")
    if _RULES[framework].fixed_extra_token is not None and not extra_token:
        raise UsageError("extra_token=False is Megatron's add_extra_token_to_sequence=False; GPT-NeoX always uses x=1")
    return extra_token_for(framework, extra_token)


def _check_seq_len(seq_len: Any, framework: str) -> int:
    seq_len = _check_int("seq_len", seq_len, 1)
    if seq_len < _RULES[framework].min_seq_len:
        # §3.4: NeoX's helpers.cpp is built without NDEBUG and asserts seq_length > 1.
        raise PlanError(
            "seq_len 1 is impossible for GPT-NeoX: helpers.cpp asserts seq_length > 1 and the process aborts"
        )
    return seq_len


def _check_sizes(sizes: Any) -> Any:
    if isinstance(sizes, SequenceSizes):
        return sizes  # a scan's: valid by construction, and read back only where a split needs it
    arr = np.asarray(sizes)
    if arr.ndim != 1:
        raise UsageError(f"sizes must be a 1-D array of per-sequence token counts, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise UsageError(f"sizes must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "i" and int(arr.min()) < 0:
        raise UsageError(f"sizes must be >= 0, found {int(arr.min())} at sequence {int(arr.argmin())}")
    return arr


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _c_div(numerator: int, denominator: int) -> int:
    # C++ int64 division truncates toward zero (§4.5: T = 0 gives -1/S == 0, not -1).
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


# --------------------------------------------------------------------------------------------
# the per-framework formulas other modules need (no argument checks: callers pass trainer values)


def rules_for(framework: str) -> FrameworkRules:
    """NEOX or MEGATRON; UsageError for any other name."""
    return _RULES[_check_framework(framework)]


def extra_token_for(framework: str, extra_token: bool | int) -> int:
    """x as the trainer uses it: NeoX always 1 whatever was asked, Megatron 1 or 0 (add_extra_token_to_sequence)."""
    fixed = rules_for(framework).fixed_extra_token
    return fixed if fixed is not None else (1 if extra_token else 0)


def samples_built(tokens: int, epochs: int, seq_len: int, extra: int, framework: str = "megatron") -> int:
    """B = (E·T - x) // S over all E epochs (§3.4, §4.5), in the trainer's own integer division."""
    total = epochs * tokens - extra
    return _c_div(total, seq_len) if rules_for(framework).c_division else total // seq_len


def samples_before_final_epoch(tokens: int, epochs: int, seq_len: int, extra: int) -> int:
    """Megatron's samples of the first E - 1 epochs, ((E - 1)·T - x) // S (§4.4 separate final epoch)."""
    return samples_built(tokens, epochs - 1, seq_len, extra, "megatron")


def dataset_length(samples_built: int, framework: str) -> int:
    """len(dataset) for B samples built: NeoX B - 1 (§3.5), Megatron B (§4.6)."""
    return samples_built + rules_for(framework).length_offset


def logged_samples(samples_built: int, framework: str) -> int:
    """The log's "total number of samples" for B samples built: NeoX B + 1 (§3.5), Megatron B (§4.9)."""
    return samples_built + rules_for(framework).logged_offset


def builds_from_logged(logged: int, framework: str) -> int:
    """B from the log's "total number of samples" (the inverse of logged_samples)."""
    return logged - rules_for(framework).logged_offset


def megatron_split_range(fraction_pair: Sequence[float], num_sequences: int) -> tuple[int, int]:
    """Megatron's [beg, end) from a (lo, hi) fraction pair of its split matrix: int(round(f·float(n))) (§4.2)."""
    n = float(num_sequences)
    return round(float(fraction_pair[0]) * n), round(float(fraction_pair[1]) * n)  # round(float) is an int


def seq_lens_giving(samples: int, tokens: int, epochs: int, extra: int) -> tuple[int, int] | None:
    """The S range [lo, hi] with (E·T - x) // S == B; lo > hi when no S does it, None when B or E·T - x is <= 0."""
    total = epochs * tokens - extra
    if samples <= 0 or total <= 0:
        return None
    # (E·T - x) // S == B  <=>  total / (B + 1) < S <= total / B
    return total // (samples + 1) + 1, total // samples


# --------------------------------------------------------------------------------------------
# split strings (§3.2, §4.2)


def _parse_split(split: Any, framework: str) -> list[float]:
    """The three raw split weights as the trainer reads them; UsageError when unusable."""
    if not isinstance(split, str):
        raise UsageError(f"split must be a string like '969, 30, 1', got {split!r}")
    text = split.strip()
    if framework == "neox":
        # §3.2: "," if present, else "/", else one number; python float() per part.
        parts = text.split(",") if "," in text else text.split("/") if "/" in text else [text]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise UsageError(
                f"split {split!r}: GPT-NeoX reads the parts with float() and cannot parse one of them"
            ) from None
        values = (values + [0.0, 0.0, 0.0])[:3]  # NeoX silently keeps only the first 3
    else:
        # §4.2: Megatron extracts [.0-9]+ runs, so signs and exponents are silently misread;
        # refuse them rather than report a split the user did not mean.
        if re.search(r"[-+]|\d[eE]|[eE]\d", text):
            raise UsageError(
                f"split {split!r}: Megatron's parser ignores signs and exponents (e.g. '1e-3' is read as 1, 3); "
                "use plain non-negative numbers"
            )
        try:
            values = [float(t) for t in re.findall(r"[.0-9]+", text)]
        except ValueError:
            raise UsageError(f"split {split!r}: Megatron cannot parse one of its numbers") from None
        if len(values) > 3:
            raise UsageError(
                f"split {split!r} has {len(values)} numbers; Megatron asserts at most 3 (train, valid, test)"
            )
        values = values + [0.0] * (3 - len(values))
    if any(not math.isfinite(v) for v in values):
        raise UsageError(f"split {split!r}: every part must be a finite number")
    if any(v < 0 for v in values):
        raise UsageError(f"split {split!r}: parts must be >= 0")
    if sum(values) <= 0:
        raise UsageError(f"split {split!r}: the parts sum to 0, the trainer asserts a positive sum")
    return values


def _neox_boundaries(values: list[float], size: int) -> list[int]:
    # §3.2: each part is rounded on its own, then every boundary shifts by the rounding excess.
    total = sum(values)
    weights = [v / total for v in values]
    bounds = [0]
    for w in weights:
        bounds.append(bounds[-1] + round(w * float(size)))
    excess = bounds[3] - size
    # With a 0 train part and an excess of 1, the valid range starts at -1, which NeoX's
    # np.arange + fancy indexing turns into the last sequence (then in valid AND test).
    return [bounds[0]] + [b - excess for b in bounds[1:]]


def _megatron_cumulative(values: list[float]) -> list[float]:
    # §4.2: normalise in numpy float64, then python-float running sums (replicated bit for bit).
    arr = np.array(values, dtype=np.float64)
    normalized = (arr / np.sum(arr)).tolist()
    cumulative = [0.0]
    for w in normalized:
        cumulative.append(cumulative[-1] + w)
    return cumulative


def _ranges_from_values(values: list[float], num_sequences: int, framework: str) -> dict[str, tuple[int, int] | None]:
    ranges: dict[str, tuple[int, int] | None] = {}
    if _RULES[framework].per_part_split_rounding:
        bounds = _neox_boundaries(values, num_sequences)
        for k, name in enumerate(SPLIT_NAMES):
            ranges[name] = (bounds[k], bounds[k + 1]) if bounds[k + 1] > bounds[k] else None
    else:
        cumulative = _megatron_cumulative(values)
        for k, name in enumerate(SPLIT_NAMES):
            lo, hi = cumulative[k], cumulative[k + 1]
            if hi <= lo:
                ranges[name] = None
            else:
                # An empty [beg, beg) range stays non-None: Megatron builds it and hangs (§4.2).
                ranges[name] = megatron_split_range((lo, hi), num_sequences)
    return ranges


def split_ranges(split: str, num_sequences: int, framework: str) -> dict[str, tuple[int, int] | None]:
    """Sequence ranges [beg, end) of train/valid/test as the trainer computes them.

    NeoX (§3.2): None when the split is not built. Megatron (§4.2): None when its fraction is 0;
    a rounded-empty range (beg == end) is returned as such because Megatron still builds it.
    """
    framework = _check_framework(framework)
    num_sequences = _check_int("num_sequences", num_sequences, 0)
    return _ranges_from_values(_parse_split(split, framework), num_sequences, framework)


# --------------------------------------------------------------------------------------------
# one split of one dataset (§3.3-3.5, §4.3-4.6)


@dataclass
class SplitPlan:
    """What the trainer builds for one split. ``built`` is False when the split does not exist."""

    name: str
    built: bool
    sequences: tuple[int, int] | None
    tokens: int
    samples_per_epoch: int | None
    requested_samples: int | None
    epochs: int | None
    samples_built: int | None
    dataset_length: int | None
    logged_samples: int | None
    separate_final_epoch: bool | None
    iterations: int | None
    refused: str | None
    samples_from_final_epoch: int | None = None  # Megatron, E > 1 only (§4.4)
    samples_before_final_epoch: int | None = None  # Megatron, E > 1 only: where the final epoch's samples start

    def to_dict(self) -> dict:
        return {
            "sequences": list(self.sequences) if self.sequences is not None else None,
            "tokens": self.tokens,
            "samples_per_epoch": self.samples_per_epoch,
            "requested_samples": self.requested_samples,
            "epochs": self.epochs,
            "samples_built": self.samples_built,
            "dataset_length": self.dataset_length,
            "logged_samples": self.logged_samples,
            "separate_final_epoch": self.separate_final_epoch,
            "iterations": self.iterations,
            "refused": self.refused,
        }


def _not_built(name: str) -> SplitPlan:
    return SplitPlan(name, False, None, 0, None, None, None, None, None, None, None, None, None)


def _epochs_needed(tokens: int, target: int | None, seq_len: int, extra: int) -> int | None:
    """Smallest E >= 1 with E·T >= N·S + x (§3.3, §4.3); None where the trainer loops forever."""
    if target is None:
        return 1  # NeoX train_epochs / Megatron num_samples=None: the loop is skipped
    needed = target * seq_len + extra
    if tokens == 0:
        return 1 if needed <= 0 else None
    return max(1, _ceil_div(needed, tokens))


def _split_plan(
    name: str,
    seq_range: tuple[int, int] | None,
    tokens: int,
    target: int | None,
    *,
    seq_len: int,
    extra: int,
    global_batch_size: int,
    framework: str,
) -> SplitPlan:
    rules = _RULES[framework]
    S, x, T = seq_len, extra, tokens
    per_epoch = max(0, (T - x) // S)
    plan = SplitPlan(name, True, seq_range, T, per_epoch, target, None, None, None, None, None, None, None)
    E = _epochs_needed(T, target, S, x)
    if E is None:
        empty = seq_range is not None and seq_range[0] == seq_range[1]
        where = f" (empty sequence range [{seq_range[0]}, {seq_range[1]}))" if seq_range and empty else ""
        plan.refused = (
            f"{name} split has 0 tokens{where} but a target of {target} samples: "
            f"{rules.epochs_loop} loops forever (hang)"
        )
        return plan
    plan.epochs = E
    if T <= 1 and rules.helpers_asserts:
        # §3.4: helpers.cpp asserts tokens_per_epoch > 1 (asserts are compiled in).
        plan.refused = (
            f"{name} split has {T} token(s): NeoX's helpers.cpp asserts tokens_per_epoch > 1 and aborts (SIGABRT)"
        )
        return plan

    B = samples_built(T, E, S, x, framework)  # §3.4 / §4.5: over all E epochs, not N
    if B < 0:
        # Only T = 0, x = 1, S = 1 (Megatron): C++ allocates 0 rows and writes past them.
        plan.refused = f"{name} split has 0 tokens: helpers.cpp computes -1 samples (undefined behaviour)"
        return plan
    plan.samples_built = B
    plan.dataset_length = dataset_length(B, framework)  # §3.5: NeoX len = min(B - 1, B); §4.6: no -1
    plan.logged_samples = logged_samples(B, framework)  # §3.5 NeoX prints sample_idx rows; §4.9
    if plan.dataset_length < 0:
        # NeoX with B == 0 (Megatron's length never goes below 0).
        plan.refused = (
            f"{name} split builds 0 samples (T={T} <= seq_len {S}, target {target}): NeoX's len(dataset) = -1 "
            "and Python raises ValueError: __len__() should return >= 0"
        )
        return plan
    plan.iterations = plan.dataset_length // global_batch_size
    if rules.separates_final_epoch:
        plan.separate_final_epoch = False
        if E > 1:
            # §4.4; target is not None here (E > 1 needs a target). int(0.80 * n) is a float multiply.
            before = samples_before_final_epoch(T, E, S, x)
            final = target - before  # type: ignore[operator]
            plan.samples_before_final_epoch = before
            plan.samples_from_final_epoch = final
            plan.separate_final_epoch = final < int(_SEPARATE_FINAL_EPOCH_THRESHOLD * per_epoch)
    if T <= 1 and not rules.helpers_asserts:
        plan.refused = (
            f"{name} split has {T} token(s): helpers.cpp asserts tokens_per_epoch > 1, so a Makefile build aborts; "
            f"the pip wheel compiles asserts out and silently builds {B} samples"
        )
    return plan


def plan_split(
    tokens: int,
    *,
    seq_len: int,
    framework: str = "megatron",
    extra_token: bool = True,
    target_samples: int | None = None,
    global_batch_size: int = 1,
    name: str = "train",
    sequences: tuple[int, int] | None = None,
) -> SplitPlan:
    """One split of T tokens built for an optional sample target N (§3.3-3.5, §4.3-4.6).

    Gives epochs E, samples built B, dataset length, the logged value, the separate final epoch
    (Megatron) or why the trainer refuses; the same numbers as ``make_plan(...).splits[name]``.
    ``name`` and ``sequences`` (the split's [beg, end)) only appear in the messages.
    """
    framework = _check_framework(framework)
    x = _check_extra_token(framework, extra_token)
    S = _check_seq_len(seq_len, framework)
    G = _check_int("global_batch_size", global_batch_size, 1)
    T = _check_int("tokens", tokens, 0)
    N = None if target_samples is None else _check_int("target_samples", target_samples, 0)
    seq_range = None
    if sequences is not None:
        if len(sequences) != 2:
            raise UsageError(f"sequences must be a (beg, end) pair, got {sequences!r}")
        seq_range = (_check_int("sequences[0]", sequences[0], -1), _check_int("sequences[1]", sequences[1], 0))
    return _split_plan(name, seq_range, T, N, seq_len=S, extra=x, global_batch_size=G, framework=framework)


# --------------------------------------------------------------------------------------------
# whole-dataset plan (§5, §7)


@dataclass
class Plan:
    framework: str
    seq_len: int
    global_batch_size: int
    extra_token: int
    tokens: int
    sequences: int | None
    samples_per_epoch: int
    estimated_tokens: int
    overlap_tokens: int
    unused_tail_tokens: int
    iterations_per_epoch: int
    remainder_samples: int
    split: str | None
    splits: dict[str, SplitPlan]
    train_iters: int | None
    eval_interval: int
    eval_iters: int
    max_train_iters_single_epoch: int | None
    notes: list[str] = field(default_factory=list)

    def refusals(self) -> list[str]:
        """ "split: why" for every split the real trainer would hang or abort on."""
        return [f"{name}: {s.refused}" for name, s in self.splits.items() if s.refused]

    def to_dict(self) -> dict:
        return {
            "framework": self.framework,
            "seq_len": self.seq_len,
            "global_batch_size": self.global_batch_size,
            "extra_token": self.extra_token,
            "tokens": self.tokens,
            "sequences": self.sequences,
            "samples_per_epoch": self.samples_per_epoch,
            "estimated_tokens": self.estimated_tokens,
            "overlap_tokens": self.overlap_tokens,
            "unused_tail_tokens": self.unused_tail_tokens,
            "iterations_per_epoch": self.iterations_per_epoch,
            "remainder_samples": self.remainder_samples,
            "split": self.split,
            "splits": {name: s.to_dict() for name, s in self.splits.items()},
            "train_iters": self.train_iters,
            "eval_interval": self.eval_interval,
            "eval_iters": self.eval_iters,
            "max_train_iters_single_epoch": self.max_train_iters_single_epoch,
            "notes": list(self.notes),
        }


def _sample_targets(
    train_iters: int | None, eval_interval: int, eval_iters: int, global_batch_size: int
) -> dict[str, int | None]:
    # §3.1 / §4.1 (eval global batch = global batch).
    if train_iters is None:
        return {name: None for name in SPLIT_NAMES}
    G = global_batch_size
    return {
        "train": train_iters * G,
        "valid": (train_iters // eval_interval + 1) * eval_iters * G,
        "test": eval_iters * G,
    }


def _range_tokens(sizes: Any, seq_range: tuple[int, int] | None) -> int:
    # int64 accumulation keeps totals exact (an int32 sum overflows past 2^31 tokens); slice sums
    # avoid allocating a prefix array as large as the file's index.
    if seq_range is None:
        return 0
    beg, end = seq_range
    if isinstance(sizes, SequenceSizes):
        if beg < 0:  # as below: sizes[beg:] then sizes[:end]
            return sizes.range_tokens(max(0, sizes.size + beg), sizes.size) + sizes.range_tokens(0, end)
        return sizes.range_tokens(beg, end)
    if beg < 0:
        # NeoX indexes sizes with np.arange(beg, end): -1 is the LAST sequence (see _neox_boundaries).
        return int(np.sum(sizes[beg:], dtype=np.int64)) + int(np.sum(sizes[:end], dtype=np.int64))
    return int(np.sum(sizes[beg:end], dtype=np.int64))


def _puts_all_in_train(values: list[float]) -> bool:
    return values[1] == 0.0 and values[2] == 0.0


def _split_notes(s: SplitPlan, framework: str, S: int, x: int, G: int) -> list[str]:
    rules = _RULES[framework]
    notes: list[str] = []
    if s.refused:
        notes.append(f"{s.name}: REFUSED: {s.refused}")
        return notes
    if not s.built or s.epochs is None or s.samples_built is None:
        return notes
    E, B, N = s.epochs, s.samples_built, s.requested_samples
    if E > 1:
        per = s.samples_per_epoch or 0
        extra = B - E * per
        carry = (
            f", {extra:,} more than {E} × samples per epoch (tail tokens carry over between epochs)" if extra else ""
        )
        notes.append(f"{s.name}: {E} epochs; samples built = (E·T - {x})//{S} = {B:,}{carry}")
        if not rules.separates_final_epoch:
            notes.append(f"{s.name}: NeoX shuffles all {E} epochs together (no separate final epoch)")
        else:
            threshold = int(_SEPARATE_FINAL_EPOCH_THRESHOLD * per)
            verdict = "separated (shuffled on its own, used last)" if s.separate_final_epoch else "not separated"
            notes.append(
                f"{s.name}: Megatron final epoch contributes {s.samples_from_final_epoch:,} samples vs threshold "
                f"int(0.8 × {per:,}) = {threshold:,}: {verdict}"
            )
    if rules.length_offset < 0 and N is not None and B == N and N > 0:
        # §3.9 / §6: minimal E can make B == N, and len = B - 1.
        notes.append(
            f"{s.name}: exact fit B == N = {N:,}: NeoX's len = B - 1 leaves the loader one batch short, "
            "so itertools.cycle replays batch 0 at the end"
        )
    return notes


def _plan_notes(plan: Plan, framework: str, S: int, x: int, G: int, sizes_known: bool) -> list[str]:
    rules = _RULES[framework]
    notes: list[str] = []
    if plan.samples_per_epoch > 0 and x == 1:
        notes.append(
            f"consecutive samples share 1 token, so B samples need B·{S} + 1 tokens: samples × seq_len "
            f"({plan.estimated_tokens:,}) is {plan.tokens - plan.estimated_tokens:,} below T (always 1..{S})"
        )
    if x == 0:
        notes.append("x=0: Megatron samples are disjoint seq_len-token windows (last label masked)")
    if rules.length_offset or rules.logged_offset:
        notes.append(
            "NeoX: len(dataset) = samples built - 1, and its log 'total number of samples' prints samples built + 1"
        )
    if not rules.helpers_asserts and S == 1:
        notes.append(
            "seq_len 1: only the pip wheel of Megatron (asserts off) accepts it; a Makefile-built helpers aborts"
        )
    if plan.split is None:
        note = "no split: the whole dataset is the train split (same as '1,0,0')"
        if framework == "megatron":
            note += "; note Megatron --data-path without --split uses '969, 30, 1'"
        notes.append(note)
    if not sizes_known:
        notes.append("only a token total was given: sequence ranges are unknown (assumed >= 1 sequence)")
    if plan.tokens <= x or plan.tokens <= 1:
        notes.append(f"the whole dataset has {plan.tokens} token(s): no training sample can be built")
    for name in SPLIT_NAMES:
        s = plan.splits[name]
        if rules.per_part_split_rounding and plan.split is not None and not s.built and sizes_known:
            notes.append(f"{name}: not built (its rounded share of {plan.sequences:,} sequences is 0)")
        if rules.per_part_split_rounding and s.sequences is not None and s.sequences[0] < 0:
            notes.append(
                f"{name}: NeoX range [{s.sequences[0]}, {s.sequences[1]}) starts below 0, so it also takes the last "
                "sequence(s) of the file (numpy negative indexing), which the following split uses too"
            )
        empty = s.built and s.sequences is not None and s.sequences[0] == s.sequences[1]
        if not rules.per_part_split_rounding and empty and s.sequences is not None:
            notes.append(
                f"{name}: Megatron builds an EMPTY range [{s.sequences[0]}, {s.sequences[1]}) (NeoX would skip it)"
            )
        notes.extend(_split_notes(s, framework, S, x, G))
    return notes


def check_training_arguments(
    framework: Any,
    extra_token: Any,
    seq_len: Any,
    global_batch_size: Any,
    train_iters: Any,
    eval_interval: Any,
    eval_iters: Any,
) -> tuple[str, int, int, int, int | None, int, int]:
    """(framework, x, S, G, train_iters, eval_interval, eval_iters) checked; UsageError / PlanError naming the bad one."""
    framework = _check_framework(framework)
    x = _check_extra_token(framework, extra_token)
    S = _check_seq_len(seq_len, framework)
    G = _check_int("global_batch_size", global_batch_size, 1)
    if train_iters is not None:
        train_iters = _check_int("train_iters", train_iters, 0)
    return (
        framework,
        x,
        S,
        G,
        train_iters,
        _check_int("eval_interval", eval_interval, 1),
        _check_int("eval_iters", eval_iters, 0),
    )


def make_plan(
    sizes: Any = None,
    *,
    tokens: int | None = None,
    seq_len: int,
    global_batch_size: int,
    framework: str = "megatron",
    extra_token: bool = True,
    split: str | None = None,
    train_iters: int | None = None,
    eval_interval: int = 1000,
    eval_iters: int = 100,
) -> Plan:
    """The trainer's sample/epoch/iteration math for one dataset (a sizes array or a token total)."""
    framework, x, S, G, train_iters, eval_interval, eval_iters = check_training_arguments(
        framework, extra_token, seq_len, global_batch_size, train_iters, eval_interval, eval_iters
    )
    if (sizes is None) == (tokens is None):
        raise UsageError("give either per-sequence sizes or a token total, not both and not neither")

    values = _parse_split(split, framework) if split is not None else [1.0, 0.0, 0.0]
    if sizes is not None:
        arr = _check_sizes(sizes)
        num_sequences: int | None = int(arr.size)
        total = _range_tokens(arr, (0, arr.size))
        ranges = _ranges_from_values(values, arr.size, framework)
        split_tokens = {name: _range_tokens(arr, r) for name, r in ranges.items()}
    else:
        total = _check_int("tokens", tokens, 0)
        if not _puts_all_in_train(values):
            raise UsageError(
                f"split {split!r} needs per-sequence sizes (the split unit is the sequence); "
                "with only a token total use no split or '1,0,0'"
            )
        num_sequences = None
        ranges = {"train": None, "valid": None, "test": None}
        split_tokens = {"train": total, "valid": 0, "test": 0}

    targets = _sample_targets(train_iters, eval_interval, eval_iters, G)
    splits: dict[str, SplitPlan] = {}
    for name in SPLIT_NAMES:
        built = ranges[name] is not None or (num_sequences is None and name == "train")
        if not built:
            splits[name] = _not_built(name)
            continue
        splits[name] = _split_plan(
            name,
            ranges[name],
            split_tokens[name],
            targets[name],
            seq_len=S,
            extra=x,
            global_batch_size=G,
            framework=framework,
        )

    samples = max(0, (total - x) // S)
    estimated = samples * S
    overlap = x if samples > 0 else 0
    train_tokens = splits["train"].tokens if splits["train"].built else 0
    # Largest I with I·G·S + x <= T_train, i.e. E stays 1 (§3.3 / §4.3).
    max_single = (train_tokens - x) // S // G if train_tokens > x else None

    plan = Plan(
        framework=framework,
        seq_len=S,
        global_batch_size=G,
        extra_token=x,
        tokens=total,
        sequences=num_sequences,
        samples_per_epoch=samples,
        estimated_tokens=estimated,
        overlap_tokens=overlap,
        unused_tail_tokens=total - estimated - overlap,
        iterations_per_epoch=samples // G,
        remainder_samples=samples % G,
        split=split,
        splits=splits,
        train_iters=train_iters,
        eval_interval=eval_interval,
        eval_iters=eval_iters,
        max_train_iters_single_epoch=max_single,
    )
    plan.notes = _plan_notes(plan, framework, S, x, G, sizes_known=num_sequences is not None)
    return plan


# --------------------------------------------------------------------------------------------
# blends (§3.8, §4.8)


def _blending_draws(normalized_weights: list[float], size: int) -> tuple[list[int], bool]:
    """Samples the greedy blending index takes from each member (§3.8 build_blending_indices).

    Exact (same double arithmetic, first index wins ties) when small; otherwise an upper bound:
    the chosen member always has error >= 0, so count_i <= w_i·max(size-1, 1) + 1.
    """
    n = len(normalized_weights)
    if size <= 0:
        return [0] * n, True
    if size * n <= _MAX_EXACT_BLEND_STEPS:
        counts = [0] * n
        for k in range(size):
            position = float(max(k, 1))
            best = 0
            best_error = normalized_weights[0] * position - float(counts[0])
            for i in range(1, n):
                error = normalized_weights[i] * position - float(counts[i])
                if error > best_error:
                    best, best_error = i, error
            counts[best] += 1
        return counts, True
    slack = 1e-9 * size + 1e-9  # float noise in Σw ≈ 1
    return [min(size, math.floor(w * max(size - 1, 1) + 1 + slack)) for w in normalized_weights], False


@dataclass
class BlendPlan:
    framework: str
    seq_len: int
    global_batch_size: int
    extra_token: int
    split: str | None
    train_iters: int | None
    eval_interval: int
    eval_iters: int
    weights: list[float] | None
    normalized_weights: list[float] | None
    shard_plans: list[Plan]
    merged_plan: Plan
    sum_over_shards: list[dict]
    sum_over_shards_members: list[dict]
    weighted_blend: list[dict]
    weighted_blend_members: list[dict]
    notes: list[str] = field(default_factory=list)

    def refusals(self) -> list[str]:
        """Every refusal of the blend: its rows' and those of the plans it is built from."""
        found = [
            f"blend {row['split']}: {row['refused']}"
            for row in self.weighted_blend + self.sum_over_shards
            if row.get("refused")
        ]
        for i, shard in enumerate(self.shard_plans):
            found.extend(f"shard {i} {r}" for r in shard.refusals())
        return found + self.merged_plan.refusals()

    def to_dict(self) -> dict:
        return {
            "framework": self.framework,
            "seq_len": self.seq_len,
            "global_batch_size": self.global_batch_size,
            "extra_token": self.extra_token,
            "split": self.split,
            "train_iters": self.train_iters,
            "eval_interval": self.eval_interval,
            "eval_iters": self.eval_iters,
            "weights": list(self.weights) if self.weights is not None else None,
            "normalized_weights": list(self.normalized_weights) if self.normalized_weights is not None else None,
            "shard_plans": [p.to_dict() for p in self.shard_plans],
            "merged_plan": self.merged_plan.to_dict(),
            "sum_over_shards": [dict(r) for r in self.sum_over_shards],
            "sum_over_shards_members": [dict(r) for r in self.sum_over_shards_members],
            "weighted_blend": [dict(r) for r in self.weighted_blend],
            "weighted_blend_members": [dict(r) for r in self.weighted_blend_members],
            "notes": list(self.notes),
        }


def _check_weights(weights: Any, count: int) -> list[float]:
    try:
        values = [float(w) for w in weights]
    except (TypeError, ValueError):
        raise UsageError(f"weights must be numbers, got {weights!r}") from None
    if len(values) != count:
        raise UsageError(f"{len(values)} weights for {count} datasets")
    if any(not math.isfinite(w) or w < 0 for w in values):
        raise UsageError(f"weights must be finite and >= 0, got {values}")
    if sum(values) <= 0:
        raise UsageError("weights sum to 0")
    return values


def _member_row(split_name: str, shard: int, s: SplitPlan) -> dict:
    return {
        "split": split_name,
        "shard": shard,
        "sequences": list(s.sequences) if s.sequences is not None else None,
        "tokens": s.tokens,
        "samples_built": s.samples_built,
        "dataset_length": s.dataset_length,
        "refused": s.refused,
    }


def _sum_over_shards(
    shard_plans: list[Plan],
    targets: dict[str, int | None],
    *,
    seq_len: int,
    extra: int,
    global_batch_size: int,
    framework: str,
) -> tuple[list[dict], list[dict], list[str]]:
    """The shards as separate unweighted datasets, each built for one epoch (§4.8 "weights None with size N")."""
    rules = _RULES[framework]
    split_kw: dict[str, Any] = {
        "seq_len": seq_len,
        "extra": extra,
        "global_batch_size": global_batch_size,
        "framework": framework,
    }
    rows: list[dict] = []
    member_rows: list[dict] = []
    notes: list[str] = []
    for name in SPLIT_NAMES:
        members = []
        for i, p in enumerate(shard_plans):
            sp = p.splits[name]
            if not sp.built:
                continue
            one_epoch = _split_plan(name, sp.sequences, sp.tokens, None, **split_kw)
            members.append(one_epoch)
            member_rows.append(_member_row(name, i, one_epoch))
        if not members:
            continue
        refused = [f"shard {m_i}: {m.refused}" for m_i, m in enumerate(members) if m.refused]
        total_length = sum(m.dataset_length for m in members if m.dataset_length is not None)
        target = targets[name]
        size = min(target, total_length) if (target is not None and rules.unweighted_blend_capped) else total_length
        rows.append(
            {
                "split": name,
                "requested_samples": target,
                "tokens": sum(m.tokens for m in members),
                "total_length": total_length,
                "blend_size": size,
                "iterations": max(size, 0) // global_batch_size,
                "refused": "; ".join(refused) if refused else None,
            }
        )
        if rules.unweighted_blend_capped and target is not None and total_length < target:
            notes.append(
                f"{name}: the unweighted shards (one epoch each) give only {total_length:,} samples in total, "
                f"fewer than the {target:,} requested (Megatron uses size min(N, Σ len))"
            )
    return rows, member_rows, notes


def _normalized_weights(raw_weights: list[float], rules: FrameworkRules) -> list[float]:
    if rules.numpy_weight_normalisation:
        arr = np.array(raw_weights, dtype=np.float64)
        return (arr / np.sum(arr)).tolist()
    weight_sum = sum(raw_weights)
    return [w / weight_sum for w in raw_weights]  # §3.8: python floats


def _blend_member_targets(N: int | None, w: float, rules: FrameworkRules) -> tuple[int | None, int | None]:
    """(blend target, samples requested from the member) for target N and normalised weight w."""
    if rules.blend_member_targets:
        # §4.8: target ceil(N·w) for the size; the member's buffer adds the surplus on top.
        blend_target = math.ceil(N * w)  # type: ignore[operator]  # Megatron weighted blends always have N
        return blend_target, math.ceil(blend_target * rules.blend_padding)
    # §3.8: evaluated left to right as (N·w)·1.005 in python floats.
    return None, math.ceil(N * w * rules.blend_padding) if N is not None else None


def _weighted_blend_split(
    name: str,
    shard_plans: list[Plan],
    raw_weights: list[float],
    normalized: list[float],
    N: int | None,
    split_kw: dict[str, Any],
) -> tuple[dict, list[dict], list[str]] | None:
    """One split's weighted blend: its row, its member rows and notes; None when no member builds the split."""
    split_members: list[tuple[int, bool, tuple[int, int] | None, int]]
    if _RULES[split_kw["framework"]].weighted_blend_split:
        split_members = [
            (i, p.splits[name].built, p.splits[name].sequences, p.splits[name].tokens)
            for i, p in enumerate(shard_plans)
        ]
    else:
        # §3.2 blend mode: no split, each file is wholly one split.
        split_members = [(i, True, (0, p.sequences or 0), p.tokens) for i, p in enumerate(shard_plans)]
    return weighted_blend_of_members(name, split_members, raw_weights, normalized, N, split_kw)


def weighted_blend_of_members(
    name: str,
    split_members: list[tuple[int, bool, tuple[int, int] | None, int]],
    raw_weights: list[float],
    normalized: list[float],
    N: int | None,
    split_kw: dict[str, Any],
) -> tuple[dict, list[dict], list[str]] | None:
    """One split's weighted blend (§3.8, §4.8) of members given as (index, built, sequence range,
    tokens): its row, its member rows and notes; None when no member builds the split.
    ``split_kw``: seq_len, extra, global_batch_size, framework (checked values)."""
    framework = split_kw["framework"]
    rules = _RULES[framework]
    if not any(built for _, built, _, _ in split_members):
        return None
    member_plans: list[tuple[int, SplitPlan, int | None, int | None]] = []
    for i, built, seq_range, member_tokens in split_members:
        blend_target, requested = _blend_member_targets(N, normalized[i], rules)
        member = _split_plan(name, seq_range, member_tokens, requested, **split_kw) if built else _not_built(name)
        member_plans.append((i, member, blend_target, requested))

    refused = [f"shard {i}: {m.refused}" for i, m, _, _ in member_plans if m.refused]
    lengths_known = all(m.dataset_length is not None for _, m, _, _ in member_plans if m.built)
    size: int | None
    if rules.blend_member_targets:
        size = sum(t for _, _, t, _ in member_plans if t is not None)
    else:
        lengths = [m.dataset_length for _, m, _, _ in member_plans if m.built and m.dataset_length is not None]
        size = sum(lengths) if lengths_known else None
    if size is not None and size > 0:
        draws, exact = _blending_draws(normalized, size)
    else:
        draws, exact = [0] * len(member_plans), True
    member_rows: list[dict] = []
    any_oversampled = False
    for (i, m, blend_target, requested), drawn in zip(member_plans, draws):
        over = None
        if m.dataset_length is not None:
            over = drawn > m.dataset_length
            any_oversampled = any_oversampled or over
        member_rows.append(
            {
                "split": name,
                "shard": i,
                "weight": raw_weights[i],
                "normalized_weight": normalized[i],
                "blend_target": blend_target,
                "requested_samples": requested,
                "sequences": list(m.sequences) if m.sequences is not None else None,
                "tokens": m.tokens,
                "epochs": m.epochs,
                "samples_built": m.samples_built,
                "dataset_length": m.dataset_length,
                "separate_final_epoch": m.separate_final_epoch,
                "blend_draws": drawn,
                "oversampled": over,
                "refused": m.refused,
            }
        )
    oversampled = any_oversampled if lengths_known else None
    row = {
        "split": name,
        "requested_samples": N,
        "blend_size": size,
        "iterations": size // split_kw["global_batch_size"] if size is not None and size >= 0 else None,
        "oversampled": oversampled,
        "draws_exact": exact,
        "refused": "; ".join(refused) if refused else None,
    }
    notes: list[str] = []
    if oversampled:
        bound = "" if exact else " (by an upper bound on the draws: it can occur)"
        if framework == "megatron":
            notes.append(
                f"{name}: the blend asks a member for more samples than it has{bound}: Megatron raises "
                f"IndexError 'The {name} blend oversamples ...'"
            )
        else:
            notes.append(
                f"{name}: the blend asks a member for more samples than it has{bound}: NeoX wraps the "
                "index modulo len and repeats samples (prints WARNING: Got index out of bounds)"
            )
    for i, m, _, _ in member_plans:
        if m.refused:
            notes.append(f"{name} shard {i}: REFUSED: {m.refused}")
    return row, member_rows, notes


def _weighted_blend(
    shard_plans: list[Plan],
    raw_weights: list[float],
    split: str | None,
    train_iters: int | None,
    targets: dict[str, int | None],
    split_kw: dict[str, Any],
) -> tuple[list[float], list[dict], list[dict], list[str]]:
    """The framework's weighted blend (§3.8, §4.8): normalised weights, rows, member rows, notes."""
    framework = split_kw["framework"]
    rules = _RULES[framework]
    if not rules.weighted_blend_split:
        split_values = _parse_split(split, framework) if split is not None else [1.0, 0.0, 0.0]
        if not _puts_all_in_train(split_values):
            raise UsageError(
                "GPT-NeoX weighted blends have no split: each train/valid/test path list is wholly one split; "
                "use split None (or '1,0,0') and blend each split's files separately"
            )
    if train_iters is None:
        if rules.weighted_blend_needs_target:
            raise UsageError("Megatron weighted blends need a sample target: give train_iters")
        if any(w != 1.0 for w in raw_weights):
            raise UsageError("GPT-NeoX train_epochs mode (no train_iters) requires all blend weights to be 1.0")
    normalized = _normalized_weights(raw_weights, rules)
    rows: list[dict] = []
    member_rows: list[dict] = []
    notes: list[str] = []
    for name in SPLIT_NAMES:
        if not rules.weighted_blend_split and name != "train":
            continue  # NeoX valid/test blends come from other path lists
        one = _weighted_blend_split(name, shard_plans, raw_weights, normalized, targets[name], split_kw)
        if one is None:
            continue
        rows.append(one[0])
        member_rows.extend(one[1])
        notes.extend(one[2])
    if rules.blend_member_targets:
        notes.append(
            "Megatron blend size = Σ ceil(N·w_i) (can exceed N); members are built for ceil(ceil(N·w_i)·1.005)"
        )
        if len(shard_plans) == 1:
            notes.append("a single weighted prefix still builds a BlendedDataset, so the 1.005 surplus applies")
    else:
        notes.append("NeoX blend size = Σ (B_i - 1) over members, not the requested N")
    return normalized, rows, member_rows, notes


def blend_plan(
    datasets: Sequence[Any],
    weights: Sequence[float] | None,
    *,
    seq_len: int,
    global_batch_size: int,
    framework: str = "megatron",
    extra_token: bool = True,
    split: str | None = None,
    train_iters: int | None = None,
    eval_interval: int = 1000,
    eval_iters: int = 100,
) -> BlendPlan:
    """Several datasets: each alone, merged into one file, as separate unweighted datasets, and
    (with weights) the framework's weighted blend."""
    framework = _check_framework(framework)
    common: dict[str, Any] = {
        "seq_len": seq_len,
        "global_batch_size": global_batch_size,
        "framework": framework,
        "extra_token": extra_token,
        "split": split,
        "train_iters": train_iters,
        "eval_interval": eval_interval,
        "eval_iters": eval_iters,
    }
    if datasets is None or len(datasets) == 0:
        raise UsageError("blend_plan needs at least one dataset")
    arrays = [_check_sizes(d) for d in datasets]
    shard_plans = [make_plan(a, **common) for a in arrays]  # validates every other argument
    # All files as one, in order, without copying every size into one array.
    merged_plan = make_plan(SequenceSizes.concatenate(arrays), **common)
    first = shard_plans[0]
    S, x, G = first.seq_len, first.extra_token, first.global_batch_size
    targets = _sample_targets(first.train_iters, first.eval_interval, first.eval_iters, G)
    split_kw: dict[str, Any] = {"seq_len": S, "extra": x, "global_batch_size": G, "framework": framework}

    sum_rows, sum_members, notes = _sum_over_shards(shard_plans, targets, **split_kw)
    weighted_rows: list[dict] = []
    weighted_members: list[dict] = []
    raw_weights = normalized = None
    if weights is not None:
        raw_weights = _check_weights(weights, len(arrays))
        normalized, weighted_rows, weighted_members, weighted_notes = _weighted_blend(
            shard_plans, raw_weights, split, first.train_iters, targets, split_kw
        )
        notes.extend(weighted_notes)

    return BlendPlan(
        framework=framework,
        seq_len=S,
        global_batch_size=G,
        extra_token=x,
        split=split,
        train_iters=first.train_iters,
        eval_interval=first.eval_interval,
        eval_iters=first.eval_iters,
        weights=raw_weights,
        normalized_weights=normalized,
        shard_plans=shard_plans,
        merged_plan=merged_plan,
        sum_over_shards=sum_rows,
        sum_over_shards_members=sum_members,
        weighted_blend=weighted_rows,
        weighted_blend_members=weighted_members,
        notes=notes,
    )


# --------------------------------------------------------------------------------------------
# from a sample count (§5)


@dataclass
class SamplesPlan:
    framework: str
    seq_len: int
    global_batch_size: int
    extra_token: int
    from_log: str | None
    given_samples: int
    samples_built: int
    samples_per_epoch: int
    dataset_length: int
    logged_samples: int
    iterations_per_epoch: int
    remainder_samples: int
    dataset_iterations: int | None
    max_train_iters_single_epoch: int
    estimated_tokens: int
    tokens_min: int
    tokens_max: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "framework": self.framework,
            "seq_len": self.seq_len,
            "global_batch_size": self.global_batch_size,
            "extra_token": self.extra_token,
            "from_log": self.from_log,
            "given_samples": self.given_samples,
            "samples_built": self.samples_built,
            "samples_per_epoch": self.samples_per_epoch,
            "dataset_length": self.dataset_length,
            "logged_samples": self.logged_samples,
            "iterations_per_epoch": self.iterations_per_epoch,
            "remainder_samples": self.remainder_samples,
            "dataset_iterations": self.dataset_iterations,
            "max_train_iters_single_epoch": self.max_train_iters_single_epoch,
            "estimated_tokens": self.estimated_tokens,
            "tokens_min": self.tokens_min,
            "tokens_max": self.tokens_max,
            "notes": list(self.notes),
        }


def plan_from_samples(
    samples: int,
    *,
    seq_len: int,
    global_batch_size: int,
    framework: str = "megatron",
    extra_token: bool = True,
    from_log: str | None = None,
) -> SamplesPlan:
    """Work back from a one-epoch sample count to the token range and iterations (§5)."""
    if from_log not in (None, "neox", "megatron"):
        raise UsageError(f"from_log must be 'neox', 'megatron' or None, got {from_log!r}")
    framework = _check_framework(framework)
    notes: list[str] = []
    if from_log is not None and from_log != framework:
        # The log's own trainer decides what the number means.
        notes.append(f"from_log={from_log!r}: using {from_log} semantics (framework {framework!r} ignored)")
        framework = from_log
    x = _check_extra_token(framework, extra_token)
    S = _check_seq_len(seq_len, framework)
    G = _check_int("global_batch_size", global_batch_size, 1)
    if from_log == "neox":
        # §3.5: NeoX's python log prints sample_idx rows = B + 1.
        given = _check_int("samples (NeoX log 'total number of samples', = built + 1)", samples, 1)
        built = builds_from_logged(given, from_log)
        notes.append(f"NeoX log value {given:,} = B + 1: B = {built:,} samples built, len = {built - 1:,} usable")
    else:
        given = _check_int("samples", samples, 0)
        built = given
    length = dataset_length(built, framework)
    # §5: (T - x)//S == B  <=>  B·S + x <= T <= B·S + x + S - 1.
    tokens_min = built * S + x
    tokens_max = built * S + x + S - 1
    if x == 1:
        notes.append(
            f"samples × seq_len = {built * S:,} is 1..{S} tokens below the true T, "
            "because B samples need B·S + 1 tokens"
        )
    if _RULES[framework].length_offset or _RULES[framework].logged_offset:
        notes.append("NeoX: len(dataset) = B - 1; its log 'total number of samples' prints B + 1")
    if tokens_min <= 1:
        notes.append(
            "T <= 1 makes helpers.cpp assert (tokens_per_epoch > 1): "
            "the lower end of the range aborts (NeoX) or is silent (Megatron wheel)"
        )
    if length < 0:
        notes.append("NeoX with 0 samples built: len(dataset) = -1, Python raises ValueError")
    notes.append(
        f"train_iters <= {built // G:,} stays in one epoch; more needs E = 2 and B = (2·T - {x})//{S}, "
        f"between {(2 * tokens_min - x) // S:,} and {(2 * tokens_max - x) // S:,}"
    )
    return SamplesPlan(
        framework=framework,
        seq_len=S,
        global_batch_size=G,
        extra_token=x,
        from_log=from_log,
        given_samples=given,
        samples_built=built,
        samples_per_epoch=built,
        dataset_length=length,
        logged_samples=logged_samples(built, framework),
        iterations_per_epoch=built // G,
        remainder_samples=built % G,
        dataset_iterations=length // G if length >= 0 else None,
        max_train_iters_single_epoch=built // G,
        estimated_tokens=built * S,
        tokens_min=tokens_min,
        tokens_max=tokens_max,
        notes=notes,
    )


# --------------------------------------------------------------------------------------------
# trainers that chunk each file on its own: nanotron (datatrove) and OLMo-core


@dataclass(frozen=True)
class ChunkingRules:
    """A trainer that cuts each file into disjoint windows and floors per file."""

    name: str
    window_extra: int  # window = seq_len + this many tokens
    source: str  # where the rule was read
    dataset: str


NANOTRON = ChunkingRules(
    name="nanotron",
    window_extra=1,
    # DatatroveFileDataset: self._len = (fsize // token_size) // (seq_len + 1); the folder dataset
    # sums the files' lengths (np.cumsum of len(f)); item i reads tokens [i·(S+1), (i+1)·(S+1)).
    source="datatrove 0.10.1 datatrove/utils/dataset.py",
    dataset="DatatroveFolderDataset",
)
OLMO = ChunkingRules(
    name="olmo",
    window_extra=0,
    # NumpyFSLDataset._get_file_size_and_length: file_size // (item_size · sequence_length) per
    # array (max_target_sequence_length unset); offsets are the running sums; instance i of a file
    # reads tokens [i·S, (i+1)·S).
    source="ai2-olmo-core 3.0.0 olmo_core/data/numpy_dataset.py",
    dataset="NumpyFSLDataset",
)
CHUNKING_RULES = {"nanotron": NANOTRON, "olmo": OLMO}
CHUNKING_FRAMEWORKS = tuple(CHUNKING_RULES)


def check_chunking_options(framework: str, *, split: str | None, extra_token: bool, weights: Any = None) -> None:
    """What nanotron's and OLMo-core's datasets have no counterpart of, refused before any counting."""
    given = [
        name
        for name, unset in (("split", split is None), ("no-extra-token", extra_token), ("weights", weights is None))
        if not unset
    ]
    if given:
        raise UsageError(
            f"--{', --'.join(given)} not modelled for --framework {framework}: its dataset reads the files as they "
            "are (no split, no extra token, no weighted blend)"
        )


def chunked_samples(file_tokens: Sequence[int], seq_len: int, framework: str) -> list[int]:
    """Samples per file: ⌊T_f / (S + extra)⌋ each (the windows never cross a file's end)."""
    window = seq_len + CHUNKING_RULES[framework].window_extra
    return [t // window for t in file_tokens]


@dataclass
class ChunkedPlan:
    """One epoch of a per-file chunking trainer, beside the estimates a user would otherwise make."""

    framework: str
    dataset: str
    rule_source: str
    seq_len: int
    global_batch_size: int
    window_tokens: int
    tokens: int
    files: list[dict]
    samples_per_epoch: int
    iterations_per_epoch: int
    remainder_samples: int
    estimated_tokens: int
    window_tokens_used: int
    unused_tail_tokens: int
    comparison: list[dict]
    train_iters: int | None
    train_samples: int | None
    epochs_of_data: float | None
    notes: list[str] = field(default_factory=list)

    def refusals(self) -> list[str]:
        return []

    def to_dict(self) -> dict:
        return {
            "framework": self.framework,
            "dataset": self.dataset,
            "rule_source": self.rule_source,
            "seq_len": self.seq_len,
            "global_batch_size": self.global_batch_size,
            "window_tokens": self.window_tokens,
            "tokens": self.tokens,
            "files": [dict(f) for f in self.files],
            "samples_per_epoch": self.samples_per_epoch,
            "iterations_per_epoch": self.iterations_per_epoch,
            "remainder_samples": self.remainder_samples,
            "estimated_tokens": self.estimated_tokens,
            "window_tokens_used": self.window_tokens_used,
            "unused_tail_tokens": self.unused_tail_tokens,
            "comparison": [dict(c) for c in self.comparison],
            "train_iters": self.train_iters,
            "train_samples": self.train_samples,
            "epochs_of_data": self.epochs_of_data,
            "notes": list(self.notes),
        }


def chunked_plan(
    file_tokens: Sequence[int],
    *,
    seq_len: int,
    global_batch_size: int,
    framework: str,
    paths: Sequence[str] | None = None,
    train_iters: int | None = None,
) -> ChunkedPlan:
    """nanotron's or OLMo-core's samples for files of these token counts, with the samples ×
    seq_len estimate and Megatron's rule on the same tokens (all files concatenated) beside them."""
    if framework not in CHUNKING_RULES:
        raise UsageError(f"framework must be one of {', '.join(CHUNKING_FRAMEWORKS)}, got {framework!r}")
    rules = CHUNKING_RULES[framework]
    S = _check_int("seq_len", seq_len, 1)
    G = _check_int("global_batch_size", global_batch_size, 1)
    if train_iters is not None:
        train_iters = _check_int("train_iters", train_iters, 0)
    counts = [_check_int("tokens", t, 0) for t in file_tokens]
    if not counts:
        raise UsageError("no file to plan for")
    names = list(paths) if paths is not None else [f"file {i}" for i in range(len(counts))]
    window = S + rules.window_extra
    per_file = chunked_samples(counts, S, framework)
    T = sum(counts)
    N = sum(per_file)
    rows = [
        {"path": name, "tokens": t, "samples": n, "unused_tail_tokens": t - n * window}
        for name, t, n in zip(names, counts, per_file)
    ]
    concatenated = T // window  # the same windows over all files as one stream
    megatron = max(0, (T - 1) // S)  # Megatron's default x = 1 (§4.5), one epoch, all files as one dataset
    comparison = [{"rule": f"{framework}: Σ_files ⌊T_f / {window}⌋", "samples": N, "difference": 0}]
    if window != S:
        comparison.append(
            {
                "rule": f"T // {window} (the files as one stream)",
                "samples": concatenated,
                "difference": concatenated - N,
            }
        )
    comparison += [
        {
            "rule": f"T // {S} (one stream; what samples × seq_len = T assumes)",
            "samples": T // S,
            "difference": T // S - N,
        },
        {"rule": f"Megatron (T - 1) // {S} (one stream, x = 1)", "samples": megatron, "difference": megatron - N},
    ]
    notes = [
        f"{rules.dataset} ({rules.source}): each file gives ⌊T_f / {window}⌋ disjoint {window}-token windows; "
        "a file's tail shorter than a window is never read",
    ]
    if rules.window_extra:
        notes.append(
            f"a window is seq_len + 1 = {window} tokens (inputs and the shifted labels); windows do not share "
            f"tokens, so samples × seq_len ({N * S:,}) is {T - N * S:,} below T"
        )
    else:
        notes.append(
            f"an instance is seq_len = {S} tokens; labels are shifted inside it, so each instance trains on {S - 1} "
            "predictions"
        )
    lost = T - N * window
    if len(counts) > 1 and concatenated != N:
        notes.append(
            f"flooring per file loses {concatenated - N:,} samples against one stream of all {len(counts)} files "
            f"({lost:,} tail tokens unused in all)"
        )
    train_samples = train_iters * G if train_iters is not None else None
    epochs = (train_samples / N if N else None) if train_samples is not None else None
    if train_samples is not None and N and train_samples > N:
        notes.append(
            f"train_iters × global batch = {train_samples:,} samples is {train_samples / N:.3f} epochs of data; "
            "what the sampler does past the first epoch is not modelled here"
        )
    if N == 0:
        notes.append(f"no file holds a whole {window}-token window: 0 samples")
    return ChunkedPlan(
        framework=framework,
        dataset=rules.dataset,
        rule_source=rules.source,
        seq_len=S,
        global_batch_size=G,
        window_tokens=window,
        tokens=T,
        files=rows,
        samples_per_epoch=N,
        iterations_per_epoch=N // G,
        remainder_samples=N % G,
        estimated_tokens=N * S,
        window_tokens_used=N * window,
        unused_tail_tokens=lost,
        comparison=comparison,
        train_iters=train_iters,
        train_samples=train_samples,
        epochs_of_data=epochs,
        notes=notes,
    )


def group_plan(
    group_tokens: Sequence[int],
    *,
    seq_len: int,
    global_batch_size: int,
    framework: str = "megatron",
    extra_token: bool = True,
    train_iters: int | None = None,
    weights: Sequence[float] | None = None,
) -> list[dict]:
    """Per group of a mixture (``--group-by``): its samples per epoch, B = (T - x) // S as for one
    dataset of the group's tokens (§3.4, §4.5); with target weights and ``train_iters``, the
    samples a blend asks of it (its member target for N = train_iters · G, §3.8, §4.8) and the
    epochs E it needs for them (smallest E with E·T >= N_g·S + x, §3.3, §4.3; None: it has no
    tokens and the trainer's epoch loop would never end)."""
    framework = _check_framework(framework)
    x = _check_extra_token(framework, extra_token)
    S = _check_seq_len(seq_len, framework)
    G = _check_int("global_batch_size", global_batch_size, 1)
    rows: list[dict] = [{"samples_per_epoch": max(0, samples_built(t, 1, S, x, framework))} for t in group_tokens]
    if weights is None or train_iters is None:
        return rows
    rules = _RULES[framework]
    normalised = _normalized_weights(list(weights), rules)
    N = _check_int("train_iters", train_iters, 0) * G
    for row, tokens, w in zip(rows, group_tokens, normalised):
        _, requested = _blend_member_targets(N, w, rules)
        row["weight"] = w
        row["target_samples"] = requested
        row["epochs"] = _epochs_needed(tokens, requested, S, x) if w > 0 else 0
    return rows
