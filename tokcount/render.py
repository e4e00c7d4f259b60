"""Human-readable output: tables on stdout, a progress bar on stderr."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from .report import Report
from .scan import Progress as ScanProgress

# Piped output gets a wide console so tables are not cut to 80 columns.
_out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _n(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


class _Bar(ScanProgress):
    """rich progress on stderr; it shows only once the scan has taken more than a moment."""

    def __init__(self):
        self._progress = Progress(
            TextColumn("[bold]scanning"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
            console=Console(file=sys.stderr), transient=True,
        )
        self._task = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._task is not None:
            self._progress.stop()
        return False

    def start(self, total_bytes: int) -> None:
        self._task = self._progress.add_task("scan", total=total_bytes)
        self._progress.start()

    def advance(self, nbytes: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, nbytes)


def progress_bar() -> _Bar:
    return _Bar()


def print_report(report: Report) -> None:
    table = Table(title=None if report.complete else "[red]INCOMPLETE (interrupted)")
    for name, justify in (("file", "left"), ("format", "left"), ("dtype", "left"), ("documents", "right"),
                          ("empty", "right"), ("sequences", "right"), ("tokens", "right")):
        table.add_column(name, justify=justify, overflow="fold")
    for f in report.files:
        table.add_row(f.path, f.format, f.dtype or "-", _n(f.documents), _n(f.empty_documents), _n(f.sequences), _n(f.tokens))
    total = report.total
    if len(report.files) != 1:
        table.add_section()
        table.add_row(f"total ({total['files']} files)", "", "", _n(total["documents"]), _n(total["empty_documents"]),
                      _n(total["sequences"]), _n(total["tokens"]), style="bold")
    _out.print(table)
    for f in report.files:
        check = f.extra.get("token_check")
        if check:
            line = f"{f.path}: tokens verified: max id {_n(check['max_token_id'])}, {_n(check['out_of_range'])} ids >= vocab {_n(check['vocab_size'])}"
            if check.get("eod") is not None:
                line += f", {_n(check['documents_missing_eod'])} non-empty documents without EOD {check['eod']}"
            _out.print(line)
        for w in f.warnings:
            _out.print(f"[yellow]warning[/]: {f.path}: {w}")
    if report.failures:
        _out.print(f"[red]{len(report.failures)} file(s) failed validation and are not counted (see stderr)")
    if report.plan is not None:
        title = "all files as one dataset" if len(report.files) > 1 else None
        print_plan(report.plan, title)
    if report.blend is not None:
        _print_blend(report.blend.to_dict())


def print_plan(plan, title: str | None = None) -> None:
    d = plan.to_dict()
    if "implied_tokens" in d or "tokens_min" in d:
        _print_samples_plan(d)
        return
    x = d["extra_token"]
    S = d["seq_len"]
    heading = f"Plan: {d['framework']}, seq_len {_n(S)}, global batch {_n(d['global_batch_size'])}, extra token x={x}"
    if title:
        heading += f" ({title})"
    _out.print(f"\n[bold]{heading}")
    _out.print(f"  tokens T (exact)                  {_n(d['tokens'])}")
    _out.print(f"  samples per epoch (T - {x}) // {S}   {_n(d['samples_per_epoch'])}")
    _out.print(f"  estimate samples x seq_len        {_n(d['estimated_tokens'])}"
               f"   = T - {_n(d['overlap_tokens'])} overlap token - {_n(d['unused_tail_tokens'])} unused tail tokens")
    _out.print(f"  iterations per epoch              {_n(d['iterations_per_epoch'])}"
               f"   (+{_n(d['remainder_samples'])} samples left over)")
    if d.get("max_train_iters_single_epoch") is not None and d.get("split"):
        _out.print(f"  largest train_iters in one epoch  {_n(d['max_train_iters_single_epoch'])}")
    splits = d.get("splits") or {}
    if splits:
        t = Table(title=f"splits {d.get('split') or '(none: all train)'}"
                  + (f", train_iters {_n(d['train_iters'])}" if d.get("train_iters") else ""))
        cols = ["split", "sequences", "tokens", "samples/epoch", "requested", "epochs", "built B", "len", "logged", "sep. final"]
        for c in cols:
            t.add_column(c, justify="left" if c == "split" else "right")
        for name, s in splits.items():
            seq = s.get("sequences")
            seq_text = f"[{_n(seq[0])}, {_n(seq[1])})" if seq else "not built"
            sep = s.get("separate_final_epoch")
            t.add_row(name, seq_text, _n(s.get("tokens")), _n(s.get("samples_per_epoch")), _n(s.get("requested_samples")),
                      _n(s.get("epochs")), _n(s.get("samples_built")), _n(s.get("dataset_length")), _n(s.get("logged_samples")),
                      "-" if sep is None else ("yes" if sep else "no"))
        _out.print(t)
        for name, s in splits.items():
            if s.get("refused"):
                _out.print(f"[red]  {name}: the real trainer would fail here: {s['refused']}")
    for note in d.get("notes") or []:
        _out.print(f"  note: {note}")


def _print_samples_plan(d: dict) -> None:
    _out.print("[bold]Plan from a sample count")
    for key, value in d.items():
        if isinstance(value, (dict, list)):
            continue
        _out.print(f"  {key.replace('_', ' '):<34} {_n(value)}")
    for note in d.get("notes") or []:
        _out.print(f"  note: {note}")


def _print_blend(d: dict) -> None:
    _out.print("\n[bold]Several datasets")
    for key, value in d.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            t = Table(title=key.replace("_", " "))
            columns = [k for k, v in value[0].items() if not isinstance(v, (dict, list))]
            for c in columns:
                t.add_column(c)
            for row in value:
                t.add_row(*[_n(row.get(c)) for c in columns])
            _out.print(t)
        elif not isinstance(value, (dict, list)):
            _out.print(f"  {key.replace('_', ' '):<34} {_n(value)}")
    for note in d.get("notes") or []:
        _out.print(f"  note: {note}")
