"""Columnar inputs: Parquet files, and Arrow IPC files (including Hugging Face ``datasets``
cache ``.arrow`` files, which are IPC streams).

Parquet row groups (and IPC file record batches) are the parallel work units. A text column
(string, or list of strings) is tokenized; a column of token-id lists (``list<int>``, e.g.
``input_ids``) is recognised by its type and counted from the list offsets.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from .. import storage
from ..errors import FileCheckError
from ..lazy_import import lazy_module
from .base import (
    TEXT,
    TOKEN_IDS,
    BadRecord,
    DocumentBatch,
    Locator,
    RowLocator,
    TextFormat,
    TextPolicy,
    TokenIdBatch,
    WorkUnit,
    group_name,
)

# On first use: 0.08 s to import, which a scan of jsonl alone need not pay.
pc = lazy_module("pyarrow.compute")
pq = lazy_module("pyarrow.parquet")

PARQUET_SUFFIXES = (".parquet", ".pq")
ARROW_SUFFIXES = (".arrow", ".feather", ".ipc")
ARROW_FILE_MAGIC = b"ARROW1"
BATCH_ROWS = 1024


def format_of(path: str) -> str | None:
    if path.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if path.endswith(ARROW_SUFFIXES):
        return "arrow"
    return None


def _is_ipc_file(path: str) -> bool:
    with storage.open_input(path, sequential=False) as f:
        return f.read(6) == ARROW_FILE_MAGIC


def _source(path: str):
    """What pyarrow opens: a local path (read natively), or a remote object as a random-access
    file whose every read is one ranged GET (the footer, then the column chunks asked for)."""
    return storage.open_input(path, sequential=False) if storage.is_remote(path) else path


def column_kind(path: str, column: str) -> tuple[str, str]:
    """(TEXT or TOKEN_IDS, the column's Arrow type) from the schema alone."""
    schema = _schema(path)
    if column not in schema.names:
        shown = ", ".join(schema.names[:12]) + (" ..." if len(schema.names) > 12 else "")
        raise FileCheckError(path, "column", f"no column {column!r} (columns: {shown}); choose one with --text-column")
    kind = _kind_of(schema.field(column).type)
    if kind is None:
        raise FileCheckError(
            path,
            "column type",
            f"column {column!r} is {schema.field(column).type}; expected a string, a list of strings, or a list of integer token ids",
        )
    return kind, str(schema.field(column).type)


def _kind_of(t: pa.DataType) -> str | None:
    if pa.types.is_string(t) or pa.types.is_large_string(t) or _is_string_view(t):
        return TEXT
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        v = t.value_type
        if pa.types.is_string(v) or pa.types.is_large_string(v) or _is_string_view(v):
            return TEXT
        if pa.types.is_integer(v):
            return TOKEN_IDS
    return None


def _is_string_view(t) -> bool:
    check = getattr(pa.types, "is_string_view", None)
    return bool(check and check(t))


def _schema(path: str) -> pa.Schema:
    try:
        if format_of(path) == "parquet":
            return pq.read_schema(_source(path))
        if _is_ipc_file(path):
            with pa.ipc.open_file(_source(path)) as reader:
                return reader.schema
        with pa.ipc.open_stream(_source(path)) as reader:
            return reader.schema
    except (pa.ArrowException, OSError) as e:
        raise FileCheckError(path, "open", _first_line(e)) from None


def units(path: str, column: str) -> list[tuple[int, int]]:
    """(unit index, cost in bytes) for each row group / record batch. An IPC stream has no
    index of its batches, so it is one unit."""
    try:
        if format_of(path) == "parquet":
            meta = pq.read_metadata(_source(path))
            out = []
            for g in range(meta.num_row_groups):
                rg = meta.row_group(g)
                cost = (
                    sum(
                        rg.column(c).total_uncompressed_size
                        for c in range(rg.num_columns)
                        if rg.column(c).path_in_schema.split(".")[0] == column
                    )
                    or rg.total_byte_size
                )
                out.append((g, max(1, cost)))
            return out
        if _is_ipc_file(path):
            with pa.ipc.open_file(_source(path)) as reader:
                n = reader.num_record_batches
            size = storage.size(path)
            return [(i, max(1, size // max(1, n))) for i in range(n)]
        return [(-1, max(1, storage.size(path)))]
    except (pa.ArrowException, OSError) as e:
        raise FileCheckError(path, "open", _first_line(e)) from None


def footer_documents(path: str) -> int | None:
    if format_of(path) == "parquet":
        try:
            return pq.read_metadata(_source(path)).num_rows
        except (pa.ArrowException, OSError) as e:
            raise FileCheckError(path, "open", _first_line(e)) from None
    return None


def read_documents(
    path: str, unit: int, column: str, skip_bad_records: bool = False, group_by: str | None = None
) -> Iterator[DocumentBatch | TokenIdBatch]:
    """Yield the documents of one unit in batches of rows. Positions are row indexes within the
    unit; their ``RowLocator`` names "row group g, row r" (or "record batch b, row r"). With
    ``group_by``, each batch's ``groups`` holds that column's value for each document."""
    is_parquet = format_of(path) == "parquet"
    locator = RowLocator("row group" if is_parquet else "record batch", unit)
    columns = list(dict.fromkeys([column] if group_by is None else [column, group_by]))
    row = 0
    try:
        for batch in _record_batches(path, unit, columns, is_parquet):
            array = batch.column(0)
            out = _convert(array, row, locator, path, skip_bad_records)
            if group_by is not None:
                out.groups = _groups_of(batch.column(columns.index(group_by)), array, out, row)
            out.input_bytes = array.nbytes
            row += len(array)
            yield out
    except (pa.ArrowException, OSError) as e:
        raise FileCheckError(path, "read", _first_line(e), locator.describe(row)) from None


def _record_batches(path, unit, columns: list[str], is_parquet):
    if is_parquet:
        yield from pq.ParquetFile(_source(path)).iter_batches(batch_size=BATCH_ROWS, row_groups=[unit], columns=columns)
    elif unit >= 0:
        with pa.ipc.open_file(_source(path)) as reader:
            rb = reader.get_batch(unit)
        yield from _slices(rb.select(columns))
    else:
        with pa.ipc.open_stream(storage.open_input(path) if storage.is_remote(path) else path) as reader:
            for rb in reader:
                yield from _slices(rb.select(columns))


def _groups_of(groups: pa.Array, documents: pa.Array, out: DocumentBatch | TokenIdBatch, first_row: int) -> list:
    """The group of each document the batch kept (a row whose value is null is no document)."""
    values = [group_name(v) for v in groups.to_pylist()]
    if isinstance(out, DocumentBatch):
        return [values[p - first_row] for p in out.positions]
    if documents.null_count:
        return [values[i] for i in np.flatnonzero(~np.asarray(documents.is_null()))]
    return values


def _slices(rb: pa.RecordBatch):
    for offset in range(0, rb.num_rows, BATCH_ROWS):
        yield rb.slice(offset, BATCH_ROWS)


def _convert(array: pa.Array, first_row: int, locator: Locator, path: str, skip: bool) -> DocumentBatch | TokenIdBatch:
    kind = _kind_of(array.type)
    bad: list[BadRecord] = []
    if array.null_count:
        nulls = np.flatnonzero(np.asarray(array.is_null()))
        for null_row in nulls:
            where = locator.describe(first_row + int(null_row))
            if not skip:
                raise FileCheckError(path, "null value", "the value is null", where)
            bad.append(BadRecord(where, "null value", "the value is null"))
    if kind == TOKEN_IDS:
        lengths = pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        if array.null_count:
            lengths = np.delete(lengths, nulls)
        return TokenIdBatch(lengths=lengths, bad=bad)
    out = DocumentBatch(locator, bad=bad)
    try:
        values = array.to_pylist()
    except UnicodeDecodeError:
        values = [_decode_one(array, i, first_row, locator, path, skip, out.bad) for i in range(len(array))]
    for i, value in enumerate(values):
        if value is None:
            continue
        if isinstance(value, list) and any(v is None for v in value):
            where = locator.describe(first_row + i)
            if not skip:
                raise FileCheckError(path, "null value", "a list element is null", where)
            out.bad.append(BadRecord(where, "null value", "a list element is null"))
            continue
        out.add_document(value, first_row + i)
    return out


def _decode_one(array, i, first_row, locator: Locator, path, skip, bad):
    """Slow path for a batch holding invalid UTF-8: find the rows, raise or skip them."""
    try:
        return array[i].as_py()
    except UnicodeDecodeError as e:
        where = locator.describe(first_row + i)
        if not skip:
            raise FileCheckError(path, "invalid UTF-8", f"byte {e.start} of the value", where) from None
        bad.append(BadRecord(where, "invalid UTF-8", f"byte {e.start} of the value"))
        return None


def _first_line(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


class ColumnarFormat(TextFormat):
    """A columnar file: its units are row groups (Parquet) or record batches (Arrow IPC)."""

    def detect(self, path: str) -> bool:
        return format_of(path) == self.name

    def inspect(self, path: str, policy: TextPolicy) -> str:
        kind, _ = column_kind(path, policy.text_column)
        if policy.group_by is not None and policy.group_by not in _schema(path).names:
            raise FileCheckError(path, "column", f"no column {policy.group_by!r} to group by (--group-by)")
        return kind

    def units(
        self, source: int, path: str, policy: TextPolicy, target_bytes: int, compressed_parts: int = 1
    ) -> list[WorkUnit]:
        return [WorkUnit(source, path, self.name, part, 0, 0, cost) for part, cost in units(path, policy.text_column)]

    def read(self, unit: WorkUnit, policy: TextPolicy) -> Iterator[DocumentBatch | TokenIdBatch]:
        return read_documents(unit.path, unit.part, policy.text_column, policy.skip_bad_records, policy.group_by)

    def footer_documents(self, path: str) -> int | None:
        return footer_documents(path)


class ParquetFormat(ColumnarFormat):
    name = "parquet"
    label = "Parquet"


class ArrowFormat(ColumnarFormat):
    name = "arrow"
    label = "Arrow IPC"
