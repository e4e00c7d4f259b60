"""All human output: tables on stdout, a progress bar on stderr, and the check results. One
number formatter (``_n``); results are told apart by their types."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from .planning import ChunkedPlan, Plan, SamplesPlan
from .report import Report

if TYPE_CHECKING:
    from .checks.raw_index import DocumentMismatch, RawCheckResult


# Piped output gets a wide console so tables are not cut to 80 columns.
class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich exits 1 here; a reader that went away (`| head -1`) is not an error: the CLI
        # handles it in one place.
        self.quiet = True
        raise BrokenPipeError


def _console_width() -> int | None:
    """COLUMNS when set; else the terminal's width, and for a pipe no limit: a number is never
    cut to fit an imagined 80 columns."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return None if sys.stdout.isatty() else PIPE_WIDTH


PIPE_WIDTH = 100_000  # tables take their natural width
TEXT_COLUMN_MIN = 8  # a folded text column narrower than this reads as noise: go vertical instead
_out = _Console(highlight=False, width=_console_width())


def _print_table(table: Table) -> None:
    """Numbers are never truncated nor wrapped: number columns (right-justified) keep their full
    width, text columns fold; a table that still does not fit is printed vertically."""
    needed = len(table.columns) + 1  # the vertical borders
    for column in table.columns:
        if column.justify == "right":
            texts = [str(c) for c in column.cells]
            column.no_wrap = True
            column.min_width = max([len(str(column.header)), *map(len, texts)])
            needed += column.min_width + 2  # its padding
        else:
            column.overflow = "fold"
            needed += TEXT_COLUMN_MIN + 2
    if needed <= _out.width:
        _out.print(table)
        return
    if table.title:
        _out.print(f"[bold]{table.title}")
    headers = [str(c.header) for c in table.columns]
    rows = [[str(cell) for cell in c.cells] for c in table.columns]
    for row in range(table.row_count):
        for header, cells in zip(headers, rows):
            _out.print(f"  {header}: {cells[row]}", overflow="fold")
        _out.print("")


def _n(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _count(n: int, noun: str) -> str:
    """ "1 raw document is", "3 raw documents are"."""
    return f"{n:,} {noun} is" if n == 1 else f"{n:,} {noun}s are"


class _Bar:
    """rich progress on stderr; it shows only once the scan has taken more than a moment."""

    def __init__(self):
        self._progress = Progress(
            TextColumn("[bold]scanning"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[counts]}"),
            console=Console(file=sys.stderr),
            transient=True,
        )
        self._task = None
        self._tokens = 0
        self._documents = 0
        self._started = 0.0
        self._shown = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._shown:
            self._progress.stop()
        return False

    SHOW_AFTER_SECONDS = 0.5  # quick scans print no bar at all

    def start(self, total_bytes: int) -> None:
        self._tokens = self._documents = 0
        self._started = time.monotonic()
        if self._task is None:
            self._task = self._progress.add_task("scan", total=total_bytes, counts="")
        else:  # a second pass (the parity guard's recount) starts the bar over
            self._progress.reset(self._task, total=total_bytes, counts="")

    def status(self, message: str) -> None:
        print(f"tokcount: {message}", file=sys.stderr, flush=True)

    def advance(self, nbytes: int = 0, tokens: int = 0, documents: int = 0) -> None:
        if self._task is None:
            return
        self._tokens += tokens
        self._documents += documents
        counts = ""
        if self._tokens:
            rate = self._tokens / max(1e-9, time.monotonic() - self._started)
            counts = f"{self._documents:,} docs, {self._tokens:,} tokens, {rate:,.0f} tok/s"
        self._progress.update(self._task, advance=nbytes, counts=counts)
        if not self._shown and time.monotonic() - self._started > self.SHOW_AFTER_SECONDS:
            self._shown = True
            self._progress.start()


def progress_bar() -> _Bar:
    return _Bar()


def print_report(report: Report) -> None:
    table = Table(title=None if report.complete else "[red]INCOMPLETE (interrupted)")
    for name, justify in (
        ("file", "left"),
        ("format", "left"),
        ("dtype", "left"),
        ("documents", "right"),
        ("empty", "right"),
        ("sequences", "right"),
        ("tokens", "right"),
    ):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for f in report.files:
        table.add_row(
            f.path, f.format, f.dtype or "-", _n(f.documents), _n(f.empty_documents), _n(f.sequences), _n(f.tokens)
        )
    total = report.total
    if len(report.files) != 1:
        table.add_section()
        table.add_row(
            f"total ({total['files']} files)",
            "",
            "",
            _n(total["documents"]),
            _n(total["empty_documents"]),
            _n(total["sequences"]),
            _n(total["tokens"]),
            style="bold",
        )
    _print_table(table)
    _print_text_details(report)
    if report.groups is not None:
        _print_groups(report.groups, report.options.get("text", {}).get("group_by"), report.complete)
    for f in report.files:
        check = f.extra.get("token_check")
        if check:
            line = f"{f.path}: tokens verified: max id {_n(check['max_token_id'])}, {_n(check['out_of_range'])} ids >= vocab {_n(check['vocab_size'])}"
            if check.get("eod") is not None:
                line += f", {_n(check['documents_missing_eod'])} non-empty documents without EOD {check['eod']}"
            _out.print(line)
        for w in f.warnings:
            _out.print(f"[yellow]warning[/]: {f.path}: {w}")
    for merged in report.merged_inputs:
        _out.print(f"merged: {merged['path']} names the same file as {merged['same_as']} (counted once)")
    if report.skipped_inputs:
        shown = report.skipped_inputs[:SKIPPED_SHOWN]
        more = len(report.skipped_inputs) - len(shown)
        _out.print(
            f"skipped {_n(len(report.skipped_inputs))} file(s) found in the given directories: "
            + ", ".join(f"{s['path']} ({s['reason']})" for s in shown)
            + (f", and {_n(more)} more" if more else "")
        )
    for warning in report.warnings:
        _out.print(f"[yellow]warning[/]: {warning}")
    if report.cache is not None:
        _out.print(cache_line(report.cache, report.complete))
    if report.failures:
        _out.print(f"[red]{len(report.failures)} file(s) failed validation and are not counted (see stderr)")
    if report.plan is not None:
        title = "all files as one dataset" if len(report.files) > 1 else None
        print_plan(report.plan, title)
    if report.blend is not None:
        _print_blend(report.blend.to_dict())
    if report.split_datasets is not None:
        print_split_datasets(report.split_datasets.to_dict())


def _print_groups(groups: list[dict], key: str | None, complete: bool = True) -> None:
    from .grouping import MISSING, TABLE_GROUPS

    planned = bool(groups) and "samples_per_epoch" in groups[0]
    mixed = bool(groups) and "epochs" in groups[0]
    t = Table(
        title=(f"groups by {key}" if key else "groups") + ("" if complete else " (PARTIAL: the units counted so far)")
    )
    columns = ["group", "documents", "empty", "text bytes", "tokens", "tokens/byte", "share"]
    columns += ["samples/epoch"] if planned else []
    columns += ["weight", "samples asked", "epochs"] if mixed else []
    for c in columns:
        t.add_column(c, justify="left" if c == "group" else "right", overflow="fold")

    def cells(g: dict) -> list[str]:
        row = [_n(g["documents"]), _n(g["empty_documents"]), _n(g["text_bytes"]), _n(g["tokens"])]
        row += [_n(g["tokens_per_byte"]), f"{100 * g['share']:.2f} %"]
        row += [_n(g.get("samples_per_epoch"))] if planned else []
        if mixed:
            row += [
                f"{g['weight']:.4g}",
                _n(g["target_samples"]),
                _n(g["epochs"]) if g["epochs"] is not None else "never",
            ]
        return row

    for g in groups[:TABLE_GROUPS]:
        t.add_row(MISSING if g["key"] is None else str(g["key"]), *cells(g))
    rest = groups[TABLE_GROUPS:]
    if rest:
        other = {k: sum(g[k] or 0 for g in rest) for k in ("documents", "empty_documents", "text_bytes", "tokens")}
        other["tokens_per_byte"] = other["tokens"] / other["text_bytes"] if other["text_bytes"] else None
        other["share"] = sum(g["share"] for g in rest)
        shown = [_n(other[k]) for k in ("documents", "empty_documents", "text_bytes", "tokens", "tokens_per_byte")]
        shown.append(f"{100 * other['share']:.2f} %")
        t.add_row(f"other ({_n(len(rest))} groups)", *shown, *["-"] * (len(columns) - 1 - len(shown)))
    _print_table(t)


def cache_line(cache: dict, complete: bool = True) -> str:
    line = (
        f"cache: {_n(cache['units_from_cache'])} of {_n(cache['units'])} units "
        f"({_n(cache['bytes_from_cache'])} bytes) read from {cache['directory']}, {_n(cache['units_counted'])} counted"
    )
    notes = []
    if cache["damaged_entries"]:
        notes.append(f"{_n(cache['damaged_entries'])} damaged entries counted again")
    if cache["not_stored_recent"]:
        notes.append(f"{_n(cache['not_stored_recent'])} units of files modified in the last seconds not stored")
    if not complete and cache["units_stored"] + cache["units_from_cache"]:
        notes.append("the same command resumes from the finished units")
    return line + (f" ({'; '.join(notes)})" if notes else "")


_BARS = " ▁▂▃▄▅▆▇█"
SKIPPED_SHOWN = 10  # skipped inputs named in the table output (--json lists them all)


def _sparkline(counts: list[int]) -> str:
    top = max(counts) or 1
    return "".join(_BARS[min(8, -(-8 * c // top))] for c in counts)


def _print_text_details(report: Report) -> None:
    text_files = [f for f in report.files if f.extra.get("document_tokens") is not None or "content" in f.extra]
    if not text_files:
        return
    options = report.options
    if "tokenizer" in options:
        tok = options["tokenizer"]
        policy = options.get("text", {})
        _out.print(
            f"tokenizer {tok['source']} (sha256 {tok['fingerprint'][:12]}, vocab {tok['vocab_size']:,}, "
            f"tokenizers {tok['tokenizers_version']}), engine {options.get('engine')} ({options.get('engine_reason')}), "
            f"add_special_tokens={policy.get('add_special_tokens')}, append_eod={policy.get('append_eod')}"
        )
        ignored = [name for name in ("truncation", "padding") if tok.get(f"ignored_{name}")]
        if ignored:
            _out.print(
                f"note: the tokenizer file sets {' and '.join(ignored)}; counting ignores "
                f"{'them' if len(ignored) > 1 else 'it'} (a training-data count is not capped or padded)"
            )
        parity = options.get("parity")
        if parity is not None and parity.get("mismatch") is None:
            prefixes = parity.get("prefixes_checked") or 0
            long_texts = f", {_n(prefixes)} long ones on a prefix" if prefixes else ""
            unchecked = parity.get("texts_unchecked") or 0
            beyond = (
                f"; {_n(unchecked)} more sampled texts left unchecked, to keep the guard near 1 % of the counting time"
                if unchecked
                else ""
            )
            _out.print(
                f"parity guard: {parity['texts_checked']:,} texts also counted with hf in "
                f"{parity.get('seconds', 0):.2f} s ({_n(parity.get('chars_checked'))} characters"
                f"{long_texts}), all equal{beyond}"
            )
    t = Table(title="tokens per document")
    for c in (
        "file",
        "text bytes",
        "tokens/byte",
        "min",
        "p50",
        "p90",
        "p99",
        "max",
        "log2 histogram (0, 1, 2-3, 4-7, ...)",
        "skipped",
    ):
        t.add_column(
            c, justify="left" if c in ("file", "log2 histogram (0, 1, 2-3, 4-7, ...)") else "right", overflow="fold"
        )
    for f in text_files:
        stats = f.extra.get("document_tokens") or {}
        t.add_row(
            f.path,
            _n(f.extra.get("text_bytes")),
            _n(f.extra.get("tokens_per_byte")),
            _n(stats.get("min")),
            _n(stats.get("p50")),
            _n(stats.get("p90")),
            _n(stats.get("p99")),
            _n(stats.get("max")),
            _sparkline(stats["log2_histogram"]) if stats else "-",
            _n(f.extra.get("skipped_records")),
        )
    _print_table(t)
    for f in text_files:
        for example in f.extra.get("skipped_examples") or []:
            _out.print(f"[yellow]skipped[/]: {f.path}: {example['position']}: {example['kind']}: {example['detail']}")


def print_plan(plan: Plan | SamplesPlan | ChunkedPlan, title: str | None = None) -> None:
    d = plan.to_dict()
    if isinstance(plan, SamplesPlan):
        _print_samples_plan(d)
        return
    if isinstance(plan, ChunkedPlan):
        _print_chunked_plan(d, title)
        return
    x = d["extra_token"]
    S = d["seq_len"]
    heading = f"Plan: {d['framework']}, seq_len {_n(S)}, global batch {_n(d['global_batch_size'])}, extra token x={x}"
    if title:
        heading += f" ({title})"
    _out.print(f"\n[bold]{heading}")
    _out.print(f"  tokens T (exact)                  {_n(d['tokens'])}")
    if d["samples_per_epoch"] == 0:
        _out.print(
            f"[yellow]  warning: 0 samples per epoch: a sample needs seq_len + {x} = {_n(S + x)} tokens "
            f"and the data has T = {_n(d['tokens'])}"
        )
    _out.print(f"  samples per epoch (T - {x}) // {S}   {_n(d['samples_per_epoch'])}")
    _out.print(
        f"  estimate samples x seq_len        {_n(d['estimated_tokens'])}"
        f"   = T - {_n(d['overlap_tokens'])} overlap token - {_n(d['unused_tail_tokens'])} unused tail tokens"
    )
    _out.print(
        f"  iterations per epoch              {_n(d['iterations_per_epoch'])}"
        f"   (+{_n(d['remainder_samples'])} samples left over)"
    )
    if d.get("max_train_iters_single_epoch") is not None and d.get("split"):
        _out.print(f"  largest train_iters in one epoch  {_n(d['max_train_iters_single_epoch'])}")
    splits = d.get("splits") or {}
    if splits:
        t = Table(
            title=f"splits {d.get('split') or '(none: all train)'}"
            + (f", train_iters {_n(d['train_iters'])}" if d.get("train_iters") else "")
        )
        cols = [
            "split",
            "sequences",
            "tokens",
            "samples/epoch",
            "requested",
            "epochs",
            "built B",
            "len",
            "logged",
            "sep. final",
        ]
        for c in cols:
            t.add_column(c, justify="left" if c == "split" else "right")
        for name, s in splits.items():
            seq = s.get("sequences")
            seq_text = f"[{_n(seq[0])}, {_n(seq[1])})" if seq else "not built"
            sep = s.get("separate_final_epoch")
            if s.get("refused"):
                # the trainer would hang or abort: its numbers would mean nothing
                t.add_row(name, seq_text, _n(s.get("tokens")), "[red]REFUSED", *["-"] * 6)
                continue
            t.add_row(
                name,
                seq_text,
                _n(s.get("tokens")),
                _n(s.get("samples_per_epoch")),
                _n(s.get("requested_samples")),
                _n(s.get("epochs")),
                _n(s.get("samples_built")),
                _n(s.get("dataset_length")),
                _n(s.get("logged_samples")),
                "-" if sep is None else ("yes" if sep else "no"),
            )
        _print_table(t)
        for name, s in splits.items():
            if s.get("refused"):
                _out.print(f"[red]  {name}: the real trainer would fail here: {s['refused']}")
    for note in d.get("notes") or []:
        _out.print(f"  note: {note}")


def _print_chunked_plan(d: dict, title: str | None) -> None:
    S, W = d["seq_len"], d["window_tokens"]
    heading = f"Plan: {d['framework']} ({d['dataset']}), seq_len {_n(S)}, global batch {_n(d['global_batch_size'])}, window {_n(W)} tokens"
    if title:
        heading += f" ({title})"
    _out.print(f"\n[bold]{heading}")
    _out.print(f"  tokens T (exact)                  {_n(d['tokens'])}")
    _out.print(f"  {'samples per epoch Σ ⌊T_f / ' + str(W) + '⌋':<34}{_n(d['samples_per_epoch'])}")
    _out.print(
        f"  estimate samples x seq_len        {_n(d['estimated_tokens'])}"
        f"   (windows read {_n(d['window_tokens_used'])}, {_n(d['unused_tail_tokens'])} tail tokens unused)"
    )
    _out.print(
        f"  iterations per epoch              {_n(d['iterations_per_epoch'])}"
        f"   (+{_n(d['remainder_samples'])} samples left over)"
    )
    if d.get("train_samples") is not None:
        _out.print(
            f"  {'train_iters x global batch':<34}{_n(d['train_samples'])} samples"
            f" = {_n(d['epochs_of_data'])} epochs of data"
        )
    if len(d["files"]) > 1:
        files = Table(title="samples per file")
        for c in ("file", "tokens", "samples", "unused tail"):
            files.add_column(c, justify="left" if c == "file" else "right", overflow="fold")
        for row in d["files"]:
            files.add_row(row["path"], _n(row["tokens"]), _n(row["samples"]), _n(row["unused_tail_tokens"]))
        _print_table(files)
    rules = Table(title="the same tokens under other rules")
    for c in ("rule", "samples", f"vs {d['framework']}"):
        rules.add_column(c, justify="left" if c == "rule" else "right")
    for row in d["comparison"]:
        diff = row["difference"]
        rules.add_row(row["rule"], _n(row["samples"]), f"{diff:+,}" if diff else "-")
    _print_table(rules)
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
            _print_table(t)
        elif not isinstance(value, (dict, list)):
            _out.print(f"  {key.replace('_', ' '):<34} {_n(value)}")
    for note in d.get("notes") or []:
        _out.print(f"  note: {note}")


_SPLIT_DATASET_COLUMNS = (
    "dataset",
    "weight",
    "blend_target",
    "requested_samples",
    "tokens",
    "epochs",
    "samples_built",
    "dataset_length",
    "blend_draws",
    "oversampled",
)


def print_split_datasets(d: dict) -> None:
    """Separate train/valid/test datasets: per split its dataset class, size and iterations, and its members."""
    _out.print(
        f"\n[bold]Plan: {d['framework']}, separate train/valid/test datasets, seq_len {_n(d['seq_len'])}, "
        f"global batch {_n(d['global_batch_size'])}, extra token x={d['extra_token']}"
    )
    for name, row in d["splits"].items():
        if row is None:
            _out.print(f"  {name}: no datasets (not built)")
            continue
        _out.print(
            f"  {name}: {row['dataset_class']} of {_n(row['datasets'])} dataset(s), requested "
            f"{_n(row['requested_samples'])} samples, size {_n(row['size'])}, iterations {_n(row['iterations'])}"
            + (f", [red]REFUSED: {row['refused']}[/]" if row["refused"] else "")
        )
        t = Table(title=f"{name} datasets")
        for c in _SPLIT_DATASET_COLUMNS:
            t.add_column(c.replace("_", " "), justify="right")
        for member in row["members"]:
            t.add_row(*[_n(member.get(c)) for c in _SPLIT_DATASET_COLUMNS])
        _print_table(t)
    for note in d.get("notes") or []:
        _out.print(f"  note: {note}")


def _pm(interval: dict, digits: int = 0) -> str:
    """value ± half-width [low, high]."""
    value, low, high = interval["value"], interval["low"], interval["high"]
    fmt = f"{{:,.{digits}f}}"
    if high is None or low is None:  # too few draws to bound it (a budget spent early)
        return f"{fmt.format(value)}  (unbounded: too few draws)"
    half = max(high - value, value - low)
    return f"{fmt.format(value)} ± {fmt.format(half)}  [{fmt.format(low)}, {fmt.format(high)}]"


def print_estimate(d: dict) -> None:
    """An estimate, labelled as one everywhere: no exact total is printed beside it."""
    c = d["confidence"]
    partial = "" if d.get("complete", True) else "PARTIAL (interrupted) "
    _out.print(
        f"[bold yellow]{partial}ESTIMATE from a random sample (not an exact count), {c:.0%} confidence intervals"
    )
    _out.print(f"  tokens (estimate)               {_pm(d['tokens'])}")
    _out.print(f"  documents (estimate)            {_pm(d['documents'])}")
    if d["tokens_per_document"]:
        _out.print(f"  tokens per document (estimate)  {_pm(d['tokens_per_document'], 2)}")
    _out.print(
        f"  relative error {d['relative_error']:.3%} (target {d['target_error']:.3%}), stopped by {d['stopped_by']}"
    )
    _out.print(
        f"  read {_n(d['bytes_read'])} of {_n(d['bytes_total'])} bytes ({d['fraction_read']:.2%}), "
        f"{_n(d['units_read'])} of {_n(d['units_total'])} units in {_n(d['strata'])} strata; seed {d['seed']}"
    )
    plan = d.get("plan")
    if plan:
        _out.print(
            f"[bold]Plan ranges (estimate, {plan['confidence']:.0%}), from T in {_n(plan['tokens'][0])}..{_n(plan['tokens'][1])}"
        )
        for key in ("samples_per_epoch", "iterations_per_epoch", "train_epochs"):
            if key in plan:
                lo, hi = plan[key]
                _out.print(f"  {key.replace('_', ' '):<32} {_n(lo)} .. {_n(hi)}")
    if d.get("groups") is not None:
        _print_estimated_groups(d["groups"], d.get("group_by"), c)
    if d.get("skipped_records") is not None:
        _out.print(
            f"  skipped {_n(d['skipped_records'])} bad record(s) in the {_n(d['bytes_read'])} bytes read "
            "(--skip-bad-records)"
        )
        for bad in d.get("skipped_examples") or []:
            _out.print(f"    {bad['position']}: {bad['kind']} ({bad['detail']})")
    for note in d["notes"]:
        _out.print(f"  note: {note}")


def _print_estimated_groups(groups: list[dict], key: str | None, confidence: float) -> None:
    """Each group's estimate with its interval; the groups past TABLE_GROUPS are counted, not
    summed (their intervals do not add up)."""
    from .grouping import MISSING, TABLE_GROUPS

    t = Table(title=f"groups by {key} (ESTIMATE, {confidence:.0%} intervals)")
    for c in ("group", "tokens (estimate)", "documents (estimate)", "share (estimate)", "units seen"):
        t.add_column(c, justify="left" if c == "group" else "right", overflow="fold")

    def share(interval: dict) -> str:
        high = interval["high"] if interval["high"] is not None else 1.0
        return f"{100 * interval['value']:.2f} % [{100 * interval['low']:.2f}, {100 * high:.2f}]"

    for g in groups[:TABLE_GROUPS]:
        name = MISSING if g["key"] is None else str(g["key"])
        seen = f"{_n(g['units_seen'])}{'' if g['trusted'] else ' (not trusted)'}"
        t.add_row(name, _pm(g["tokens"]), _pm(g["documents"]), share(g["share"]), seen)
    rest = groups[TABLE_GROUPS:]
    if rest:
        value = sum(g["tokens"]["value"] for g in rest)
        t.add_row(f"other ({_n(len(rest))} groups)", f"{value:,.0f}", "-", "-", "-")
    _print_table(t)


def print_bench(d: dict) -> None:
    t = Table(title=f"{d['path']}: {_n(d['texts'])} texts, {d['text_bytes'] / 1e6:,.1f} MB, one process, cold caches")
    for c in ("engine", "MB/s", "tokens/s", "tokens", "agrees with hf"):
        t.add_column(c, justify="left" if c == "engine" else "right")
    base = d["runs"][0]["seconds"] if d["runs"] else None
    for run in d["runs"]:
        speedup = f" ({base / run['seconds']:,.1f}x)" if base and run["engine"] != "hf" else ""
        t.add_row(
            run["engine"],
            _n(run["mb_per_s"]) + speedup,
            _n(int(run["tokens_per_s"] or 0)),
            _n(run["tokens"]),
            f"{_n(run['agreeing_texts'])} / {_n(d['texts'])}",
        )
    _print_table(t)
    for name, why in d["unavailable"].items():
        _out.print(f"  {name}: not available: {why}")
    for run in d["runs"]:
        if run["first_disagreement"]:
            x = run["first_disagreement"]
            _out.print(
                f"[red]  {run['engine']} disagrees on text {x['text_index']}: {x['tokens']} vs {x['reference_tokens']} tokens: {x['preview']!r}"
            )


# --- check results ---


def check_lines(result: Any) -> list[str]:
    """The terminal report of any ``tokcount check`` result."""
    from .checks.raw_index import RawCheckResult
    from .checks.trainer_index import IndexFilesCheck
    from .checks.training_log import LogCheck

    if isinstance(result, RawCheckResult):
        return raw_check_lines(result)
    if isinstance(result, IndexFilesCheck):
        return index_files_check_lines(result)
    if isinstance(result, LogCheck):
        return log_check_lines(result)
    raise TypeError(f"no renderer for {type(result).__name__}")


def raw_check_lines(result: RawCheckResult) -> list[str]:
    """``tokcount check --against``: a plain-text report for the terminal."""
    e, f = result.expected_counts, result.index_counts
    what = (
        f"preset {result.options['preset']}"
        + (", EOD appended" if result.options["append_eod"] else "")
        + (", token ids compared" if result.options["ids"] else ", lengths compared")
    )
    raw = ", ".join(result.raw_paths) if len(result.raw_paths) <= 3 else f"{len(result.raw_paths)} raw files"
    out = []
    if result.ok:
        out.append(
            f"OK: {result.index} agrees with {raw} ({what}): {e['documents']:,} documents, "
            f"{e['sequences']:,} sequences, {e['tokens']:,} tokens"
        )
    else:
        out.append(f"MISMATCH: {result.index} differs from {raw} ({what})")
        out.append(f"  expected: {e['documents']:,} documents, {e['sequences']:,} sequences, {e['tokens']:,} tokens")
        out.append(f"  index:    {f['documents']:,} documents, {f['sequences']:,} sequences, {f['tokens']:,} tokens")
        m = result.first_mismatch
        if m is not None:
            out.append("  first difference: " + _describe_mismatch(m))
        if result.diagnosis:
            out.append(f"  diagnosis: {result.diagnosis}")
        if result.options.get("order_checked") is not False:  # a multiset: the diagnosis says what has no match
            out.append(
                f"  {result.differing_documents:,} of {result.compared_documents:,} compared documents differ; "
                f"{_count(result.missing_from_index, 'raw document')} missing at the end of the index, "
                f"{result.extra_in_index:,} index document{'' if result.extra_in_index == 1 else 's'} "
                f"{'has' if result.extra_in_index == 1 else 'have'} no raw counterpart"
            )
        for m in result.examples[1:]:
            out.append(
                f"    also: document {m.document:,}: expected {_n(m.expected_tokens)} tokens, found {_n(m.found_tokens)}"
            )
    if not result.complete:
        out.append("INCOMPLETE: interrupted before every document was compared")
    out.extend(f"  hint: {h}" for h in result.hints)
    out.extend(f"  warning: {w}" for w in result.warnings)
    return out


def _describe_mismatch(m: DocumentMismatch) -> str:
    where = f"{m.raw_path} {m.position}" if m.position else m.raw_path
    if m.expected_tokens is None:
        return f"document {m.document:,}: the index has it ({m.found_tokens:,} tokens) but the raw data has ended"
    if m.found_tokens is None:
        return f"document {m.document:,} ({where}): expected {m.expected_tokens:,} tokens, the index has ended"
    text = f"document {m.document:,} ({where}): expected {m.expected_tokens:,} tokens"
    if m.expected_sequences is not None and (len(m.expected_sequences) != 1 or len(m.found_sequences or []) != 1):
        text += f" in sequences {m.expected_sequences}"
    text += f", found {m.found_tokens:,}"
    if m.found_sequences is not None and (len(m.found_sequences) != 1 or len(m.expected_sequences or []) != 1):
        text += f" in sequences {m.found_sequences}"
    if m.first_differing_token is not None:
        text += (
            f"; first differing token at position {m.first_differing_token:,} (.bin token {m.bin_token:,}): "
            f"expected id {_n(m.expected_id)}, found {_n(m.found_id)}"
        )
    elif m.expected_tokens == m.found_tokens and m.expected_sequences == m.found_sequences:
        text += "; same lengths, different token ids"
    return text


# --- check results: trainer index files and training logs ---


def index_files_check_lines(check) -> list[str]:
    """The terminal lines of one check of a split's trainer index files (tokcount check PREFIX)."""
    f, fo = check.files, check.found
    start, end = check.sequence_range
    logged = fo.get("logged_samples")
    # epochs stays plain: it is a float when the document index is not a whole number of epochs.
    head = (
        f"{'OK' if check.ok else 'MISMATCH'}: {f.framework} {f.split} index "
        f"(num_samples {f.num_samples}, seq_len {f.seq_len}, seed {f.seed}): sequences "
        f"[{_n(start)}, {_n(end)}), {_n(check.tokens)} tokens -> "
        f"{fo['epochs']} epoch(s), {_n(fo['samples_built'])} samples built, "
        f"dataset length {_n(fo['dataset_length'])}" + (f", log prints {_n(logged)}" if logged is not None else "")
    )
    out = [head]
    out.extend(f"  disagreement: {d}" for d in check.disagreements)
    out.extend(f"  warning: {w}" for w in check.warnings)
    return out


def log_check_lines(check) -> list[str]:
    """The terminal lines of one training-log check (tokcount check --against-log LOG PREFIX)."""
    out = [
        f"{'OK' if check.ok else 'MISMATCH'}: {check.log} ({check.framework} log) "
        + ("matches this data" if check.ok else "does not match this data")
    ]
    for r in check.rows:
        rng = f"[{_n(r['range'][0])}, {_n(r['range'][1])})" if r["range"] else "range not logged"
        out.append(
            f"  {r['split']}: sequences {rng}, {_n(r['tokens'])} tokens here; log: samples built "
            f"{_n(r['samples_built'])}, epochs {_n(r['epochs'])}; {r['verdict']}"
        )
    out.extend(f"  disagreement: {d}" for d in check.disagreements)
    out.extend(f"  note: {n}" for n in check.notes)
    return out
