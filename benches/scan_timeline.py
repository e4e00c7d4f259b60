"""Where a whole ``tokcount scan`` spends its time: the phases of the scanning process and of
each worker, wall and CPU seconds, from marks written as the scan runs (the README's
breakdown). Not a pytest-benchmark: one scan, printed as a table.

    python benches/scan_timeline.py DATA.jsonl --tokenizer T.json --engine gigatoken --no-cache

Everything after the script name is ``tokcount``'s scan arguments. The marks wrap tokcount's
own functions in this process before the scan starts (forked workers inherit the wrappers).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

STARTED = time.perf_counter()
MARKS = tempfile.NamedTemporaryFile(prefix="tokcount-timeline-", suffix=".txt", delete=False).name


def mark(what: str) -> None:
    line = f"{time.perf_counter() - STARTED:.4f} {time.process_time():.4f} {os.getpid()} {what}\n"
    with open(MARKS, "a") as f:
        f.write(line)


def wrap(owner, name: str, label: str) -> None:
    original = getattr(owner, name)

    def wrapped(*args, **kwargs):
        mark(f"{label} begin")
        try:
            return original(*args, **kwargs)
        finally:
            mark(f"{label} end")

    setattr(owner, name, wrapped)


def main() -> int:
    mark("process start")
    import tokcount.cli
    import tokcount.counting
    import tokcount.scanning

    mark("imports done")
    wrap(tokcount.scanning, "_engine_for", "engine choice")
    wrap(tokcount.scanning, "prepare_worker", "worker set-up in the scanning process")
    wrap(tokcount.counting.UnitCounter, "count_unit", "unit")
    sys.argv = ["tokcount", "scan", *sys.argv[1:]]
    try:
        code = tokcount.cli.main()
    finally:
        mark("scan done")
    report(tokcount.counting)
    return code or 0


def report(_counting) -> None:
    rows = [line.split(" ", 3) for line in open(MARKS).read().splitlines()]
    os.unlink(MARKS)
    parent = rows[0][2]
    first: dict[str, tuple[float, float]] = {}
    last: dict[str, tuple[float, float]] = {}
    for wall, cpu, pid, what in rows:
        key = f"{pid} {what}"
        first.setdefault(key, (float(wall), float(cpu)))
        last[key] = (float(wall), float(cpu))

    def at(pid: str, what: str, which=first) -> tuple[float, float]:
        return which[f"{pid} {what}"]

    out = sys.stderr
    print(f"\n{'phase':58s} {'from':>7s} {'to':>7s} {'CPU s':>7s}", file=out)

    def row(name: str, start: tuple[float, float], stop: tuple[float, float], cpu: float | None = None) -> None:
        used = stop[1] - start[1] if cpu is None else cpu
        print(f"{name:58s} {start[0]:7.3f} {stop[0]:7.3f} {used:7.3f}", file=out)

    row("scanning process: interpreter and imports", (0.0, 0.0), at(parent, "imports done"))
    row(
        "scanning process: tokenizer spec and engine choice",
        at(parent, "engine choice begin"),
        at(parent, "engine choice end"),
    )
    setup = f"{parent} worker set-up in the scanning process begin"
    if setup in first:
        row(
            "scanning process: worker state (tokenizer, engine, kernels)",
            first[setup],
            at(parent, "worker set-up in the scanning process end"),
        )
    workers = sorted({pid for _, _, pid, what in rows if what == "unit begin" and pid != parent})
    for pid in workers or [parent]:
        begin, end = at(pid, "unit begin"), at(pid, "unit end", last)
        units = sum(1 for _, _, p, what in rows if p == pid and what == "unit end")
        label = "worker" if pid != parent else "scanning process"
        # a forked worker's CPU clock starts at 0
        row(f"{label} {pid}: counting {units} units", begin, end, end[1] - (begin[1] if pid == parent else 0.0))
    done = at(parent, "scan done")
    ends = [at(pid, "unit end", last) for pid in workers or [parent]]
    last_unit = max(ends, key=lambda e: e[0])
    before = first.get(f"{parent} worker set-up in the scanning process end") or at(parent, "engine choice end")
    print(
        f"{'scanning process: results as units finish, then plan and report':58s} "
        f"{before[0]:7.3f} {done[0]:7.3f} {done[1] - before[1]:7.3f}",
        file=out,
    )
    print(f"{'  of which after the last unit':58s} {last_unit[0]:7.3f} {done[0]:7.3f}", file=out)
    print(f"{'whole scan (wall)':58s} {0.0:7.3f} {done[0]:7.3f}", file=out)


if __name__ == "__main__":
    sys.exit(main())
