"""tokcount.planning against the spec's worked examples (shared/spec/megatron_neox.md) and
against direct simulations of the trainers' loops. Expected numbers never come from the module."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokcount.errors import PlanError, UsageError
from tokcount.planning import BlendPlan, Plan, SamplesPlan, blend_plan, make_plan, plan_from_samples, split_ranges

PLAN_KEYS = {
    "framework",
    "seq_len",
    "global_batch_size",
    "extra_token",
    "tokens",
    "sequences",
    "samples_per_epoch",
    "estimated_tokens",
    "overlap_tokens",
    "unused_tail_tokens",
    "iterations_per_epoch",
    "remainder_samples",
    "split",
    "splits",
    "train_iters",
    "eval_interval",
    "eval_iters",
    "max_train_iters_single_epoch",
    "notes",
}
SPLIT_KEYS = {
    "sequences",
    "tokens",
    "samples_per_epoch",
    "requested_samples",
    "epochs",
    "samples_built",
    "dataset_length",
    "logged_samples",
    "separate_final_epoch",
    "iterations",
    "refused",
}


# ------------------------------------------------------------------------------------------
# direct simulations of the trainers (spec §3.3, §3.4, §4.3, §4.5)


def simulate_epochs(framework: str, tokens: int, seq_len: int, target: int, extra: int) -> int:
    """The trainers' epoch loops. Bounded: callers pass tokens > 0, or no tokens with a
    Megatron target its first epoch already meets (0 samples and no extra token)."""
    assert tokens > 0 or (framework == "megatron" and target * seq_len + extra <= 0)
    if framework == "neox":  # _num_epochs
        epochs, total = 0, 0
        while True:
            epochs += 1
            total += tokens
            if (total - 1) // seq_len >= target:
                return epochs
    epochs, total = 1, tokens  # _get_num_epochs
    while total < target * seq_len + extra:
        epochs += 1
        total += tokens
    return epochs


def walk_samples(doc_sizes: list[int], seq_len: int, extra: int) -> int:
    """build_sample_idx's walk over doc_idx: count the complete samples of S + x tokens it yields
    (a sample ending inside document d sets off += rem + len - x)."""
    d, off, count, n = 0, 0, 0, len(doc_sizes)
    while True:
        rem = seq_len + extra
        while rem != 0:
            if d >= n:
                return count  # ran out of tokens inside a sample: it is not built
            length = doc_sizes[d] - off
            rem -= length
            if rem <= 0:
                off += rem + length - extra
                rem = 0
            else:
                d += 1
                off = 0
        count += 1


def doc_idx(sizes: list[int], epochs: int) -> list[int]:
    return list(sizes) * epochs  # order does not change the count


# ------------------------------------------------------------------------------------------
# §3.2 / §4.2 split tables


@pytest.mark.parametrize(
    "split,n,expected",
    [
        ("969, 30, 1", 1000, [0, 969, 999, 1000]),
        ("969, 30, 1", 10, [0, 10, 10, 10]),
        ("1,1,1", 10, [0, 4, 7, 10]),
        ("1,1,1", 1001, [0, 333, 667, 1001]),
        ("25,50,25", 10, [0, 3, 8, 10]),
    ],
)
def test_neox_split_table(split, n, expected):
    got = split_ranges(split, n, "neox")
    for k, name in enumerate(("train", "valid", "test")):
        beg, end = expected[k], expected[k + 1]
        assert got[name] == ((beg, end) if end > beg else None)


@pytest.mark.parametrize(
    "split,n,megatron,neox",
    [
        ("1,1,1", 10, [(0, 3), (3, 7), (7, 10)], [(0, 4), (4, 7), (7, 10)]),
        ("1,1,1", 1001, [(0, 334), (334, 667), (667, 1001)], [(0, 333), (333, 667), (667, 1001)]),
        ("25,50,25", 10, [(0, 2), (2, 8), (8, 10)], [(0, 3), (3, 8), (8, 10)]),
        ("969, 30, 1", 10, [(0, 10), (10, 10), (10, 10)], [(0, 10), None, None]),
    ],
)
def test_megatron_vs_neox_split_table(split, n, megatron, neox):
    assert list(split_ranges(split, n, "megatron").values()) == megatron
    assert list(split_ranges(split, n, "neox").values()) == neox


def test_neox_negative_split_start_wraps_to_last_sequence():
    # w = [0, .5, .5], n = 3: rounds to [0, 0, 2, 4], excess 1 -> [0, -1, 1, 3]
    assert split_ranges("0,1,1", 3, "neox") == {"train": None, "valid": (-1, 1), "test": (1, 3)}
    p = make_plan(np.array([1, 10, 100]), seq_len=2, global_batch_size=1, framework="neox", split="0,1,1")
    assert p.splits["valid"].tokens == 100 + 1  # sizes[-1] + sizes[0], as np.sum(sizes[arange(-1, 1)])
    assert p.splits["test"].tokens == 10 + 100


def test_split_separators_and_zero_parts():
    assert split_ranges("9/1", 10, "neox") == {"train": (0, 9), "valid": (9, 10), "test": None}
    assert split_ranges("90 5 5", 100, "megatron") == {"train": (0, 90), "valid": (90, 95), "test": (95, 100)}
    assert split_ranges("1,0,0", 7, "megatron") == {"train": (0, 7), "valid": None, "test": None}
    # NeoX keeps only the first three parts
    assert split_ranges("1,1,1,5", 9, "neox") == {"train": (0, 3), "valid": (3, 6), "test": (6, 9)}


@pytest.mark.parametrize(
    "split,framework",
    [
        ("0,0,0", "neox"),
        ("0,0,0", "megatron"),
        ("", "megatron"),
        ("1,-1,1", "neox"),
        ("1,-1,1", "megatron"),
        ("1,2,3,4", "megatron"),
        ("abc", "neox"),
        ("90 5 5", "neox"),
        ("1e-3", "megatron"),
        ("1..2,3", "megatron"),
        ("nan,1,1", "neox"),
        ("inf,1,1", "neox"),
    ],
)
def test_bad_split_strings(split, framework):
    with pytest.raises(UsageError):
        split_ranges(split, 100, framework)


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(st.integers(0, 1000), min_size=1, max_size=3).filter(lambda p: sum(p) > 0),
    n=st.integers(0, 3000),
    framework=st.sampled_from(["neox", "megatron"]),
)
def test_split_ranges_partition_in_order(parts, n, framework):
    ranges = split_ranges(", ".join(map(str, parts)), n, framework)
    present = [r for r in ranges.values() if r is not None]
    position = 0
    if framework == "neox" and present and present[0][0] == -1:
        # NeoX quirk: a 0 train share plus a rounding excess of 1 shifts valid to start at -1
        assert ranges["train"] is None and parts[0] == 0
        position = -1
    for beg, end in present:
        assert beg == position and end >= beg
        position = end
    if framework == "neox":
        assert all(end > beg for beg, end in present)  # NeoX never builds an empty split
    if present:
        assert position == n  # train+valid+test cover [0, n) exactly
    elif framework == "megatron":
        pytest.fail("Megatron always has a non-None split when the parts sum > 0")
    else:
        assert n == 0


# ------------------------------------------------------------------------------------------
# closed forms vs simulation


@st.composite
def single_dataset(draw):
    framework = draw(st.sampled_from(["neox", "megatron"]))
    extra = 1 if framework == "neox" else draw(st.sampled_from([0, 1]))
    seq_len = draw(st.integers(2 if framework == "neox" else 1, 20))
    sizes = draw(st.lists(st.integers(0, 50), min_size=1, max_size=6))
    train_iters = draw(st.one_of(st.none(), st.integers(0, 15)))
    return framework, extra, seq_len, sizes, train_iters


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=single_dataset(), batch=st.integers(1, 4))
def test_epochs_and_samples_match_simulation(case, batch):
    framework, extra, S, sizes, train_iters = case
    T = sum(sizes)
    plan = make_plan(
        np.array(sizes, dtype=np.int32),
        seq_len=S,
        global_batch_size=batch,
        framework=framework,
        extra_token=bool(extra),
        train_iters=train_iters,
    )
    train = plan.splits["train"]
    target = None if train_iters is None else train_iters * batch  # §3.1 / §4.1
    assert train.tokens == T and train.requested_samples == target
    hang = T == 0 and target is not None and (framework == "neox" or target * S + extra > 0)
    if hang:
        assert train.refused and "forever" in train.refused and train.epochs is None
        return
    if framework == "neox" and T <= 1:
        assert train.refused and "SIGABRT" in train.refused and train.samples_built is None
        return
    E = 1 if target is None else simulate_epochs(framework, T, S, target, extra)
    assert train.epochs == E
    if framework == "megatron" and T == 0:
        assert train.samples_built == (0 if S > 1 or extra == 0 else None)  # C++ -1/S truncates to 0
        return
    B = walk_samples(doc_idx(sizes, E), S, extra)
    assert train.samples_built == B
    assert B * S + extra <= E * T or B == 0
    if B > 0:
        assert 0 <= E * T - (B * S + extra) <= S - 1
    if target is not None:
        assert B >= target
    if framework == "neox":
        assert train.dataset_length == B - 1 and train.logged_samples == B + 1
        assert train.separate_final_epoch is None
        assert (train.refused is not None) == (B == 0)
        assert train.iterations == (None if B == 0 else (B - 1) // batch)
    else:
        assert train.iterations == B // batch
        assert train.dataset_length == B and train.logged_samples == B
        per_epoch = walk_samples(sizes, S, extra)
        if E > 1:
            before_final = walk_samples(doc_idx(sizes, E - 1), S, extra)
            final = target - before_final
            assert 0 <= final <= per_epoch + 1
            assert train.separate_final_epoch == (final < int(0.8 * per_epoch))
        else:
            assert train.separate_final_epoch is False
        assert (train.refused is not None) == (T <= 1)
    # whole-dataset view: one epoch, no target
    one_epoch = walk_samples(sizes, S, extra) if T >= extra else 0
    assert plan.samples_per_epoch == one_epoch
    assert plan.estimated_tokens + plan.overlap_tokens + plan.unused_tail_tokens == T
    if one_epoch > 0:
        assert 0 <= plan.unused_tail_tokens <= S - 1 and plan.overlap_tokens == extra
    json.dumps(plan.to_dict())


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 50), min_size=1, max_size=6),
    S=st.integers(2, 12),
    G=st.integers(1, 4),
    framework=st.sampled_from(["neox", "megatron"]),
)
def test_max_train_iters_single_epoch(sizes, S, G, framework):
    T = sum(sizes)
    plan = make_plan(np.array(sizes), seq_len=S, global_batch_size=G, framework=framework)
    best = plan.max_train_iters_single_epoch
    if T <= 1:
        assert best is None
        return
    # largest I with I·G samples in one epoch: check against the epoch loop directly
    assert simulate_epochs(framework, T, S, best * G, 1) == 1
    assert simulate_epochs(framework, T, S, (best + 1) * G, 1) >= 2
    at_best = make_plan(np.array(sizes), seq_len=S, global_batch_size=G, framework=framework, train_iters=best)
    beyond = make_plan(np.array(sizes), seq_len=S, global_batch_size=G, framework=framework, train_iters=best + 1)
    assert at_best.splits["train"].epochs == 1 and beyond.splits["train"].epochs >= 2


# ------------------------------------------------------------------------------------------
# §5 seed case

SEED_SAMPLES = 31_267_487
LO, HI = 64_035_813_377, 64_035_815_424


def test_seed_samples_plan():
    p = plan_from_samples(SEED_SAMPLES, seq_len=2048, global_batch_size=1024)
    assert isinstance(p, SamplesPlan)
    assert p.iterations_per_epoch == 30_534 and p.remainder_samples == 671
    assert (p.tokens_min, p.tokens_max) == (LO, HI)
    assert p.estimated_tokens == 64_035_813_376
    assert p.dataset_length == SEED_SAMPLES
    d = p.to_dict()
    json.dumps(d)
    assert d["tokens_min"] == LO and d["tokens_max"] == HI


def test_seed_samples_x0_and_from_logs():
    p0 = plan_from_samples(SEED_SAMPLES, seq_len=2048, global_batch_size=1024, extra_token=False)
    assert (p0.tokens_min, p0.tokens_max) == (64_035_813_376, 64_035_815_423)
    neox = plan_from_samples(SEED_SAMPLES, seq_len=2048, global_batch_size=1024, framework="neox", from_log="neox")
    assert neox.samples_built == 31_267_486 and neox.dataset_length == 31_267_485
    assert (neox.tokens_min, neox.tokens_max) == (64_035_811_329, 64_035_813_376)
    mega = plan_from_samples(SEED_SAMPLES, seq_len=2048, global_batch_size=1024, from_log="megatron")
    assert mega.samples_built == SEED_SAMPLES and (mega.tokens_min, mega.tokens_max) == (LO, HI)
    # NeoX, samples given directly: train_epochs mode iterations = (B - 1)//1024
    direct = plan_from_samples(SEED_SAMPLES, seq_len=2048, global_batch_size=1024, framework="neox")
    assert direct.dataset_length == 31_267_486 and direct.dataset_iterations == 30_534


@pytest.mark.parametrize(
    "T,megatron_len,neox_built,neox_logged,neox_len",
    [
        (64_035_813_376, 31_267_486, 31_267_486, 31_267_487, 31_267_485),
        (64_035_813_377, 31_267_487, 31_267_487, 31_267_488, 31_267_486),
        (64_035_815_424, 31_267_487, 31_267_487, 31_267_488, 31_267_486),
        (64_035_815_425, 31_267_488, 31_267_488, 31_267_489, 31_267_487),
    ],
)
def test_seed_boundary_table(T, megatron_len, neox_built, neox_logged, neox_len):
    mega = make_plan(tokens=T, seq_len=2048, global_batch_size=1024, split="1,0,0").splits["train"]
    assert mega.dataset_length == megatron_len and mega.logged_samples == megatron_len
    neox = make_plan(tokens=T, seq_len=2048, global_batch_size=1024, framework="neox", split="1,0,0").splits["train"]
    assert (neox.samples_built, neox.logged_samples, neox.dataset_length) == (neox_built, neox_logged, neox_len)


@pytest.mark.parametrize("T", [LO, HI])
def test_seed_train_iters_epochs(T):
    for framework in ("megatron", "neox"):
        one = make_plan(tokens=T, seq_len=2048, global_batch_size=1024, framework=framework, train_iters=30_534)
        assert one.splits["train"].epochs == 1
        assert one.max_train_iters_single_epoch == 30_534
        neox_epochs = (framework == "neox") and one.splits["train"].iterations == 30_534
        assert framework != "neox" or neox_epochs
    two = make_plan(tokens=T, seq_len=2048, global_batch_size=1024, train_iters=30_535).splits["train"]
    assert two.requested_samples == 31_267_840 and two.epochs == 2
    assert two.samples_from_final_epoch == 353 and two.separate_final_epoch is True
    assert two.samples_built == (62_534_974 if T == LO else 62_534_975)
    neox_two = make_plan(tokens=T, seq_len=2048, global_batch_size=1024, framework="neox", train_iters=30_535)
    assert neox_two.splits["train"].epochs == 2 and neox_two.splits["train"].separate_final_epoch is None


def test_seed_whole_dataset_fields():
    d = make_plan(tokens=LO, seq_len=2048, global_batch_size=1024).to_dict()
    assert set(d) == PLAN_KEYS and set(d["splits"]) == {"train", "valid", "test"}
    for s in d["splits"].values():
        assert set(s) == SPLIT_KEYS
    assert d["samples_per_epoch"] == SEED_SAMPLES
    assert d["estimated_tokens"] == 64_035_813_376 and d["overlap_tokens"] == 1 and d["unused_tail_tokens"] == 0
    assert d["iterations_per_epoch"] == 30_534 and d["remainder_samples"] == 671
    assert make_plan(tokens=HI, seq_len=2048, global_batch_size=1024).unused_tail_tokens == 2047
    json.dumps(d)


# ------------------------------------------------------------------------------------------
# §6 edge cases and refusals


@pytest.mark.parametrize("framework", ["neox", "megatron"])
def test_tokens_below_seq_len_with_target(framework):
    s = make_plan(tokens=595, seq_len=2048, global_batch_size=1, framework=framework, train_iters=16).splits["train"]
    assert s.epochs == 56 == simulate_epochs(framework, 595, 2048, 16, 1)
    assert s.samples_built == (56 * 595 - 1) // 2048
    if framework == "megatron":
        assert s.separate_final_epoch is False  # per_epoch = 0: never separated


def test_zero_token_split_with_target_refuses_hang():
    for framework in ("neox", "megatron"):
        p = make_plan(np.zeros(5, dtype=np.int32), seq_len=8, global_batch_size=2, framework=framework, train_iters=3)
        assert "forever" in p.splits["train"].refused and "hang" in p.splits["train"].refused
        assert p.tokens == 0 and any("REFUSED" in n for n in p.notes)


def test_megatron_empty_but_present_split_hangs_even_with_target_zero():
    sizes = np.full(10, 100, dtype=np.int32)
    p = make_plan(sizes, seq_len=16, global_batch_size=4, split="969, 30, 1", train_iters=10, eval_iters=0)
    valid = p.splits["valid"]
    assert valid.sequences == (10, 10) and valid.requested_samples == 0
    assert "forever" in valid.refused
    neox = make_plan(sizes, seq_len=16, global_batch_size=4, framework="neox", split="969, 30, 1", train_iters=10)
    assert neox.splits["valid"].sequences is None and neox.splits["valid"].refused is None
    assert neox.to_dict()["splits"]["valid"]["samples_per_epoch"] is None


def test_one_token_refused():
    neox = make_plan(tokens=1, seq_len=4, global_batch_size=1, framework="neox", train_iters=2).splits["train"]
    assert "SIGABRT" in neox.refused
    mega = make_plan(tokens=1, seq_len=4, global_batch_size=1).splits["train"]
    assert "wheel" in mega.refused and mega.samples_built == 0


def test_neox_zero_samples_len_minus_one():
    s = make_plan(tokens=5, seq_len=8, global_batch_size=1, framework="neox").splits["train"]
    assert s.samples_built == 0 and s.dataset_length == -1 and "ValueError" in s.refused


def test_neox_exact_fit_one_batch_short():
    # T = 13, S = 4, N = 3: E = 1 and B = (13 - 1)//4 = 3 == N, so len = 2 < 3
    p = make_plan(tokens=13, seq_len=4, global_batch_size=1, framework="neox", train_iters=3)
    train = p.splits["train"]
    assert train.samples_built == 3 and train.dataset_length == 2 and train.iterations == 2
    assert any("exact fit" in n for n in p.notes)


def test_split_token_totals_exact_int64():
    sizes = np.full(6, 2**31 - 1, dtype=np.int32)  # int32 sum would overflow
    p = make_plan(sizes, seq_len=2048, global_batch_size=1, split="1,1,1")
    assert p.tokens == 6 * (2**31 - 1)
    assert sum(s.tokens for s in p.splits.values()) == p.tokens


# ------------------------------------------------------------------------------------------
# usage errors


@pytest.mark.parametrize(
    "kwargs,exc",
    [
        (dict(tokens=100, seq_len=8, global_batch_size=1, framework="neox", extra_token=False), UsageError),
        (dict(tokens=100, seq_len=0, global_batch_size=1), UsageError),
        (dict(tokens=100, seq_len=1, global_batch_size=1, framework="neox"), PlanError),
        (dict(tokens=100, seq_len=8, global_batch_size=0), UsageError),
        (dict(tokens=-1, seq_len=8, global_batch_size=1), UsageError),
        (dict(tokens=100, seq_len=8, global_batch_size=1, split="969, 30, 1"), UsageError),
        (dict(tokens=100, seq_len=8, global_batch_size=1, framework="fairseq"), UsageError),
        (dict(seq_len=8, global_batch_size=1), UsageError),
        (dict(tokens=100, seq_len=8, global_batch_size=1, train_iters=-1), UsageError),
    ],
)
def test_make_plan_usage_errors(kwargs, exc):
    with pytest.raises(exc):
        make_plan(**kwargs)


def test_tokens_only_split_messages():
    with pytest.raises(UsageError, match="sizes"):
        make_plan(tokens=100, seq_len=8, global_batch_size=1, split="969, 30, 1")
    p = make_plan(tokens=100, seq_len=8, global_batch_size=1, split="1,0,0", framework="neox")
    assert p.splits["train"].tokens == 100 and p.sequences is None
    with pytest.raises(UsageError):
        make_plan(np.array([1, -2, 3]), seq_len=8, global_batch_size=1)
    with pytest.raises(UsageError):
        make_plan(np.array([1, 2]), tokens=3, seq_len=8, global_batch_size=1)


@pytest.mark.parametrize(
    "samples,kwargs",
    [
        (-1, {}),
        (0, {"from_log": "neox"}),
        (10, {"from_log": "fairseq"}),
        (10, {"seq_len": 0}),
        (10, {"global_batch_size": 0}),
        (10, {"framework": "neox", "extra_token": False}),
    ],
)
def test_plan_from_samples_usage_errors(samples, kwargs):
    args = dict(seq_len=2048, global_batch_size=1024) | kwargs
    with pytest.raises(UsageError):
        plan_from_samples(samples, **args)


# ------------------------------------------------------------------------------------------
# blends (§3.8, §4.8)


def test_megatron_weights_7_93():
    shards = [np.full(50, 30, dtype=np.int32), np.full(60, 40, dtype=np.int32)]
    b = blend_plan(shards, [7, 93], seq_len=8, global_batch_size=1, train_iters=100, eval_iters=0)
    assert isinstance(b, BlendPlan)
    row = b.weighted_blend[0]
    members = [m for m in b.weighted_blend_members if m["split"] == "train"]
    assert [m["blend_target"] for m in members] == [8, 93]
    assert [m["requested_samples"] for m in members] == [9, 94]
    assert row["blend_size"] == 101 and row["oversampled"] is False
    assert sum(m["blend_draws"] for m in members) == 101
    # each member's own E and B for its buffer target
    for m, sizes in zip(members, shards):
        T = int(sizes.sum())
        E = simulate_epochs("megatron", T, 8, m["requested_samples"], 1)
        assert m["epochs"] == E and m["samples_built"] == walk_samples(doc_idx(list(sizes), E), 8, 1)
    json.dumps(b.to_dict())


def test_neox_weighted_blend_targets_and_size():
    shards = [np.full(50, 30, dtype=np.int32), np.full(60, 40, dtype=np.int32)]
    b = blend_plan(shards, [7, 93], seq_len=8, global_batch_size=1, framework="neox", train_iters=100)
    members = [m for m in b.weighted_blend_members if m["split"] == "train"]
    # ceil(100 · 0.07 · 1.005) = ceil(7.035) and ceil(100 · 0.93 · 1.005) = ceil(93.465)
    assert [m["requested_samples"] for m in members] == [8, 94]
    builts = []
    for m, sizes in zip(members, shards):
        T = int(sizes.sum())
        E = simulate_epochs("neox", T, 8, m["requested_samples"], 1)
        builts.append(walk_samples(doc_idx(list(sizes), E), 8, 1))
        assert m["dataset_length"] == builts[-1] - 1
    assert b.weighted_blend[0]["blend_size"] == sum(B - 1 for B in builts)
    with pytest.raises(UsageError):
        blend_plan(shards, [1, 1], seq_len=8, global_batch_size=1, framework="neox", train_iters=10, split="969, 30, 1")


def test_megatron_oversample_flagged():
    # a tiny member with a big weight: with 1 epoch of 2 tokens there is nothing to spare
    shards = [np.array([3], dtype=np.int32), np.full(100, 50, dtype=np.int32)]
    b = blend_plan(shards, [1, 1], seq_len=2, global_batch_size=1, train_iters=20)
    members = b.weighted_blend_members
    # member 0: T = 3, buffer = ceil(ceil(10)·1.005) = 11 -> E = ceil((11·2+1)/3) = 8, B = (24-1)//2 = 11
    assert members[0]["samples_built"] == 11 and members[0]["blend_draws"] <= 11
    assert b.weighted_blend[0]["oversampled"] is False


def test_unweighted_shards_sum_and_merged():
    shards = [np.full(10, 100, dtype=np.int32), np.full(5, 30, dtype=np.int32)]
    b = blend_plan(shards, None, seq_len=16, global_batch_size=2, train_iters=1000)
    assert b.weighted_blend == [] and b.normalized_weights is None
    assert len(b.shard_plans) == 2 and all(isinstance(p, Plan) for p in b.shard_plans)
    assert b.merged_plan.tokens == 1150 and b.merged_plan.sequences == 15
    train = [r for r in b.sum_over_shards if r["split"] == "train"][0]
    lengths = [walk_samples([100] * 10, 16, 1), walk_samples([30] * 5, 16, 1)]
    assert train["total_length"] == sum(lengths)
    assert train["blend_size"] == min(2000, sum(lengths))  # Megatron: min(N, Σ len)
    assert any("fewer than" in n for n in b.notes)
    d = b.to_dict()
    json.dumps(d)
    assert {"shard_plans", "merged_plan", "sum_over_shards", "weighted_blend", "notes"} <= set(d)


def test_megatron_weighted_needs_train_iters():
    with pytest.raises(UsageError):
        blend_plan([np.array([5, 5])], [1.0], seq_len=2, global_batch_size=1)


def greedy_blend_draws(weights: list[float], size: int) -> list[int]:
    """build_blending_indices (§3.8): at step k pick argmax_i w_i·max(k,1) - count_i, first wins ties."""
    counts = [0] * len(weights)
    for k in range(size):
        errors = [w * max(k, 1) - c for w, c in zip(weights, counts)]
        counts[errors.index(max(errors))] += 1
    return counts


@settings(max_examples=60, deadline=None)
@given(
    shards=st.lists(st.lists(st.integers(1, 30), min_size=1, max_size=5), min_size=1, max_size=3),
    raw=st.lists(st.integers(1, 9), min_size=3, max_size=3),
    train_iters=st.integers(1, 40),
    S=st.integers(2, 8),
)
def test_megatron_weighted_blend_matches_simulation(shards, raw, train_iters, S):
    weights = raw[: len(shards)]
    b = blend_plan([np.array(x) for x in shards], weights, seq_len=S, global_batch_size=1, train_iters=train_iters)
    w = (np.array(weights, dtype=np.float64) / np.sum(np.array(weights, dtype=np.float64))).tolist()
    targets = [math.ceil(train_iters * wi) for wi in w]
    buffers = [math.ceil(t * 1.005) for t in targets]
    members = b.weighted_blend_members
    assert [m["blend_target"] for m in members] == targets
    assert [m["requested_samples"] for m in members] == buffers
    size = sum(targets)
    assert b.weighted_blend[0]["blend_size"] == size
    draws = greedy_blend_draws(w, size)
    lengths = []
    for m, sizes, buffer in zip(members, shards, buffers):
        E = simulate_epochs("megatron", sum(sizes), S, buffer, 1)
        lengths.append(walk_samples(doc_idx(sizes, E), S, 1))
        assert m["epochs"] == E and m["dataset_length"] == lengths[-1]
    assert [m["blend_draws"] for m in members] == draws
    assert b.weighted_blend[0]["oversampled"] == any(d > n for d, n in zip(draws, lengths))


def test_blend_draw_bound_covers_exact(monkeypatch):
    import tokcount.planning as plan_module

    weights = [0.07, 0.93]
    exact, _ = plan_module._blending_draws(weights, 1001)
    assert exact == greedy_blend_draws(weights, 1001)
    monkeypatch.setattr(plan_module, "_MAX_EXACT_BLEND_STEPS", 0)
    bound, is_exact = plan_module._blending_draws(weights, 1001)
    assert not is_exact and all(b >= e for b, e in zip(bound, exact))


@pytest.mark.parametrize("train_iters,final,separated", [(17, 7, True), (18, 8, False)])
def test_megatron_separate_final_epoch_threshold_is_strict(train_iters, final, separated):
    # T = 101, S = 10: per_epoch = 10, threshold int(0.8 · 10) = 8; E = 2 and sans = (101 - 1)//10 = 10
    s = make_plan(tokens=101, seq_len=10, global_batch_size=1, train_iters=train_iters).splits["train"]
    assert s.epochs == 2 and s.samples_from_final_epoch == final
    assert s.separate_final_epoch is separated


@settings(max_examples=200, deadline=None)
@given(
    tokens=st.integers(2, 400),
    S=st.integers(2, 20),
    target=st.one_of(st.none(), st.integers(0, 60)),
    framework=st.sampled_from(["neox", "megatron"]),
    extra=st.sampled_from([0, 1]),
)
def test_plan_split_of_a_token_total_matches_the_trainers_loops(tokens, S, target, framework, extra):
    """planning.plan_split, the one-split function the checks use: E from the trainers' epoch
    loops, B from the sample walk over E epochs of one T-token document, and the framework's
    length and log offsets."""
    from tokcount.planning import plan_split

    extra = 1 if framework == "neox" else extra
    split = plan_split(tokens, seq_len=S, framework=framework, extra_token=bool(extra), target_samples=target)
    E = 1 if target is None else simulate_epochs(framework, tokens, S, target, extra)
    B = walk_samples([tokens] * E, S, extra)
    assert split.epochs == E and split.samples_built == B
    assert split.dataset_length == (B - 1 if framework == "neox" else B)
    assert split.logged_samples == (B + 1 if framework == "neox" else B)
    same = make_plan(
        tokens=tokens, seq_len=S, global_batch_size=1, framework=framework, extra_token=bool(extra), train_iters=target
    ).splits["train"]
    assert (split.epochs, split.samples_built, split.separate_final_epoch) == (
        same.epochs,
        same.samples_built,
        same.separate_final_epoch,
    )
