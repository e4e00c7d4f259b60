"""Command line: parse arguments, call the library, render the result. Nothing else.

Imports are lazy: ``tokcount --version`` and ``tokcount plan`` load neither numba nor pyarrow.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from ._version import __version__
from .errors import (
    EXIT_HANGUP,
    EXIT_INTERRUPTED,
    EXIT_INVALID_FILE,
    EXIT_MISMATCH,
    EXIT_OK,
    EXIT_REFUSED_PLAN,
    EXIT_TERMINATED,
    EXIT_USAGE,
    FileCheckError,
    TokcountError,
    UsageError,
)
from .options import (
    TOKEN_DTYPES,
    CacheOptions,
    CheckOptions,
    NoProgress,
    SplitDatasets,
    TextOptions,
    TokenCheckOptions,
    TokenFileOptions,
    TrainingOptions,
)


class _Parser(argparse.ArgumentParser):
    # Set by main() from the command line: whether errors are also JSON, and whose --help to name.
    json_errors = False
    help_command = "tokcount --help"

    def error(self, message):  # argparse would exit 2 (reserved for bad files) after a usage block
        _fail("usage", f"{message} (see '{self.help_command}')", EXIT_USAGE, self.json_errors)
        sys.exit(EXIT_USAGE)


COMMANDS = ("scan", "plan", "check", "bench")


class _StatusOnly(NoProgress):
    """No bar (stderr is not a terminal, or --no-progress), but one-off status lines still go to
    stderr: a first run's minute of compiling must never look like a hang."""

    def status(self, message: str) -> None:
        print(f"tokcount: {message}", file=sys.stderr, flush=True)

    def __enter__(self) -> _StatusOnly:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _progress(args):
    """A progress bar on a terminal's stderr (unless --no-progress), else status lines only."""
    if not args.no_progress and sys.stderr.isatty():
        from . import render

        return render.progress_bar()
    return _StatusOnly()


def _wants_json(argv: list[str]) -> bool:
    return "--json" in argv


def _fail(kind: str, message: str, exit_code: int, as_json: bool) -> None:
    """One line on stderr; with --json also the error as JSON on stdout, so that every outcome
    of a --json run parses."""
    print(f"tokcount: error: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": {"kind": kind, "message": message, "exit_code": exit_code}}, indent=2))


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _key(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("the key or column name is empty")
    return text


def _mixture(text: str) -> tuple[tuple[str, float], ...]:
    """GROUP=WEIGHT,... (a group named with '=' or ',' cannot be given here)."""
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, weight = item.rpartition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"expected GROUP=WEIGHT,..., got {item!r}")
        try:
            value = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(f"the weight of {name!r} is not a number: {weight!r}") from None
        if not value >= 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"the weight of {name!r} must be finite and >= 0, got {weight}")
        if name in out:
            raise argparse.ArgumentTypeError(f"{name!r} is given twice")
        out[name] = value
    if not sum(out.values()) > 0:
        raise argparse.ArgumentTypeError("the weights are all 0")
    return tuple(out.items())


def _non_negative_int(text: str) -> int:
    value = _positive_int(text) if text.strip() not in ("0",) else 0
    return value


def _add_training_arguments(p: argparse.ArgumentParser, required: bool) -> None:
    g = p.add_argument_group("training plan (GPT-NeoX / Megatron-LM math)")
    g.add_argument("--seq-len", type=_positive_int, required=required, help="sequence length S")
    g.add_argument(
        "--gbs",
        "--global-batch-size",
        dest="gbs",
        type=_positive_int,
        required=required,
        help="global batch size G (micro batch x data parallel x gradient accumulation)",
    )
    g.add_argument(
        "--framework",
        choices=["megatron", "neox", "nanotron", "olmo"],
        default="megatron",
        help="whose rules (default megatron); nanotron: datatrove's DatatroveFolderDataset, "
        "olmo: OLMo-core's NumpyFSLDataset (both floor each file on its own)",
    )
    g.add_argument(
        "--no-extra-token",
        action="store_true",
        help="Megatron's add_extra_token_to_sequence=False (x = 0); NeoX always uses x = 1",
    )
    g.add_argument("--split", help='train/valid/test split string, e.g. "969, 30, 1" (over sequences)')
    g.add_argument("--train-iters", type=_positive_int, help="planned training iterations")
    g.add_argument("--eval-interval", type=_positive_int, default=1000, help="default 1000")
    g.add_argument("--eval-iters", type=_non_negative_int, default=100, help="default 100")


def _split_datasets(args) -> SplitDatasets | None:
    """Separate valid/test datasets from scan's --valid-data/--test-data (their weights alone are an error)."""
    if not hasattr(args, "valid_data"):
        return None  # plan: --valid-tokens/--test-tokens, see _run_split_datasets_plan
    valid, test = args.valid_data, args.test_data
    for name, data in (("valid", valid), ("test", test)):
        if getattr(args, f"{name}_weights", None) is not None and data is None:
            raise UsageError(f"--{name}-weights needs --{name}-data")
    if valid is None and test is None:
        return None
    return SplitDatasets(
        valid=tuple(valid or ()),
        test=tuple(test or ()),
        valid_weights=tuple(args.valid_weights) if args.valid_weights else None,
        test_weights=tuple(args.test_weights) if args.test_weights else None,
    )


def _training_options(args) -> TrainingOptions | None:
    if args.seq_len is None and args.gbs is None:
        for name in ("split", "train_iters", "weights", "mixture", "valid_data", "test_data"):
            if getattr(args, name, None) is not None:
                raise UsageError(f"--{name.replace('_', '-')} needs --seq-len and --gbs")
        return None
    if args.seq_len is None or args.gbs is None:
        raise UsageError("--seq-len and --gbs go together")
    return TrainingOptions(
        seq_len=args.seq_len,
        global_batch_size=args.gbs,
        framework=args.framework,
        extra_token=not args.no_extra_token,
        split=args.split,
        train_iters=args.train_iters,
        eval_interval=args.eval_interval,
        eval_iters=args.eval_iters,
        weights=tuple(args.weights) if getattr(args, "weights", None) else None,
        mixture=getattr(args, "mixture", None),
        datasets=_split_datasets(args),
    )


EXIT_CODES_HELP = """exit codes:
  0 ok, 1 usage error, 2 a file failed validation, 3 check: the data differ,
  4 the plan is refused (the trainer would hang or abort), 130/143/129 interrupted
  by SIGINT/SIGTERM/SIGHUP (the partial report is marked incomplete)"""

EPILOGS = {
    "scan": """examples:
  tokcount scan data/*.bin --seq-len 2048 --gbs 1024
  tokcount scan 'corpus/**/*.jsonl.zst' --tokenizer tokenizer.json --append-eod --json
  tokcount scan data/ --verify-tokens --vocab-size 50257 --eod 50256
  tokcount scan corpus.jsonl.zst --tokenizer tokenizer.json --group-by source --no-cache
  tokcount scan 'corpus/*.jsonl.zst' --tokenizer tokenizer.json --executor ray --ray-address auto
  tokcount scan 's3://bucket/shards/*.parquet' --tokenizer tok.json --storage-option region=eu-west-1
""",
    "plan": """examples:
  tokcount plan --tokens 64035813377 --seq-len 2048 --gbs 1024 --train-iters 20000
  tokcount plan --samples 31266315 --from-log neox --seq-len 2048 --gbs 1024
""",
    "check": """examples:
  tokcount check corpus.jsonl.zst --against data/corpus_text_document --tokenizer tok.json --append-eod
  tokcount check data/corpus_text_document --split "969, 30, 1"
  tokcount check --against-log train.log data/corpus_text_document --seq-len 2048
""",
    "bench": """examples:
  tokcount bench corpus.jsonl.zst --tokenizer tokenizer.json
  tokcount bench shard.parquet --tokenizer meta-llama/Meta-Llama-3-8B --max-mb 8 --json
""",
}


def _command(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help_text,
        description=help_text[:1].upper() + help_text[1:] + ".",
        epilog=EPILOGS[name] + "\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tokcount", description="Exact token counts for LLM training data, and the training plan they imply."
    )
    parser.add_argument("--version", action="version", version=f"tokcount {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = _command(sub, "scan", "count tokens in .bin/.idx shards, jsonl, parquet and arrow files")
    s.add_argument(
        "paths",
        nargs="+",
        help=".bin/.idx/prefix, .jsonl[.gz|.zst|.bz2|.xz], .parquet, .arrow, a directory, or a glob ('**' recurses)",
    )
    s.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    s.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    s.add_argument("--weights", type=float, nargs="+", help="blend weights, one per file, in order")
    d = s.add_argument_group(
        "separate valid/test datasets (NeoX valid/test_data_paths, Megatron --valid/--test-data-path)",
        "the positional paths are then the train datasets and --weights their weights; no --split",
    )
    d.add_argument("--valid-data", nargs="+", metavar="PATH", help="validation datasets (files, prefixes, globs)")
    d.add_argument("--valid-weights", type=float, nargs="+", help="weights of the --valid-data files, in order")
    d.add_argument("--test-data", nargs="+", metavar="PATH", help="test datasets (files, prefixes, globs)")
    d.add_argument("--test-weights", type=float, nargs="+", help="weights of the --test-data files, in order")
    s.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="for remote URIs (s3://, gs://, az://, hf://, https://): passed to the store's fsspec filesystem, "
        "e.g. endpoint_url=http://127.0.0.1:9000, region=eu-west-1, anon=true (repeatable; no secrets: "
        "credentials come from the store's standard chain)",
    )
    t = s.add_argument_group("raw text (jsonl, parquet, arrow)")
    t.add_argument("--tokenizer", help="tokenizer.json, a directory holding one, or a Hugging Face hub name")
    t.add_argument(
        "--add-special-tokens",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="encode with special tokens, e.g. a BOS from the post-processor (default: yes, as Megatron and NeoX preprocessing do)",
    )
    t.add_argument("--append-eod", action="store_true", help="+1 token per document that has at least one token")
    t.add_argument(
        "--text-key",
        type=_key,
        default="text",
        help="jsonl key of the text; dotted paths reach nested fields (default text)",
    )
    t.add_argument(
        "--text-column",
        type=_key,
        default="text",
        help="parquet/arrow column: text, list of texts, or token-id lists (default text)",
    )
    t.add_argument(
        "--skip-bad-records",
        action="store_true",
        help="count and report malformed lines, missing keys, wrong types and invalid UTF-8 instead of failing",
    )
    t.add_argument(
        "--group-by",
        type=_key,
        metavar="KEY",
        help="documents, bytes and tokens per value of this jsonl key (dotted paths) or parquet/arrow column; "
        ".bin/.idx shards are grouped by file",
    )
    t.add_argument(
        "--mixture",
        type=_mixture,
        metavar="GROUP=W,...",
        help="target weights of the --group-by groups, e.g. code=0.3,docs=0.7: with --train-iters, "
        "the epochs each group needs",
    )
    t.add_argument("--workers", type=_positive_int, help="worker processes (default: all cores)")
    t.add_argument(
        "--engine",
        choices=["auto", "fast", "hf", "gigatoken"],
        default="auto",
        help="hf: Hugging Face tokenizers (the reference); fast: tokcount's numba engine; gigatoken: "
        "gigatoken's Rust BPE, count-only (pip install 'tokcount[gigatoken]'); auto (default): fast where "
        "the tokenizer is supported, else gigatoken where installed, else hf, checked against hf on a sample",
    )
    k = s.add_argument_group("unit cache (re-runs count only what changed; interrupted scans resume)")
    k.add_argument(
        "--cache-dir", help="where counted units are kept (default: the tokcount cache directory, ~/.cache/tokcount)"
    )
    k.add_argument("--no-cache", action="store_true", help="neither read nor write the unit cache")
    x = s.add_argument_group("where raw text is counted")
    x.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local (default): worker processes on this machine; ray: one task per work unit on a Ray cluster "
        "(pip install 'tokcount[ray]')",
    )
    x.add_argument(
        "--ray-address",
        help="the Ray cluster to use with --executor ray (default: RAY_ADDRESS, else a Ray started here for the scan)",
    )
    e = s.add_argument_group(
        "estimate (a random sample, with a confidence interval; never mixed with exact counts)",
        "sampling units: byte ranges of plain jsonl, Parquet row groups, whole compressed/Arrow files; "
        ".bin/.idx shards are exact from their index",
    )
    e.add_argument("--estimate", action="store_true", help="estimate the totals from a random sample instead")
    e.add_argument("--target-error", help="relative half-width of the tokens' interval to reach (default 1%%)")
    e.add_argument("--confidence", type=float, help="confidence of the intervals (default 0.95)")
    e.add_argument("--budget", help="stop after reading this much (2GB, 500MiB) or this long (30s, 5min)")
    e.add_argument("--seed", type=_non_negative_int, help="random seed, to repeat a run (default: random, reported)")
    v = s.add_argument_group("token files (.bin/.idx, datatrove .ds, OLMo/dolma .npy)")
    v.add_argument("--verify-tokens", action="store_true", help="scan every token of the .bin, .ds and .npy files")
    v.add_argument("--vocab-size", type=_positive_int, help="ids must be < this (required with --verify-tokens)")
    v.add_argument(
        "--eod",
        type=_non_negative_int,
        help="with --verify-tokens: every non-empty document must end with this id; "
        ".npy without a .csv.gz offsets file: the EOS id that ends each document",
    )
    v.add_argument(
        "--dtype",
        choices=TOKEN_DTYPES,
        help=".npy without a header: the id dtype (default: inferred, refused when the size fits both)",
    )
    _add_training_arguments(s, required=False)

    p = _command(sub, "plan", "the training math from numbers alone")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--tokens", type=_positive_int, help="tokens T in the dataset")
    src.add_argument("--samples", type=_positive_int, help="samples per epoch (or a log's 'total number of samples')")
    p.add_argument(
        "--from-log",
        choices=["neox", "megatron"],
        help="--samples is the 'total number of samples:' value of this framework's log",
    )
    p.add_argument("--json", action="store_true", help="print the plan as one JSON document on stdout")
    d = p.add_argument_group(
        "separate valid/test datasets (NeoX valid/test_data_paths, Megatron --valid/--test-data-path)",
        "--tokens is then the train dataset; no --split",
    )
    d.add_argument("--valid-tokens", type=_positive_int, nargs="+", metavar="T", help="tokens of each valid dataset")
    d.add_argument("--valid-weights", type=float, nargs="+", help="weights of the valid datasets, in order")
    d.add_argument("--test-tokens", type=_positive_int, nargs="+", metavar="T", help="tokens of each test dataset")
    d.add_argument("--test-weights", type=float, nargs="+", help="weights of the test datasets, in order")
    _add_training_arguments(p, required=True)
    _add_check_parser(sub)

    b = _command(sub, "bench", "time every counting engine on your data and check it against Hugging Face")
    b.add_argument("path", help="a jsonl (any compression), parquet or arrow file")
    b.add_argument("--tokenizer", required=True, help="tokenizer.json, a directory holding one, or a hub name")
    b.add_argument("--text-key", type=_key, default="text", help="jsonl key of the text (default text)")
    b.add_argument("--text-column", type=_key, default="text", help="parquet/arrow column of the text (default text)")
    b.add_argument(
        "--add-special-tokens",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="encode with special tokens, as preprocessing does (default: yes)",
    )
    b.add_argument(
        "--max-mb", type=_positive_float, default=32, help="text to read from the start of the file (default 32 MB)"
    )
    b.add_argument("--json", action="store_true", help="print the timings as one JSON document on stdout")
    return parser


def _add_check_parser(sub) -> None:
    c = _command(
        sub, "check", "cross-check .bin/.idx against its raw jsonl, the trainer's index files, or a training log"
    )
    c.add_argument(
        "paths",
        nargs="+",
        help="raw .jsonl[.gz|.zst|.bz2|.xz] files in preprocessing order (with --against), "
        "or one data prefix (.bin/.idx) to check its trainer index files / --against-log",
    )
    c.add_argument(
        "--against", metavar="PREFIX", help="the preprocessed .bin/.idx (prefix) to compare the raw files with"
    )
    c.add_argument(
        "--against-log", metavar="LOG", help="a GPT-NeoX or Megatron training log to compare the data prefix with"
    )
    c.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    c.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    r = c.add_argument_group("raw <-> .bin/.idx")
    r.add_argument("--tokenizer", help="tokenizer.json, a directory holding one, or a Hugging Face hub name")
    r.add_argument(
        "--preset",
        choices=["megatron", "megatron-fast", "neox", "datatrove"],
        default="megatron",
        help="which preprocessor's behaviour to expect (default megatron: tools/preprocess_data.py; "
        "datatrove: DocumentTokenizer, --against a .ds file or a folder of them, EOS appended)",
    )
    r.add_argument("--append-eod", action="store_true", help="the data was preprocessed with --append-eod")
    r.add_argument("--eod", type=_non_negative_int, help="EOD id (default: the tokenizer's end-of-document token)")
    r.add_argument(
        "--add-special-tokens",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="encode with special tokens, as preprocessing does (default: yes)",
    )
    r.add_argument("--ids", action="store_true", help="compare every token id too (reads the whole .bin)")
    r.add_argument(
        "--text-key", type=_key, default="text", help="jsonl key of the text (Megatron --json-keys; default text)"
    )
    r.add_argument("--workers", type=_positive_int, help="worker processes (default: all cores)")
    r.add_argument(
        "--engine",
        choices=["auto", "fast", "hf", "gigatoken"],
        default="auto",
        help="how lengths are counted (--ids always uses hf); a difference found by another engine is "
        "re-checked with hf",
    )
    t = c.add_argument_group("trainer index files and logs")
    t.add_argument("--cache-dir", help="where the trainer wrote its index files (Megatron --data-cache-path)")
    t.add_argument("--framework", choices=["megatron", "neox"], help="whose log (default: detected)")
    t.add_argument("--split", help="NeoX split string used for training (default: inferred from the document index)")
    t.add_argument(
        "--seq-len", type=_positive_int, help="sequence length, for --against-log when the log does not print it"
    )
    t.add_argument("--no-extra-token", action="store_true", help="Megatron add_extra_token_to_sequence=False")


# SIGTERM (schedulers, `kill`) and SIGHUP (a closed terminal) stop a run as Ctrl-C does: the
# work stops, the partial report is printed, marked incomplete, and the exit code names the signal.
_STOP_SIGNALS = {"SIGTERM": EXIT_TERMINATED, "SIGHUP": EXIT_HANGUP}


class _Stopped:
    signal_name: str | None = None


def _stop(signum: int, frame: object) -> None:
    _Stopped.signal_name = signal.Signals(signum).name
    raise KeyboardInterrupt


def _install_stop_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # main() called from a thread of a larger program: its signals are its own
    for name in _STOP_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _stop)


def _interrupted_exit_code() -> int:
    return _STOP_SIGNALS.get(_Stopped.signal_name or "", EXIT_INTERRUPTED)


def _interruption() -> str:
    return {"SIGTERM": "terminated (SIGTERM)", "SIGHUP": "hung up (SIGHUP)"}.get(
        _Stopped.signal_name or "", "interrupted"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    as_json = _Parser.json_errors = _wants_json(argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    _Parser.help_command = f"tokcount {command} --help" if command else "tokcount --help"
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error already reported
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    _Stopped.signal_name = None
    _install_stop_handlers()
    from .engines.warmup import own_this_process  # the command's own process: see there

    own_this_process()
    try:
        if args.command == "scan":
            return _run_scan(args)
        if args.command == "check":
            return _run_check(args)
        if args.command == "bench":
            return _run_bench(args)
        return _run_plan(args)
    except TokcountError as e:
        kind = "file" if isinstance(e, FileCheckError) else "usage"
        _fail(kind, str(e), e.exit_code, as_json)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"tokcount: {_interruption()}", file=sys.stderr)
        return _interrupted_exit_code()
    except BrokenPipeError:
        # The reader went away (`| head -1`): nothing more to say, and nowhere to say it. Point
        # stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _run_scan(args) -> int:
    training = _training_options(args)
    verify = None
    if args.verify_tokens:
        if args.vocab_size is None:
            raise UsageError("--verify-tokens needs --vocab-size")
        verify = TokenCheckOptions(args.vocab_size, args.eod)
    elif args.vocab_size is not None:
        raise UsageError("--vocab-size only applies with --verify-tokens")
    token_files = TokenFileOptions(args.dtype, None if args.verify_tokens else args.eod)  # verify.eod serves both
    if args.mixture is not None and (args.group_by is None or args.train_iters is None):
        raise UsageError("--mixture needs --group-by (whose groups it weighs) and --train-iters")
    text = TextOptions(
        tokenizer=args.tokenizer,
        add_special_tokens=args.add_special_tokens,
        append_eod=args.append_eod,
        text_key=args.text_key,
        text_column=args.text_column,
        skip_bad_records=args.skip_bad_records,
        group_by=args.group_by,
        workers=args.workers,
        engine=args.engine,
        executor=args.executor,
        ray_address=args.ray_address,
    )
    if args.estimate:
        if verify is not None:
            raise UsageError("--verify-tokens reads every token: it does not go with --estimate")
        return _run_estimate(args, training, text)
    for flag in ("target_error", "confidence", "budget", "seed"):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag.replace('_', '-')} only applies with --estimate")
    from . import render
    from .scanning import scan
    from .storage import parse_option

    cache = CacheOptions(enabled=not args.no_cache, directory=args.cache_dir)
    storage_options = dict(parse_option(option) for option in args.storage_option)
    with _progress(args) as progress:
        report = scan(args.paths, training, verify, progress, text, token_files, cache, storage_options=storage_options)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        render.print_report(report)
    for failure in report.failures:
        print(f"tokcount: error: {failure}", file=sys.stderr)
    if not report.complete:
        resume = ""
        if report.cache is not None and report.cache["units_stored"] + report.cache["units_from_cache"]:
            resume = "; its finished units are cached: run the same command again to resume"
        print(f"tokcount: {_interruption()}: the report above is INCOMPLETE{resume}", file=sys.stderr)
        return _interrupted_exit_code()
    if not report.ok:
        return EXIT_INVALID_FILE
    refusals = (
        (report.plan.refusals() if report.plan is not None else [])
        + (report.blend.refusals() if report.blend is not None else [])
        + (report.split_datasets.refusals() if report.split_datasets is not None else [])
    )
    return _refusal_exit_code(refusals)


def _run_estimate(args, training: TrainingOptions | None, text: TextOptions) -> int:
    from . import render
    from .estimate import EstimateOptions, estimate_scan, parse_budget, parse_fraction

    budget_bytes, budget_seconds = parse_budget(args.budget) if args.budget is not None else (None, None)
    if args.confidence is not None and not 0 < args.confidence < 1:
        raise UsageError(f"--confidence must be between 0 and 1 (e.g. 0.95), got {args.confidence}")
    options = EstimateOptions(
        target_error=parse_fraction(args.target_error, "--target-error") if args.target_error else 0.01,
        confidence=args.confidence if args.confidence is not None else 0.95,
        seed=args.seed,
        budget_bytes=budget_bytes,
        budget_seconds=budget_seconds,
    )
    with _progress(args) as progress:
        result = estimate_scan(args.paths, text, options, training, progress)
    if args.json:
        print(json.dumps({"tokcount_version": __version__, "estimate": result.to_dict()}, indent=2))
    else:
        render.print_estimate(result.to_dict())
    if not result.complete:
        print(f"tokcount: {_interruption()}: the estimate above is PARTIAL (the units drawn so far)", file=sys.stderr)
        return _interrupted_exit_code()
    return EXIT_OK


def _refusal_exit_code(refusals: list[str]) -> int:
    """Exit 4 when the real trainer would hang or abort on this plan."""
    for refusal in dict.fromkeys(refusals):
        print(f"tokcount: refused: {refusal}", file=sys.stderr)
    return EXIT_REFUSED_PLAN if refusals else EXIT_OK


def _run_bench(args) -> int:
    from . import render
    from .engines import bench as engine_bench
    from .tokenizer import load_tokenizer_spec

    spec = load_tokenizer_spec(args.tokenizer)
    texts = engine_bench.read_texts(args.path, int(args.max_mb * (1 << 20)), args.text_key, args.text_column)
    result = engine_bench.bench_engines(args.path, spec, texts, args.add_special_tokens)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        render.print_bench(result.to_dict())
    return EXIT_OK if result.agree else EXIT_MISMATCH


def _run_plan(args) -> int:
    from . import planning, render

    training = _training_options(args)
    assert training is not None  # plan requires --seq-len and --gbs
    if args.valid_tokens or args.test_tokens or args.valid_weights or args.test_weights:
        return _run_split_datasets_plan(args, training)
    result: planning.Plan | planning.SamplesPlan | planning.ChunkedPlan
    if training.framework in planning.CHUNKING_FRAMEWORKS:
        if args.tokens is None or args.from_log:
            raise UsageError(f"--framework {training.framework} plans from --tokens (one file of that many tokens)")
        planning.check_chunking_options(training.framework, split=training.split, extra_token=training.extra_token)
        result = planning.chunked_plan(
            [args.tokens],
            seq_len=training.seq_len,
            global_batch_size=training.global_batch_size,
            framework=training.framework,
            train_iters=training.train_iters,
        )
    elif args.tokens is not None:
        if args.from_log:
            raise UsageError("--from-log applies to --samples")
        result = planning.make_plan(tokens=args.tokens, **training.plan_kwargs())
    else:
        kw = {
            k: v
            for k, v in training.plan_kwargs().items()
            if k in ("seq_len", "global_batch_size", "framework", "extra_token")
        }
        if args.from_log:
            kw["framework"] = args.from_log  # the log says whose semantics the number has
        result = planning.plan_from_samples(args.samples, from_log=args.from_log, **kw)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        render.print_plan(result)
    return _refusal_exit_code(result.refusals() if not isinstance(result, planning.SamplesPlan) else [])


def _run_split_datasets_plan(args, training: TrainingOptions) -> int:
    from . import render
    from .split_datasets import split_datasets_plan

    for name in ("valid", "test"):
        if getattr(args, f"{name}_weights") is not None and getattr(args, f"{name}_tokens") is None:
            raise UsageError(f"--{name}-weights needs --{name}-tokens")
    if args.tokens is None or args.from_log:
        raise UsageError("--valid-tokens/--test-tokens go with --tokens (the train dataset), not --samples")
    datasets = {"train": [args.tokens], "valid": args.valid_tokens or [], "test": args.test_tokens or []}
    weights = {"valid": args.valid_weights, "test": args.test_weights}
    result = split_datasets_plan(datasets, weights, training)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        render.print_split_datasets(result.to_dict())
    return _refusal_exit_code(result.refusals())


def _is_raw_text(path: str) -> bool:
    from . import formats

    return isinstance(formats.detect(path), formats.TextFormat)


def _run_check(args) -> int:
    from . import render
    from .formats.indexed import open_shard

    if args.against is not None and args.against_log is not None:
        raise UsageError("--against and --against-log are separate checks: run them one at a time")
    from .storage import is_remote

    remote = [p for p in [*args.paths, args.against, args.against_log] if p is not None and is_remote(p)]
    if remote:
        raise UsageError(f"{remote[0]}: tokcount check reads local files only (tokcount scan reads URIs)")
    results: list
    if args.against is not None:
        from .checks.raw_index import check_raw

        if args.tokenizer is None:
            raise UsageError("--against needs --tokenizer (the raw text is tokenized again)")
        if _is_raw_text(args.against):
            raise UsageError(
                f"check --against compares raw files with a .bin/.idx prefix, but {args.against} is raw text: "
                "were the arguments swapped? (tokcount check RAW.jsonl... --against PREFIX)"
            )
        options = CheckOptions(
            tokenizer=args.tokenizer,
            preset=args.preset,
            append_eod=args.append_eod,
            eod=args.eod,
            add_special_tokens=args.add_special_tokens,
            ids=args.ids,
            text_key=args.text_key,
            workers=args.workers,
            engine=args.engine,
        )
        with _progress(args) as progress:
            if args.preset == "datatrove":
                from .checks.raw_datatrove import check_raw_datatrove

                results = check_raw_datatrove(args.paths, args.against, options, progress)
            else:
                results = [check_raw(args.paths, args.against, options, progress)]
    else:
        mode = "--against-log LOG (a training log)" if args.against_log else "the trainer's index files"
        raw = [p for p in args.paths if _is_raw_text(p)]
        if raw:
            raise UsageError(
                f"without --against, check compares one .bin/.idx prefix with {mode}; {raw[0]} is raw text: "
                "to compare raw files with their index, add --against PREFIX"
            )
        if len(args.paths) != 1:
            raise UsageError(f"without --against, check compares exactly one .bin/.idx prefix with {mode}")
        shard = open_shard(args.paths[0])
        if args.against_log is not None:
            from .checks.training_log import check_log

            results = [check_log(shard, args.against_log, args.seq_len, args.framework, not args.no_extra_token)]
        else:
            from .checks.trainer_index import check_trainer_index

            results, notes = check_trainer_index(shard, args.cache_dir, args.split, not args.no_extra_token)
            for note in notes:
                print(f"tokcount: note: {note}", file=sys.stderr)
    if args.json:
        docs = [r.to_dict() for r in results]
        print(json.dumps(docs[0] if len(docs) == 1 else {"ok": all(r.ok for r in results), "checks": docs}, indent=2))
    else:
        for r in results:
            print("\n".join(render.check_lines(r)))
    if not all(getattr(r, "complete", True) for r in results):
        print(f"tokcount: {_interruption()}: the result above is INCOMPLETE", file=sys.stderr)
        return _interrupted_exit_code()
    return EXIT_OK if all(r.ok for r in results) else EXIT_MISMATCH
