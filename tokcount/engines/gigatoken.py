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
from typing import TYPE_CHECKING

import numpy as np

from .. import disk_cache
from ..tokenizer import TokenizerSpec, build_tokenizer
from .hf import _raise_if_unencodable, post_processor_tokens

if TYPE_CHECKING:
    from .hf import TokenCounter

VERDICTS_KEPT = 32  # tokenizers whose support verdict is remembered

INSTALL_HINT = "pip install 'tokcount[gigatoken]'"


def gigatoken_support(spec: TokenizerSpec) -> tuple[bool, str]:
    """Whether gigatoken loads this tokenizer, and why not. Loading is the test: gigatoken refuses
    what it cannot encode (WordPiece, some pre-tokenizer sequences, byte maps it lacks). The
    verdict is kept on disk per tokenizer and gigatoken version: loading Llama-3's to find out
    takes 0.5 s, and the post-processor's probe another 0.5 s."""
    try:
        import gigatoken  # noqa: F401
    except ImportError:
        return False, f"gigatoken is not installed ({INSTALL_HINT})"
    import tokenizers

    version = _version()
    # the verdict holds the reference's probe too: keyed by both versions
    key = f"{spec.fingerprint}-{version}-tokenizers-{tokenizers.__version__}"
    path = disk_cache.cache_directory() / "gigatoken" / f"{key}.json"
    stored = disk_cache.read_bytes(path)
    if stored is not None:
        try:
            verdict = json.loads(stored)
            return bool(verdict["supported"]), str(verdict["why"])
        except (ValueError, KeyError, TypeError):
            pass  # damaged: decided again below
    supported, why = _decide(spec, version)
    verdict_bytes = json.dumps({"supported": supported, "why": why}).encode()
    disk_cache.store(path, lambda f: f.write(verdict_bytes), keep=VERDICTS_KEPT)
    return supported, why


def _decide(spec: TokenizerSpec, version: str) -> tuple[bool, str]:
    try:
        _load(spec.json)
    except Exception as error:  # gigatoken raises RuntimeError with a multi-line Rust location
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return False, f"gigatoken cannot load it: {first_line}"
    try:
        post_processor_tokens(build_tokenizer(spec))
    except ValueError as why:
        return False, str(why)
    return True, f"gigatoken {version} loads it"


class GigatokenCounter:
    """One per process; batches run on the calling thread (gigatoken's thread pool is never used:
    the workers are the parallelism, and a forked worker has no pool threads)."""

    def __init__(self, spec: TokenizerSpec, add_special_tokens: bool = True, reference: TokenCounter | None = None):
        os.environ["RAYON_NUM_THREADS"] = "1"
        self.spec = spec
        self.add_special_tokens = add_special_tokens
        # The probe runs on the worker's own reference tokenizer (the parity guard needs it anyway).
        probed = reference._tokenizer if reference is not None else build_tokenizer(spec)
        self.added = post_processor_tokens(probed) if add_special_tokens else 0

    @functools.cached_property
    def _tokenizer(self):
        return _load(self.spec.json)

    def count(self, texts: list[str]) -> np.ndarray:
        """int64 array: element i is len(encode(texts[i], add_special_tokens).ids) of the reference."""
        import awkward

        if not isinstance(texts, list):
            texts = list(texts)
        if not texts:
            return np.zeros(0, dtype=np.int64)
        try:
            encoded = self._tokenizer.encode_batch(texts, parallel=False)
        except (TypeError, ValueError, UnicodeEncodeError) as error:
            _raise_if_unencodable(texts, error)  # a lone surrogate, named as the reference names it
            raise
        counts = np.asarray(awkward.num(encoded, axis=1), dtype=np.int64)
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
