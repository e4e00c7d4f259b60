"""JSON Lines: plain, .gz, .zst, .bz2, .xz.

Plain files are cut into byte ranges; a line belongs to the range that holds its first byte,
so ranges can be read in parallel and every line is read exactly once. A compressed file is
one stream, which cannot be entered in the middle; to count it on several cores it is read as
interleaved parts: the decompressed stream is cut into blocks, a line belongs to the block
that holds its first byte, and part k of n keeps the blocks j with j % n == k. Every part
decompresses the whole stream, which costs little next to tokenizing for the fast codecs
(zstd, gzip) and too much for the slow ones (bz2, xz), which stay one part. Lines are decoded
with orjson, which also rejects invalid UTF-8 and lone surrogates (both are bad records, not
text).
"""

from __future__ import annotations

import contextlib
import io
import lzma
import os
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pyarrow as pa

from .. import storage
from ..errors import FileCheckError
from .base import (
    TEXT,
    BadRecord,
    DocumentBatch,
    LineNumberLocator,
    TextFormat,
    TextPolicy,
    WorkUnit,
    describe_type,
    group_name,
    text_or_parts,
)

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd", ".bz2": "bz2", ".xz": "xz"}
SUFFIX_OF = {"gzip": ".gz", "zstd": ".zst", "bz2": ".bz2", "xz": ".xz"}
UTF8_BOM = b"\xef\xbb\xbf"
SKIP_HINT = " (--skip-bad-records counts and skips such lines instead)"
MAGIC = {
    "gzip": b"\x1f\x8b",
    "zstd": b"\x28\xb5\x2f\xfd",
    "bz2": b"BZh",
    "xz": b"\xfd7zXZ\x00",
}
BATCH_BYTES = 1 << 20  # text handed to the tokenizer at a time
READ_BYTES = 1 << 20
INTERLEAVE_BLOCK_BYTES = 1 << 20  # small blocks keep the parts of a stream equally busy
# Parts at most per codec: each part decompresses everything, so n parts cost n decompressions;
# zstd (~1 GB/s) and gzip (~300 MB/s) stay a small share next to counting (~50 MB/s a core).
MAX_INTERLEAVED_PARTS = {"zstd": 8, "gzip": 4}
MIN_INTERLEAVED_BYTES = 1 << 20  # compressed bytes below which one part is fast enough
RAW_LINES_BATCH = 1024  # lines per batch of read_raw_lines


def compression_of(path: str) -> str | None:
    return COMPRESSIONS.get(os.path.splitext(path)[1])


def is_jsonl(path: str) -> bool:
    root = path[: -len(os.path.splitext(path)[1])] if compression_of(path) else path
    return root.endswith(JSON_SUFFIXES)


def format_name(path: str) -> str:
    ext = os.path.splitext(path)[1] if compression_of(path) else ""
    return "jsonl" + ext


def check_magic(path: str) -> None:
    """Refuse a file whose first bytes contradict its suffix."""
    try:
        with storage.open_input(path, sequential=False) as f:
            head = f.read(8)
    except OSError as e:
        raise FileCheckError(path, "open", e.strerror or str(e)) from None
    check_head(path, head)


def check_head(path: str, head: bytes) -> None:
    """``check_magic`` on the file's first 8 bytes, already read."""
    compression = compression_of(path)
    other = _other_format(head)
    if compression is None:
        found = [name for name, magic in MAGIC.items() if head.startswith(magic)]
        if found:
            raise FileCheckError(
                path, "format", f"named as plain JSON lines but the bytes are {found[0]}-compressed", "byte 0"
            )
        if other is not None:
            raise FileCheckError(path, "format", f"named as JSON lines but the file is {other}", "byte 0")
        return
    suffix = SUFFIX_OF[compression]
    if not head:
        # gzip -t, zstd -t, bzip2 -t and xz -t all reject an empty file: it holds no stream at all
        raise FileCheckError(
            path,
            "format",
            f"the file is empty: a {suffix} file holds at least one {compression} "
            "stream header (gzip -t and its kin reject it too)",
        )
    if not head.startswith(MAGIC[compression]):
        found = [name for name, magic in MAGIC.items() if head.startswith(magic)]
        actual = (
            f"the bytes are {found[0]}-compressed"
            if found
            else (
                f"the file is {other}"
                if other
                else f"it does not start with the {compression} magic bytes ({head[:4]!r})"
            )
        )
        raise FileCheckError(path, "format", f"named {suffix} but {actual}", "byte 0")


def _other_format(head: bytes) -> str | None:
    """A columnar file given a JSON lines name: say what it is."""
    if head.startswith(b"PAR1"):
        return "Parquet (rename it to .parquet)"
    if head.startswith(b"ARROW1"):
        return "an Arrow IPC file (rename it to .arrow)"
    return None


def byte_ranges(path: str, target_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges for parallel reading: plain files are cut every target_bytes (the reader
    aligns to lines); a compressed file is a single stream."""
    size = storage.size(path)
    if compression_of(path) is not None or size <= target_bytes:
        return [(0, size)]
    return [(start, min(size, start + target_bytes)) for start in range(0, size, target_bytes)]


def line_extents(path: str, start: int, stop: int) -> tuple[int, list[int]]:
    """Of a plain file: where the line holding byte ``start`` begins, and the byte lengths of the
    lines that begin from there up to ``stop`` (every line that overlaps [start, stop))."""
    with open(path, "rb") as f:
        begin = start
        while begin > 0:  # back to the newline before `start`
            step = min(begin, READ_BYTES)
            f.seek(begin - step)
            newline = f.read(step).rfind(b"\n")
            if newline >= 0:
                begin = begin - step + newline + 1
                break
            begin -= step
        f.seek(begin)
        lengths: list[int] = []
        pos = begin
        while pos < stop:
            line = f.readline()
            if not line:
                break
            lengths.append(len(line))
            pos += len(line)
    return begin, lengths


def interleaved_parts(path: str, wanted: int) -> int:
    """How many interleaved parts to read the compressed file `path` as (1: one stream)."""
    cap = MAX_INTERLEAVED_PARTS.get(compression_of(path) or "", 1)
    if storage.is_remote(path):
        cap = 1  # every part reads the whole stream: remotely, that is one download per part
    if wanted <= 1 or cap <= 1 or storage.size(path) < MIN_INTERLEAVED_BYTES:
        return 1
    return min(wanted, cap)


def open_stream(path: str):
    compression = compression_of(path)
    if compression is None:
        return storage.open_input(path, buffering=READ_BYTES)
    if compression == "xz":
        return _xz_input(path)
    return io.BufferedReader(_compressed_input(path, compression), buffer_size=READ_BYTES)


def _xz_input(path: str):
    return lzma.open(storage.open_input(path) if storage.is_remote(path) else path, "rb")


def _compressed_input(path: str, compression: str):
    """pyarrow's decoder over the file: a local path is read natively, a remote one through
    ``tokcount.storage`` (streamed in ranged GETs)."""
    if storage.is_remote(path):
        return pa.CompressedInputStream(storage.open_input(path), compression)
    return pa.input_stream(path, compression=compression)


STDIN = "-"


def open_stdin() -> tuple[io.BufferedReader, str | None]:
    """Standard input as a decompressed byte stream, the compression sniffed from its magic
    bytes (a stream has no name to go by): (stream, compression or None)."""
    raw = sys.stdin.buffer
    head = raw.peek(8)[:8] if hasattr(raw, "peek") else b""
    compression = next((name for name, magic in MAGIC.items() if head.startswith(magic)), None)
    if compression is None:
        return raw, None  # type: ignore[return-value]
    if compression == "xz":
        return io.BufferedReader(lzma.open(raw, "rb"), buffer_size=READ_BYTES), compression
    return io.BufferedReader(pa.CompressedInputStream(raw, compression), buffer_size=READ_BYTES), compression


def _open_with_raw(path: str):
    """(decompressed stream, the compressed file under it or None for plain files): progress
    through a compressed file is its raw position (the decompressed size is unknown)."""
    if path == STDIN:
        stream, _ = open_stdin()
        return stream, None  # read once, to its end: closing it after is what a pipe expects
    compression = compression_of(path)
    if compression is None:
        return open_stream(path), None
    raw = storage.open_input(path)
    try:
        if compression == "xz":
            return lzma.open(raw, "rb"), raw
        return io.BufferedReader(pa.CompressedInputStream(raw, compression), buffer_size=READ_BYTES), raw
    except BaseException:
        raw.close()
        raise


class GzipMembers(io.RawIOBase):
    """A gzip file's members one after another, as ``gzip -d`` reads them: whatever follows the
    last member (zero padding, or garbage) ends the stream and is noted in ``trailing_bytes`` /
    ``trailing_zeros``, where pyarrow's reader fails the whole file."""

    def __init__(self, path: str):
        self._file = storage.open_input(path)
        self._decoder = zlib.decompressobj(31)
        self._out = b""
        self._done = False
        self.trailing_bytes = 0
        self.trailing_zeros = True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._file.close()
        super().close()

    def readinto(self, buffer) -> int:
        while not self._out and not self._done:
            if self._decoder.eof:
                rest = self._decoder.unused_data
                while len(rest) < 2:
                    more = self._file.read(READ_BYTES)
                    if not more:
                        break
                    rest += more
                if not rest:
                    self._done = True
                elif rest[:2] != MAGIC["gzip"]:
                    self._note_trailing(rest)
                else:
                    self._decoder = zlib.decompressobj(31)
                    self._out = self._decoder.decompress(rest)
                continue
            chunk = self._file.read(READ_BYTES)
            if not chunk:
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
            self._out = self._decoder.decompress(chunk)
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def _note_trailing(self, rest: bytes) -> None:
        self._done = True
        while rest:
            self.trailing_bytes += len(rest)
            self.trailing_zeros = self.trailing_zeros and not rest.strip(b"\0")
            rest = self._file.read(READ_BYTES)


def _reads_past_trailing_data(error: Exception, path: str) -> bool:
    """pyarrow's gzip reader fails on data after the last member, which gzip itself accepts."""
    return path != STDIN and compression_of(path) == "gzip" and "zlib inflate failed" in str(error)


def whole_lines_before_error(path: str, chunk_bytes: int = 1 << 16) -> int:
    """Complete lines a compressed file yields before its decoder fails (only when it does)."""
    lines = 0
    compression = compression_of(path)
    try:
        # unbuffered: a buffered reader would ask for more than the decoder can give whole
        stream = _xz_input(path) if compression == "xz" else _compressed_input(path, compression or "")
        with stream:
            while True:
                chunk = stream.read(chunk_bytes)
                if not chunk:
                    break
                lines += chunk.count(b"\n")
    except (OSError, EOFError, lzma.LZMAError):
        pass
    return lines


def lines_before(path: str, offset: int) -> int:
    """Number of newlines in the first `offset` bytes (for 1-based line numbers of a range)."""
    count = 0
    with storage.open_input(path) as f:
        remaining = offset
        while remaining > 0:
            chunk = f.read(min(READ_BYTES * 8, remaining))
            if not chunk:
                break
            count += chunk.count(b"\n")
            remaining -= len(chunk)
    return count


@dataclass
class RangeLineLocator:
    """Lines of a byte range: position p is the range's line p. The number of lines before the
    range is counted only when a line number is first needed (it reads the file up to the
    range), and then kept, so a reported position costs one count and a parity sample none."""

    path: str
    first_line_start: int  # byte offset of the range's first line
    lines_before_range: int | None = None  # known for a range at the start of the file: 0

    def line(self, position: int) -> int:
        if self.lines_before_range is None:
            self.lines_before_range = lines_before(self.path, self.first_line_start)
        return self.lines_before_range + position + 1

    def describe(self, position: int) -> str:
        return f"line {self.line(position)}"

    def order(self, position: int) -> int | None:
        return self.line(position)


def _lookup(record, key_path: tuple[str, ...], dotted: str):
    if isinstance(record, dict) and dotted in record:  # a literal key containing dots wins
        return record[dotted], True
    value = record
    for key in key_path:
        if not isinstance(value, dict) or key not in value:
            return None, False
        value = value[key]
    return value, True


def read_documents(
    path: str,
    start: int,
    stop: int,
    text_key: str = "text",
    skip_bad_records: bool = False,
    part: int = 0,
    parts: int = 1,
    block_bytes: int = INTERLEAVE_BLOCK_BYTES,
    group_by: str | None = None,
) -> Iterator[DocumentBatch]:
    """Yield batches of documents whose line starts in [start, stop), or, for part `part` of
    `parts` interleaved parts of a compressed stream, in the blocks j (of `block_bytes`
    decompressed bytes) with j % parts == part; each batch then holds one block, named in
    ``batch.block``.

    Document positions are line indexes within the range, which the batches' ``RangeLineLocator``
    turns into line numbers. A bad record raises FileCheckError unless skip_bad_records, in which
    case it is listed in the batch's ``bad``. With ``group_by``, ``batch.groups`` holds each
    document's value of that key (dotted paths too; None where it is missing or null).
    """
    key_path = tuple(text_key.split("."))
    group_path = tuple(group_by.split(".")) if group_by is not None else ()
    locator = RangeLineLocator(path, start, None if start > 0 else 0)
    if compression_of(path) is not None or path == STDIN:
        stop = sys.maxsize  # a compressed range (or a stream) is the whole stream

    def new_batch(block: int) -> DocumentBatch:
        return DocumentBatch(locator, block=block, groups=[] if group_by is not None else None)

    try:
        stream, raw = _open_with_raw(path)
    except OSError as e:
        raise FileCheckError(path, "open", e.strerror or str(e)) from None
    if start == 0 and path != STDIN and storage.is_remote(path):
        # inspect() left the magic bytes to the first read: one request fewer per object
        try:
            check_head(path, (raw or stream).peek(8)[:8])
        except (OSError, FileCheckError) as e:
            stream.close()
            if raw is not None:
                raw.close()
            if isinstance(e, FileCheckError):
                raise
            raise FileCheckError(path, "open", e.strerror or str(e)) from None
    raw_reported = 0

    def with_progress(batch: DocumentBatch) -> DocumentBatch:
        # A compressed file's parts each report their share of its raw bytes read so far.
        nonlocal raw_reported
        if raw is not None:
            now = raw.tell()
            batch.input_bytes = now // parts - raw_reported // parts
            raw_reported = now
        return batch

    relative = 0
    members: GzipMembers | None = None  # the reader past pyarrow's, once the file has data after its last member
    with stream, raw or contextlib.nullcontext():
        pos = start
        try:
            if start > 0:
                stream.seek(start - 1)
                pos = start - 1 + len(stream.readline())  # finish the line that began before us
                locator.first_line_start = pos
            batch = new_batch(part)
            batch_text = 0
            while pos < stop:
                try:
                    line = stream.readline()
                except OSError as e:
                    if members is not None or not _reads_past_trailing_data(e, path):
                        raise
                    # read on as gzip does, from the same place: pos bytes of the stream were read whole
                    members = GzipMembers(path)
                    stream = io.BufferedReader(members, buffer_size=READ_BYTES)  # the first one closes with the file
                    skip = pos
                    while skip:
                        skip -= len(stream.read(min(skip, READ_BYTES)))
                    line = stream.readline()
                if not line:
                    break
                if parts > 1:
                    block = pos // block_bytes
                    if block % parts != part:
                        pos += len(line)
                        relative += 1
                        continue
                    if block != batch.block:
                        if batch.documents or batch.bad or batch.input_bytes:
                            yield with_progress(batch)
                        batch = new_batch(block)
                        batch_text = 0
                pos += len(line)
                batch.input_bytes += len(line)
                if relative == 0 and start == 0 and line.startswith(UTF8_BOM):
                    line = line[len(UTF8_BOM) :]  # a byte order mark opens the file: not part of the text
                record = None
                bad: tuple[str, str] | None
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError as e:
                    bad = _classify_decode_error(e, line)
                else:
                    # The common case without a call per line: short documents spent more time
                    # in this loop's helpers than in counting.
                    value = record.get(text_key) if type(record) is dict else None
                    if type(value) is str:
                        batch.texts.append(value)
                        batch.texts_per_document.append(1)
                        batch.positions.append(relative)
                        batch_text += len(value)
                        bad = None
                    else:
                        bad, text_length = _other_record(record, key_path, text_key, batch, relative)
                        batch_text += text_length
                if bad is None and group_by is not None:
                    batch.groups.append(group_name(_lookup(record, group_path, group_by)[0]))  # type: ignore[union-attr]
                elif bad is not None:
                    kind, detail = bad
                    line = locator.line(relative)
                    if not skip_bad_records:
                        raise FileCheckError(path, kind, detail + SKIP_HINT, f"line {line}", order=line)
                    batch.bad.append(BadRecord(f"line {line}", kind, detail, order=line))
                relative += 1
                if batch_text >= BATCH_BYTES:
                    yield with_progress(batch)
                    batch = new_batch(batch.block)
                    batch_text = 0
            with_progress(batch)
            if members is not None and members.trailing_bytes and not members.trailing_zeros:
                batch.warnings.append(
                    f"{members.trailing_bytes:,} bytes of trailing garbage after the last gzip member were ignored, "
                    "as gzip does ('decompression OK, trailing garbage ignored')"
                )
            if batch.documents or batch.bad or batch.input_bytes or batch.warnings:
                yield batch
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as e:
            message = str(e) or type(e).__name__
            kind = "truncated or corrupt compressed stream" if compression_of(path) else "read"
            last_line = locator.line(relative - 1) if relative else 0
            if compression_of(path) is not None and path != STDIN:
                # The reader fills a 1 MB buffer ahead of the lines: count what a decoder gets whole.
                last_line = max(last_line, whole_lines_before_error(path))
            where = f"after line {last_line:,}, the last one read whole" if last_line else "before its first line"
            raise FileCheckError(path, kind, message, where, order=last_line) from None
        finally:
            if members is not None:
                members.close()


def _other_record(record, key_path: tuple[str, ...], text_key: str, batch: DocumentBatch, relative: int):
    """A decoded line whose text is not simply a string under `text_key`: a dotted key path, a
    list of strings, or a bad record. (None, characters added) after adding the document, or
    ((kind, detail) of the bad record, 0)."""
    value, found = _lookup(record, key_path, text_key)
    text = text_or_parts(value) if found else None
    if text is not None:
        batch.add_document(text, relative)
        return None, len(text) if isinstance(text, str) else sum(map(len, text))
    if not isinstance(record, dict):
        return ("wrong type", f"the line is {describe_type(record)}, expected a JSON object"), 0
    if not found:
        return ("missing key", f"no {text_key!r} key"), 0
    return ("wrong type", f"{text_key!r} is {describe_type(value)}, expected a string or a list of strings"), 0


def _classify_decode_error(error: Exception, line: bytes) -> tuple[str, str]:
    message = str(error)
    if line.startswith(UTF8_BOM):
        return (
            "byte order mark",
            "a UTF-8 byte order mark (EF BB BF) starts this line; only the file's first line may have one",
        )
    if "UTF-8" in message:
        return "invalid UTF-8", message.split(":")[0]
    if "surrogate" in message:
        return "invalid unicode escape", message.split(":")[0]
    if not line.strip():
        return "malformed JSON", "blank line"
    return "malformed JSON", message


def read_raw_lines(path: str) -> Iterator[DocumentBatch]:
    """Every line, braces and trailing newline included, as one document's text: how GPT-NeoX's
    preprocessing reads ``.jsonl.gz`` (lm_dataformat's generic gzip branch, spec §2.1)."""
    try:
        stream = open_stream(path)
    except OSError as e:
        raise FileCheckError(path, "open", e.strerror or str(e)) from None
    line_number = 0
    locator = LineNumberLocator()
    with stream:
        batch = DocumentBatch(locator)
        try:
            for raw in stream:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise FileCheckError(
                        path, "invalid UTF-8", f"byte {e.start} of the line", f"line {line_number + 1}"
                    ) from None
                batch.add_document(text, line_number)
                batch.input_bytes += len(raw)
                line_number += 1
                if batch.documents >= RAW_LINES_BATCH:
                    yield batch
                    batch = DocumentBatch(locator)
        except (OSError, EOFError) as e:
            raise FileCheckError(
                path, "truncated or corrupt compressed stream", str(e) or type(e).__name__, f"after line {line_number}"
            ) from None
        if batch.documents or batch.input_bytes:
            yield batch


class JsonlFormat(TextFormat):
    """JSON lines, plain or compressed. Units: byte ranges of a plain file; a compressed file is
    one stream, or up to ``compressed_parts`` interleaved parts of it."""

    name = "jsonl"
    label = "JSON lines"

    def detect(self, path: str) -> bool:
        return path == STDIN or is_jsonl(path)

    def inspect(self, path: str, policy: TextPolicy) -> str:
        # A stream is read once: its compression is sniffed as it is read. A remote object's
        # first bytes are checked by the unit that reads them, which saves a request per object.
        if path != STDIN and not storage.is_remote(path):
            check_magic(path)
        return TEXT

    def units(
        self, source: int, path: str, policy: TextPolicy, target_bytes: int, compressed_parts: int = 1
    ) -> list[WorkUnit]:
        if path == STDIN:
            return [WorkUnit(source, path, self.name, 0, 0, 0, 1)]  # one stream, read once, by one reader
        try:
            ranges = byte_ranges(path, target_bytes)
            parts = interleaved_parts(path, compressed_parts) if compression_of(path) else 1
        except OSError as e:
            raise FileCheckError(path, "open", e.strerror or str(e)) from None
        if parts > 1:
            size = ranges[0][1]
            block = INTERLEAVE_BLOCK_BYTES  # read now: tests shrink it to put lines across blocks
            return [
                WorkUnit(source, path, self.name, k, 0, size, max(1, size // parts), parts, block) for k in range(parts)
            ]
        return [WorkUnit(source, path, self.name, k, a, b, max(1, b - a)) for k, (a, b) in enumerate(ranges)]

    def read(self, unit: WorkUnit, policy: TextPolicy) -> Iterator[DocumentBatch]:
        if unit.parts > 1:
            return read_documents(
                unit.path,
                unit.start,
                unit.stop,
                policy.text_key,
                policy.skip_bad_records,
                unit.part,
                unit.parts,
                unit.block_bytes,
                policy.group_by,
            )
        return read_documents(
            unit.path, unit.start, unit.stop, policy.text_key, policy.skip_bad_records, group_by=policy.group_by
        )

    def display_name(self, path: str) -> str:
        return format_name(path)

    def plain_bytes(self, path: str) -> int:
        """Size of an uncompressed file (its byte ranges balance the workers), else 0."""
        if path == STDIN:
            return 0
        if storage.is_remote(path):
            try:
                return storage.size(path) if compression_of(path) is None else 0
            except OSError:
                return 0  # units() reports it, for this file only
        return os.path.getsize(path) if compression_of(path) is None and os.path.isfile(path) else 0
