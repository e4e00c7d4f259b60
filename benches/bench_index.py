"""Index counting and token verification against plain numpy baselines, same data, same run.

    python -m pytest benches/bench_index.py --benchmark-columns=min,mean,rounds

Compare the `baseline` and `tokcount` rows of each group; the README lists the measured ratios.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tokcount.formats.indexed import check_tokens, open_shard

N_SEQUENCES = 10_000_000
BIN_TOKENS = 600_000_000  # uint16: 1.2 GB
VOCAB = 50257


def _write_index(prefix, sizes, dtype_code=8, itemsize=2):
    pointers = np.zeros(len(sizes), dtype="<i8")
    np.cumsum(sizes[:-1].astype(np.int64) * itemsize, out=pointers[1:])
    doc_idx = np.arange(len(sizes) + 1, dtype="<i8")
    with open(f"{prefix}.idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, dtype_code, len(sizes), len(doc_idx)))
        f.write(sizes.astype("<i4").tobytes())
        f.write(pointers.tobytes())
        f.write(doc_idx.tobytes())


@pytest.fixture(scope="module")
def big_index(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("idx") / "big"
    sizes = np.random.default_rng(0).integers(1, 4096, N_SEQUENCES).astype(np.int32)
    _write_index(prefix, sizes)
    with open(f"{prefix}.bin", "wb") as f:  # sparse: counting never reads it
        f.truncate(int(sizes.sum(dtype=np.int64)) * 2)
    return prefix, int(sizes.sum(dtype=np.int64))


@pytest.fixture(scope="module")
def big_bin(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("bin") / "big"
    rng = np.random.default_rng(1)
    per_doc = 2000
    sizes = np.full(BIN_TOKENS // per_doc, per_doc, dtype=np.int32)
    _write_index(prefix, sizes)
    with open(f"{prefix}.bin", "wb") as f:
        chunk = 50_000_000
        for _ in range(0, BIN_TOKENS, chunk):
            f.write(rng.integers(0, VOCAB, chunk, dtype=np.uint16).tobytes())
    return prefix


@pytest.mark.benchmark(group="index count, 10M sequences")
def test_index_count_baseline(benchmark, big_index):
    prefix, expected = big_index

    def baseline():
        return int(
            np.memmap(f"{prefix}.idx", dtype=np.int32, mode="r", offset=34, shape=(N_SEQUENCES,)).sum(dtype=np.int64)
        )

    assert benchmark.pedantic(baseline, rounds=5, warmup_rounds=1) == expected


@pytest.mark.benchmark(group="index count, 10M sequences")
def test_index_count_tokcount(benchmark, big_index):
    prefix, expected = big_index
    shard = benchmark.pedantic(open_shard, args=(str(prefix),), rounds=5, warmup_rounds=1)
    assert shard.tokens == expected


@pytest.mark.benchmark(group="verify tokens, 1.2 GB uint16 .bin (page cache)")
def test_verify_tokens_numpy_baseline(benchmark, big_bin):
    def baseline():
        tokens = np.memmap(f"{big_bin}.bin", dtype=np.uint16, mode="r")
        return int(tokens.max()), int(np.count_nonzero(tokens >= VOCAB))

    top, bad = benchmark.pedantic(baseline, rounds=3, warmup_rounds=1)
    assert bad == 0 and top < VOCAB


@pytest.mark.benchmark(group="verify tokens, 1.2 GB uint16 .bin (page cache)")
def test_verify_tokens_tokcount(benchmark, big_bin):
    shard = open_shard(str(big_bin))
    check = benchmark.pedantic(check_tokens, args=(shard, VOCAB), rounds=3, warmup_rounds=1)
    assert check.out_of_range == 0 and check.max_token_id < VOCAB


@pytest.mark.benchmark(group="verify tokens + EOD, 1.2 GB uint16 .bin (page cache)")
def test_verify_tokens_eod_tokcount(benchmark, big_bin):
    shard = open_shard(str(big_bin))
    check = benchmark.pedantic(check_tokens, args=(shard, VOCAB, 0), rounds=3, warmup_rounds=1)
    assert check.documents_missing_eod > 0  # random data: almost no document ends in 0
