"""What a caller asks of tokcount: the public option classes and the progress protocol.

Plain values with no behaviour beyond small conversions, so that the CLI, the renderer and the
library share them without importing the code that runs a scan.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from .formats.base import TextPolicy, TokenLayout


@dataclass(frozen=True)
class SplitDatasets:
    """Validation and test datasets of their own (NeoX valid/test_data_paths, Megatron
    --valid-data-path/--test-data-path): the scanned paths are then the train datasets, and
    ``TrainingOptions.weights`` their weights."""

    valid: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    valid_weights: tuple[float, ...] | None = None
    test_weights: tuple[float, ...] | None = None


@dataclass(frozen=True)
class TrainingOptions:
    """What the trainer will be asked to do with the tokens (see tokcount.planning)."""

    seq_len: int
    global_batch_size: int
    framework: str = "megatron"
    extra_token: bool = True
    split: str | None = None
    train_iters: int | None = None
    eval_interval: int = 1000
    eval_iters: int = 100
    weights: tuple[float, ...] | None = None
    mixture: tuple[tuple[str, float], ...] | None = None  # target weights of --group-by groups
    datasets: SplitDatasets | None = None  # separate valid/test datasets (no split string)

    def plan_kwargs(self) -> dict[str, Any]:
        kw = asdict(self)
        kw.pop("weights")
        kw.pop("mixture")
        kw.pop("datasets")
        return kw


@dataclass(frozen=True)
class TokenCheckOptions:
    vocab_size: int
    eod: int | None = None


TOKEN_DTYPES = ("uint16", "uint32")


@dataclass(frozen=True)
class TokenFileOptions:
    """What headerless token arrays (OLMo/dolma ``.npy``) do not say themselves: the id dtype
    (default: a header's, else inferred where the size allows only one), and the EOS id that
    ends each document (needed when no ``.csv.gz`` offsets file lies beside the array)."""

    dtype: str | None = None  # "uint16" or "uint32"
    eod: int | None = None

    def layout(self) -> TokenLayout:
        return TokenLayout(self.dtype, self.eod)


@dataclass(frozen=True)
class TextOptions:
    """How raw text (jsonl, parquet, arrow) is counted."""

    tokenizer: str | None = None  # tokenizer.json, a directory holding one, or a hub name
    add_special_tokens: bool = True  # what Megatron / NeoX preprocessing does with HF tokenizers
    append_eod: bool = False
    text_key: str = "text"  # jsonl; dotted paths reach nested fields
    text_column: str = "text"  # parquet / arrow
    skip_bad_records: bool = False
    group_by: str | None = None  # jsonl key (dotted) or column: documents, bytes and tokens per value
    workers: int | None = None  # default: every core
    engine: str = "auto"  # "hf" (the reference), "fast" (numba), "auto": fast where supported, guarded
    unit_bytes: int | None = None  # plain jsonl byte range per work unit (default: sized to balance the workers)
    in_process_bytes: int = 4 << 20  # below this, starting worker processes costs more than it saves
    executor: str = "local"  # "local" (worker processes here) or "ray" (tasks on a Ray cluster)
    ray_address: str | None = None  # the Ray cluster (default: RAY_ADDRESS, else a Ray started here)

    def policy(self) -> TextPolicy:
        return TextPolicy(
            self.add_special_tokens,
            self.append_eod,
            self.text_key,
            self.text_column,
            self.skip_bad_records,
            self.group_by,
        )


@dataclass(frozen=True)
class CacheOptions:
    """The unit-result cache (tokcount.unit_cache): on by default in the CLI (``--no-cache``),
    off unless given in the library."""

    enabled: bool = True
    directory: str | None = None  # default: the tokcount cache directory (~/.cache/tokcount)
    max_bytes: int | None = None  # the cache's size bound (default 4 GiB)


PRESETS = ("megatron", "megatron-fast", "neox", "datatrove")


@dataclass(frozen=True)
class CheckOptions:
    """How the raw data was preprocessed, as the user states it (``tokcount check --against``)."""

    tokenizer: str
    preset: str = "megatron"
    append_eod: bool = False
    eod: int | None = None  # default: the tokenizer's end-of-document token (with append_eod)
    add_special_tokens: bool = True
    ids: bool = False  # also compare every token id (reads the whole .bin)
    engine: str = "auto"  # lengths from the fast engine where supported; a disagreement is re-checked with hf
    text_key: str = "text"
    workers: int | None = None
    unit_bytes: int = 16 << 20


class Progress(Protocol):
    """What a scan or a check tells its caller while it runs. ``status`` (optional: a progress
    object without it is told nothing) is a one-off line, e.g. that a long first-run step began."""

    def start(self, total_bytes: int) -> None: ...

    def advance(self, nbytes: int = 0, tokens: int = 0, documents: int = 0) -> None: ...


class NoProgress:
    """The default: tells nobody."""

    def start(self, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int = 0, tokens: int = 0, documents: int = 0) -> None:
        pass

    def status(self, message: str) -> None:
        pass
