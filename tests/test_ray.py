"""The Ray executor on a real local Ray cluster (started once for this module): scans through it
equal the local scan, a worker killed mid-unit is retried and its unit counted once, a unit
whose worker keeps dying fails the scan by name, Ctrl-C cancels the cluster's tasks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tokenizer_fixtures
from process_killer import Killer
from tokenizers import Tokenizer

from tokcount.errors import FileCheckError
from tokcount.options import TextOptions, TrainingOptions
from tokcount.scanning import scan

ROOT = Path(__file__).resolve().parent.parent
TASK_TITLE = "ray::_run_on_ray"  # the process title Ray gives a worker while it runs one of our tasks


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    # Ray's unix sockets live under the temp dir: a short path keeps them under the 107-byte limit.
    temp_dir = tempfile.mkdtemp(prefix="tkray-", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, logging_level="ERROR", log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _task_processes() -> list[int]:
    """Worker processes of this test's cluster (children of its raylet, itself a child of this
    process) that are running a tokcount task right now."""
    children = _children(os.getpid())
    found = []
    for parent in children:
        for pid in _children(parent):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            if title == TASK_TITLE:
                found.append(pid)
    return found


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def _documents(n: int) -> list[str]:
    return [f"Line {i}: the quick brown fox, {i * 7919} jumps; Größe {i % 13}. " * (1 + i % 9) for i in range(n)]


def _exact(tok_path: str, texts: list[str]) -> int:
    tok = Tokenizer.from_file(tok_path)
    return sum(len(e.ids) for e in tok.encode_batch(texts))


def _without_timings(report: dict) -> dict:
    parity = report.get("options", {}).get("parity")
    if parity is not None:
        parity.pop("seconds", None)
        # Which samples the guard's time budget let it check depends on measured times; what
        # was sampled (checked or left) does not.
        parity["texts_sampled"] = parity.pop("texts_checked") + parity.pop("texts_unchecked", 0)
        parity.pop("chars_checked", None)
        parity.pop("prefixes_checked", None)
    return report


@pytest.mark.parametrize("engine", ["auto", "hf"])
def test_scan_on_ray_equals_local_scan_for_every_kind_of_unit(cluster, tmp_path, engine):
    tok = tokenizer_fixtures.bytelevel_bpe()
    docs = _documents(3000)
    plain = tmp_path / "plain.jsonl"  # several byte ranges
    plain.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    packed = tmp_path / "packed.jsonl.zst"  # interleaved parts of one stream
    with pa.output_stream(str(packed), compression="zstd") as out:
        out.write(plain.read_bytes())
    table = tmp_path / "table.parquet"  # row groups
    pq.write_table(pa.table({"text": docs[::-1]}), table, row_group_size=400)
    paths = [str(plain), str(packed), str(table)]
    training = TrainingOptions(seq_len=64, global_batch_size=8, split="969, 30, 1", train_iters=100, eval_interval=50)
    options = dict(tokenizer=tok, engine=engine, unit_bytes=64 << 10, append_eod=True, workers=2)
    local = scan(paths, training, text=TextOptions(**options)).to_dict()
    on_ray = scan(paths, training, text=TextOptions(executor="ray", **options)).to_dict()
    assert _without_timings(on_ray) == _without_timings(local)
    exact = _exact(tok, docs) + len(docs)  # + EOD: every document has tokens
    assert [f["tokens"] for f in on_ray["files"]] == [exact] * 3
    assert on_ray["complete"] and not on_ray["failures"]


class _Recorder:
    def __init__(self) -> None:
        self.started = 0
        self.sums = {"nbytes": 0, "tokens": 0, "documents": 0}

    def start(self, total_bytes: int) -> None:
        self.started = total_bytes

    def advance(self, nbytes: int = 0, tokens: int = 0, documents: int = 0) -> None:
        self.sums["nbytes"] += nbytes
        self.sums["tokens"] += tokens
        self.sums["documents"] += documents


def test_progress_comes_back_from_the_cluster(cluster, tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    docs = _documents(2000)
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    progress = _Recorder()
    report = scan([str(path)], progress=progress, text=TextOptions(tokenizer=tok, executor="ray", unit_bytes=32 << 10))
    assert progress.started == path.stat().st_size
    assert progress.sums == {"nbytes": path.stat().st_size, "tokens": report.total["tokens"], "documents": len(docs)}
    assert report.total["tokens"] == _exact(tok, docs)


LONG_UNIT_LINES = 12_000  # ~11 MB
ONE_UNIT = 64 << 20


def _long_unit(tmp_path: Path, lines: int) -> tuple[Path, list[str]]:
    """One work unit that takes a few seconds with the hf engine."""
    distinct = _documents(50)
    texts = [distinct[i % len(distinct)] * 3 for i in range(lines)]
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path, distinct


@tokenizer_fixtures.needs_tokenizers_0("needs a unit of several seconds: 1.x's encode is much slower")
def test_worker_killed_mid_unit_is_retried_and_counted_once(cluster, tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    path, distinct = _long_unit(tmp_path, LONG_UNIT_LINES)
    per_text = {t: len(Tokenizer.from_file(tok).encode(t * 3).ids) for t in distinct}
    exact = sum(per_text[distinct[i % len(distinct)]] for i in range(LONG_UNIT_LINES))
    killer = Killer(_task_processes, times=1)
    killer.start()
    try:
        report = scan(
            [str(path)], text=TextOptions(tokenizer=tok, engine="hf", executor="ray", workers=2, unit_bytes=ONE_UNIT)
        )
    finally:
        killer.stop.set()
        killer.join()
    assert len(killer.killed) == 1, "the worker was not caught mid-unit: the test proved nothing"
    assert report.ok and report.complete
    assert report.total["tokens"] == exact and report.total["documents"] == LONG_UNIT_LINES


@tokenizer_fixtures.needs_tokenizers_0("needs a unit of several seconds: 1.x's encode is much slower")
def test_unit_whose_worker_keeps_dying_fails_the_scan_naming_file_and_position(cluster, tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    path, _ = _long_unit(tmp_path, LONG_UNIT_LINES)
    killer = Killer(_task_processes, times=10, after=0.5)  # every attempt: the first and its 3 retries
    killer.start()
    try:
        with pytest.raises(FileCheckError) as failed:
            scan(
                [str(path)],
                text=TextOptions(tokenizer=tok, engine="hf", executor="ray", workers=2, unit_bytes=ONE_UNIT),
            )
    finally:
        killer.stop.set()
        killer.join()
    assert len(killer.killed) == 4
    message = str(failed.value)
    assert message.startswith(f"{path}: counting failed at bytes 0-{path.stat().st_size}: ")
    assert "died on all 4 attempts" in message


@tokenizer_fixtures.needs_tokenizers_0("needs a unit of several seconds: 1.x's encode is much slower")
def test_ctrl_c_cancels_the_cluster_tasks_and_keeps_the_finished_files(cluster, tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    small = tmp_path / "small.jsonl"
    small.write_text(json.dumps({"text": "done before the interrupt"}) + "\n")
    path, _ = _long_unit(tmp_path, 3 * LONG_UNIT_LINES)  # still one unit, of ~15 s

    def interrupt_when_counting() -> None:
        deadline = time.monotonic() + 60
        while not _task_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(4.0)  # the small file's unit is done by then
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does to the scanning process

    threading.Thread(target=interrupt_when_counting, daemon=True).start()
    sent = time.monotonic()
    report = scan(
        [str(path), str(small)],
        text=TextOptions(tokenizer=tok, engine="hf", executor="ray", workers=2, unit_bytes=ONE_UNIT),
    )
    assert not report.complete
    assert [f.path for f in report.files] == [str(small)]  # the long file is left out, not counted in part
    assert report.files[0].tokens == _exact(tok, ["done before the interrupt"])
    # the cluster stops counting: the task is cancelled, not left to run to its end
    deadline = time.monotonic() + 10
    while _task_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _task_processes() == []
    assert time.monotonic() - sent < 60


def test_ten_thousand_small_files_are_counted_exactly_on_ray(cluster, tmp_path):
    tok = tokenizer_fixtures.bytelevel_bpe()
    texts = [f"file {i}: {'tokens ' * (i % 17)}{i * 31}" for i in range(10_000)]
    for i, t in enumerate(texts):
        (tmp_path / f"{i:05d}.jsonl").write_text(json.dumps({"text": t}) + "\n")
    report = scan([str(tmp_path / "*.jsonl")], text=TextOptions(tokenizer=tok, executor="ray", engine="hf"))
    assert report.ok and report.complete and len(report.files) == 10_000
    assert [f.tokens for f in report.files] == [len(e.ids) for e in Tokenizer.from_file(tok).encode_batch(texts)]


def test_missing_ray_is_one_line_saying_how_to_install_it(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"text": "x"}) + "\n")
    code = (
        "import sys; sys.modules['ray'] = None\n"  # an import of ray now raises ImportError
        "from tokcount.cli import main\n"
        f"sys.exit(main(['scan', {str(path)!r}, '--tokenizer', {tokenizer_fixtures.bytelevel_bpe()!r}, "
        "'--executor', 'ray']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT))
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "tokcount: error: the Ray executor (--executor ray) needs Ray: pip install 'tokcount[ray]'"
    ]


def test_ray_address_without_the_ray_executor_is_a_usage_error(tmp_path):
    from tokcount.errors import UsageError

    with pytest.raises(UsageError, match="--ray-address only applies with --executor ray"):
        scan([str(tmp_path)], text=TextOptions(ray_address="127.0.0.1:6379"))


def test_cli_starts_a_local_ray_for_the_scan_and_prints_the_local_report(tmp_path):
    pytest.importorskip("ray")
    tok = tokenizer_fixtures.bytelevel_bpe()
    docs = _documents(500)
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(ROOT)
    outputs = {}
    for executor in ("local", "ray"):
        done = subprocess.run(
            [sys.executable, "-m", "tokcount", "scan", str(path), "--tokenizer", tok, "--json"]
            + ["--workers", "2", "--executor", executor, "--seq-len", "32", "--gbs", "4", "--split", "90, 5, 5"]
            + ["--no-cache"],  # the second run would read the first one's units
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        outputs[executor] = _without_timings(json.loads(done.stdout))  # stdout is the JSON alone
    assert outputs["ray"] == outputs["local"]
    assert outputs["ray"]["total"]["tokens"] == _exact(tok, docs)


def _sourced(n: int) -> list[dict]:
    return [{"text": t, "source": ["web", "code", "books"][i % 3]} for i, t in enumerate(_documents(n))]


def test_group_by_on_ray_equals_local_and_a_direct_count(cluster, tmp_path):
    from test_grouping import as_dict, expected_groups

    tok = tokenizer_fixtures.bytelevel_bpe()
    docs = _sourced(3000)
    plain = tmp_path / "plain.jsonl"  # several byte ranges
    plain.write_text("".join(json.dumps(d) + "\n" for d in docs))
    packed = tmp_path / "packed.jsonl.zst"  # interleaved parts of one stream
    with pa.output_stream(str(packed), compression="zstd") as out:
        out.write(plain.read_bytes())
    table = tmp_path / "table.parquet"  # row groups, the group a column
    pq.write_table(pa.Table.from_pylist(docs[::-1]), table, row_group_size=400)
    paths = [str(plain), str(packed), str(table)]
    options = dict(tokenizer=tok, unit_bytes=64 << 10, group_by="source", workers=2)
    local = scan(paths, text=TextOptions(**options)).to_dict()
    on_ray = scan(paths, text=TextOptions(executor="ray", **options)).to_dict()
    assert on_ray["groups"] == local["groups"]
    want = {g: [3 * n for n in row] for g, row in expected_groups(docs, lambda d: d["source"], tok).items()}
    assert as_dict(on_ray["groups"]) == want


@tokenizer_fixtures.needs_tokenizers_0("needs a unit of several seconds: 1.x's encode is much slower")
def test_ctrl_c_on_ray_reports_the_groups_counted_so_far(cluster, tmp_path, capsys):
    from test_grouping import as_dict, expected_groups

    from tokcount import render

    tok = tokenizer_fixtures.bytelevel_bpe()
    small = tmp_path / "small.jsonl"
    docs = _sourced(30)
    small.write_text("".join(json.dumps(d) + "\n" for d in docs))
    path, _ = _long_unit(tmp_path, 2 * LONG_UNIT_LINES)  # one unit of several seconds, no source key

    def interrupt_when_counting() -> None:
        deadline = time.monotonic() + 60
        while not _task_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(3.0)  # the small file's unit is done by then
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_counting, daemon=True).start()
    report = scan(
        [str(path), str(small)],
        text=TextOptions(tokenizer=tok, engine="hf", executor="ray", workers=2, unit_bytes=ONE_UNIT, group_by="source"),
    )
    assert not report.complete and [f.path for f in report.files] == [str(small)]
    as_json = report.to_dict()
    assert as_json["complete"] is False  # the groups are those of the units counted so far
    assert as_dict(as_json["groups"]) == expected_groups(docs, lambda d: d["source"], tok)
    render.print_report(report)
    assert "groups by source (PARTIAL" in capsys.readouterr().out
