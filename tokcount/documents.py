"""What text readers yield: batches of documents, independent of the on-disk format and of the
tokenizer. A document is one text, or a list of texts (Megatron preprocessing tokenizes each
part separately and makes each non-empty part a sequence)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


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
    texts: list[str] = field(default_factory=list)  # every text part, in order
    parts: list[int] = field(default_factory=list)  # parts per document (1 for a plain string)
    positions: list[int] = field(default_factory=list)  # per document, reader-defined
    input_bytes: int = 0  # bytes of input consumed, for progress
    bad: list[BadRecord] = field(default_factory=list)
    locate: Callable[[int], str] = str  # position -> "line 17", for messages
    # position -> the same, or, when that costs I/O (counting the lines before a range), what
    # the reader needs to work it out later: kept for parity samples, resolved only if used
    locate_later: Callable[[int], object] | None = None
    order_of: Callable[[int], int] | None = None  # position -> line number, to sort errors of interleaved parts
    at_file_start: bool = False  # the first batch of a file (the parity guard always checks it)
    block: int = 0  # interleaved block of a compressed stream (jsonl.read_documents), for ordering

    def add_document(self, value, position: int) -> None:
        if isinstance(value, str):
            self.texts.append(value)
            self.parts.append(1)
        else:
            self.texts.extend(value)
            self.parts.append(len(value))
        self.positions.append(position)

    @property
    def documents(self) -> int:
        return len(self.parts)

    def where(self, position: int) -> tuple[str, int | None]:
        """(``locate(position)``, its order in the file when the reader knows it)."""
        return self.locate(position), None if self.order_of is None else self.order_of(position)


@dataclass
class TokenIdBatch:
    """Documents that are already token ids: only their lengths matter."""

    lengths: object  # numpy int64 array, tokens per document
    input_bytes: int = 0
    bad: list[BadRecord] = field(default_factory=list)


def text_or_parts(value):
    """The value as a str or a list of str, or None if it is neither."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def describe_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        inner = sorted({describe_type(v) for v in value if not isinstance(v, str)})
        return "a list containing " + ", ".join(inner) if inner else "list"
    return {dict: "an object", bool: "a boolean", int: "a number", float: "a number"}.get(type(value), type(value).__name__)
