"""The unit-result cache: each text work unit's counted result on disk, so that a second scan of
unchanged files reads no file for counting, a changed file is counted again alone, and an
interrupted scan resumes from the units it finished.

An entry's key is everything its counts depend on: the file's identity (``file_identity``, the
one place a remote store plugs in its own, e.g. an ETag), the unit's range, and the counting
context (tokenizer fingerprint, the policy fields that apply to the unit's format and kind,
tokcount's and tokenizers' versions, and for the fast engine its code version). A result counted
by ``hf`` (the reference) also answers a run of another engine; never the other way round.

An entry holds the whole ``UnitResult`` a scan puts files together from (counts, per-document
lengths and sequence sizes, interleave blocks, skipped records, warnings, the parity guard's
tally), with a SHA-256 of its bytes: a damaged entry is removed and the unit counted again.
Failures are never stored, nor units the parity guard stopped, nor files modified in the last
``RECENT_SECONDS`` (their mtime may not yet tell a rewrite apart, as git's "racy" entries).

Each file's unit plan is stored too (a manifest): a later scan reuses a file's earlier cut
when some of its units are cached, so that adding a file elsewhere (which changes how the
others would be cut) costs nothing.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import orjson

from . import disk_cache, grouping, storage
from ._version import __version__
from .counting import UnitResult
from .formats.base import TOKEN_IDS, BadRecord, TextPolicy, WorkUnit
from .lengths import LengthHistogram

ENTRY_MAGIC = b"TKUC1\n"
ENTRY_FORMAT = 1  # bump when what an entry holds changes
RECENT_SECONDS = 2.0
DEFAULT_MAX_BYTES = 4 << 30  # the directory's bound; least recently used entries go first
_HEADER = struct.Struct("<Q")  # length of the JSON part


def file_identity(path: str) -> dict | None:
    """What a file's content is known by without reading it: its resolved path, size and
    modification time in ns. None: not cacheable (standard input, a file that cannot be stat-ed).
    Remote stores give their own identity here (URI, size, ETag or generation)."""
    if path == "-":
        return None
    if storage.is_remote(path):
        try:
            identity = storage.file_identity(path)
        except OSError:
            return None
        # a size alone does not say that an object is unchanged: only a version does
        return identity if "etag" in identity or "generation" in identity else None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"path": os.path.realpath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def recently_modified(identity: dict, now: float | None = None) -> bool:
    mtime_ns = identity.get("mtime_ns")
    if mtime_ns is None:
        return False
    return (now if now is not None else time.time()) - mtime_ns / 1e9 < RECENT_SECONDS


def engine_tag(engine: str) -> str:
    """The engine as far as counts depend on it: hf (the reference: tokenizers' version is in the
    context), the fast engine with its code version, another engine with its package's version."""
    if engine == "hf":
        return "hf"
    if engine == "fast":
        from .engines.fast.code_version import engine_code_version

        return f"fast-{engine_code_version()}"
    import importlib.metadata

    try:
        version = importlib.metadata.version(engine)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return f"{engine}-{version}"


def counting_context(fingerprint: str | None, policy: TextPolicy, format_name: str, kind: str) -> dict:
    """The policy and versions a unit's result depends on, only the fields that apply to it: a
    jsonl unit ignores --text-column, a column of token ids the tokenizer and EOD."""
    import tokenizers

    context: dict = {"tokcount": __version__, "entry_format": ENTRY_FORMAT, "format": format_name, "kind": kind}
    if format_name == "jsonl":
        context["text_key"] = policy.text_key
    else:
        context["text_column"] = policy.text_column
    context["skip_bad_records"] = policy.skip_bad_records
    if policy.group_by is not None:
        context["group_by"] = policy.group_by
    if kind != TOKEN_IDS:
        context.update(
            tokenizer=fingerprint,
            tokenizers=tokenizers.__version__,
            add_special_tokens=policy.add_special_tokens,
            append_eod=policy.append_eod,
        )
    return context


def unit_range(unit: WorkUnit) -> list[int]:
    return [unit.part, unit.start, unit.stop, unit.parts, unit.block_bytes]


def entry_key(identity: dict, unit: WorkUnit, context: dict, engine: str) -> str:
    material = {"identity": identity, "range": unit_range(unit), "context": context, "engine": engine}
    return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class CacheStats:
    """What the report says about the cache."""

    directory: str
    units: int = 0  # text units in the scan
    units_from_cache: int = 0
    bytes_from_cache: int = 0  # the units' input bytes (compressed where the file is)
    units_counted: int = 0
    units_stored: int = 0
    damaged_entries: int = 0  # failed their checksum: removed and counted again
    not_stored_recent: int = 0  # units of files modified in the last RECENT_SECONDS

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _FileEntry:
    identity: dict | None
    context: dict


@dataclass
class UnitCache:
    """The cache of one scan: where it lives, each file's identity and context, and its stats."""

    directory: Path
    max_bytes: int = DEFAULT_MAX_BYTES
    stats: CacheStats = field(init=False)
    _files: dict[int, _FileEntry] = field(default_factory=dict, init=False)
    _started: float = field(default_factory=time.time, init=False)

    def __post_init__(self) -> None:
        self.stats = CacheStats(str(self.directory))

    def add_file(self, source: int, path: str, fingerprint: str | None, policy: TextPolicy, fmt: str, kind: str):
        self._files[source] = _FileEntry(file_identity(path), counting_context(fingerprint, policy, fmt, kind))

    # -- plans -------------------------------------------------------------------------------

    def reuse_plan(self, source: int, fresh: list[WorkUnit], engine: str) -> list[WorkUnit]:
        """The file's units: its stored plan when some of those units are cached (they are then
        not counted again), else ``fresh``, which is stored for the next scan."""
        entry = self._files.get(source)
        if entry is None or entry.identity is None or not fresh:
            return fresh
        path = self._manifest_path(entry.identity)
        stored = self._read_verified(path)
        if stored is not None:
            try:
                ranges = orjson.loads(stored)["units"]
                first = fresh[0]
                planned = [
                    WorkUnit(first.source, first.path, first.format, p, a, b, cost, n, block)
                    for p, a, b, n, block, cost in ranges
                ]
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                planned = []
            if planned and [unit_range(u) for u in planned] == [unit_range(u) for u in fresh]:
                return fresh
            if planned and any(self._entry_path(u, engine) is not None for u in planned):
                return planned
        body = orjson.dumps({"units": [[*unit_range(u), u.cost] for u in fresh]})
        self._write_verified(path, body)
        return fresh

    # -- entries -----------------------------------------------------------------------------

    def _keys(self, unit: WorkUnit, engine: str) -> list[str]:
        """The keys that may answer this unit, best first: the engine's own, then hf's."""
        entry = self._files.get(unit.source)
        if entry is None or entry.identity is None:
            return []
        tags = [engine_tag(engine)] + (["hf"] if engine != "hf" else [])
        if entry.context["kind"] == TOKEN_IDS:
            tags = ["none"]  # no tokenizer runs: any engine's count is the list lengths
        return [entry_key(entry.identity, unit, entry.context, tag) for tag in tags]

    def _entry_path(self, unit: WorkUnit, engine: str) -> Path | None:
        for key in self._keys(unit, engine):
            path = self._path_of(key)
            if path.exists():
                return path
        return None

    def cached(self, unit: WorkUnit, engine: str) -> bool:
        """Whether an entry exists (not yet verified): to decide if workers are needed."""
        return self._entry_path(unit, engine) is not None

    def begin_run(self, units: int) -> None:
        """A run over the units starts (a recount with hf after a disagreement is a second one)."""
        self.stats.units = units
        self.stats.units_from_cache = self.stats.bytes_from_cache = self.stats.units_counted = 0

    def load(self, unit: WorkUnit, engine: str) -> UnitResult | None:
        for key in self._keys(unit, engine):
            path = self._path_of(key)
            if not path.exists():
                continue
            result = self._load_entry(path, key, unit)
            if result is not None:
                self.stats.units_from_cache += 1
                self.stats.bytes_from_cache += unit.cost
                return result
        return None

    def save(self, result: UnitResult, engine: str) -> None:
        """Store a finished unit's result; failures and units the parity guard stopped are not."""
        self.stats.units_counted += 1
        if result.failure is not None or result.parity_mismatch is not None:
            return
        entry = self._files.get(result.unit.source)
        if entry is None or entry.identity is None:
            return
        if recently_modified(entry.identity, self._started):
            self.stats.not_stored_recent += 1
            return
        key = self._keys(result.unit, engine)[0]
        path = self._path_of(key)
        self._write_verified(path, _encode(result, key))
        if path.exists():  # an unwritable cache only costs time: nothing is said to be stored
            self.stats.units_stored += 1

    def finish(self) -> None:
        """Keep the directory under its size bound (once per scan: a directory walk)."""
        disk_cache.keep_under_bytes(self.directory / "units", self.max_bytes)

    # -- files -------------------------------------------------------------------------------

    def _path_of(self, key: str) -> Path:
        return self.directory / "units" / f"{key}.unit"

    def _manifest_path(self, identity: dict) -> Path:
        material = orjson.dumps({"identity": identity, "entry_format": ENTRY_FORMAT}, option=orjson.OPT_SORT_KEYS)
        return self.directory / "units" / f"{hashlib.sha256(material).hexdigest()}.plan"

    def _write_verified(self, path: Path, body: bytes) -> None:
        digest = hashlib.sha256(body).digest()
        disk_cache.store(path, lambda f: (f.write(ENTRY_MAGIC), f.write(digest), f.write(body)))

    def _read_verified(self, path: Path) -> bytes | None:
        """The entry's body if its checksum holds; a damaged entry is removed and counted."""
        data = disk_cache.read_bytes(path)
        if data is None:
            return None
        head = len(ENTRY_MAGIC)
        body = data[head + 32 :]
        if data[:head] != ENTRY_MAGIC or hashlib.sha256(body).digest() != data[head : head + 32]:
            self.stats.damaged_entries += 1
            try:
                path.unlink()
            except OSError:
                pass
            return None
        return body

    def _load_entry(self, path: Path, key: str, unit: WorkUnit) -> UnitResult | None:
        body = self._read_verified(path)
        if body is None:
            return None
        try:
            return _decode(body, key, unit)
        except (ValueError, KeyError, TypeError, struct.error):
            self.stats.damaged_entries += 1  # a sound checksum over a body this version cannot read
            return None


def _encode(result: UnitResult, key: str) -> bytes:
    histogram = result.document_lengths or LengthHistogram.of(np.zeros(0, np.int64))
    lengths, documents = _compact(histogram.values), _compact(histogram.counts)
    seqs = _compact(result.sequence_sizes)
    meta = {
        "key": key,
        "documents": result.documents,
        "empty_documents": result.empty_documents,
        "tokens": result.tokens,
        "text_bytes": result.text_bytes,
        "skipped": result.skipped,
        "skipped_examples": [
            {"position": b.position, "kind": b.kind, "detail": b.detail, "order": b.order}
            for b in result.skipped_examples
        ],
        "engine": result.engine,
        "parity_tally": result.parity_tally,
        "blocks": result.blocks,
        "warnings": result.warnings,
        "groups": grouping.encode(result.groups),
        "arrays": [[a.dtype.str, a.size] for a in (lengths, documents, seqs)],
        "histogram": result.document_lengths is not None,
    }
    encoded = orjson.dumps(meta)
    return _HEADER.pack(len(encoded)) + encoded + lengths.tobytes() + documents.tobytes() + seqs.tobytes()


def _compact(values: np.ndarray) -> np.ndarray:
    """The smallest unsigned type that holds the lengths (mostly 2 or 4 bytes instead of 8)."""
    top = int(values.max()) if values.size else 0
    for dtype in (np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return values.astype(dtype)
    return values.astype(np.int64)


def _decode(body: bytes, key: str, unit: WorkUnit) -> UnitResult:
    (length,) = _HEADER.unpack_from(body)
    meta = orjson.loads(body[_HEADER.size : _HEADER.size + length])
    if meta["key"] != key:
        raise ValueError("entry stored under another key")
    offset = _HEADER.size + length
    arrays = []
    for dtype, n in meta["arrays"]:
        array = np.frombuffer(body, dtype=np.dtype(dtype), count=n, offset=offset)
        offset += array.nbytes
        arrays.append(array.astype(np.int64))
    if offset != len(body):
        raise ValueError("entry length")
    return UnitResult(
        unit,
        documents=meta["documents"],
        empty_documents=meta["empty_documents"],
        tokens=meta["tokens"],
        text_bytes=meta["text_bytes"],
        document_lengths=LengthHistogram(arrays[0], arrays[1]) if meta["histogram"] else None,
        sequence_sizes=arrays[2],
        skipped=meta["skipped"],
        skipped_examples=[BadRecord(**b) for b in meta["skipped_examples"]],
        engine=meta["engine"],
        parity_tally=meta["parity_tally"],
        blocks=meta["blocks"],
        warnings=meta["warnings"],
        groups=grouping.decode(meta["groups"]),
    )


def open_cache(enabled: bool, directory: str | None, max_bytes: int | None = None) -> UnitCache | None:
    if not enabled:
        return None
    base = Path(directory) if directory else disk_cache.cache_directory()
    return UnitCache(base, max_bytes if max_bytes is not None else DEFAULT_MAX_BYTES)
