"""The on-disk formats tokcount reads, one module each, behind one small interface
(``base.Format``). Adding a format means writing its module and registering it here.

Formats know nothing of the CLI, of tokenizers or of executors: they detect a path, inspect it,
cut it into work units, read a unit into document batches, and give what their metadata states.
"""

from __future__ import annotations

from typing import Any

from .base import TEXT, TOKEN_IDS, Format, TextFormat, TextPolicy, TokenFormat, TokenLayout, WorkUnit

# The registry (and so numba and pyarrow) is imported on first use: options and the CLI use the
# light names above without paying for the readers.
_REGISTRY_NAMES = (
    "JSONL",
    "PARQUET",
    "ARROW",
    "INDEXED",
    "DATATROVE",
    "TOKEN_MEMMAP",
    "REGISTERED",
    "EXPECTED_SUFFIXES",
    "detect",
    "read_with",
    "text_format",
    "plan_units",
)


def __getattr__(name: str) -> Any:
    if name in _REGISTRY_NAMES:
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "TEXT",
    "TOKEN_IDS",
    "Format",
    "TextFormat",
    "TextPolicy",
    "TokenFormat",
    "TokenLayout",
    "WorkUnit",
    *_REGISTRY_NAMES,
]
