"""The scanning process's peak memory against the number of documents (README, "The driver's
memory"). Each measurement runs one scan, with a training plan and a split, in a fresh Python
process, and reads that process's own peak RSS (VmHWM: its workers are not included) and its
anonymous and file-backed parts at the end.

    python benches/driver_memory.py index 1e6 1e7 1e8    # .bin/.idx of N one-token documents
    python benches/driver_memory.py jsonl 1e5 1e6 1e7    # jsonl of N tiny documents, 2 workers
    python benches/driver_memory.py jsonl 1e6 --executor ray

The data are generated in a temporary directory (the .bin is sparse: counting never reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 10_000_000

SCAN = """
import json, os, sys
if os.environ.get("TOKCOUNT_SOURCE"):  # another checkout of tokcount, e.g. to compare with main
    sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__]
    sys.path.insert(0, os.environ["TOKCOUNT_SOURCE"])
from tokcount.options import TextOptions, TrainingOptions
from tokcount.scanning import scan
args = json.loads(sys.argv[1])
training = TrainingOptions(seq_len=2048, global_batch_size=1024, split="969, 30, 1")
extra = {"executor": args["executor"]} if args["executor"] != "local" else {}
text = TextOptions(tokenizer=args["tokenizer"], workers=args["workers"], **extra)
report = scan(args["paths"], training, text=text)
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
kib = lambda name: int(status[name].split()[0])
print(json.dumps({"documents": report.total["documents"], "tokens": report.total["tokens"],
                  "train_tokens": report.plan.splits["train"].tokens,
                  "peak_rss_kib": kib("VmHWM"), "anon_kib": kib("RssAnon"), "file_kib": kib("RssFile")}))
"""


def write_index(prefix: Path, n: int) -> None:
    """n one-token documents, written in chunks (spec §1.1 layout)."""
    with open(f"{prefix}.idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, 8, n, n + 1))
        for lo in range(0, n, CHUNK):
            f.write(np.ones(min(CHUNK, n - lo), dtype="<i4").tobytes())
        for lo in range(0, n, CHUNK):
            f.write((np.arange(lo, min(lo + CHUNK, n), dtype="<i8") * 2).tobytes())
        for lo in range(0, n + 1, CHUNK):
            f.write(np.arange(lo, min(lo + CHUNK, n + 1), dtype="<i8").tobytes())
    with open(f"{prefix}.bin", "wb") as f:
        f.truncate(2 * n)


def write_jsonl(path: Path, n: int) -> None:
    words = ["a", "bb", "word", "two words", "x y z"]
    with open(path, "w") as f:
        for lo in range(0, n, 100_000):
            f.write("".join(json.dumps({"text": words[i % 5]}) + "\n" for i in range(lo, min(lo + 100_000, n))))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["index", "jsonl"])
    p.add_argument("counts", nargs="+", type=float)
    p.add_argument("--executor", default="local")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    import tokenizer_fixtures

    tokenizer = tokenizer_fixtures.bytelevel_bpe() if args.kind == "jsonl" else None
    for count in args.counts:
        n = int(count)
        with tempfile.TemporaryDirectory(prefix="tokcount-mem-") as tmp:
            if args.kind == "index":
                path = Path(tmp) / "tiny"
                write_index(path, n)
            else:
                path = Path(tmp) / "tiny.jsonl"
                write_jsonl(path, n)
            payload = {"paths": [str(path)], "tokenizer": tokenizer, "workers": args.workers, "executor": args.executor}
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            out = subprocess.run(
                [sys.executable, "-c", SCAN, json.dumps(payload)], capture_output=True, text=True, env=env, check=True
            ).stdout
            result = json.loads(out.strip().splitlines()[-1])
            mib = {k: round(v / 1024) for k, v in result.items() if k.endswith("_kib")}
            print(
                f"{args.kind} {n:>12,} documents: peak RSS {mib['peak_rss_kib']} MiB, at the end anon "
                f"{mib['anon_kib']} MiB + file-backed {mib['file_kib']} MiB; tokens {result['tokens']:,}",
                flush=True,
            )


if __name__ == "__main__":
    main()
