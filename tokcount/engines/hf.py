"""The reference engine: Hugging Face ``tokenizers`` itself, which defines what a count is.

``len(tokenizer.encode(text, add_special_tokens).ids)`` for the installed ``tokenizers``; every
other engine is proven against this one.
"""

from __future__ import annotations

import functools
import os

import numpy as np
from tokenizers import Tokenizer

from ..tokenizer import TokenizerSpec, build_tokenizer


class UnencodableText(ValueError):
    """A text the Rust tokenizer cannot accept (a lone surrogate: not valid Unicode)."""

    def __init__(self, index: int, message: str):
        self.index = index
        super().__init__(message)


class TokenCounter:
    """Counts tokens with one single-threaded tokenizer (one per worker process: no Rayon oversubscription).

    Threading: tokenizers runs batch calls on a Rayon pool unless TOKENIZERS_PARALLELISM is
    false. The Rust side reads the variable at each batch call and builds the pool lazily on
    the first parallel one, so setting it here, before this process's first batch, keeps it at
    the calling thread only; the library's "forked after parallelism" warning (older releases)
    is only printed when parallelism was used *and* the variable unset, so it cannot fire either.
    Verified (tests/test_tokenizer.py::test_counting_adds_no_threads) by reading "Threads:" in
    /proc/self/status before and after a 4000-text batch: unchanged with TokenCounter, +1 per
    core with a plain Tokenizer and the variable unset.
    """

    def __init__(self, spec: TokenizerSpec, add_special_tokens: bool = True):
        # Overrides a user's "true" on purpose: the caller's processes are the parallelism.
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        self.spec = spec
        self.add_special_tokens = add_special_tokens

    @functools.cached_property
    def _tokenizer(self) -> Tokenizer:
        # Built on first use: a worker on the fast engine may never need it (0.35 s for Llama-3).
        return build_tokenizer(self.spec)

    def load(self) -> None:
        """Build the tokenizer now rather than on first use."""
        _ = self._tokenizer

    @functools.cached_property
    def _encode_batch(self):
        # encode_batch_fast (tokenizers >= 0.21) skips offset tracking; ids are the same.
        return getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)

    def encode_batch(self, texts: list[str]) -> list:
        """The Encodings of ``texts`` (for callers that need ids, e.g. tokcount check)."""
        if not isinstance(texts, list):
            texts = list(texts)
        try:
            return self._encode_batch(texts, add_special_tokens=self.add_special_tokens)
        except TypeError as error:
            # A lone surrogate surfaces as a generic TypeError for the whole batch; only on this
            # rare path do we pay for locating it.
            _raise_if_unencodable(texts, error)
            raise

    def count(self, texts: list[str]) -> np.ndarray:
        """int64 array: element i is len(encode(texts[i], add_special_tokens).ids)."""
        encodings = self.encode_batch(texts)
        # len(Encoding) is len(ids) without building the Python list of ids (~70x faster).
        return np.fromiter((len(encoding) for encoding in encodings), dtype=np.int64, count=len(encodings))

    def count_one(self, text: str) -> int:
        try:
            return len(self._tokenizer.encode(text, add_special_tokens=self.add_special_tokens))
        except TypeError as error:
            _raise_if_unencodable([text], error)
            raise


# Texts on which a post-processor's additions are measured: empty, plain, an added token, text
# that normalizers and pre-tokenizers treat specially.
POST_PROCESSOR_PROBES = ("", "x", " hello world", "\n\n", "<|endoftext|>", "é 1 ' s")


def post_processor_tokens(tokenizer: Tokenizer) -> int:
    """How many tokens the post-processor adds to every text with add_special_tokens (BOS/EOS of
    a TemplateProcessing, BERT's [CLS]/[SEP]), measured with the reference itself. Engines that
    count the model's tokens only add this. ValueError when it is not one constant."""
    added = {
        len(tokenizer.encode(probe, add_special_tokens=True)) - len(tokenizer.encode(probe, add_special_tokens=False))
        for probe in POST_PROCESSOR_PROBES
    }
    if len(added) != 1:
        raise ValueError(f"the post-processor adds a varying number of tokens ({sorted(added)})")
    return added.pop()


def worker_start_method() -> str | None:
    """How worker processes must start with the installed tokenizers: None (the executor's
    default, fork on Linux) for 0.2x. A process forked after tokenizers 1.x has loaded a
    tokenizer hangs when it builds one (seen with 1.0.0rc3), so 1.x workers are spawned."""
    from ..tokenizer import TOKENIZERS_1

    return "spawn" if TOKENIZERS_1 else None


def _raise_if_unencodable(texts: list, cause: BaseException) -> None:
    """Raise UnencodableText for the first text that is not valid Unicode, if any."""
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {index} is {type(text).__name__}, not str") from cause
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            code_point = ord(text[error.start])
            raise UnencodableText(
                index,
                f"text {index} contains a lone surrogate U+{code_point:04X} at character {error.start}: "
                "not valid Unicode, so it cannot be tokenized",
            ) from cause
