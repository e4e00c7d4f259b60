"""The house rules that code review would otherwise have to remember: light start-up for the
commands that need no counting, and no module importing upward."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tokcount"

HEAVY = ("numba", "pyarrow")

PROBE = """
import sys
from tokcount.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:  # --version exits through argparse
    code = stop.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
print("HEAVY:" + ",".join(heavy))
sys.exit(code)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["plan", "--tokens", "1000000", "--seq-len", "2048", "--gbs", "8"],
        ["plan", "--samples", "500", "--seq-len", "2048", "--gbs", "8", "--from-log", "neox", "--json"],
    ],
)
def test_commands_that_count_nothing_load_neither_numba_nor_pyarrow(args):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    heavy = proc.stdout.rsplit("HEAVY:", 1)[1].strip()
    assert heavy == "", f"{args} imported {heavy}"


def test_the_package_import_is_light_and_scan_is_the_function():
    code = (
        "import sys, tokcount; light = not any(m.split('.')[0] in ('numba', 'pyarrow') for m in sys.modules); "
        "print(light, callable(tokcount.scan), type(tokcount.scan).__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["True", "True", "function"], proc.stderr


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the tokcount modules a file imports (relative imports resolved)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(PACKAGE.parent).parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n == "tokcount" or n.startswith("tokcount.")}


UPPER_LAYERS = ("tokcount.scanning", "tokcount.cli", "tokcount.render", "tokcount.checks", "tokcount.counting")


@pytest.mark.parametrize("layer", ["formats", "engines"])
def test_formats_and_engines_never_import_the_layers_above(layer):
    offenders = {}
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        upward = sorted(n for n in imported_modules(path) if n.startswith(UPPER_LAYERS))
        if upward:
            offenders[str(path.relative_to(PACKAGE))] = upward
    assert offenders == {}


def test_formats_know_no_engine_and_engines_know_no_format():
    for layer, forbidden in (("formats", "tokcount.engines"), ("engines", "tokcount.formats")):
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            # the engine benchmark reads the user's file through the formats, like a scan
            if path.name == "bench.py":
                continue
            assert not [n for n in imported_modules(path) if n.startswith(forbidden)], path


def test_storage_knows_no_format_and_no_layer_above():
    """Where bytes come from is one module below the formats: it imports only the errors."""
    imported = imported_modules(PACKAGE / "storage.py")
    assert imported <= {"tokcount.errors", "tokcount.errors.UsageError"}, imported


def test_a_jsonl_scan_off_the_fast_engine_never_loads_numba(tmp_path):
    """numba (0.2-0.5 s to import) is for the fast engine and the token-file kernels only."""
    import json

    from tokenizers import Tokenizer

    sys.path.insert(0, str(Path(__file__).parent))
    import tokenizer_fixtures

    texts = ["def f(x):\n    return x + 1\n", "Zwölf Boxkämpfer jagen Viktor.", ""]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    tokenizer = tokenizer_fixtures.bytelevel_bpe()
    args = ["scan", str(corpus), "--tokenizer", tokenizer, "--engine", "hf", "--no-cache", "--json"]
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=("numba",)), *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    report, heavy = proc.stdout.rsplit("HEAVY:", 1)
    assert heavy.strip() == "", f"a jsonl scan imported {heavy.strip()}"
    reference = Tokenizer.from_file(tokenizer)
    assert json.loads(report)["total"]["tokens"] == sum(len(reference.encode(t).ids) for t in texts)
