"""Per-unit overhead of the executors, local worker processes against Ray tasks on a local Ray
(docs/scaling.md). Two measurements, same machine, same run:

- scheduling alone: the real executors run N tasks that do nothing (a no-op over a tiny
  payload), so the wall time per task is what the executor itself costs;
- a scan of N small jsonl files (one document each, one work unit each) through
  ``tokcount.scan``: the overhead of a unit including opening its file, the tokenizer call
  and the result's trip back.

    python benches/ray_overhead.py --tasks 10000 --files 10000

Numbers depend on the machine's load; compare local and Ray within one run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def nothing(task: int) -> int:
    return task


def time_executor(executor, n: int) -> float:
    start = time.perf_counter()
    done = sum(1 for _ in executor.run(nothing, list(range(n)), [1] * n))
    assert done == n
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    import ray
    import tokenizer_fixtures

    from tokcount.executors import LocalExecutor
    from tokcount.options import TextOptions
    from tokcount.ray_executor import RayExecutor
    from tokcount.scanning import scan

    temp = tempfile.mkdtemp(prefix="tkray-", dir="/tmp")
    start = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, _temp_dir=temp, logging_level="ERROR")
    print(f"ray.init (a local Ray): {time.perf_counter() - start:.1f} s")
    try:
        with LocalExecutor(args.workers) as local:
            local.start()
            time_executor(local, 100)  # workers up
            t_local = time_executor(local, args.tasks)
        with RayExecutor(workers=args.workers) as on_ray:
            time_executor(on_ray, 100)
            t_ray = time_executor(on_ray, args.tasks)
        print(
            f"scheduling {args.tasks} no-op tasks on {args.workers} workers: local {t_local:.2f} s "
            f"({1e6 * t_local / args.tasks:.0f} us/task), Ray {t_ray:.2f} s ({1e6 * t_ray / args.tasks:.0f} us/task)"
        )

        files = Path(tempfile.mkdtemp(prefix="tokcount-files-"))
        for i in range(args.files):
            (files / f"{i:06d}.jsonl").write_text(json.dumps({"text": f"document {i} with a few words"}) + "\n")
        tok = tokenizer_fixtures.bytelevel_bpe()
        timings = {}
        reports = {}
        for executor in ("local", "ray"):
            options = TextOptions(tokenizer=tok, engine="hf", workers=args.workers, executor=executor)
            scan([str(files / "000000.jsonl"), str(files / "000001.jsonl")], text=options)  # warm: workers, caches
            start = time.perf_counter()
            reports[executor] = scan([str(files / "*.jsonl")], text=options).total
            timings[executor] = time.perf_counter() - start
        assert reports["local"] == reports["ray"], reports
        print(
            f"scan of {args.files} one-document files on {args.workers} workers: "
            + ", ".join(f"{k} {v:.2f} s ({1e3 * v / args.files:.2f} ms/file)" for k, v in timings.items())
            + f"; {reports['ray']['tokens']} tokens both"
        )
        shutil.rmtree(files, ignore_errors=True)
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
