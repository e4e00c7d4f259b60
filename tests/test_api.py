"""The Python API as a notebook user meets it: signatures, docs, exports, and errors that name
parameters rather than command-line flags."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from idx_writer import write_mmidx

import tokcount
from tokcount import TextOptions, TokenCheckOptions, TrainingOptions, UsageError
from tokcount.planning import make_plan, plan_from_samples


def test_plan_has_a_real_signature_and_takes_samples_and_from_log():
    parameters = inspect.signature(tokcount.plan).parameters
    for name in (
        "sizes",
        "tokens",
        "samples",
        "from_log",
        "seq_len",
        "global_batch_size",
        "framework",
        "extra_token",
        "split",
        "train_iters",
        "eval_interval",
        "eval_iters",
    ):
        assert name in parameters
    from_log = tokcount.plan(samples=500, from_log="neox", seq_len=2048, global_batch_size=8)
    assert from_log.to_dict() == plan_from_samples(500, from_log="neox", seq_len=2048, global_batch_size=8).to_dict()
    from_tokens = tokcount.plan(tokens=10**9, seq_len=2048, global_batch_size=512, train_iters=100)
    assert (
        from_tokens.to_dict() == make_plan(tokens=10**9, seq_len=2048, global_batch_size=512, train_iters=100).to_dict()
    )
    with pytest.raises(UsageError, match="exactly one of sizes, tokens or samples"):
        tokcount.plan(tokens=10, samples=3, seq_len=2, global_batch_size=1)
    with pytest.raises(UsageError, match="from_log"):
        tokcount.plan(tokens=10, from_log="neox", seq_len=2, global_batch_size=1)


def test_help_of_scan_documents_every_option():
    doc = inspect.getdoc(tokcount.scan)
    for options in (TrainingOptions, TokenCheckOptions, TextOptions):
        for field in dataclasses.fields(options):
            assert f"``{field.name}``" in doc, field.name
    assert "report.ok" in doc and "report.plan`` is None" in doc


def test_the_report_and_the_options_are_exported():
    for name in (
        "scan",
        "plan",
        "Report",
        "TextOptions",
        "TrainingOptions",
        "TokenCheckOptions",
        "CheckOptions",
        "UsageError",
        "FileCheckError",
        "PlanError",
    ):
        assert name in tokcount.__all__ and getattr(tokcount, name) is not None
    assert tokcount.Report.__name__ == "Report"


def test_a_scan_whose_every_input_failed_raises_nothing_and_says_so(tmp_path):
    (tmp_path / "x.idx").write_bytes(b"not an index")
    (tmp_path / "x.bin").write_bytes(b"")
    report = tokcount.scan([str(tmp_path / "x")], TrainingOptions(seq_len=8, global_batch_size=1))
    assert not report.ok and report.files == [] and report.plan is None
    assert report.failures[0].check == "magic"


def test_api_errors_name_the_parameter(tmp_path):
    text = tmp_path / "d.jsonl"
    text.write_text('{"text": "a"}\n')
    with pytest.raises(UsageError, match=r"TextOptions\.tokenizer"):
        tokcount.scan([str(text)])
    for name in ("a", "b"):
        write_mmidx(tmp_path / name, [[[1, 2, 3]]])
    with pytest.raises(UsageError, match=r"TrainingOptions\.weights"):
        tokcount.scan(
            [str(tmp_path / "a"), str(tmp_path / "b")], TrainingOptions(seq_len=2, global_batch_size=1, weights=(1.0,))
        )
    with pytest.raises(UsageError, match=r"TokenCheckOptions\.vocab_size"):
        tokcount.scan([str(tmp_path / "a")], verify_tokens=TokenCheckOptions(vocab_size=0))
