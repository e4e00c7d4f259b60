"""Per-file overhead of remote inputs: N small jsonl files scanned locally and as objects on a
real S3-compatible server (moto's, on 127.0.0.1), in the same run.

    python benches/bench_remote.py --files 2000 --workers 2
    python -m pytest benches/bench_remote.py -s        # the same with 500 files

Prints seconds per file for each, their ratio, and the requests the S3 scan made per file.
moto's server is pure Python and shares the machine: its per-request cost dominates the S3
figure, so treat it as an upper bound for a real store, and compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from remote_servers import AWS_ENV, FaultProxy, MotoS3  # noqa: E402  (test-side servers)


def _document(i: int) -> bytes:
    return (json.dumps({"id": i, "text": f"document {i} of a small file, with a few words"}) + "\n").encode()


def measure(files: int, workers: int) -> dict:
    import tokenizer_fixtures
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID

    from tokcount import TextOptions, scan

    os.environ.update(AWS_ENV)
    server = MotoS3()
    proxy = FaultProxy(server)  # counts the requests; injects nothing
    os.environ["AWS_ENDPOINT_URL"] = proxy.endpoint
    try:
        server.bucket("bench")
        store = get_backend("s3")[DEFAULT_ACCOUNT_ID]["global"]
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(files):
                body = _document(i) * 3
                Path(tmp, f"{i:06d}.jsonl").write_bytes(body)
                store.put_object("bench", f"small/{i:06d}.jsonl", body)
            text = TextOptions(tokenizer=tokenizer_fixtures.bytelevel_bpe(), workers=workers)
            scan([tmp], text=text)  # warm: the engine's first load is not per-file overhead
            start = time.perf_counter()
            local = scan([tmp], text=text)
            local_seconds = time.perf_counter() - start
            proxy.requests.clear()
            start = time.perf_counter()
            remote = scan(["s3://bench/small/"], text=text)
            remote_seconds = time.perf_counter() - start
        assert local.ok and remote.ok and local.total == remote.total, (local.failures, remote.failures)
        return {
            "files": files,
            "workers": workers,
            "local_ms_per_file": round(1000 * local_seconds / files, 3),
            "s3_ms_per_file": round(1000 * remote_seconds / files, 3),
            "s3_over_local": round(remote_seconds / local_seconds, 1),
            "s3_requests_per_file": round(len(proxy.requests) / files, 3),
        }
    finally:
        proxy.stop()
        server.stop()


def test_per_file_overhead():
    print(measure(500, 2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(measure(args.files, args.workers), indent=2))
