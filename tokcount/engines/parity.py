"""The parity guard: the fast engine's counts proven against the Hugging Face reference while a
run goes, and the one policy on a disagreement: the whole run is counted again with ``hf``, so
an engine bug can never become a wrong total, nor be blamed on the data.

- ``ParitySampler`` picks texts to recount: the first texts of every file and random texts
  spread through the data, within a byte budget of about 1 % of the run: the fraction of bytes
  is 1 % divided by how much slower the reference is than the engine (``sample_fraction``).
- ``ParityGuard`` recounts them with the reference. A scan's workers hand their samples back
  with each unit (``DeferredGuard``) and the scanning process, idle while they count, checks
  them with its one reference (``check_deferred``), so no worker pays for building one;
  ``--estimate`` checks in its workers. A sampled text is checked on a prefix when it is longer than what the budget has
  earned so far (at least ``MIN_SAMPLE_CHARS``, at most ``MAX_SAMPLE_CHARS``), the prefix counted
  by both engines: one huge document cannot make the guard a large share of the run (the
  reference's cost grows faster than linearly on one huge text: a 50 MB line once took it 62 s
  and 8.6 GB).
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

# (text, the fast engine's count, where it is: a formats.base.Location or plain words, and
# whether the text is a prefix of its document's)
Sample = tuple[str, int, Any, bool]

MAX_SAMPLE_CHARS = 1 << 20  # a longer sampled text is checked on a prefix of this many characters
MIN_SAMPLE_CHARS = 1 << 12  # a random sample is checked on at least this much of its text
# The first texts of a file are sampled up to this many characters: at hf 0.23's 1.5-3 MB/s,
# 1 MiB (as it was) cost a worker 0.3-0.7 s per file, a tenth of a 300 MB scan.
FIRST_TEXTS_CHARS = 1 << 16


GUARD_SHARE = 0.01  # of an engine's counting time, spent recounting samples with the reference
# ... plus this much per run, so that a small scan (where 1 % is nothing) is still checked on
# its first texts; at 300 MB it is about 2 % of a 2-core scan's CPU time.
GUARD_FLOOR_SECONDS = 0.05
# MB of text per CPU second on one core, measured (README, "Counting engines"): how much slower
# the reference is than each engine sets how few bytes 1 % of the run can recount.
MEASURED_SPEED = {"fast": 45.0, "gigatoken": 60.0, "hf 0": 1.5, "hf 1": 50.0}


def sample_fraction(engine: str) -> float:
    """The fraction of the bytes the guard recounts so that it costs about GUARD_SHARE of the
    run; never above GUARD_SHARE (a reference as fast as the engine still samples 1 %)."""
    from ..tokenizer import TOKENIZERS_1

    reference = MEASURED_SPEED["hf 1" if TOKENIZERS_1 else "hf 0"]
    slowdown = max(1.0, MEASURED_SPEED.get(engine, reference) / reference)
    return GUARD_SHARE / slowdown


class ParitySampler:
    """Picks the texts the parity guard recounts with the reference, about ``fraction`` of the
    bytes (see ``sample_fraction``) besides the first texts of every file."""

    def __init__(self, seed: str, fraction: float = 1 / 1500, first_texts: int = 32):
        self.rng = random.Random(seed)
        self.fraction = fraction
        self.first_texts = first_texts
        self.counted_bytes = 0
        self.sampled_bytes = 0
        self.chars: dict[int, int] = {}  # of the last pick: characters of each text to check

    def pick(self, texts: Sequence[str], text_bytes: int, at_file_start: bool) -> list[int]:
        """Indices of the texts to recount; ``chars[i]`` is how much of text i to check (a text
        longer than that is checked on its prefix, counted by both engines)."""
        self.counted_bytes += text_bytes
        chosen: list[int] = []
        self.chars = {}
        if at_file_start:
            taken = 0
            for i in range(min(self.first_texts, len(texts))):
                chosen.append(i)
                self.chars[i] = min(len(texts[i]), FIRST_TEXTS_CHARS - taken)
                taken += self.chars[i]
                if taken >= FIRST_TEXTS_CHARS:
                    break
        budget = self.fraction * self.counted_bytes - self.sampled_bytes
        if texts and budget > 0:
            pick: int | None = self.rng.randrange(len(texts))
            if pick in chosen:  # already checked: another text of the batch, if there is one
                others = [i for i in range(len(texts)) if i not in set(chosen)]
                pick = others[self.rng.randrange(len(others))] if others else None
            if pick is not None:
                chosen.append(pick)
                # A long text is checked on what the budget allows (at least MIN_SAMPLE_CHARS),
                # so that one huge document cannot make the guard a large share of the run.
                self.chars[pick] = min(len(texts[pick]), max(MIN_SAMPLE_CHARS, int(budget)), MAX_SAMPLE_CHARS)
        self.sampled_bytes += sum(self.chars.values())
        return chosen


class GuardBudget:
    """The reference's time the guard may spend in a run: ``GUARD_SHARE`` of the engine's
    counting time so far, plus ``GUARD_FLOOR_SECONDS``. A sample is checked when what the
    reference was measured to take so far (characters per second) says it fits; the run's
    first sample always is. The sampler's byte fraction cannot bound the time by itself: the
    reference's speed varies 30-fold with the tokenizer and the text (hf 0.23 counts Llama-3
    on C source at 0.2-0.4 MB/s, GPT-2 on prose at 3 MB/s)."""

    def __init__(self) -> None:
        self.earned = GUARD_FLOOR_SECONDS
        self.spent = 0.0
        self.chars = 0  # characters the reference counted in ``spent``
        self.checks = 0

    def earn(self, engine_seconds: float) -> None:
        self.earned += GUARD_SHARE * engine_seconds

    def affordable(self, samples: list[Sample]) -> int:
        """How many of ``samples``, in order, fit in what is left (the first of a run, whose time
        measures the reference, always does)."""
        if not self.checks:
            return min(1, len(samples))
        seconds_per_char = self.spent / max(1, self.chars)
        left = self.earned - self.spent
        taken = 0
        for sample in samples:
            left -= len(sample[0]) * seconds_per_char
            if left < -1e-9:  # (not lost to rounding: a sample that fits exactly is taken)
                break
            taken += 1
        return taken

    def spend(self, chars: int, seconds: float) -> None:
        self.checks += 1
        self.chars += chars
        self.spent += seconds


class ParityGuard:
    """Recounts sampled texts with the reference and compares them with the fast engine's counts.
    ``reference``: a TokenCounter to reuse (a worker's own), else one is built on first use.
    ``budget``: the run's, shared by its guards (else the guard has its own); samples beyond it
    are not checked, and counted as such."""

    def __init__(
        self,
        spec: TokenizerSpec,
        add_special_tokens: bool,
        reference: TokenCounter | None = None,
        budget: GuardBudget | None = None,
    ):
        self.spec = spec
        self.add_special_tokens = add_special_tokens
        self._reference = reference
        self.budget = budget if budget is not None else GuardBudget()
        self.texts_checked = 0
        self.texts_unchecked = 0  # sampled, but beyond the budget
        self.chars_checked = 0
        self.prefixes_checked = 0  # texts checked on a prefix (longer than the sampler allowed)
        self.seconds = 0.0

    def earn(self, engine_seconds: float) -> None:
        """The engine counted for this long: the budget grows by its share."""
        self.budget.earn(engine_seconds)

    def check(self, samples: list[Sample]) -> dict | None:
        """None when every sample checked agrees, else the first disagreement."""
        while samples:
            taken = self.budget.affordable(samples)
            if not taken:
                break
            mismatch = self._check_now(samples[:taken])
            if mismatch is not None:
                return mismatch
            samples = samples[taken:]
        self.texts_unchecked += len(samples)
        return None

    def _check_now(self, samples: list[Sample]) -> dict | None:
        if self._reference is None:  # a worker passes its own; a guard used alone builds one
            from .hf import TokenCounter

            self._reference = TokenCounter(self.spec, self.add_special_tokens)
        self._reference.load()  # not timed: the budget measures counting, not the tokenizer's build
        started = time.perf_counter()
        expected = self._reference.count([sample[0] for sample in samples])
        seconds = time.perf_counter() - started
        chars = sum(len(sample[0]) for sample in samples)
        self.budget.spend(chars, seconds)
        self.seconds += seconds
        self.texts_checked += len(samples)
        self.chars_checked += chars
        self.prefixes_checked += sum(1 for sample in samples if sample[3])
        for (text, fast, where, _), reference in zip(samples, list(expected)):
            if fast != reference:
                return {"position": where, "fast": fast, "reference": int(reference), "preview": text[:120]}
        return None

    def tally(self) -> dict[str, float]:
        return {
            "texts_checked": self.texts_checked,
            "texts_unchecked": self.texts_unchecked,
            "chars_checked": self.chars_checked,
            "prefixes_checked": self.prefixes_checked,
            "seconds": self.seconds,
        }


class DeferredGuard:
    """In a worker, the guard's samples kept for the scanning process to check with its own
    reference (``check_deferred``): the workers then build no reference (0.3-0.5 s each, on
    their critical path), and the scanning process, idle while they count, builds one."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def earn(self, engine_seconds: float) -> None:
        pass  # the scanning process's budget earns from the unit's count_seconds

    def check(self, samples: list[Sample]) -> None:
        self.samples.extend(samples)


def check_deferred(samples: list[Sample], guard: ParityGuard) -> tuple[dict | None, dict]:
    """A worker's deferred samples checked with ``guard`` (a fresh one sharing the scanning
    process's reference and the run's budget): the first disagreement, and the tally of what
    was checked."""
    mismatch = guard.check(samples)
    return mismatch, guard.tally()


class ParityTotals:
    """The guard's work over a whole run, added up from the workers' tallies."""

    def __init__(self) -> None:
        self.totals = {
            "texts_checked": 0,
            "texts_unchecked": 0,
            "chars_checked": 0,
            "prefixes_checked": 0,
            "seconds": 0.0,
        }

    def add(self, tally: dict[str, float]) -> None:
        for key, value in tally.items():
            self.totals[key] = self.totals.get(key, 0) + value

    def summary(self, mismatch: dict | None) -> dict:
        t = self.totals
        return {
            "texts_checked": int(t["texts_checked"]),
            "texts_unchecked": int(t["texts_unchecked"]),
            "chars_checked": int(t["chars_checked"]),
            "prefixes_checked": int(t["prefixes_checked"]),
            "seconds": round(t["seconds"], 3),
            "mismatch": mismatch,
        }


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
