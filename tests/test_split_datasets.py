"""Separate train/valid/test datasets (NeoX train/valid/test_data_paths, Megatron blend_per_split)
against plain-loop simulations of the trainers' builders, and through the real command line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from idx_writer import write_mmidx
from test_cli import assert_clean_error, run
from test_planning import greedy_blend_draws, simulate_epochs, walk_samples

from tokcount.cli import main
from tokcount.errors import UsageError
from tokcount.options import TrainingOptions
from tokcount.split_datasets import split_datasets_plan


def simulate_member(framework: str, sizes: list[int], S: int, target: int | None, x: int) -> int:
    """len(dataset) of one GPT2Dataset / GPTDataset built for `target` samples (None: one epoch)."""
    T = sum(sizes)
    epochs = 1 if target is None else simulate_epochs(framework, T, S, target, x)
    built = walk_samples(list(sizes) * epochs, S, x)
    return built - 1 if framework == "neox" else built


def simulate_neox_split(datasets, weights, N, S):
    """data_utils.get_normalized_weights_and_num_samples + build_weighted_datasets + BlendableDataset."""
    weights = weights or [1.0] * len(datasets)
    w = [weight / sum(weights) for weight in weights]
    targets = [int(math.ceil(N * wi * 1.005)) if N is not None else None for wi in w]
    lengths = [simulate_member("neox", d, S, t, 1) for d, t in zip(datasets, targets)]
    size = sum(lengths)
    return {"size": size, "targets": targets, "lengths": lengths, "draws": greedy_blend_draws(w, size)}


def simulate_megatron_split(datasets, weights, N, S, x):
    """blended_megatron_dataset_builder.build, the blend_per_split branch (megatron-core 0.16.1)."""
    if len(datasets) == 1:
        length = simulate_member("megatron", datasets[0], S, N, x)
        return {"size": length, "targets": [N], "lengths": [length], "draws": None}
    if weights is not None:
        w = (np.array(weights, dtype=np.float64) / np.sum(np.array(weights, dtype=np.float64))).tolist()
        size_targets = [math.ceil(N * wi) for wi in w]
        buffers = [int(math.ceil(math.ceil(N * wi) * 1.005)) for wi in w]
        lengths = [simulate_member("megatron", d, S, b, x) for d, b in zip(datasets, buffers)]
        size = sum(size_targets)
        return {"size": size, "targets": buffers, "lengths": lengths, "draws": greedy_blend_draws(w, size)}
    lengths = [simulate_member("megatron", d, S, None, x) for d in datasets]
    size = min(N, sum(lengths)) if N is not None else sum(lengths)
    w = (np.array(lengths, dtype=np.float64) / np.sum(np.array(lengths, dtype=np.float64))).tolist()
    return {"size": size, "targets": [None] * len(datasets), "lengths": lengths, "draws": greedy_blend_draws(w, size)}


def targets_of(train_iters, eval_interval, eval_iters, G):
    if train_iters is None:
        return {"train": None, "valid": None, "test": None}
    return {
        "train": train_iters * G,
        "valid": (train_iters // eval_interval + 1) * eval_iters * G,
        "test": eval_iters * G,
    }


# every dataset holds more than seq_len + 1 tokens (fewer are refusals, tested in test_planning)
shard = st.lists(st.integers(10, 40), min_size=1, max_size=6)
split_lists = st.lists(shard, min_size=1, max_size=3)


@settings(max_examples=80, deadline=None)
@given(
    framework=st.sampled_from(["neox", "megatron"]),
    train=split_lists,
    valid=split_lists,
    test=split_lists,
    weighted=st.lists(st.booleans(), min_size=3, max_size=3),
    raw=st.lists(st.integers(1, 9), min_size=3, max_size=3),
    train_iters=st.integers(1, 30),
    eval_interval=st.integers(1, 20),
    eval_iters=st.integers(1, 4),
    S=st.integers(2, 9),
    G=st.integers(1, 4),
    x=st.sampled_from([0, 1]),
)
def test_each_split_matches_the_trainers_builders(
    framework, train, valid, test, weighted, raw, train_iters, eval_interval, eval_iters, S, G, x
):
    x = 1 if framework == "neox" else x
    given_sets = {"train": train, "valid": valid, "test": test}
    weights = {name: raw[: len(d)] if w else None for (name, d), w in zip(given_sets.items(), weighted)}
    training = TrainingOptions(S, G, framework, bool(x), None, train_iters, eval_interval, eval_iters)
    plan = split_datasets_plan(
        {name: [np.array(s, dtype=np.int32) for s in d] for name, d in given_sets.items()}, weights, training
    )
    targets = targets_of(train_iters, eval_interval, eval_iters, G)
    for name, d in given_sets.items():
        row = plan.splits[name]
        if framework == "neox":
            sim = simulate_neox_split(d, weights[name], targets[name], S)
            assert row["dataset_class"] == "BlendableDataset"
        else:
            sim = simulate_megatron_split(d, weights[name], targets[name], S, x)
            assert row["dataset_class"] == ("GPTDataset" if len(d) == 1 else "BlendedDataset")
        assert row["size"] == sim["size"]
        assert row["iterations"] == sim["size"] // G
        members = row["members"]
        assert [m["dataset_length"] for m in members] == sim["lengths"]
        if sim["targets"][0] is not None:
            assert [m["requested_samples"] for m in members] == sim["targets"]
        if sim["draws"] is not None:
            assert [m["blend_draws"] for m in members] == sim["draws"]
            assert row["oversampled"] == any(dr > n for dr, n in zip(sim["draws"], sim["lengths"]))
    assert plan.refusals() == []
    json.dumps(plan.to_dict())


def test_neox_single_dataset_of_weight_one_asks_for_ceil_n_times_1_005():
    # N = 1000 · 8 = 8000: the BlendableDataset wrapper asks ceil(8000 · 1.0 · 1.005) = 8040.
    sizes = np.full(300, 97, dtype=np.int32)
    plan = split_datasets_plan(
        {"train": [sizes], "valid": [sizes[:50]], "test": [sizes[:20]]},
        None,
        TrainingOptions(16, 8, "neox", train_iters=1000, eval_interval=500, eval_iters=3),
    )
    member = plan.splits["train"]["members"][0]
    assert member["requested_samples"] == math.ceil(8000 * 1.0 * 1.005) == 8040
    assert plan.splits["train"]["size"] == simulate_member("neox", sizes.tolist(), 16, 8040, 1)


def test_megatron_single_weighted_prefix_is_a_plain_dataset_without_surplus():
    sizes = np.full(100, 33, dtype=np.int32)
    plan = split_datasets_plan(
        {"train": [sizes]}, {"train": [0.4]}, TrainingOptions(16, 4, train_iters=50, eval_iters=0)
    )
    row = plan.splits["train"]
    assert row["dataset_class"] == "GPTDataset" and row["members"][0]["requested_samples"] == 200
    assert row["size"] == simulate_member("megatron", sizes.tolist(), 16, 200, 1)
    assert plan.splits["valid"] is None and plan.splits["test"] is None
    assert any("weight is ignored" in n for n in plan.notes)


def test_neox_needs_all_three_splits_and_refuses_otherwise():
    sizes = np.full(40, 20, dtype=np.int32)
    plan = split_datasets_plan({"train": [sizes], "valid": [sizes]}, None, TrainingOptions(8, 2, "neox"))
    assert any("test missing" in r for r in plan.refusals())


def test_epochs_mode_and_usage_errors():
    sizes = np.full(40, 20, dtype=np.int32)
    neox, megatron = TrainingOptions(8, 2, "neox"), TrainingOptions(8, 2)
    # NeoX train_epochs mode: one epoch each, all weights 1.0 required
    plan = split_datasets_plan({"train": [sizes, sizes], "valid": [sizes], "test": [sizes]}, None, neox)
    assert plan.splits["train"]["size"] == 2 * simulate_member("neox", sizes.tolist(), 8, None, 1)
    with pytest.raises(UsageError, match="1.0"):
        split_datasets_plan({"train": [sizes, sizes]}, {"train": [1, 2]}, neox)
    with pytest.raises(UsageError, match="train_iters"):
        split_datasets_plan({"train": [sizes, sizes]}, {"train": [1, 2]}, megatron)
    with pytest.raises(UsageError, match="split"):
        split_datasets_plan({"train": [sizes]}, None, TrainingOptions(8, 2, split="1,1,1"))
    with pytest.raises(UsageError, match="weights"):
        split_datasets_plan({"train": [sizes]}, {"train": [1, 2]}, megatron)
    with pytest.raises(UsageError, match="train datasets"):
        split_datasets_plan({"valid": [sizes]}, None, megatron)


def test_scan_and_plan_command_lines(tmp_path):
    rng = np.random.default_rng(5)
    shards = {}
    for name, count in (("tr0", 30), ("tr1", 12), ("va", 9), ("te", 5)):
        docs = [[rng.integers(0, 500, int(rng.integers(1, 60))).tolist()] for _ in range(count)]
        write_mmidx(tmp_path / name, docs)
        shards[name] = [len(d[0]) for d in docs]
    common = ["--seq-len", 16, "--gbs", 2, "--train-iters", 40, "--eval-interval", 20, "--eval-iters", 2]
    for framework in ("neox", "megatron"):
        proc = run(
            "scan",
            tmp_path / "tr0",
            tmp_path / "tr1",
            "--weights",
            1,
            3,
            "--valid-data",
            tmp_path / "va",
            "--test-data",
            tmp_path / "te",
            "--framework",
            framework,
            "--json",
            *common,
        )
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["plan"] is None and doc["blend"] is None
        splits = doc["split_datasets"]["splits"]
        targets = targets_of(40, 20, 2, 2)
        sets = {"train": [shards["tr0"], shards["tr1"]], "valid": [shards["va"]], "test": [shards["te"]]}
        weights = {"train": [1, 3], "valid": None, "test": None}
        for name, d in sets.items():
            if framework == "neox":
                sim = simulate_neox_split(d, weights[name], targets[name], 16)
            else:
                sim = simulate_megatron_split(d, weights[name], targets[name], 16, 1)
            assert splits[name]["size"] == sim["size"]
        text = run("scan", tmp_path / "tr0", "--valid-data", tmp_path / "va", "--framework", framework, *common)
        assert text.returncode == (4 if framework == "neox" else 0), text.stderr  # NeoX: test paths missing
        assert "separate train/valid/test datasets" in text.stdout
    tokens = [sum(shards[n]) for n in ("tr0", "va", "te")]
    proc = run(
        "plan", "--tokens", tokens[0], "--valid-tokens", tokens[1], "--test-tokens", tokens[2], "--json", *common
    )
    assert proc.returncode == 0, proc.stderr
    splits = json.loads(proc.stdout)["splits"]
    for name, n in zip(("train", "valid", "test"), tokens):
        # from a token total alone the samples are those of one document of T tokens: (E·T - x) // S
        target = targets_of(40, 20, 2, 2)[name]
        assert splits[name]["size"] == simulate_member("megatron", [n], 16, target, 1)
    assert_clean_error(run("scan", tmp_path / "tr0", "--valid-weights", 1, *common), 1)


def test_command_line_usage_errors(tmp_path, capsys):
    write_mmidx(tmp_path / "a", [[[1, 2, 3]]] * 10)
    common = ["--seq-len", "4", "--gbs", "1"]
    a = str(tmp_path / "a")
    for argv in (
        ["scan", a, "--valid-data", a, "--split", "1,1,1", *common],
        ["scan", a, "--valid-data", a, "--valid-weights", "1", "2", *common],
        ["scan", a, "--test-data", a],  # without --seq-len/--gbs
        ["plan", "--tokens", "100", "--test-weights", "1", *common],
        ["plan", "--samples", "100", "--valid-tokens", "5", *common],
    ):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("tokcount: error: ") and err.count("\n") == 1, err
