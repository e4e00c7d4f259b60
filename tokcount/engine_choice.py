"""Which counting engine a scan uses: the Hugging Face reference, or tokcount's numba engine."""

from __future__ import annotations

import time

from .errors import UsageError

ENGINES = ("auto", "fast", "hf")


def fast_support(spec) -> tuple[bool, str]:
    try:
        from .engines.fast import fast_support as support
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
        from .engines.fast import FastCounter

        return FastCounter(spec, add_special_tokens=add_special_tokens, reference=reference)
    from .tokenizer import TokenCounter

    return TokenCounter(spec, add_special_tokens=add_special_tokens)


class ParityGuard:
    """Recounts, with the Hugging Face reference, the texts the workers sampled (work.ParitySampler)
    and compares them with the fast engine's counts. It runs in the scanning process, whose
    tokenizer is already loaded, so workers never build the reference just for the guard."""

    def __init__(self, spec, add_special_tokens: bool):
        self.spec = spec
        self.add_special_tokens = add_special_tokens
        self._reference = None
        self.texts_checked = 0
        self.seconds = 0.0

    def prepare(self) -> None:
        """Build the reference tokenizer now (0.3 s for Llama-3), while the workers count,
        rather than when the first samples arrive, which for a scan of one large file is at
        its very end. Call it once the workers have their tasks: the build holds the GIL."""
        if self._reference is None:
            from .tokenizer import TokenCounter

            self._reference = TokenCounter(self.spec, self.add_special_tokens)
            self._reference.count([""])  # builds its tokenizer

    def check(self, samples: list[tuple[str, int, str]]) -> dict | None:
        """None when every sample agrees, else the first disagreement."""
        if not samples:
            return None
        self.prepare()
        started = time.perf_counter()
        expected = self._reference.count([text for text, _, _ in samples])
        self.seconds += time.perf_counter() - started
        self.texts_checked += len(samples)
        for (text, fast, where), reference in zip(samples, expected.tolist()):
            if fast != reference:
                return {"position": where, "fast": fast, "reference": reference, "preview": text[:120]}
        return None
