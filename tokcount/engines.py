"""Which counting engine a scan uses: the Hugging Face reference, or tokcount's numba engine."""

from __future__ import annotations

from .errors import UsageError

ENGINES = ("auto", "fast", "hf")


def fast_support(spec) -> tuple[bool, str]:
    try:
        from .fast_engine import fast_support as support
    except ImportError:  # a build without the numba engine
        return False, "the fast engine is not installed"
    return support(spec)


def choose_engine(spec, requested: str) -> tuple[str, str]:
    """("fast" | "hf", the reason, for the report)."""
    if requested not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {requested!r}")
    if requested == "hf":
        return "hf", "requested"
    supported, why = fast_support(spec)
    if requested == "fast":
        if not supported:
            raise UsageError(f"--engine fast does not support this tokenizer: {why}; use --engine hf or auto")
        return "fast", f"requested ({why}); no parity guard"
    if supported:
        return "fast", f"auto: {why}; parity guard on"
    return "hf", f"auto: the fast engine does not support this tokenizer ({why})"


def make_counter(spec, add_special_tokens: bool, engine: str, reference=None):
    """An object with count(texts) -> int64 array, for this process. ``reference`` (a
    TokenCounter) is reused by the fast engine for its slow path instead of building another."""
    if engine == "fast":
        from .fast_engine import FastCounter

        return FastCounter(spec, add_special_tokens=add_special_tokens, reference=reference)
    from .tokenizer import TokenCounter

    return TokenCounter(spec, add_special_tokens=add_special_tokens)
