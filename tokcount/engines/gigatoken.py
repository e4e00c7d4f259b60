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
import os

import numpy as np

from ..tokenizer import TokenizerSpec, build_tokenizer
from .hf import _raise_if_unencodable, post_processor_tokens

INSTALL_HINT = "pip install 'tokcount[gigatoken]'"


def gigatoken_support(spec: TokenizerSpec) -> tuple[bool, str]:
    """Whether gigatoken loads this tokenizer, and why not. Loading is the test: gigatoken refuses
    what it cannot encode (WordPiece, some pre-tokenizer sequences, byte maps it lacks)."""
    try:
        _load(spec.json)
    except ImportError:
        return False, f"gigatoken is not installed ({INSTALL_HINT})"
    except Exception as error:  # gigatoken raises RuntimeError with a multi-line Rust location
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return False, f"gigatoken cannot load it: {first_line}"
    try:
        _post_processor_tokens(spec)
    except ValueError as why:
        return False, str(why)
    import gigatoken

    return True, f"gigatoken {_version(gigatoken)} loads it"


class GigatokenCounter:
    """One per process; batches run on the calling thread (gigatoken's thread pool is never used:
    the workers are the parallelism, and a forked worker has no pool threads)."""

    def __init__(self, spec: TokenizerSpec, add_special_tokens: bool = True):
        os.environ["RAYON_NUM_THREADS"] = "1"
        self.spec = spec
        self.add_special_tokens = add_special_tokens
        self.added = _post_processor_tokens(spec) if add_special_tokens else 0

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


@functools.lru_cache(maxsize=4)
def _post_processor_tokens(spec: TokenizerSpec) -> int:
    return post_processor_tokens(build_tokenizer(spec))


def _version(module) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gigatoken")
    except PackageNotFoundError:
        return getattr(module, "__version__", "?")
