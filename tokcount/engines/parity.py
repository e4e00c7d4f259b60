"""The parity guard: the fast engine's counts proven against the Hugging Face reference while a
run goes, and the one policy on a disagreement: the whole run is counted again with ``hf``, so
an engine bug can never become a wrong total, nor be blamed on the data.

- ``ParitySampler`` (in the workers) picks texts to recount: the first texts of every file, and
  random texts spread through the data within a byte budget.
- ``ParityGuard`` (in the scanning process, whose tokenizer is already loaded) recounts them.
- ``recount_on_disagreement`` runs a scan or a check, and runs it again with ``hf`` when the
  fast engine's result disagrees with the reference.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from . import EngineChoice

if TYPE_CHECKING:
    from ..tokenizer import TokenizerSpec
    from .hf import TokenCounter

Result = TypeVar("Result")

# (text, the fast engine's count, where it is: a formats.base.Location or plain words)
Sample = tuple[str, int, Any]


class ParitySampler:
    """Picks the texts the parity guard recounts with the reference. The reference is ~15x
    slower than the fast engine, so 1/1500 of the bytes costs about 1 % of the run."""

    def __init__(self, seed: str, fraction: float = 1 / 1500, first_texts: int = 32):
        self.rng = random.Random(seed)
        self.fraction = fraction
        self.first_texts = first_texts
        self.counted_bytes = 0
        self.sampled_bytes = 0

    def pick(self, texts: Sequence[str], text_bytes: int, at_file_start: bool) -> list[int]:
        self.counted_bytes += text_bytes
        chosen = list(range(min(self.first_texts, len(texts)))) if at_file_start else []
        if texts and self.sampled_bytes < self.fraction * self.counted_bytes:
            chosen.append(self.rng.randrange(len(texts)))
        self.sampled_bytes += sum(len(texts[i]) for i in chosen)
        return chosen


class ParityGuard:
    """Recounts sampled texts with the reference and compares them with the fast engine's counts."""

    def __init__(self, spec: TokenizerSpec, add_special_tokens: bool):
        self.spec = spec
        self.add_special_tokens = add_special_tokens
        self._reference: TokenCounter | None = None
        self.texts_checked = 0
        self.seconds = 0.0

    def prepare(self) -> None:
        """Build the reference tokenizer now (0.3 s for Llama-3), while the workers count,
        rather than when the first samples arrive, which for a scan of one large file is at
        its very end. Call it once the workers have their tasks: the build holds the GIL."""
        if self._reference is None:
            from .hf import TokenCounter

            self._reference = TokenCounter(self.spec, self.add_special_tokens)
            self._reference.count([""])  # builds its tokenizer

    def check(self, samples: list[Sample]) -> dict | None:
        """None when every sample agrees, else the first disagreement."""
        if not samples:
            return None
        self.prepare()
        assert self._reference is not None
        started = time.perf_counter()
        expected = self._reference.count([text for text, _, _ in samples])
        self.seconds += time.perf_counter() - started
        self.texts_checked += len(samples)
        for (text, fast, where), reference in zip(samples, expected.tolist()):
            if fast != reference:
                return {"position": where, "fast": fast, "reference": reference, "preview": text[:120]}
        return None

    def summary(self, mismatch: dict | None) -> dict:
        return {"texts_checked": self.texts_checked, "seconds": round(self.seconds, 3), "mismatch": mismatch}


def recount_on_disagreement(
    run: Callable[[EngineChoice], Result], choice: EngineChoice, disagreement: Callable[[Result], str | None]
) -> tuple[Result, EngineChoice]:
    """``run(choice)``; when the fast engine counted and ``disagreement(result)`` names a reason,
    everything is run again with the reference. Returns the result and the choice it came from."""
    result = run(choice)
    if choice.engine == "hf":
        return result, choice
    reason = disagreement(result)
    if reason is None:
        return result, choice
    final = choice.recounted_with_hf(reason)
    return run(final), final
