"""Counting engines: ``hf`` (the reference), ``fast`` (numba, count-only), ``gigatoken`` (an
optional extra, count-only), which one a run uses, and the parity guard that proves the others
against the reference (``parity``).

An engine is an object with ``count(texts) -> int64 array``, one per process.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..errors import UsageError

if TYPE_CHECKING:
    from ..tokenizer import TokenizerSpec
    from .hf import TokenCounter

ENGINES = ("auto", "fast", "hf", "gigatoken")


class Counter(Protocol):
    def count(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class EngineChoice:
    """Which engine counts, why, and whether the parity guard checks it. Decided once, in the
    scanning process, and handed to the workers as it is."""

    engine: str  # "fast", "gigatoken" or "hf"
    reason: str  # for the report
    guarded: bool = False  # sample texts for the parity guard (auto on the fast engine)

    def recounted_with_hf(self, reason: str) -> EngineChoice:
        """The choice after the engine disagreed with the reference."""
        return replace(self, engine="hf", reason=reason, guarded=False)


HF_REQUESTED = EngineChoice("hf", "requested")


def fast_engine_available() -> str | None:
    """Why the fast engine cannot run with the installed tokenizers, or None when it can. Its
    plans and code-point tables are derived with tokenizers' own normalizers, pre-tokenizers and
    regex engine, which tokenizers 1.x no longer exposes."""
    import tokenizers

    from ..tokenizer import TOKENIZERS_1

    if TOKENIZERS_1:
        return (
            f"tokenizers {tokenizers.__version__} has no normalizers/pre_tokenizers modules, from which the "
            "fast engine derives its tables; its own encode counts instead"
        )
    return None


def fast_support(spec: TokenizerSpec) -> tuple[bool, str]:
    unavailable = fast_engine_available()
    if unavailable is not None:
        return False, unavailable
    try:
        from .fast import fast_support as support
    except ImportError:  # a build without the numba engine
        return False, "the fast engine is not installed"
    return support(spec)


def gigatoken_support(spec: TokenizerSpec) -> tuple[bool, str]:
    from .gigatoken import gigatoken_support as support

    return support(spec)


def choose_engine(spec: TokenizerSpec, requested: str) -> EngineChoice:
    """``auto`` takes, of the engines that count this tokenizer, the fastest by the README's
    measured table (``AUTO_ORDER``), guarded; the reference when no other engine can."""
    if requested not in ENGINES:
        raise UsageError(f"the engine (--engine) must be one of {', '.join(ENGINES)}, not {requested!r}")
    if requested == "hf":
        return HF_REQUESTED
    if requested != "auto":
        supported, why = SUPPORT[requested](spec)
        if not supported:
            raise UsageError(
                f"engine {requested!r} (--engine {requested}) cannot count this tokenizer: {why}; use 'hf' or 'auto'"
            )
        return EngineChoice(requested, f"requested ({why}); no parity guard")
    passed_over: list[str] = []
    for engine in AUTO_ORDER:
        supported, why = SUPPORT[engine](spec)
        if supported:
            return EngineChoice(engine, f"auto: {'; '.join([*passed_over, why])}; parity guard on", guarded=True)
        passed_over.append(f"not {engine}: {why}")
    return EngineChoice("hf", f"auto: {'; '.join(passed_over)}")


# Fastest first, measured whole-process (README, "Counting engines"): on every family both count,
# gigatoken in tokcount's workers takes 1/1.65 to 1/1.2 of the fast engine's time (300 MB of
# Linux source: GPT-2 2.03 s against 3.35 s, Llama-3 2.56 s against 3.30 s); the fast engine
# takes what gigatoken cannot load (Refact, Command-R), and everything when it is not installed.
# On the SentencePiece-style families (Llama-2, Phi-3, Gemma) gigatoken's kernel is 1.4-1.9x the
# fast engine's per core (README, footnote 3 of the kernel table), so the order stays.
AUTO_ORDER = ("gigatoken", "fast")
SUPPORT = {"fast": fast_support, "gigatoken": gigatoken_support}


def make_counter(
    spec: TokenizerSpec, add_special_tokens: bool, engine: str, reference: TokenCounter | None = None
) -> Counter:
    """A counter for this process. ``reference`` (a TokenCounter) is reused by the fast engine
    for its slow path instead of building another."""
    if engine == "gigatoken":
        from .gigatoken import GigatokenCounter

        return GigatokenCounter(spec, add_special_tokens=add_special_tokens)
    if engine == "fast":
        from .fast import FastCounter

        return FastCounter(spec, add_special_tokens=add_special_tokens, reference=reference)
    from .hf import TokenCounter

    return TokenCounter(spec, add_special_tokens=add_special_tokens)
