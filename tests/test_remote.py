"""Remote inputs through a real S3-compatible server (moto's standalone server on 127.0.0.1),
a fault proxy in front of it, and a local HTTP server: every format scanned through ``s3://``
equals the local scan field by field, and every failure is one line naming the URI."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tokenizer_fixtures
from idx_writer import write_mmidx
from tokenizers import Tokenizer

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

from remote_servers import AWS_ENV, FaultProxy, MotoS3, RangeHTTPServer  # noqa: E402

from tokcount import TextOptions, TokenCheckOptions, TrainingOptions, scan  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOT_COMPARED = ("path", "identity")  # where the file is, and how its store versions it


@pytest.fixture(scope="session")
def s3():
    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    server = MotoS3()
    yield server
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def endpoint(s3, monkeypatch):
    """Point s3:// at the server through the standard variable, as boto3 and the AWS CLI read it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    return s3.endpoint


@pytest.fixture
def proxy(s3, monkeypatch):
    fault_proxy = FaultProxy(s3)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", fault_proxy.endpoint)  # the service-specific one wins
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    yield fault_proxy
    fault_proxy.stop()


_buckets = iter(range(10**6))


def new_bucket(s3: MotoS3) -> str:
    return s3.bucket(f"tokcount-{os.getpid()}-{next(_buckets)}")


def documents(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    words = ["alpha", "beta", "gamma", "Straße", "жук", "漢字", "don't", "x1", "\n", "  "]
    return [" ".join(rng.choice(words, size=int(rng.integers(0, 40)))) for _ in range(count)]


def jsonl_bytes(docs: list[str]) -> bytes:
    return "".join(json.dumps({"id": i, "text": d}) + "\n" for i, d in enumerate(docs)).encode()


def zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return sink.getvalue().to_pybytes()


def every_format(root: Path) -> dict[str, int]:
    """One file of every format under ``root``; returns the text documents each holds."""
    root.mkdir(parents=True, exist_ok=True)
    held = {}
    plain = documents(400, 1)
    (root / "a-plain.jsonl").write_bytes(jsonl_bytes(plain))  # several byte ranges (unit_bytes below)
    held["a-plain.jsonl"] = len(plain)
    for name, compress in (("gz", gzip.compress), ("zst", zstd), ("bz2", bz2.compress), ("xz", lzma.compress)):
        docs = documents(150, hash(name) % 1000)
        (root / f"b.jsonl.{name}").write_bytes(compress(jsonl_bytes(docs)))
        held[f"b.jsonl.{name}"] = len(docs)
    table = pa.table({"text": documents(300, 7), "n": list(range(300))})
    pq.write_table(table, root / "c.parquet", row_group_size=64)  # 5 row groups, read by range
    ids = pa.table({"text": pa.array([[1, 2, 3], [], [4] * 40, [5, 6]] * 10, type=pa.list_(pa.int32()))})
    pq.write_table(ids, root / "d-ids.parquet", row_group_size=16)
    batches = pa.table({"text": documents(200, 9)}).to_batches(max_chunksize=50)
    with pa.ipc.new_file(root / "e.arrow", batches[0].schema) as w:
        for b in batches:
            w.write_batch(b)
    with pa.ipc.new_stream(root / "f-stream.arrow", batches[0].schema) as w:
        for b in batches:
            w.write_batch(b)
    rng = np.random.default_rng(3)
    write_mmidx(root / "g-shard", [[list(rng.integers(0, 1000, int(rng.integers(1, 50))))] for _ in range(60)])
    return held


def comparable(report) -> dict:
    out = report.to_dict()
    out["files"] = [{k: v for k, v in f.items() if k not in NOT_COMPARED} for f in out["files"]]
    out["options"].pop("parity", None)  # the guard's sample is drawn by path, and timed
    return out


def scan_both(local, remote, **kw):
    return scan(local, **kw), scan(remote, **kw)


def test_every_format_through_s3_equals_the_local_scan(tmp_path, s3, endpoint):
    data = tmp_path / "data"
    every_format(data)
    bucket = new_bucket(s3)
    s3.upload(bucket, data, "corpus/")
    options = dict(
        training=TrainingOptions(seq_len=32, global_batch_size=4, split="969, 30, 1"),
        verify_tokens=TokenCheckOptions(vocab_size=1000),
        text=TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), workers=2, unit_bytes=4096, append_eod=True),
    )
    local, remote = scan_both([str(data)], [f"s3://{bucket}/corpus/"], **options)
    assert local.ok and remote.ok, (local.failures, remote.failures)
    assert len(remote.files) == 10
    assert comparable(remote) == comparable(local)
    # The local scan agrees with the definition, so the remote one does too.
    tok = Tokenizer.from_file(tokenizer_fixtures.bytelevel_bpe())
    plain = documents(400, 1)
    expected = sum(n + (n > 0) for n in (len(tok.encode(d).ids) for d in plain))
    assert remote.files[0].tokens == expected
    for f in remote.to_dict()["files"]:
        assert f["path"].startswith(f"s3://{bucket}/corpus/")
        for part in f["identity"]:
            assert part["path"].startswith(f"s3://{bucket}/corpus/") and part["size"] > 0 and part["etag"]


def test_a_glob_and_single_objects_through_s3(tmp_path, s3, endpoint):
    data = tmp_path / "data"
    held = every_format(data)
    bucket = new_bucket(s3)
    s3.upload(bucket, data, "x/")
    tok = tokenizer_fixtures.bytelevel_bpe()
    text = TextOptions(tokenizer=tok, workers=1)
    remote = scan([f"s3://{bucket}/**/*.jsonl.*", f"s3://{bucket}/x/g-shard"], text=text)
    local = scan([str(data / "*.jsonl.*"), str(data / "g-shard")], text=text)
    assert remote.ok and [f.documents for f in remote.files[:4]] == [
        held[f"b.jsonl.{c}"] for c in ("bz2", "gz", "xz", "zst")
    ]
    assert comparable(remote) == comparable(local)


def run_cli(*args, env=None, timeout=180):
    full = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "tokcount", *map(str, args)], capture_output=True, text=True, env=full, timeout=timeout
    )


def test_cli_storage_option_endpoint_and_missing_objects(tmp_path, s3, monkeypatch):
    data = tmp_path / "data"
    every_format(data)
    bucket = new_bucket(s3)
    s3.upload(bucket, data)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    tok = tokenizer_fixtures.bytelevel_bpe()
    option = ["--storage-option", f"endpoint_url={s3.endpoint}", "--storage-option", "region=us-east-1"]
    ok = run_cli("scan", f"s3://{bucket}/c.parquet", "--tokenizer", tok, "--json", *option)
    assert ok.returncode == 0, ok.stderr
    local = run_cli("scan", data / "c.parquet", "--tokenizer", tok, "--json")
    remote_doc, local_doc = json.loads(ok.stdout), json.loads(local.stdout)
    assert remote_doc["total"] == local_doc["total"] and remote_doc["total"]["documents"] == 300
    missing = run_cli(
        "scan",
        f"s3://{bucket}/nope.jsonl",
        f"s3://no-such-bucket-{os.getpid()}/x/*.parquet",
        "--tokenizer",
        tok,
        *option,
    )
    assert missing.returncode == 2
    errors = [line for line in missing.stderr.splitlines() if line.startswith("tokcount: error:")]
    assert len(errors) == 2, missing.stderr
    by_uri = {line.split(": ")[2]: line for line in errors}
    assert "not found" in by_uri[f"s3://{bucket}/nope.jsonl"]
    assert "no object matches" in by_uri[f"s3://no-such-bucket-{os.getpid()}/x/*.parquet"]
    assert "Traceback" not in missing.stderr
    bad_option = run_cli("scan", f"s3://{bucket}/c.parquet", "--storage-option", "novalue", "--tokenizer", tok)
    assert bad_option.returncode == 1 and "KEY=VALUE" in bad_option.stderr


def test_no_credentials_is_one_line(tmp_path, s3):
    env = {k: "" for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")}
    env.update(
        HOME=str(tmp_path), AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none")
    )
    env["AWS_ENDPOINT_URL"] = s3.endpoint
    full = {k: v for k, v in dict(os.environ, **env).items() if v != ""}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokcount",
            "scan",
            "s3://some-bucket/data.jsonl",
            "--tokenizer",
            tokenizer_fixtures.bytelevel_bpe(),
        ],
        capture_output=True,
        text=True,
        env=dict(full, PYTHONPATH=str(ROOT)),
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "s3://some-bucket/data.jsonl" in result.stderr and "no credentials" in result.stderr
    assert "Traceback" not in result.stderr


def test_server_errors_are_retried_and_the_count_stays_exact(tmp_path, s3, proxy):
    data = tmp_path / "data"
    every_format(data)
    bucket = new_bucket(s3)
    s3.upload(bucket, data)
    text = TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), workers=1, unit_bytes=4096)
    local = scan([str(data)], text=text)
    proxy.fail_first = 3  # the listing's first attempts: botocore's standard retries get through
    proxy.cut_bodies = {"a-plain.jsonl": 1, "c.parquet": 1, "b.jsonl.zst": 1}  # one dropped body each
    remote = scan([f"s3://{bucket}/"], text=text)
    assert remote.ok, remote.failures
    assert comparable(remote) == comparable(local)
    assert proxy.fail_first == 0 and not any(proxy.cut_bodies.values())


def test_what_keeps_failing_fails_its_file_with_one_line(tmp_path, s3, proxy):
    data = tmp_path / "data"
    every_format(data)
    bucket = new_bucket(s3)
    s3.upload(bucket, data)
    text = TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), workers=1)
    proxy.cut_bodies = {"b.jsonl.gz": 1000}  # every attempt dropped mid-body
    proxy.deny = {"e.arrow"}
    start = time.monotonic()
    report = scan([f"s3://{bucket}/"], text=text, storage_options={"config_kwargs.retries.max_attempts": 2})
    elapsed = time.monotonic() - start
    failed = {e.path: str(e) for e in report.failures}
    assert set(failed) == {f"s3://{bucket}/b.jsonl.gz", f"s3://{bucket}/e.arrow"}, failed
    assert (
        "connection dropped" in failed[f"s3://{bucket}/b.jsonl.gz"] or "payload" in failed[f"s3://{bucket}/b.jsonl.gz"]
    )
    assert "access denied" in failed[f"s3://{bucket}/e.arrow"]
    assert all("\n" not in m for m in failed.values())
    assert len(report.files) == 8 and elapsed < 120  # bounded retries, not a hang
    # The other files are exact: nothing of the failed ones is in the totals.
    local = scan(
        [str(p) for p in sorted(data.iterdir()) if p.name not in ("b.jsonl.gz", "e.arrow") and p.suffix != ".idx"],
        text=text,
    )
    assert report.total == local.total


def test_server_that_keeps_answering_500_fails_after_bounded_retries(tmp_path, s3, proxy):
    bucket = new_bucket(s3)
    s3.client.put_object(Bucket=bucket, Key="a.jsonl", Body=jsonl_bytes(documents(10, 1)))
    proxy.fail_first = 10**6
    report = scan(
        [f"s3://{bucket}/a.jsonl"],
        text=TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), workers=1),
        storage_options={"config_kwargs.retries.max_attempts": 3},
    )
    assert not report.files and len(report.failures) == 1
    message = str(report.failures[0])
    assert message.startswith(f"s3://{bucket}/a.jsonl: ") and "\n" not in message
    attempts = len(proxy.requests)
    assert 3 <= attempts <= 20, proxy.requests


def test_a_key_that_vanishes_between_listing_and_reading(tmp_path, s3, proxy):
    data = tmp_path / "data"
    for i in range(4):
        (data / f"p{i}.jsonl").parent.mkdir(parents=True, exist_ok=True)
        (data / f"p{i}.jsonl").write_bytes(jsonl_bytes(documents(20, i)))
    bucket = new_bucket(s3)
    s3.upload(bucket, data)
    proxy.delete_after_listing = (bucket, "p2.jsonl")
    text = TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), workers=1)
    report = scan([f"s3://{bucket}/*.jsonl"], text=text)
    assert [f.path for f in report.files] == [f"s3://{bucket}/p{i}.jsonl" for i in (0, 1, 3)]
    assert [e.path for e in report.failures] == [f"s3://{bucket}/p2.jsonl"]
    assert "not found" in str(report.failures[0])
    local = scan([str(data / f"p{i}.jsonl") for i in (0, 1, 3)], text=text)
    assert report.total == local.total


def test_https_single_file_equals_the_local_scan(tmp_path):
    pytest.importorskip("aiohttp")
    data = tmp_path / "www"
    every_format(data)
    server = RangeHTTPServer(data)
    try:
        text = TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), workers=1, unit_bytes=4096)
        names = ["a-plain.jsonl", "b.jsonl.zst", "c.parquet", "e.arrow"]
        local = scan([str(data / n) for n in names], text=text)
        remote = scan([f"{server.url}/{n}" for n in names], text=text)
        assert remote.ok, remote.failures
        assert comparable(remote) == comparable(local)
        missing = scan([f"{server.url}/missing.jsonl"], text=text)
        assert len(missing.failures) == 1 and missing.failures[0].path == f"{server.url}/missing.jsonl"
    finally:
        server.stop()


def test_a_missing_optional_package_says_what_to_install():
    pytest.importorskip("tokcount")
    import importlib.util

    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed")
    result = run_cli("scan", "gs://bucket/data.jsonl", "--tokenizer", tokenizer_fixtures.bytelevel_bpe())
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "tokcount: error: gs://bucket/data.jsonl: reading gs:// needs the gcsfs package: pip install 'tokcount[gcs]'"
    ]


def test_hf_uri_offline_is_one_line(tmp_path):
    pytest.importorskip("huggingface_hub")
    result = run_cli(
        "scan",
        "hf://datasets/no-such-user/no-such-dataset/data/*.parquet",
        "--tokenizer",
        tokenizer_fixtures.bytelevel_bpe(),
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)},
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tokcount: error: hf://datasets/no-such-user/no-such-dataset/"), (
        lines
    )


def test_ten_thousand_small_objects_scanned_exactly(tmp_path, s3, endpoint):
    """10,000 objects, seeded straight into the server's store (uploading them one request each
    would take a minute); every one is then listed and read over HTTP."""
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID

    bucket = new_bucket(s3)
    store = get_backend("s3")[DEFAULT_ACCOUNT_ID]["global"]
    tok = Tokenizer.from_file(tokenizer_fixtures.bytelevel_bpe())
    words = documents(64, 5)
    expected_tokens = 0
    for i in range(10_000):
        docs = [words[i % 64], words[(i * 7) % 64]]
        store.put_object(bucket, f"many/{i:05d}.jsonl", jsonl_bytes(docs))
        expected_tokens += sum(len(tok.encode(d).ids) for d in docs)
    report = scan([f"s3://{bucket}/many/"], text=TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), workers=2))
    assert report.ok and len(report.files) == 10_000
    assert report.total["documents"] == 20_000 and report.total["tokens"] == expected_tokens


def test_only_what_the_work_needs_is_downloaded(tmp_path, s3, proxy):
    """The .bin is only sized (HEAD) unless its tokens are verified, then read by ranges; a
    Parquet file is read by ranges (footer, then the text column's chunks), never whole."""
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(1)
    write_mmidx(data / "shard", [[list(rng.integers(0, 1000, 200))] for _ in range(500)])
    noise = [rng.bytes(2000) for _ in range(400)]  # incompressible: 800 KB the scan must not fetch
    table = pa.table({"text": documents(400, 2), "other": noise})
    pq.write_table(table, data / "t.parquet", row_group_size=100)
    bucket = new_bucket(s3)
    s3.upload(bucket, data)
    text = TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), workers=1)

    def bytes_asked(name: str) -> list[int | None]:
        out = []
        for method, path, wanted in proxy.requests:
            if method == "GET" and path.split("?")[0].endswith(f"/{name}"):
                a, b = wanted.removeprefix("bytes=").split("-") if wanted else (None, None)
                out.append(int(b) - int(a) + 1 if a is not None else None)
        return out

    report = scan([f"s3://{bucket}/shard", f"s3://{bucket}/t.parquet"], text=text)
    assert report.ok and report.files[0].tokens == 500 * 200
    assert bytes_asked("shard.bin") == []  # sized by a HEAD, never read
    assert bytes_asked("shard.idx") == [None]  # read whole, once
    parquet = bytes_asked("t.parquet")
    assert parquet and None not in parquet  # ranged reads only
    size = (data / "t.parquet").stat().st_size
    assert sum(parquet) < size / 2  # footers and the text column's chunks, not the other column
    proxy.requests.clear()
    verified = scan([f"s3://{bucket}/shard"], verify_tokens=TokenCheckOptions(vocab_size=1000))
    assert verified.ok and verified.files[0].extra["token_check"]["max_token_id"] == max(
        int(x) for x in np.fromfile(data / "shard.bin", dtype=np.uint16)
    )
    assert sum(bytes_asked("shard.bin")) == (data / "shard.bin").stat().st_size


def test_check_says_it_reads_local_files_only():
    result = run_cli("check", "s3://bucket/x_text_document", "--split", "969, 30, 1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "tokcount: error: s3://bucket/x_text_document: tokcount check reads local files only (tokcount scan reads URIs)"
    ]


def test_the_unit_cache_keys_objects_on_their_etag(tmp_path, s3, endpoint):
    from tokcount import CacheOptions

    bucket = new_bucket(s3)
    for i in range(3):
        s3.client.put_object(Bucket=bucket, Key=f"p{i}.jsonl", Body=jsonl_bytes(documents(30, i)))
    text = TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), workers=1)
    cache = CacheOptions(directory=str(tmp_path / "cache"))
    first = scan([f"s3://{bucket}/"], text=text, cache=cache)
    assert first.ok and first.cache["units_counted"] == 3
    again = scan([f"s3://{bucket}/"], text=text, cache=cache)
    assert again.cache["units_counted"] == 0 and again.total == first.total
    s3.client.put_object(Bucket=bucket, Key="p1.jsonl", Body=jsonl_bytes(documents(31, 9)))  # a new ETag
    changed = scan([f"s3://{bucket}/"], text=text, cache=cache)
    assert changed.cache["units_counted"] == 1 and changed.files[1].documents == 31
