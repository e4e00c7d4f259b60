"""datatrove ``.ds`` and OLMo/dolma ``.npy`` token files: exact counts from their own metadata,
checked against the definition (the raw text tokenized again, the ids written), validation
failures as one line, and nanotron's and OLMo-core's sample rules against a plain-loop read of
the files as each trainer reads them.

The ``.ds`` files in data/datatrove/ were written by datatrove 0.10.1 itself (see its
make_files.py); the ``.npy`` files are written here with ``np.memmap``, as OLMo-core's data
guide and dolma's tokenizer write them.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import trainer_sim
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli import assert_clean_error, run
from tokenizer_fixtures import SHARED_TOKENIZERS
from tokenizers import Tokenizer

from tokcount import FileCheckError, TokenCheckOptions, TrainingOptions, scan
from tokcount.formats import indexed_kernels, token_memmap
from tokcount.formats.base import TokenLayout
from tokcount.formats.datatrove import open_ds
from tokcount.formats.token_memmap import open_memmap
from tokcount.options import TokenFileOptions

DATA = Path(__file__).resolve().parent / "data" / "datatrove"
TOKENIZER = DATA.parent / "tokenizers" / "bytelevel_bpe.json"
EOS = 0  # <|endoftext|> in bytelevel_bpe.json


def raw_documents(files: list[Path]) -> list[str]:
    texts = []
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            texts.append(json.loads(line)["text"])
    return texts


def task_texts(task: int, tasks: int) -> list[str]:
    """What datatrove's task reads: input files task, task + tasks, ... (sorted), non-empty texts."""
    files = sorted((DATA / "raw").glob("*.jsonl"))[task::tasks]
    return [t for t in raw_documents(files) if t]


def expected_lengths(texts: list[str], tokenizer: Path, eos: int) -> list[list[int]]:
    tok = Tokenizer.from_file(str(tokenizer))
    return [tok.encode(t).ids + [eos] for t in texts]  # DocumentTokenizer's "$A <EOS>" post-processor


def ds_ids(path: Path, dtype) -> np.ndarray:
    return np.fromfile(path, dtype=dtype)


# --------------------------------------------------------------------------------------------
# datatrove


@pytest.mark.parametrize("task", [0, 1])
def test_datatrove_counts_are_the_tokenized_raw_documents(task):
    ds = DATA / "unshuffled" / f"{task:05d}_unshuffled.ds"
    expected = expected_lengths(task_texts(task, 2), TOKENIZER, EOS)
    shard = open_ds(str(ds))
    assert shard.documents == len(expected)
    assert shard.sizes.tolist() == [len(ids) for ids in expected]
    assert shard.tokens == sum(len(ids) for ids in expected)
    assert shard.dtype == np.uint16 and shard.details["token_size"] == 2
    assert shard.details["tokenizer"] == "bytelevel_bpe.json" and shard.details["loss_file"]
    # and the ids themselves, so that the sizes cannot agree by accident
    assert ds_ids(ds, "<u2").tolist() == [i for ids in expected for i in ids]


def test_datatrove_folder_is_one_dataset():
    report = scan([str(DATA / "unshuffled")])
    assert report.ok, report.failures
    assert [Path(f.path).name for f in report.files] == ["00000_unshuffled.ds", "00001_unshuffled.ds"]
    assert not report.merged_inputs and not report.skipped_inputs  # companions are part of their .ds
    every = expected_lengths(task_texts(0, 2), TOKENIZER, EOS) + expected_lengths(task_texts(1, 2), TOKENIZER, EOS)
    assert report.total["tokens"] == sum(len(ids) for ids in every)
    assert report.total["documents"] == len(every) == len(raw_documents(sorted((DATA / "raw").glob("*.jsonl")))) - 1
    # naming a companion file, or every file by a glob, is the same source
    by_glob = scan([str(DATA / "unshuffled" / "*")])
    assert [f.path for f in by_glob.files] == [f.path for f in report.files] and not by_glob.merged_inputs
    by_index = scan([str(DATA / "unshuffled" / "00001_unshuffled.ds.index")])
    assert by_index.files[0].path.endswith("00001_unshuffled.ds") and by_index.files[0].tokens == report.files[1].tokens


def test_datatrove_shuffled_keeps_the_multiset_of_documents():
    for task in (0, 1):
        (ds,) = (DATA / "shuffled").glob(f"{task:05d}_*_doc_shuffled.ds")
        shard = open_ds(str(ds))
        expected = expected_lengths(task_texts(task, 2), TOKENIZER, EOS)
        assert sorted(shard.sizes.tolist()) == sorted(len(ids) for ids in expected)
        ids = ds_ids(ds, "<u2")
        bounds = np.concatenate([[0], np.cumsum(shard.sizes)])
        found = sorted(tuple(ids[a:b].tolist()) for a, b in zip(bounds[:-1], bounds[1:]))
        assert found == sorted(tuple(e) for e in expected)
        assert not shard.details["loss_file"]


def test_datatrove_four_byte_tokens():
    ds = DATA / "uint32" / "00000_unshuffled.ds"
    shard = open_ds(str(ds))
    assert shard.dtype == np.uint32 and shard.details["token_size"] == 4
    assert shard.tokens * 4 == ds.stat().st_size and int(shard.sizes.sum()) == shard.tokens
    ids = ds_ids(ds, "<u4")
    assert int(ids.max()) > 65535  # 2-byte reads (datatrove's check_dataset) would be wrong here
    llama3 = SHARED_TOKENIZERS / "llama3.json"
    if not llama3.exists():
        pytest.skip("shared/tokenizers/llama3.json not present: only the layout was checked")
    added = json.loads(llama3.read_text(encoding="utf-8"))["added_tokens"]  # token_to_id is gone in tokenizers 1.x
    (eos,) = [t["id"] for t in added if t["content"] == "<|end_of_text|>"]
    expected = expected_lengths(task_texts(0, 1), llama3, eos)
    assert ids.tolist() == [i for e in expected for i in e]
    assert shard.sizes.tolist() == [len(e) for e in expected]


def test_datatrove_verify_tokens():
    folder = str(DATA / "unshuffled")
    ok = scan([folder], verify_tokens=TokenCheckOptions(500, EOS))
    assert ok.ok and all(f.extra["token_check"]["documents_missing_eod"] == 0 for f in ok.files)
    ids = ds_ids(DATA / "unshuffled" / "00000_unshuffled.ds", "<u2")
    assert ok.files[0].extra["token_check"]["max_token_id"] == int(ids.max())
    wrong_eos = scan([folder], verify_tokens=TokenCheckOptions(500, 5))
    assert not wrong_eos.files and [e.check for e in wrong_eos.failures] == ["documents end in EOD"] * 2
    assert wrong_eos.failures[0].position == "document 0"
    small_vocab = scan([folder], verify_tokens=TokenCheckOptions(int(ids.max())))
    first = int(np.flatnonzero(ids >= int(ids.max()))[0])
    assert small_vocab.failures[0].check == "token ids < vocab size"
    assert small_vocab.failures[0].position == f"token {first}"


def _copy(tmp_path: Path, name: str = "00001_unshuffled") -> Path:
    for f in (DATA / "unshuffled").glob(name + ".ds*"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / f"{name}.ds"


def _fails(path: Path, check: str, fragment: str, position: str | None = None):
    with pytest.raises(FileCheckError) as e:
        open_ds(str(path))
    assert e.value.check == check and fragment in str(e.value), str(e.value)
    if position is not None:
        assert e.value.position == position
    assert "\n" not in str(e.value)
    return e.value


def test_datatrove_validation(tmp_path):
    ds = _copy(tmp_path)
    tokens = ds.stat().st_size // 2
    with open(ds, "ab") as f:
        f.write(b"\x00")
    _fails(ds, ".ds size", "not a multiple of the token size 2")
    ds = _copy(tmp_path)
    with open(ds, "r+b") as f:
        f.truncate((tokens - 1) * 2)
    _fails(ds, "last document end == tokens", f"the last entry is {tokens}", "entry 26")
    ds = _copy(tmp_path)
    index = np.fromfile(str(ds) + ".index", dtype="<u8")
    index[[3, 4]] = index[[4, 3]]
    index.tofile(str(ds) + ".index")
    _fails(ds, "document ends non-decreasing", f"entry 4 = {int(index[4])} comes after entry 3", "entry 4")
    ds = _copy(tmp_path)
    meta = Path(str(ds) + ".metadata")
    meta.write_text(meta.read_text().replace(f"\n{tokens}\n", f"\n{tokens + 1}\n"))
    _fails(ds, "metadata token count", f"states {tokens + 1} tokens")
    meta.write_text("bytelevel_bpe.json|3\n10\n10T")
    _fails(ds, "metadata", "expected 'tokenizer|2' or 'tokenizer|4'", "line 1")
    ds = _copy(tmp_path)
    with open(str(ds) + ".loss", "ab") as f:
        f.write(b"\x01")
    _fails(ds, "loss file size", f"but there are {tokens} tokens")
    ds = _copy(tmp_path)
    Path(str(ds) + ".index").write_bytes(b"\x00" * 9)
    _fails(ds, "index size", "not a multiple of 8")
    Path(str(ds) + ".index").unlink()
    _fails(ds, "pairing", ".ds.index does not exist")


def test_datatrove_without_metadata_infers_the_token_size(tmp_path):
    ds = _copy(tmp_path)
    Path(str(ds) + ".metadata").unlink()
    shard = open_ds(str(ds))
    assert shard.dtype == np.uint16 and shard.tokens == ds.stat().st_size // 2
    assert shard.details["tokenizer"] is None and shard.details["token_size"] == 2


def test_datatrove_cli_errors_are_one_line(tmp_path):
    ds = _copy(tmp_path)
    with open(ds, "ab") as f:
        f.write(b"\x00\x00")
    proc = run("scan", tmp_path, "--no-progress")
    assert_clean_error(proc, 2)
    assert f"{ds}: last document end == tokens failed" in proc.stderr or ".ds.index" in proc.stderr
    ok = run("scan", DATA / "unshuffled", "--json", "--verify-tokens", "--vocab-size", 500, "--eod", 0)
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    f = doc["files"][0]
    assert f["format"] == "datatrove" and f["dtype"] == "uint16" and f["token_size"] == 2
    assert f["tokenizer"] == "bytelevel_bpe.json" and f["loss_file"] is True
    assert f["token_check"]["documents_missing_eod"] == 0 and not doc["warnings"]


# --------------------------------------------------------------------------------------------
# OLMo / dolma token memmaps


def write_memmap(path: Path, documents: list[list[int]], dtype, eos: int | None = EOS) -> np.ndarray:
    """As OLMo-core's data guide does: np.memmap(path, mode="w+", dtype=..., shape=(n,)), EOS after
    each document."""
    ids = np.asarray([i for d in documents for i in [*d, *([eos] if eos is not None else [])]], dtype=dtype)
    mm = np.memmap(path, mode="w+", dtype=dtype, shape=(max(1, ids.size),))
    mm[: ids.size] = ids
    mm.flush()
    del mm
    if ids.size == 0:
        path.write_bytes(b"")
    return ids


def write_offsets(path: Path, lengths: list[int]) -> None:
    """dolma's metadata beside the array: start,end,id,src,loc per document."""
    with gzip.open(path, "wt") as f:
        start = 0
        for k, n in enumerate(lengths):
            f.write(f"{start},{start + n},doc{k},s3://bucket/src.jsonl.gz,{k + 1}\n")
            start += n


DOCS = [[5, 6, 7], [8], [9, 10, 300, 11], [12, 13]]


def test_memmap_documents_by_eos(tmp_path):
    ids = write_memmap(tmp_path / "part-0-00000.npy", DOCS, np.uint32)
    shard = open_memmap(str(tmp_path / "part-0-00000.npy"), TokenLayout("uint32", EOS))
    assert shard.tokens == ids.size and shard.sizes.tolist() == [len(d) + 1 for d in DOCS]
    assert shard.format == "npy-raw" and shard.dtype == np.uint32 and not shard.warnings


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=300), st.integers(0, 3))
def test_value_positions_kernel(values, value):
    arr = np.asarray(values, dtype=np.uint16)
    assert indexed_kernels.value_positions(arr, value).tolist() == np.flatnonzero(arr == value).tolist()


def test_memmap_eos_scan_across_windows(tmp_path, monkeypatch):
    rng = np.random.default_rng(16)
    docs = [rng.integers(1, 60000, rng.integers(0, 40)).tolist() for _ in range(200)]
    write_memmap(tmp_path / "a.npy", docs, np.uint16)
    monkeypatch.setattr(token_memmap, "WINDOW_BYTES", 64)  # many windows, documents crossing them
    shard = open_memmap(str(tmp_path / "a.npy"), TokenLayout("uint16", EOS))
    assert shard.sizes.tolist() == [len(d) + 1 for d in docs]
    assert shard.empty_documents == 0 and shard.tokens == sum(len(d) + 1 for d in docs)


def test_memmap_last_document_without_eos_is_counted_and_said(tmp_path):
    ids = np.asarray([5, 0, 6, 7], dtype=np.uint16)
    ids.tofile(tmp_path / "a.npy")
    shard = open_memmap(str(tmp_path / "a.npy"), TokenLayout("uint16", EOS))
    assert shard.sizes.tolist() == [2, 2]
    assert "last document (2 tokens) does not end in EOS id 0" in shard.warnings[0]
    check = scan(
        [str(tmp_path / "a.npy")], verify_tokens=TokenCheckOptions(10, EOS), token_files=TokenFileOptions("uint16")
    )
    assert check.failures[0].check == "documents end in EOD" and check.failures[0].position == "document 1"


def test_memmap_dtype_inference(tmp_path):
    odd = tmp_path / "odd.npy"
    np.asarray([1, 2, 0], dtype=np.uint16).tofile(odd)  # 6 bytes: only uint16 fits
    assert open_memmap(str(odd), TokenLayout(eod=0)).dtype == np.uint16
    both = tmp_path / "both.npy"
    np.asarray([1, 2, 3, 0], dtype=np.uint16).tofile(both)  # 8 bytes: uint16 or uint32
    with pytest.raises(FileCheckError) as e:
        open_memmap(str(both), TokenLayout(eod=0))
    assert "fits both uint16 and uint32" in str(e.value) and "--dtype" in str(e.value)
    assert open_memmap(str(both), TokenLayout("uint16", 0)).tokens == 4
    assert open_memmap(str(both), TokenLayout("uint32", 0)).tokens == 2
    # an offsets file decides it: 4 tokens of 2 bytes end where the file does
    write_offsets(tmp_path / "both.csv.gz", [2, 2])
    shard = open_memmap(str(both))
    assert shard.dtype == np.uint16 and shard.sizes.tolist() == [2, 2]
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"\x01\x02\x03")
    with pytest.raises(FileCheckError, match="odd size"):
        open_memmap(str(bad), TokenLayout(eod=0))


def test_memmap_with_a_real_npy_header(tmp_path):
    ids = np.asarray([i for d in DOCS for i in [*d, EOS]], dtype=np.uint16)
    np.save(tmp_path / "h.npy", ids)
    shard = open_memmap(str(tmp_path / "h.npy"), TokenLayout(eod=EOS))
    assert shard.format == "npy" and shard.tokens == ids.size and shard.data_offset > 0
    assert shard.sizes.tolist() == [len(d) + 1 for d in DOCS]
    assert "OLMo-core maps these files raw" in shard.warnings[0]
    # the token check reads after the header (header bytes read as ids would exceed 301)
    report = scan([str(tmp_path / "h.npy")], verify_tokens=TokenCheckOptions(301, EOS))
    assert report.ok and report.files[0].extra["token_check"]["max_token_id"] == 300
    with pytest.raises(FileCheckError, match="the .npy header says uint16"):
        open_memmap(str(tmp_path / "h.npy"), TokenLayout("uint32", EOS))
    np.save(tmp_path / "f.npy", ids.astype(np.float32))
    with pytest.raises(FileCheckError, match="little-endian uint16 or uint32"):
        open_memmap(str(tmp_path / "f.npy"), TokenLayout(eod=EOS))


def test_memmap_documents_from_dolma_offsets(tmp_path):
    # without EOS between documents: only the offsets file knows where they end
    ids = write_memmap(tmp_path / "d.npy", DOCS, np.uint32, eos=None)
    write_offsets(tmp_path / "d.csv.gz", [len(d) for d in DOCS])
    shard = open_memmap(str(tmp_path / "d.npy"), TokenLayout("uint32"))
    assert shard.sizes.tolist() == [len(d) for d in DOCS] and shard.tokens == ids.size
    assert shard.details["documents_from"] == "offsets file"
    write_offsets(tmp_path / "d.csv.gz", [len(d) for d in DOCS[:-1]])
    with pytest.raises(FileCheckError) as e:
        open_memmap(str(tmp_path / "d.npy"), TokenLayout("uint32"))
    assert e.value.check == "last offset == tokens" and e.value.position == "line 3"
    with gzip.open(tmp_path / "d.csv.gz", "wt") as f:
        f.write("0,3\n4,5\n")
    with pytest.raises(FileCheckError) as e:
        open_memmap(str(tmp_path / "d.npy"), TokenLayout("uint32"))
    assert e.value.check == "offsets contiguous" and e.value.position == "line 2"


def test_memmap_cli(tmp_path):
    write_memmap(tmp_path / "a.npy", DOCS, np.uint32)
    proc = run("scan", tmp_path / "a.npy", "--no-progress")
    assert_clean_error(proc, 2)
    assert "give --dtype uint16 or --dtype uint32" in proc.stderr
    proc = run("scan", tmp_path / "a.npy", "--dtype", "uint32", "--no-progress")
    assert_clean_error(proc, 2)
    assert "give --eod ID" in proc.stderr
    proc = run("scan", tmp_path / "a.npy", "--dtype", "uint32", "--eod", EOS, "--json")
    assert proc.returncode == 0, proc.stderr
    f = json.loads(proc.stdout)["files"][0]
    assert (f["format"], f["dtype"], f["documents"], f["tokens"]) == ("npy-raw", "uint32", 4, 14)
    assert f["documents_from"] == "EOS id 0" and f["npy_header"] is False
    proc = run("scan", DATA / "unshuffled", "--dtype", "uint16", "--json")
    assert proc.returncode == 0 and "only apply to .npy token memmaps" in json.loads(proc.stdout)["warnings"][0]
    assert_clean_error(run("scan", tmp_path / "a.npy", "--dtype", "uint8"), 1)


def test_token_file_options_are_checked():
    from tokcount import UsageError

    with pytest.raises(UsageError, match="TokenFileOptions.dtype"):
        scan([str(DATA / "unshuffled")], token_files=TokenFileOptions(dtype="int8"))


# --------------------------------------------------------------------------------------------
# trainer rules, against the trainers' reads simulated on the real files


@pytest.mark.parametrize("seq_len", [1, 7, 64, 100, 2763, 2762, 5000])
def test_nanotron_samples_are_the_windows_its_dataset_reads(seq_len):
    files = sorted((DATA / "unshuffled").glob("*.ds"))
    report = scan(
        [str(DATA / "unshuffled")], TrainingOptions(seq_len=seq_len, global_batch_size=4, framework="nanotron")
    )
    plan = report.plan.to_dict()
    expected = trainer_sim.nanotron_samples(files, seq_len, token_size=2)
    assert plan["samples_per_epoch"] == expected
    assert plan["iterations_per_epoch"] == expected // 4 and plan["remainder_samples"] == expected % 4
    assert [r["samples"] for r in plan["files"]] == [trainer_sim.nanotron_samples([f], seq_len, 2) for f in files]
    T = report.total["tokens"]
    rows = {r["rule"].split(" ")[0]: r for r in plan["comparison"]}
    assert rows["Megatron"]["samples"] == (T - 1) // seq_len
    assert plan["unused_tail_tokens"] == T - expected * (seq_len + 1)
    assert report.blend is None


@pytest.mark.parametrize("seq_len", [1, 3, 5, 16, 57, 1000])
def test_olmo_instances_are_the_chunks_its_dataset_reads(tmp_path, seq_len):
    rng = np.random.default_rng(seq_len)
    paths = []
    for k in range(3):
        docs = [rng.integers(1, 70000, rng.integers(1, 50)).tolist() for _ in range(5 + 11 * k)]
        write_memmap(tmp_path / f"part-{k}.npy", docs, np.uint32)
        paths.append(tmp_path / f"part-{k}.npy")
    training = TrainingOptions(seq_len=seq_len, global_batch_size=2, framework="olmo")
    report = scan([str(tmp_path)], training, token_files=TokenFileOptions("uint32", EOS))
    assert report.ok, report.failures
    assert report.plan.samples_per_epoch == trainer_sim.olmo_instances(paths, seq_len, np.uint32)
    assert [r["samples"] for r in report.plan.to_dict()["files"]] == [
        trainer_sim.olmo_instances([p], seq_len, np.uint32) for p in paths
    ]


def test_chunking_frameworks_cli(tmp_path):
    proc = run("plan", "--tokens", 1_000_003, "--seq-len", 2048, "--gbs", 8, "--framework", "nanotron", "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["samples_per_epoch"] == 1_000_003 // 2049 and d["window_tokens"] == 2049
    proc = run("scan", DATA / "unshuffled", "--seq-len", 64, "--gbs", 4, "--framework", "nanotron", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "Plan: nanotron (DatatroveFolderDataset)" in proc.stdout and "Megatron (T - 1) // 64" in proc.stdout
    refused = run("scan", DATA / "unshuffled", "--seq-len", 64, "--gbs", 4, "--framework", "olmo", "--split", "9,1,0")
    assert_clean_error(refused, 1)
    assert "--split not modelled for --framework olmo" in refused.stderr
    assert_clean_error(run("plan", "--samples", 10, "--seq-len", 4, "--gbs", 1, "--framework", "olmo"), 1)


# --------------------------------------------------------------------------------------------
# check --preset datatrove


RAW = sorted(str(p) for p in (DATA / "raw").glob("*.jsonl"))


def _datatrove_check(against, raw=RAW, ids=True):
    from tokcount.checks.raw_datatrove import check_raw_datatrove
    from tokcount.options import CheckOptions

    return check_raw_datatrove(raw, str(against), CheckOptions(tokenizer=str(TOKENIZER), ids=ids, workers=1))


def test_check_datatrove_unshuffled_folder_in_order():
    results = _datatrove_check(DATA / "unshuffled")
    assert [r.ok for r in results] == [True, True]
    assert [r.raw_paths for r in results] == [RAW[0::2], RAW[1::2]]  # task i reads inputs i, i + N, ...
    assert [r.compared_documents for r in results] == [len(task_texts(0, 2)), len(task_texts(1, 2))]
    assert results[0].options["add_special_tokens"] is False and results[0].options["eod"] == EOS
    assert results[0].options["order_checked"] is True
    # the inputs of another task: a document-by-document mismatch, with the first differing id
    wrong = _datatrove_check(DATA / "unshuffled" / "00000_unshuffled.ds", raw=RAW[1:2])
    (result,) = wrong
    assert not result.ok and result.first_mismatch.document == 0 and result.first_mismatch.position == "line 1"


def test_check_datatrove_shuffled_compares_multisets(tmp_path):
    results = _datatrove_check(DATA / "shuffled")
    assert all(r.ok for r in results) and all(r.options["order_checked"] is False for r in results)
    assert "the order is not checked" in results[0].warnings[0]
    # two ids swapped inside one document: same lengths, so only --ids sees it
    for f in (DATA / "shuffled").glob("*"):
        shutil.copy(f, tmp_path / f.name)
    (ds,) = tmp_path.glob("00001_*_doc_shuffled.ds")
    ids = np.fromfile(ds, dtype="<u2")
    first = int(open_ds(str(ds)).sizes[0])
    assert ids[0] != ids[1] and first > 2
    ids[[0, 1]] = ids[[1, 0]]
    ids.tofile(ds)
    assert all(r.ok for r in _datatrove_check(tmp_path, ids=False))
    by_ids = _datatrove_check(tmp_path)
    assert by_ids[0].ok and not by_ids[1].ok
    assert by_ids[1].missing_from_index == 1 and by_ids[1].extra_in_index == 1
    assert "order not checked" in by_ids[1].diagnosis


def test_check_datatrove_cli():
    args = ("check", *RAW, "--against", DATA / "shuffled", "--preset", "datatrove", "--tokenizer", TOKENIZER)
    proc = run(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] and len(doc["checks"]) == 2 and doc["checks"][0]["options"]["order_checked"] is False
    proc = run(*args[:-4], "--against", DATA / "unshuffled" / "00001_unshuffled.ds", "--preset", "datatrove")
    assert_clean_error(proc, 1)  # no tokenizer
    proc = run(
        "check",
        RAW[0],
        "--against",
        DATA / "unshuffled" / "00001_unshuffled.ds",
        "--preset",
        "datatrove",
        "--tokenizer",
        TOKENIZER,
    )
    assert proc.returncode == 3 and "MISMATCH" in proc.stdout and "Traceback" not in proc.stderr


def test_api_plan_for_chunking_frameworks():
    import tokcount
    from tokcount import UsageError

    for framework, window in (("nanotron", 100), ("olmo", 99)):
        p = tokcount.plan(tokens=10_000, seq_len=99, global_batch_size=3, framework=framework)
        assert (p.samples_per_epoch, p.iterations_per_epoch) == (10_000 // window, 10_000 // window // 3)
    with pytest.raises(UsageError, match="--split not modelled"):
        tokcount.plan(tokens=10_000, seq_len=99, global_batch_size=3, framework="olmo", split="9,1,0")


def test_dolma_offsets_file_is_read_with_its_array(tmp_path):
    write_memmap(tmp_path / "p.npy", DOCS, np.uint32, eos=None)
    write_offsets(tmp_path / "p.csv.gz", [len(d) for d in DOCS])
    (tmp_path / "notes.txt").write_text("x")
    walked = scan([str(tmp_path)], token_files=TokenFileOptions("uint32"))
    assert [Path(f.path).name for f in walked.files] == ["p.npy"] and walked.files[0].documents == len(DOCS)
    assert [Path(s["path"]).name for s in walked.skipped_inputs] == ["notes.txt"]  # the offsets are not "skipped"
    globbed = scan([str(tmp_path / "p*")], token_files=TokenFileOptions("uint32"))
    assert globbed.ok and [Path(f.path).name for f in globbed.files] == ["p.npy"]
    alone = scan([str(tmp_path / "p.csv.gz")])
    assert "a side file of" in str(alone.failures[0]) and "name " in str(alone.failures[0])
