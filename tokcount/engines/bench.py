"""``tokcount bench``: every available counting engine on the user's own data, timed on the same
documents and checked document by document against the Hugging Face reference."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from .. import formats
from ..errors import FileCheckError, UsageError
from ..formats.base import TEXT, DocumentBatch, TextFormat, TextPolicy, regular_file_problem
from . import fast_support, gigatoken_support, make_counter


@dataclass
class EngineRun:
    engine: str
    seconds: float
    tokens: int
    agreeing_texts: int
    first_disagreement: dict | None = None

    def to_dict(self, text_bytes: int) -> dict:
        return {
            "engine": self.engine,
            "seconds": self.seconds,
            "mb_per_s": text_bytes / self.seconds / 1e6 if self.seconds else None,
            "tokens_per_s": self.tokens / self.seconds if self.seconds else None,
            "tokens": self.tokens,
            "agreeing_texts": self.agreeing_texts,
            "first_disagreement": self.first_disagreement,
        }


@dataclass
class BenchResult:
    path: str
    texts: int
    text_bytes: int
    runs: list[EngineRun] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def agree(self) -> bool:
        return all(r.agreeing_texts == self.texts for r in self.runs)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "texts": self.texts,
            "text_bytes": self.text_bytes,
            "runs": [r.to_dict(self.text_bytes) for r in self.runs],
            "unavailable": self.unavailable,
            "agree": self.agree,
        }


def read_texts(path: str, max_bytes: int, text_key: str = "text", text_column: str = "text") -> list[str]:
    """The first documents of a file, up to max_bytes of UTF-8 text (list values flattened)."""
    fmt = formats.detect(path)
    if not isinstance(fmt, TextFormat):
        raise UsageError(f"{path}: tokcount bench reads jsonl, parquet or arrow text")
    problem = regular_file_problem(path) if os.path.exists(path) else None
    if problem is not None:
        raise FileCheckError(path, "open", problem)
    policy = TextPolicy(text_key=text_key, text_column=text_column)
    if fmt.inspect(path, policy) != TEXT:
        raise UsageError(f"{path}: column {text_column!r} holds token ids: there is nothing to tokenize")
    batches = (batch for unit in fmt.units(0, path, policy, 1 << 62) for batch in fmt.read(unit, policy))
    texts: list[str] = []
    taken = 0
    for batch in batches:
        assert isinstance(batch, DocumentBatch)
        for text in batch.texts:
            texts.append(text)
            taken += len(text.encode("utf-8", "surrogatepass"))
            if taken >= max_bytes:
                return texts
    if not taken:
        raise FileCheckError(path, "read", "no text to time the engines on (no document, or only empty ones)")
    return texts


def bench_engines(path: str, spec, texts: list[str], add_special_tokens: bool = True) -> BenchResult:
    text_bytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    result = BenchResult(path, len(texts), text_bytes)
    engines = ["hf"]
    for name, support in (("fast", fast_support), ("gigatoken", gigatoken_support)):
        supported, why = support(spec)
        if supported:
            engines.append(name)
        else:
            result.unavailable[name] = why
    reference = None
    for name in engines:
        counter = make_counter(spec, add_special_tokens, name)  # new: cold caches, as on a first scan
        started = time.perf_counter()
        counts = np.asarray(counter.count(texts), dtype=np.int64)
        seconds = time.perf_counter() - started
        if reference is None:
            reference = counts  # hf runs first: it is the definition
        differ = np.flatnonzero(counts != reference)
        first = None
        if differ.size:
            i = int(differ[0])
            first = {
                "text_index": i,
                "tokens": int(counts[i]),
                "reference_tokens": int(reference[i]),
                "preview": texts[i][:120],
            }
        result.runs.append(EngineRun(name, seconds, int(counts.sum()), len(texts) - int(differ.size), first))
    return result
