"""The ``gigatoken`` engine: gigatoken's Rust BPE, run count-only in tokcount's own workers on
tokcount's own work units (an optional extra: ``pip install 'tokcount[gigatoken]'``).

Texts go in as a batch and only the lengths come out (``awkward.num`` of the ragged result),
never a Python int per token. gigatoken applies no post-processor (no BOS for Llama-2), so
tokcount adds what the reference's post-processor adds, measured once per tokenizer with the
reference itself. gigatoken is not the reference: ``auto`` always runs it under the parity
guard.
"""

from __future__ import annotations

import functools
import json
import os

import numpy as np

from .. import disk_cache
from ..tokenizer import TokenizerSpec, build_tokenizer
from .hf import _raise_if_unencodable, post_processor_tokens

VERDICTS_KEPT = 32  # tokenizers whose support verdict is remembered

INSTALL_HINT = "pip install 'tokcount[gigatoken]'"


def gigatoken_support(spec: TokenizerSpec) -> tuple[bool, str]:
    """Whether gigatoken loads this tokenizer, and why not. Loading is the test: gigatoken refuses
    what it cannot encode (WordPiece, some pre-tokenizer sequences, byte maps it lacks)."""
    try:
        import gigatoken  # noqa: F401
    except ImportError:
        return False, f"gigatoken is not installed ({INSTALL_HINT})"
    verdict = _verdict(spec)
    return bool(verdict["supported"]), str(verdict["why"])


@functools.lru_cache(maxsize=4)
def _verdict(spec: TokenizerSpec) -> dict:
    """{"supported", "why", "post_processor_tokens"}, kept on disk per tokenizer and versions:
    loading Llama-3's to find out takes 0.5 s, and the post-processor's probe with the reference
    another 0.5 s, which a worker then need not pay."""
    import tokenizers

    version = _version()
    # the verdict holds the reference's probe too: keyed by both versions
    key = f"{spec.fingerprint}-{version}-tokenizers-{tokenizers.__version__}"
    path = disk_cache.cache_directory() / "gigatoken" / f"{key}.json"
    stored = disk_cache.read_bytes(path)
    if stored is not None:
        try:
            verdict = json.loads(stored)
            if {"supported", "why", "post_processor_tokens"} <= set(verdict):
                return verdict
        except ValueError:
            pass  # damaged: decided again below
    verdict = _decide(spec, version)
    verdict_bytes = json.dumps(verdict).encode()
    disk_cache.store(path, lambda f: f.write(verdict_bytes), keep=VERDICTS_KEPT)
    return verdict


def _decide(spec: TokenizerSpec, version: str) -> dict:
    try:
        _load(spec.json)
    except Exception as error:  # gigatoken raises RuntimeError with a multi-line Rust location
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return {"supported": False, "why": f"gigatoken cannot load it: {first_line}", "post_processor_tokens": None}
    try:
        added = post_processor_tokens(build_tokenizer(spec))
    except ValueError as why:
        return {"supported": False, "why": str(why), "post_processor_tokens": None}
    return {"supported": True, "why": f"gigatoken {version} loads it", "post_processor_tokens": added}


class GigatokenCounter:
    """One per process; batches run on the calling thread (gigatoken's thread pool is never used:
    the workers are the parallelism, and a forked worker has no pool threads)."""

    def __init__(self, spec: TokenizerSpec, add_special_tokens: bool = True):
        os.environ["RAYON_NUM_THREADS"] = "1"
        self.spec = spec
        self.add_special_tokens = add_special_tokens
        # The reference's probe, from the verdict: this process need not build the reference.
        added = _verdict(spec)["post_processor_tokens"]
        if added is None:
            raise ValueError(f"gigatoken cannot count this tokenizer: {_verdict(spec)['why']}")
        self.added = added if add_special_tokens else 0
        # Loaded now, not on the first batch: a scanning process sets its workers up before it
        # forks them, so that they share one load.
        self._tokenizer = _load(spec.json)
        import awkward

        self._awkward = awkward

    def count(self, texts: list[str]) -> np.ndarray:
        """int64 array: element i is len(encode(texts[i], add_special_tokens).ids) of the reference."""
        if not isinstance(texts, list):
            texts = list(texts)
        if not texts:
            return np.zeros(0, dtype=np.int64)
        try:
            encoded = self._tokenizer.encode_batch(texts, parallel=False)
        except (TypeError, ValueError, UnicodeEncodeError) as error:
            _raise_if_unencodable(texts, error)  # a lone surrogate, named as the reference names it
            raise
        counts = np.asarray(self._awkward.num(encoded, axis=1), dtype=np.int64)
        if self.added:
            counts += self.added
        return counts


@functools.lru_cache(maxsize=4)
def _load(tokenizer_json: str):
    import gigatoken

    return gigatoken.Tokenizer.from_json(tokenizer_json)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gigatoken")
    except PackageNotFoundError:
        import gigatoken

        return str(getattr(gigatoken, "__version__", "unknown"))
