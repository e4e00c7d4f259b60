"""What every on-disk format shares: the ``Format`` interface, the work unit (a fragment, in
pyarrow's words), the text policy, positions in a file (``Location``), and the document batches
readers yield.

Readers know no tokenizer and no executor: a unit is read into batches of texts (or of token-id
lengths), and whoever counts them decides how.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import numpy as np

TEXT = "text"  # a column or key of texts: tokenized
TOKEN_IDS = "token_ids"  # a column of token-id lists: counted from the list lengths


@dataclass(frozen=True)
class TextPolicy:
    """How a document's count is defined: len(encode(text, add_special_tokens).ids), summed over
    the parts of a list value, plus 1 EOD per document with at least one token."""

    add_special_tokens: bool = True
    append_eod: bool = False
    text_key: str = "text"
    text_column: str = "text"
    skip_bad_records: bool = False
    group_by: str | None = None  # a jsonl key (dotted) or a column whose value names each document's group


@dataclass(frozen=True)
class WorkUnit:
    """One independently readable piece of a file: a byte range of a plain jsonl file, a
    compressed jsonl stream or one interleaved part of it, a Parquet row group, an Arrow record
    batch. ``format`` names the ``Format`` that reads it."""

    source: int  # index of the source in the scan
    path: str
    format: str
    part: int  # byte-range / row-group / record-batch number
    start: int
    stop: int
    cost: int  # bytes, for balancing and progress
    parts: int = 1  # > 1: `part` is one of this many interleaved parts of a compressed stream
    block_bytes: int = 0  # their block size, decided once by the planner for every part


class Locator(Protocol):
    """Turns a reader's document position into words ("line 17") and, where the reader knows it,
    its order in the file (a line number), so that units that read a file out of order
    (interleaved parts) can agree on which of their findings came first."""

    def describe(self, position: int) -> str: ...

    def order(self, position: int) -> int | None: ...


@dataclass(frozen=True)
class Location:
    """A position in a file, resolved to words only when it is shown: for a byte range that
    means counting the lines before the range, which only a reported finding may cost."""

    locator: Locator
    position: int

    def __str__(self) -> str:
        return self.locator.describe(self.position)

    @property
    def order(self) -> int | None:
        return self.locator.order(self.position)


@dataclass(frozen=True)
class RowLocator:
    """Rows of a columnar unit: "row group 3, row 5", "record batch 2, row 5" or "row 5"."""

    label: str
    unit: int  # -1: the file is one unit (an IPC stream)

    def describe(self, position: int) -> str:
        return f"{self.label} {self.unit}, row {position}" if self.unit >= 0 else f"row {position}"

    def order(self, position: int) -> int | None:
        return None


@dataclass(frozen=True)
class LineNumberLocator:
    """Lines whose numbers are known: position p is line p + 1 + offset."""

    offset: int = 0

    def describe(self, position: int) -> str:
        return f"line {position + 1 + self.offset}"

    def order(self, position: int) -> int | None:
        return position + 1 + self.offset


@dataclass
class BadRecord:
    position: str  # e.g. "line 17" or "row group 3, row 5"
    kind: str  # "malformed JSON", "missing key", "wrong type", "invalid UTF-8", "null value", ...
    detail: str
    order: int | None = None  # where it falls in the file (a line number), to list examples in file order

    def describe(self) -> dict:
        return {"position": self.position, "kind": self.kind, "detail": self.detail}


@dataclass
class DocumentBatch:
    """Documents as texts. A document is one text, or a list of texts (Megatron preprocessing
    tokenizes each part separately and makes each non-empty part a sequence)."""

    locator: Locator
    texts: list[str] = field(default_factory=list)  # every text part, in order
    texts_per_document: list[int] = field(default_factory=list)  # 1 for a plain string, n for a list of n
    positions: list[int] = field(default_factory=list)  # per document, for the locator
    input_bytes: int = 0  # bytes of input consumed, for progress
    bad: list[BadRecord] = field(default_factory=list)
    at_file_start: bool = False  # the first batch of a file (the parity guard always checks it)
    block: int = 0  # interleaved block of a compressed stream, for putting parts back in order
    warnings: list[str] = field(default_factory=list)  # about the file, for its report
    groups: list[str | None] | None = None  # with --group-by: each document's group, in order

    def add_document(self, value: str | list[str], position: int) -> None:
        if isinstance(value, str):
            self.texts.append(value)
            self.texts_per_document.append(1)
        else:
            self.texts.extend(value)
            self.texts_per_document.append(len(value))
        self.positions.append(position)

    @property
    def documents(self) -> int:
        return len(self.texts_per_document)

    def location(self, document: int) -> Location:
        """Where the batch's document ``document`` is (unresolved: see ``Location``)."""
        return Location(self.locator, self.positions[document])

    def where(self, position: int) -> tuple[str, int | None]:
        """(position in words, its order in the file when the reader knows it)."""
        return self.locator.describe(position), self.locator.order(position)


@dataclass
class TokenIdBatch:
    """Documents that are already token ids: only their lengths matter."""

    lengths: np.ndarray  # int64, tokens per document
    input_bytes: int = 0
    bad: list[BadRecord] = field(default_factory=list)
    at_file_start: bool = False
    block: int = 0
    groups: list[str | None] | None = None  # with --group-by: each document's group, in order


Batch = DocumentBatch | TokenIdBatch


def group_name(value: Any) -> str | None:
    """A group value as the report shows it: a string as it is, a number or a structure as JSON,
    None for a missing or null value."""
    if value is None or isinstance(value, str):
        return value
    import json

    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def note_block(blocks: list[list[int]], block: int, *counts: int) -> None:
    """Add a batch's counts to ``blocks`` ([block, count, ...] in reading order): what an
    interleaved part's results need to be put back in stream order."""
    if blocks and blocks[-1][0] == block:
        for k, n in enumerate(counts, 1):
            blocks[-1][k] += n
    else:
        blocks.append([block, *counts])


def text_or_parts(value: Any) -> str | list[str] | None:
    """The value as a str or a list of str, or None if it is neither."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def describe_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        inner = sorted({describe_type(v) for v in value if not isinstance(v, str)})
        return "a list containing " + ", ".join(inner) if inner else "list"
    names = {dict: "an object", bool: "a boolean", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _kind_of_mode(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def regular_file_problem(path: str) -> str | None:
    """Why ``path`` cannot be read as a file (it is missing, or not a regular file), else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        return e.strerror or str(e)
    if stat.S_ISREG(mode):
        return None
    hint = " (pipe it into `tokcount scan -` instead)" if stat.S_ISFIFO(mode) else ""
    return f"{_kind_of_mode(mode)}, not a regular file: tokcount reads files it can open more than once{hint}"


class Format:
    """One on-disk format. Subclasses are registered in ``tokcount.formats``."""

    name: ClassVar[str]
    label: ClassVar[str]  # how the user names it in messages ("JSON lines", "Parquet")

    def detect(self, path: str) -> bool:
        """Whether the path's name says it is this format (no I/O)."""
        raise NotImplementedError

    def source_path(self, path: str) -> str:
        """The name a source of this format is known by (an indexed pair: its prefix)."""
        return path

    def data_file_of(self, path: str) -> str | None:
        """For a side file this format reads with its data file but cannot be named alone (dolma's
        ``x.csv.gz`` beside ``x.npy``): that data file's name, else None (no I/O)."""
        return None


@dataclass(frozen=True)
class TokenLayout:
    """What the user states about token arrays whose files do not say it themselves (headerless
    ``.npy`` memmaps): the id dtype, and the EOS id that ends each document."""

    dtype: str | None = None  # "uint16" or "uint32"; None: from a header, else inferred where unambiguous
    eod: int | None = None


class TokenFormat(Format):
    """A format of token ids already on disk, counted from its own metadata (an index, a header,
    an offsets file) without tokenizing. ``open`` validates the files and returns an
    ``indexed.IndexedShard`` (documents as sizes, the token data's path and dtype). Raises
    FileCheckError."""

    def open(self, path: str, layout: TokenLayout | None = None) -> Any:
        raise NotImplementedError


class TextFormat(Format):
    """A format whose documents are read (texts, or token-id lists) and counted by units."""

    def inspect(self, path: str, policy: TextPolicy) -> str:
        """``TEXT`` or ``TOKEN_IDS``, after the cheap checks (magic bytes, the column's type).
        Raises FileCheckError."""
        raise NotImplementedError

    def units(
        self, source: int, path: str, policy: TextPolicy, target_bytes: int, compressed_parts: int = 1
    ) -> list[WorkUnit]:
        """The file cut into work units of about ``target_bytes``; a compressed stream may be
        read as up to ``compressed_parts`` interleaved parts."""
        raise NotImplementedError

    def read(self, unit: WorkUnit, policy: TextPolicy) -> Iterator[Batch]:
        """The unit's documents, in batches, in file order (an interleaved part: block by block)."""
        raise NotImplementedError

    def footer_documents(self, path: str) -> int | None:
        """The document count the file's own metadata states, when it has one (Parquet footers)."""
        return None

    def display_name(self, path: str) -> str:
        """The format as the report names it ("jsonl.zst")."""
        return self.name
