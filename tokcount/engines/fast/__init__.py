"""Count-only exact engine for byte-level BPE tokenizers (GPT-2, GPT-NeoX, Llama-3 families).

The count of a text is ``len(Tokenizer.encode(text, add_special_tokens).ids)``, as for
``TokenCounter``; this engine gets it without building ids:

- added tokens are split with tokenizers' semantics (non-normalized set leftmost-longest on the
  original text, then the normalized set inside the remaining pieces), each match one token;
- the pre-tokenizer regex (GPT-2 or Llama-3 pattern) runs as a numba matcher over UTF-8 bytes,
  with code point classes derived from tokenizers' own regex engine (codepoints);
- each pre-token's BPE count comes from a bounded cache (numba, open addressing, keys checked
  byte for byte); a miss runs the BPE merge loop of tokenizers (same merge map, same order);
- the post-processor adds a constant, measured on the tokenizer and checked to be constant.

Text is routed to an exact slow path when the fast path could not prove it equal: with an NFC
normalizer, a document holding a code point that NFC might change is normalized by tokenizers'
own NFC first (and when it also holds a non-normalized added token, which tokenizers matches
before normalizing, the whole document goes to ``Tokenizer.encode``).

Modules: plan (what a tokenizer needs, or why it is unsupported), counter (FastCounter and
its cache), codepoints (code point tables), and the numba kernels: pretokenize, bpe, cache,
count (count_documents, which drives the other three) over primitives (intrinsics).

numba's on-disk cache (cache=True) only notices edits to a kernel's own file, not to the
modules it imports (numba issue 1833), so compiled kernels are dropped whenever any module of
this package changes (code_version).
"""

from ..warmup import quiet_numba_start
from .code_version import drop_stale_compiled_kernels

drop_stale_compiled_kernels()  # before any kernel module loads its cached machine code
# Before numba's first call here (the plan's table builders run before any kernel), which is
# when numba loads every installed extension: see there.
quiet_numba_start()

from .counter import FastCounter, PretokenCache  # noqa: E402
from .plan import EnginePlan, Unsupported, checked_byte_level_alphabet, engine_plan, fast_support  # noqa: E402

__all__ = [
    "EnginePlan",
    "FastCounter",
    "PretokenCache",
    "Unsupported",
    "checked_byte_level_alphabet",
    "engine_plan",
    "fast_support",
]
