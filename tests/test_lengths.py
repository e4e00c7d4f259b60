"""The driver's bounded length structures against their definitions: the sparse histogram's
statistics equal numpy's on the full array, spilled sizes sum ranges as slices of the array do,
and plans from spilled sizes equal plans from the array."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tokenizer_fixtures
from hypothesis import given, settings
from hypothesis import strategies as st

from tokcount import planning
from tokcount.lengths import LengthHistogram, SequenceSizes, SizeSpill, compact
from tokcount.options import TextOptions, TrainingOptions
from tokcount.report import length_stats
from tokcount.scanning import scan

lengths_lists = st.lists(st.integers(0, 3000) | st.sampled_from([0, 1, 2, 2**20, 2**31 - 1]), min_size=1, max_size=400)


@settings(max_examples=200, deadline=None)
@given(lengths_lists, st.integers(1, 6))
def test_histogram_statistics_equal_numpy_on_the_full_array(lengths, pieces):
    arr = np.asarray(lengths, dtype=np.int64)
    cuts = np.array_split(arr, pieces)
    merged = LengthHistogram.merge([LengthHistogram.of(c) for c in cuts])
    assert merged.stats() == length_stats(arr)
    assert merged.documents == arr.size


def test_histogram_size_is_bounded_by_distinct_lengths():
    rng = np.random.default_rng(7)
    histogram = LengthHistogram.merge(LengthHistogram.of(rng.integers(0, 100, 100_000)) for _ in range(20))
    assert histogram.values.size == 100 and histogram.documents == 2_000_000
    assert histogram.stats() == length_stats(np.concatenate([np.repeat(histogram.values, histogram.counts)]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(0, 50), max_size=30), min_size=1, max_size=8), st.data())
def test_spilled_sizes_sum_ranges_as_array_slices_do(chunks, data):
    spill = SizeSpill()
    sizes = SequenceSizes([p for c in chunks for p in spill.write(compact(np.asarray(c, dtype=np.int64)))])
    arr = np.asarray([x for c in chunks for x in c], dtype=np.int64)
    assert sizes.size == arr.size and sizes.tolist() == arr.tolist() and sizes.sum() == int(arr.sum())
    beg = data.draw(st.integers(0, arr.size))
    end = data.draw(st.integers(beg, arr.size))
    assert sizes.range_tokens(beg, end) == int(arr[beg:end].sum())
    joined = SequenceSizes.concatenate([sizes, arr[::-1].copy()])
    assert joined.tolist() == arr.tolist() + arr[::-1].tolist()
    spill.close()


@pytest.mark.parametrize("framework", ["megatron", "neox"])
@pytest.mark.parametrize("split", ["969, 30, 1", "1,0,0", "98,2,0", "50,50,0"])
def test_plans_from_spilled_sizes_equal_plans_from_the_array(framework, split):
    rng = np.random.default_rng(3)
    arrays = [rng.integers(0, 300, n) for n in (5000, 7, 1200)]
    spill = SizeSpill()
    lazy = [SequenceSizes([p for i in range(0, a.size, 333) for p in spill.write(a[i : i + 333])]) for a in arrays]
    kw = dict(seq_len=64, global_batch_size=8, framework=framework, split=split, train_iters=50, eval_interval=20)
    assert planning.make_plan(lazy[0], **kw).to_dict() == planning.make_plan(arrays[0], **kw).to_dict()
    blend_kw = dict(kw, split=split if framework == "megatron" else None)
    weights = [0.5, 0.2, 0.3]
    assert (
        planning.blend_plan(lazy, weights, **blend_kw).to_dict()
        == planning.blend_plan(arrays, weights, **blend_kw).to_dict()
    )


def test_scan_keeps_no_per_document_array_in_the_report(tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps({"text": "word " * (i % 23)}) + "\n" for i in range(3000)))
    training = TrainingOptions(seq_len=16, global_batch_size=4, split="969, 30, 1")
    report = scan([str(path)], training, text=TextOptions(tokenizer=tok, unit_bytes=4096, workers=1))
    f = report.files[0]
    assert isinstance(f.sizes, SequenceSizes) and len(f.sizes.pieces) > 10  # one per unit, on disk
    assert report.plan.to_dict() == planning.make_plan(np.asarray(f.sizes), **training.plan_kwargs()).to_dict()


def test_large_units_are_spilled_in_pieces_read_back_alone(monkeypatch):
    import tokcount.lengths

    monkeypatch.setattr(tokcount.lengths, "SPILL_PIECE", 7)
    arr = np.arange(100, dtype=np.int64) * 70_000  # uint32 on disk
    spill = SizeSpill()
    pieces = spill.write(compact(arr))
    assert [p.count for p in pieces] == [7] * 14 + [2]
    sizes = SequenceSizes(pieces)
    assert all(sizes.range_tokens(b, e) == int(arr[b:e].sum()) for b in range(0, 100, 9) for e in range(b, 101, 11))
    assert sizes.tolist() == arr.tolist()
    spill.close()
