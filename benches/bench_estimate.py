"""Coverage of ``scan --estimate``'s 95 % intervals over 200 seeds, and the bytes they read.

The whole shared corpus (decompressed once to a plain jsonl, so that it can be sampled by
byte ranges) with the GPT-2 tokenizer, and the generated skewed corpora of
tests/estimate_harness.py (heavy-tailed lengths; big files among many small ones, Parquet and
gzip; four scripts) with a small trained tokenizer, at the default range sizes. Every sampling
unit is counted once with the real counting code; the real estimator then runs once per seed
over those measured units (see tests/estimate_harness.py).

    python benches/bench_estimate.py [--seeds 200] [--target-error 0.01] [--out DIR] [--group-by]

Prints one JSON line per corpus: exact totals, units, and the coverage summary. With
``--group-by``, the corpora with a ``source`` key (the shared corpus, and a generated mixture of
nine sources from ~33 % of the tokens down to ~1 %, one file shuffled, one sorted by source, one
Parquet) are estimated per source, and each group's coverage is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import estimate_harness as harness  # noqa: E402
import tokenizer_fixtures  # noqa: E402

from tokcount.options import TextOptions  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"


def shared_corpus(directory: Path) -> list[str] | None:
    corpus = SHARED / "corpus" / "bench.jsonl.zst"
    if not corpus.is_file():
        return None
    out = directory / "bench.jsonl"
    if not out.is_file():
        with pa.input_stream(str(corpus), compression="zstd") as src, open(out, "wb") as dst:
            while chunk := src.read(1 << 24):
                dst.write(chunk)
    return [str(out)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--target-error", type=float, default=0.01)
    parser.add_argument("--out", help="where to write the corpora (default: a temporary directory)")
    parser.add_argument("--only", help="one corpus: shared, heavy, mixed, languages, sources")
    parser.add_argument("--group-by", action="store_true", help="per-source estimates (shared, sources)")
    args = parser.parse_args()
    base = Path(args.out or tempfile.mkdtemp(prefix="tokcount-estimate-"))
    small = tokenizer_fixtures.bytelevel_bpe()
    corpora = {
        "shared": (lambda d: shared_corpus(d), tokenizer_fixtures.shared_tokenizer("gpt2")),
        "heavy": (lambda d: harness.heavy_tailed_corpus(d, documents=30_000), small),
        "mixed": (lambda d: harness.huge_and_small_files_corpus(d, small_files=200), small),
        "languages": (lambda d: harness.languages_corpus(d, documents=9_000), small),
        "sources": (lambda d: harness.sources_corpus(d, documents=25_000), small),
    }
    grouped = {"shared", "sources"} if args.group_by else set()
    for name, (make, tokenizer) in corpora.items():
        if (args.only and name != args.only) or (args.group_by and name not in grouped):
            continue
        directory = base / name
        directory.mkdir(parents=True, exist_ok=True)
        paths = make(directory)
        if paths is None or tokenizer is None:
            print(json.dumps({"corpus": name, "skipped": "shared corpus or tokenizer not found"}))
            continue
        started = time.monotonic()
        group_by = "source" if name in grouped else None
        population = harness.measure_population(paths, TextOptions(tokenizer=tokenizer, group_by=group_by))
        measured = time.monotonic() - started
        result = harness.coverage(population, range(args.seeds), target_error=args.target_error)
        print(
            json.dumps(
                {
                    "corpus": name,
                    "files": len(paths),
                    "bytes": population.total_bytes,
                    "tokens": population.exact_tokens,
                    "documents": population.exact_documents,
                    "units": len(population.measures),
                    "strata": len(population.strata),
                    "target_error": args.target_error,
                    "measure_seconds_busy_machine": round(measured, 1),
                    **result.to_dict(),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
