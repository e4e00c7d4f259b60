"""``tokcount check``: does a ``.bin/.idx`` pair hold what its raw JSON lines say it should?

The raw files are re-tokenized under a named preprocessing preset (the behaviours of
``shared/spec/megatron_neox.md`` §2) and compared with the index document by document, in
order: document count, sequences per document, sequence sizes and, with ``ids``, the token ids.

Work is split like ``scan`` (byte ranges of plain files, compressed files whole or as interleaved
parts) and runs on an executor, in the same worker state as a scan (``counting``). A unit does not know where its documents sit in the index (that depends on every unit
before it), so units return per-document sequence counts and sizes (and, with ids, a 64-bit hash
of each document's ids); the parent compares them in file order as units arrive, reading the
``.bin`` one window at a time. Only the first mismatching document is re-tokenized in the parent,
to name its line and its first differing token.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import counting, formats
from .._version import __version__
from ..engines import EngineChoice, choose_engine
from ..engines.hf import worker_start_method
from ..engines.parity import recount_on_disagreement
from ..errors import FileCheckError, UsageError
from ..executors import LocalExecutor, default_workers, report_progress
from ..formats import indexed, jsonl
from ..formats.base import DocumentBatch, TextPolicy, WorkUnit, note_block, regular_file_problem
from ..formats.indexed_kernels import hash_documents
from ..options import PRESETS, CheckOptions, Progress

if TYPE_CHECKING:
    from ..engines import Counter
    from ..engines.hf import TokenCounter

NEOX_PARAGRAPH_JOINER = "\n\n"  # lm_dataformat's para_joiner (§2.1)
NEOX_TEXT_KEY = "text"  # lm_dataformat reads only this key (§2.1)
UINT16_VOCAB_LIMIT = 65500  # both preprocessors write uint16 iff vocab < 65500 (§2.1, §2.2)
MAX_EXAMPLES = 10
SHIFT_PROBE = 8  # documents compared after a mismatch to recognise a dropped or inserted one


@dataclass(frozen=True)
class PresetPolicy:
    """What a work unit needs to know of the preset, shipped to worker processes."""

    preset: str
    append_eod: bool
    eod: int
    ids: bool
    text_key: str

    def text_policy(self) -> TextPolicy:
        return TextPolicy(text_key=self.text_key)


@dataclass
class _UnitOut:
    documents: int = 0
    seq_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # sequences per document
    seq_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # tokens per sequence
    hashes: np.ndarray | None = None  # per document, with ids
    failure: FileCheckError | None = None
    blocks: list = field(default_factory=list)  # [block, documents] in reading order (interleaved parts)


@dataclass
class _Docs:
    """One batch of raw documents as the preset turns them into index entries."""

    seq_counts: np.ndarray
    seq_sizes: np.ndarray
    doc_tokens: np.ndarray  # tokens per document, EOD included
    ids: np.ndarray | None  # every token of the batch, in index order (with ids)


# ---------------------------------------------------------------------------------------------
# worker side


class _Encoder:
    """Lengths from the fast engine when it was chosen; ids always from Hugging Face."""

    def __init__(self, reference: TokenCounter, lengths: Counter | None = None):
        self._reference = reference
        self._lengths = lengths

    @classmethod
    def of_this_worker(cls) -> _Encoder:
        worker = counting.current_worker()
        assert worker.reference is not None
        return cls(worker.reference, worker.fast)

    def encode(self, texts: list[str], want_ids: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if self._lengths is not None and not want_ids:
            return np.asarray(self._lengths.count(texts), dtype=np.int64), None
        from ..engines.hf import UnencodableText

        try:
            encodings = self._reference.encode_batch(texts)
        except UnencodableText as e:  # only a lone surrogate gets here; orjson rejects those first
            raise ValueError(f"the tokenizer refused the text: {e}") from None
        lengths = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(encodings))
        ids = None
        if want_ids:
            ids = np.fromiter(
                itertools.chain.from_iterable(e.ids for e in encodings), dtype=np.int64, count=int(lengths.sum())
            )
        return lengths, ids


def _batches(unit: WorkUnit, policy: PresetPolicy) -> Iterator[DocumentBatch]:
    if _reads_raw_lines(policy.preset, unit.path):
        return jsonl.read_raw_lines(unit.path)
    return formats.JSONL.read(unit, policy.text_policy())


def _reads_raw_lines(preset: str, path: str) -> bool:
    return preset == "neox" and jsonl.compression_of(path) == "gzip"


def _preset_documents(batch: DocumentBatch, policy: PresetPolicy, encoder: _Encoder, path: str) -> _Docs:
    """Apply the preset to one batch: which documents exist, their sequences, their ids."""
    texts, parts = batch.texts, np.asarray(batch.texts_per_document, dtype=np.int64)
    if policy.preset == "datatrove":
        texts, parts = _datatrove_documents(batch, path)
    if policy.preset == "neox":
        # One text per document: a list joins with "\n\n"; empty texts are filtered out (§2.1).
        joined, k, kept = [], 0, []
        for n, position in zip(batch.texts_per_document, batch.positions):
            text = texts[k] if n == 1 else NEOX_PARAGRAPH_JOINER.join(texts[k : k + n])
            k += n
            if text:
                joined.append(text)
                kept.append(position)
        texts, parts, batch.positions = joined, np.ones(len(joined), dtype=np.int64), kept
    try:
        part_tokens, part_ids = encoder.encode(texts, policy.ids)
    except ValueError as e:
        where, order = batch.where(batch.positions[0]) if batch.positions else (None, None)
        raise FileCheckError(path, "unencodable text", str(e), where, order=order) from None
    ndocs = parts.shape[0]
    part_ends = np.cumsum(part_tokens)
    doc_part_ends = np.cumsum(parts)
    cumulative = np.concatenate([[0], part_ends])
    content = cumulative[doc_part_ends] - cumulative[doc_part_ends - parts]  # tokens before any EOD
    eod = 1 if policy.append_eod else 0

    if policy.preset == "datatrove":
        # DocumentTokenizer's "$A <EOS>" post-processor: EOS after every document, even one of 0 tokens.
        seq_counts = np.ones(ndocs, dtype=np.int32)
        seq_sizes = content + 1
        gets_eod = np.ones(ndocs, dtype=bool)
    elif policy.preset == "megatron":
        # Each non-empty part is a sequence; EOD joins the last one of a non-empty document (§2.2).
        nonempty = part_tokens > 0
        doc_of_part = np.repeat(np.arange(ndocs), parts)
        seq_counts = np.bincount(doc_of_part[nonempty], minlength=ndocs).astype(np.int32)
        seq_sizes = part_tokens[nonempty].copy()
        gets_eod = (content > 0) & bool(eod)
        if eod and seq_sizes.size:
            last_seq = np.cumsum(seq_counts) - 1
            seq_sizes[last_seq[seq_counts > 0]] += 1
    elif policy.preset == "megatron-fast":
        # One sequence per document; EOD on every document, empty ones too (§2.2).
        seq_counts = np.ones(ndocs, dtype=np.int32)
        seq_sizes = content + eod
        gets_eod = np.full(ndocs, bool(eod))
    else:
        has_tokens = content > 0
        if eod and not has_tokens.all():
            first = int(np.argmin(has_tokens))
            where, order = batch.where(batch.positions[first])
            raise FileCheckError(
                path,
                "neox preprocessing",
                "the text tokenizes to 0 tokens: NeoX's --append-eod raises IndexError "
                "on such a document (§2.1), so this file cannot have been preprocessed with it",
                where,
                order=order,
            )
        seq_counts = has_tokens.astype(np.int32)
        seq_sizes = content[has_tokens] + eod
        gets_eod = np.full(ndocs, bool(eod))
    doc_tokens = content + gets_eod
    ids = None
    if policy.ids:
        assert part_ids is not None  # the encoder gives ids when asked
        ends_in_flat = cumulative[doc_part_ends]
        ids = np.insert(part_ids, ends_in_flat[gets_eod], policy.eod) if gets_eod.any() else part_ids
    return _Docs(seq_counts, seq_sizes.astype(np.int64), doc_tokens, ids)


def _datatrove_documents(batch: DocumentBatch, path: str) -> tuple[list[str], np.ndarray]:
    """datatrove's reader: a document per record with a non-empty text string; the others are
    skipped ("Found document without text, skipping"), and a list is no text it can tokenize."""
    kept, positions = [], []
    k = 0
    for n, position in zip(batch.texts_per_document, batch.positions):
        if n != 1:
            where, order = batch.where(position)
            raise FileCheckError(
                path, "datatrove preprocessing", "a list of texts: datatrove reads one string", where, order=order
            )
        if batch.texts[k]:
            kept.append(batch.texts[k])
            positions.append(position)
        k += n
    batch.positions = positions
    return kept, np.ones(len(kept), dtype=np.int64)


def _doc_bounds(doc_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ends = np.cumsum(doc_tokens)
    return ends - doc_tokens, ends


def _run_unit(args: tuple[WorkUnit, PresetPolicy]) -> _UnitOut:
    unit, policy = args
    encoder = _Encoder.of_this_worker()
    out = _UnitOut()
    counts, sizes, hashes = [], [], []
    try:
        for batch in _batches(unit, policy):
            docs = _preset_documents(batch, policy, encoder, unit.path)
            counts.append(docs.seq_counts)
            sizes.append(docs.seq_sizes)
            if policy.ids:
                starts, ends = _doc_bounds(docs.doc_tokens)
                hashes.append(hash_documents(docs.ids, starts, ends))
            out.documents += len(docs.seq_counts)
            note_block(out.blocks, batch.block, len(docs.seq_counts))
            report_progress(nbytes=batch.input_bytes, tokens=int(docs.doc_tokens.sum()), documents=len(docs.seq_counts))
    except FileCheckError as e:
        out.failure = e
        return out
    if counts:
        out.seq_counts = np.concatenate(counts)
        out.seq_sizes = np.concatenate(sizes)
        if policy.ids:
            out.hashes = np.concatenate(hashes)
    elif policy.ids:
        out.hashes = np.zeros(0, np.uint64)
    return out


def _document_at(unit: WorkUnit, policy: PresetPolicy, encoder: _Encoder, index: int) -> tuple[str, np.ndarray | None]:
    """Re-read one unit up to its index-th document: its position ("line N") and its ids."""
    seen = 0
    for batch in _batches(unit, policy):
        docs = _preset_documents(batch, policy, encoder, unit.path)
        n = len(docs.seq_counts)
        if index < seen + n:
            j = index - seen
            ids = None
            if docs.ids is not None:
                starts, ends = _doc_bounds(docs.doc_tokens)
                ids = docs.ids[starts[j] : ends[j]]
            return str(batch.location(j)), ids
        seen += n
    return "?", None


# ---------------------------------------------------------------------------------------------
# parent side: in-order comparison with the index


@dataclass
class DocumentMismatch:
    document: int  # index in the .idx (doc_idx position)
    raw_path: str
    position: str | None  # "line 18", filled for the first mismatch
    expected_tokens: int | None  # None: the index has a document the raw data does not
    found_tokens: int | None  # None: missing from the index
    expected_sequences: list[int] | None = None
    found_sequences: list[int] | None = None
    first_differing_token: int | None = None  # position within the document
    bin_token: int | None = None  # absolute token position in the .bin
    expected_id: int | None = None
    found_id: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RawCheckResult:
    raw_paths: list[str]
    index: str
    options: dict
    index_counts: dict
    expected_counts: dict
    raw_files: list[dict]
    compared_documents: int = 0
    differing_documents: int = 0
    missing_from_index: int = 0  # raw documents past the end of the index
    extra_in_index: int = 0  # index documents past the end of the raw data
    first_mismatch: DocumentMismatch | None = None
    examples: list[DocumentMismatch] = field(default_factory=list)
    diagnosis: str | None = None
    hints: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    complete: bool = True

    @property
    def ok(self) -> bool:
        return self.differing_documents == 0 and self.missing_from_index == 0 and self.extra_in_index == 0

    def to_dict(self) -> dict:
        return {
            "tokcount_version": __version__,
            "complete": self.complete,
            "check": "raw-index",
            "ok": self.ok,
            "raw_files": self.raw_files,
            "index": self.index,
            "options": self.options,
            "expected": self.expected_counts,
            "found": self.index_counts,
            "compared_documents": self.compared_documents,
            "differing_documents": self.differing_documents,
            "missing_from_index": self.missing_from_index,
            "extra_in_index": self.extra_in_index,
            "first_mismatch": self.first_mismatch.to_dict() if self.first_mismatch else None,
            "examples": [m.to_dict() for m in self.examples],
            "diagnosis": self.diagnosis,
            "hints": list(self.hints),
            "warnings": list(self.warnings),
        }


class _Comparator:
    """Compares units with the index in file order; holds O(one unit) of state."""

    def __init__(self, shard: indexed.IndexedShard, ids: bool, window_bytes: int):
        self.shard = shard
        self.ids = ids
        self.window_bytes = window_bytes
        self.doc = 0  # next raw document's index
        self.found_seq = 0  # doc_idx[doc] while doc < D
        self.found_tok = 0  # .bin token offset of found_seq
        self.compared = 0
        self.differing = 0
        self.missing = 0
        self.examples: list[DocumentMismatch] = []
        self.first: tuple | None = None  # (unit task index, index in unit) of the first mismatch
        self.diagnosis: str | None = None
        self.deltas: dict[int, int] = {}  # found - expected tokens -> documents, for hints
        self.empty_one_longer = 0  # raw documents with no tokens that have exactly one in the index
        self.expected_docs = self.expected_seqs = self.expected_tokens = 0
        self._bin = open(shard.bin_path, "rb") if ids and shard.tokens else None

    def close(self) -> None:
        if self._bin is not None:
            self._bin.close()

    def feed(self, task: int, unit: WorkUnit, out: _UnitOut, offset: int = 0) -> None:
        """Compare the next documents (out) with the index; `offset`: where out's first
        document is within its unit, to find a mismatch again (_first_mismatch_detail)."""
        shard = self.shard
        n = out.documents
        seq_ends = np.cumsum(out.seq_counts, dtype=np.int64)
        seq_starts = seq_ends - out.seq_counts
        e_cum = np.concatenate([[0], np.cumsum(out.seq_sizes)])
        e_tot = e_cum[seq_ends] - e_cum[seq_starts]
        self.expected_docs += n
        self.expected_seqs += int(out.seq_sizes.shape[0])
        self.expected_tokens += int(e_cum[-1])
        k = max(0, min(n, shard.documents - self.doc))
        if k:
            fi = np.asarray(shard.doc_idx[self.doc : self.doc + k + 1], dtype=np.int64)
            f_sizes = np.asarray(shard.sizes[fi[0] : fi[-1]], dtype=np.int64)
            f_cum = np.concatenate([[0], np.cumsum(f_sizes)])
            f_counts = np.diff(fi)
            f_starts, f_ends = f_cum[fi[:-1] - fi[0]], f_cum[fi[1:] - fi[0]]
            f_tot = f_ends - f_starts
            bad = (f_counts != out.seq_counts[:k]) | (f_tot != e_tot[:k])
            multi = np.flatnonzero(~bad & (out.seq_counts[:k] > 1))
            if multi.size:
                bad[multi] = self._sequences_differ(multi, fi, f_sizes, seq_starts, out)
            f_hash = None
            if self.ids:
                assert out.hashes is not None  # units hash their documents when ids are compared
                f_hash = self._bin_hashes(self.found_tok, f_starts, f_ends)
                bad |= f_hash != out.hashes[:k]
            delta = f_tot - e_tot[:k]
            for d, c in zip(*np.unique(delta[delta != 0], return_counts=True)):
                self.deltas[int(d)] = self.deltas.get(int(d), 0) + int(c)
            self.empty_one_longer += int(np.count_nonzero((e_tot[:k] == 0) & (f_tot == 1)))
            bad_docs = np.flatnonzero(bad)
            self.compared += k
            self.differing += int(bad_docs.size)
            for j in bad_docs[: max(0, MAX_EXAMPLES - len(self.examples))]:
                j = int(j)
                self.examples.append(
                    DocumentMismatch(
                        self.doc + j,
                        unit.path,
                        None,
                        int(e_tot[j]),
                        int(f_tot[j]),
                        out.seq_sizes[seq_starts[j] : seq_ends[j]].tolist(),
                        f_sizes[fi[j] - fi[0] : fi[j + 1] - fi[0]].tolist(),
                        bin_token=self.found_tok + int(f_starts[j]),
                    )
                )
            if bad_docs.size and self.first is None:
                j = int(bad_docs[0])
                self.first = (task, offset + j)
                self.diagnosis = self._diagnose(j, k, e_tot, f_tot, out.hashes, f_hash)
            self.found_tok += int(f_cum[-1])
            self.found_seq = int(fi[-1])
        if n > k:
            if self.first is None:
                self.first = (task, offset + k)
            for j in range(k, min(n, k + MAX_EXAMPLES - len(self.examples))):
                self.examples.append(
                    DocumentMismatch(
                        self.doc + j,
                        unit.path,
                        None,
                        int(e_tot[j]),
                        None,
                        out.seq_sizes[seq_starts[j] : seq_ends[j]].tolist(),
                    )
                )
            self.missing += n - k
        self.doc += n

    def _sequences_differ(self, docs, fi, f_sizes, seq_starts, out) -> np.ndarray:
        # Documents with several sequences (Megatron list values): same count and total, so
        # compare their sequences pairwise.
        counts = out.seq_counts[docs].astype(np.int64)
        owner = np.repeat(np.arange(docs.size), counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        expected = out.seq_sizes[np.repeat(seq_starts[docs], counts) + within]
        found = f_sizes[np.repeat(fi[docs] - fi[0], counts) + within]
        return np.bincount(owner, weights=expected != found, minlength=docs.size) > 0

    def _bin_hashes(self, base: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Hashes of index documents [starts, ends) (relative to token base), reading the .bin
        in windows of whole documents."""
        out = np.empty(starts.shape[0], dtype=np.uint64)
        itemsize = self.shard.dtype.itemsize
        window = max(1, self.window_bytes // itemsize)
        lo = 0
        while lo < starts.shape[0]:
            # as many documents as fit in one window, and at least one
            hi = max(lo + 1, int(np.searchsorted(ends, starts[lo] + window, side="right")))
            first, last = int(starts[lo]), int(ends[hi - 1])
            if last == first:
                out[lo:hi] = hash_documents(np.zeros(0, np.int64), starts[lo:hi] - first, ends[lo:hi] - first)
            else:
                with indexed.map_window(
                    self._bin, self.shard.bin_path, (base + first) * itemsize, (last - first) * itemsize
                ) as (view, delta):
                    tokens = np.frombuffer(view, dtype=self.shard.dtype, count=last - first, offset=delta)
                    out[lo:hi] = hash_documents(tokens, starts[lo:hi] - first, ends[lo:hi] - first)
                    del tokens  # the mapping closes only once nothing points into it
            lo = hi
        return out

    def bin_tokens(self, start: int, count: int) -> np.ndarray:
        if count <= 0:
            return np.zeros(0, np.int64)
        itemsize = self.shard.dtype.itemsize
        with (
            open(self.shard.bin_path, "rb") as f,
            indexed.map_window(f, self.shard.bin_path, start * itemsize, count * itemsize) as (view, delta),
        ):
            tokens = np.frombuffer(view, dtype=self.shard.dtype, count=count, offset=delta).astype(np.int64)
        return tokens

    def _diagnose(self, j, k, e_tot, f_tot, e_hash, f_hash) -> str | None:
        """Name a dropped, inserted or swapped document from the documents that follow it."""
        e = e_tot[:k] if e_hash is None else list(zip(e_tot[:k].tolist(), e_hash[:k].tolist()))
        f = f_tot if f_hash is None else list(zip(f_tot.tolist(), f_hash.tolist()))
        e, f = list(e), list(f)
        doc = self.doc + j
        if (
            j + 1 < k
            and e[j] == f[j + 1]
            and e[j + 1] == f[j]
            and e[j] != e[j + 1]
            and e[j + 2 : j + 2 + SHIFT_PROBE] == f[j + 2 : j + 2 + SHIFT_PROBE]
        ):
            return f"documents {doc:,} and {doc + 1:,} are swapped in the index"
        m = min(SHIFT_PROBE, k - j - 1)
        if m >= 1 and e[j + 1 : j + 1 + m] == f[j : j + m]:
            return (
                f"raw document {doc:,} is missing from the index: the {m} documents after it match with a shift of one"
            )
        if m >= 1 and e[j : j + m] == f[j + 1 : j + 1 + m]:
            return f"the index has an extra document at {doc:,}: the {m} documents after it match with a shift of one"
        return None


def expected_token_dtype(preset: str, vocab_size: int) -> str:
    if preset == "datatrove":  # PipelineStepWithTokenizer.token_size: 4 bytes above 65,536 ids
        return "uint16" if vocab_size <= 65536 else "uint32"
    return "uint16" if vocab_size < UINT16_VOCAB_LIMIT else "int32"


def _check_options(options: CheckOptions) -> None:
    if options.preset not in PRESETS:
        raise UsageError(f"unknown preset {options.preset!r}; choose one of {', '.join(PRESETS)}")
    if options.preset == "neox" and options.text_key != NEOX_TEXT_KEY:
        raise UsageError(
            "NeoX preprocessing always reads the 'text' key (--jsonl-keys only names the outputs); "
            "drop --text-key or use --preset megatron"
        )
    if options.eod is not None and not options.append_eod and options.preset != "datatrove":
        raise UsageError("--eod applies with --append-eod")


def _raw_units(paths: Sequence[str], options: CheckOptions) -> list[WorkUnit]:
    workers = options.workers or default_workers()
    units = []
    for i, path in enumerate(paths):
        if not os.path.exists(path):
            raise FileCheckError(path, "open", "no such file")
        problem = regular_file_problem(path)
        if problem is not None:
            raise FileCheckError(path, "open", problem)
        if not jsonl.is_jsonl(path):
            raise UsageError(f"{path}: check reads JSON lines (.jsonl[.gz|.zst|.bz2|.xz]), what the preprocessors read")
        jsonl.check_magic(path)
        # Fewer files than cores: a compressed file is read as interleaved parts, as in scan.
        parts = workers if len(paths) < workers and not _reads_raw_lines(options.preset, path) else 1
        units.extend(formats.JSONL.units(i, path, TextPolicy(), options.unit_bytes, parts))
    return units


def _file_groups(units: list[WorkUnit]) -> list[list[int]]:
    """Task indexes compared together, in file order: one unit, or every interleaved part of
    one compressed file (their documents alternate block by block)."""
    groups: list[list[int]] = []
    for i, unit in enumerate(units):
        if unit.parts > 1 and unit.part > 0:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _in_stream_order(group: list[int], outs: list[_UnitOut]):
    """(task, out, offset) slices of a group's outputs in file order: each interleaved part's
    blocks put back where they were in the stream. offset: the slice's first document within
    its part, which is how _document_at finds it again."""
    if len(group) == 1:
        return [(group[0], outs[0], 0)]
    pieces = []
    for task, out in zip(group, outs):
        seq_ends = np.concatenate([[0], np.cumsum(out.seq_counts, dtype=np.int64)])
        first = 0
        for block, documents in out.blocks:
            stop = first + documents
            piece = _UnitOut(
                documents,
                out.seq_counts[first:stop],
                out.seq_sizes[seq_ends[first] : seq_ends[stop]],
                None if out.hashes is None else out.hashes[first:stop],
            )
            pieces.append((block, task, piece, first))
            first = stop
    pieces.sort(key=lambda piece: piece[0])
    return [(task, piece, offset) for _, task, piece, offset in pieces]


def check_raw(
    raw_paths: Sequence[str] | str,
    against: str,
    options: CheckOptions,
    progress: Progress | None = None,
    window_bytes: int = indexed.WINDOW_BYTES,
    shard: indexed.IndexedShard | None = None,
) -> RawCheckResult:
    """Re-tokenize ``raw_paths`` (in this order) under ``options`` and compare with the index
    (``shard``: one already opened, e.g. a datatrove ``.ds``; default: the ``.bin/.idx`` pair
    ``against``).
    A difference found by the fast engine is only reported as the reference sees it: the whole
    check then runs again with hf (parity.recount_on_disagreement), so an engine bug is never
    blamed on the data."""
    from ..tokenizer import end_of_document_id, load_tokenizer_spec

    if isinstance(raw_paths, (str, os.PathLike)):
        raw_paths = [raw_paths]
    raw_paths, against = [os.fspath(p) for p in raw_paths], os.fspath(against)
    if not raw_paths:
        raise UsageError("no raw files given")
    _check_options(options)
    shard = shard if shard is not None else indexed.open_shard(against)
    units = _raw_units(raw_paths, options)
    spec = load_tokenizer_spec(options.tokenizer)
    eod = options.eod
    if options.append_eod and eod is None:
        eod = end_of_document_id(spec)
        if eod is None and options.ids:
            raise UsageError(f"{options.tokenizer}: no end-of-document token found; pass --eod ID")
    policy = PresetPolicy(options.preset, options.append_eod, -1 if eod is None else eod, options.ids, options.text_key)
    choice = choose_engine(spec, "hf" if options.ids else options.engine)
    if choice.engine == "fast" and progress is not None:
        from ..engines.fast.code_version import announce_first_compile

        announce_first_compile(progress)

    def run(current: EngineChoice) -> RawCheckResult:
        return _compare(raw_paths, shard, units, policy, spec, options, current, eod, progress, window_bytes)

    result, _ = recount_on_disagreement(run, choice, differences_found(choice))
    return result


def differences_found(choice: EngineChoice) -> Callable[[RawCheckResult], str | None]:
    """The parity policy of a check: a complete check that found differences with an engine that
    is not the reference is run again with hf before anything is reported."""

    def disagreement(result: RawCheckResult) -> str | None:
        if result.ok or not result.complete:
            return None
        return f"the {choice.engine} engine found differences; re-checked with hf"

    return disagreement


def _compare(
    raw_paths: list[str],
    shard: indexed.IndexedShard,
    units: list[WorkUnit],
    policy: PresetPolicy,
    spec,
    options: CheckOptions,
    choice: EngineChoice,
    eod: int | None,
    progress: Progress | None,
    window_bytes: int,
) -> RawCheckResult:
    result = RawCheckResult(
        raw_paths=list(raw_paths),
        index=shard.prefix,
        options={
            "preset": options.preset,
            "append_eod": options.append_eod,
            "eod": eod,
            "add_special_tokens": options.add_special_tokens,
            "ids": options.ids,
            "text_key": options.text_key,
            "tokenizer": spec.info(),
        },
        index_counts={
            "documents": shard.documents,
            "sequences": shard.sequences,
            "tokens": shard.tokens,
            "empty_documents": shard.empty_documents,
            "dtype": str(shard.dtype),
        },
        expected_counts={},
        raw_files=[],
    )
    expected_dtype = expected_token_dtype(options.preset, spec.vocab_size)
    if str(shard.dtype) != expected_dtype:
        result.warnings.append(
            f"the index holds {shard.dtype} tokens; preprocessing with a {spec.vocab_size:,}-token "
            f"vocabulary writes {expected_dtype} (§2.1/§2.2)"
        )
    if progress is not None:
        progress.start(sum(u.cost for u in units))
    comparator = _Comparator(shard, options.ids, window_bytes)
    per_file: dict[int, dict[str, Any]] = {
        i: {"path": p, "documents": 0, "sequences": 0, "tokens": 0} for i, p in enumerate(raw_paths)
    }
    result.options["engine"] = choice.engine
    result.options["engine_reason"] = choice.reason
    executor = LocalExecutor(
        options.workers,
        counting.start_worker,
        (spec, options.add_special_tokens, choice),
        worker_env=counting.WORKER_ENV,
        start_method=worker_start_method(),
    )
    waiting: dict[int, _UnitOut] = {}
    groups = _file_groups(units)
    next_group = 0
    try:
        for task, out in executor.run(
            _run_unit,
            [(u, policy) for u in units],
            [u.cost for u in units],
            on_progress=progress.advance if progress is not None else None,
        ):
            waiting[task] = out
            # Compare in file order; later units wait here.
            while next_group < len(groups) and all(t in waiting for t in groups[next_group]):
                outs = [waiting.pop(t) for t in groups[next_group]]
                failures = [o.failure for o in outs if o.failure is not None]
                if failures:  # the first in the file (parts say where theirs fall)
                    raise min(failures, key=lambda e: e.order if e.order is not None else 0)
                for task_of_piece, piece, offset in _in_stream_order(groups[next_group], outs):
                    unit = units[task_of_piece]
                    comparator.feed(task_of_piece, unit, piece, offset)
                    row = per_file[unit.source]
                    row["documents"] += piece.documents
                    row["sequences"] += int(piece.seq_sizes.shape[0])
                    row["tokens"] += int(piece.seq_sizes.sum())
                next_group += 1
    except KeyboardInterrupt:
        result.complete = False
    finally:
        comparator.close()

    result.raw_files = list(per_file.values())
    result.compared_documents = comparator.compared
    result.differing_documents = comparator.differing
    result.missing_from_index = comparator.missing
    result.expected_counts = {
        "documents": comparator.expected_docs,
        "sequences": comparator.expected_seqs,
        "tokens": comparator.expected_tokens,
    }
    if result.complete:
        result.extra_in_index = max(0, shard.documents - comparator.doc)
    result.examples = comparator.examples
    result.diagnosis = comparator.diagnosis
    if result.complete and result.extra_in_index and comparator.first is None:
        d = comparator.doc
        a, b = int(shard.doc_idx[d]), int(shard.doc_idx[d + 1])
        first = DocumentMismatch(d, "(after the raw data)", None, None, int(np.sum(shard.sizes[a:b], dtype=np.int64)))
        result.examples.append(first)
        result.first_mismatch = first
    if comparator.first is not None:
        result.first_mismatch = _first_mismatch_detail(comparator, units, policy, spec, options)
    result.hints = _hints(comparator, result, options)
    return result


def _first_mismatch_detail(comparator: _Comparator, units, policy, spec, options) -> DocumentMismatch:
    assert comparator.first is not None
    task, j = comparator.first
    m = comparator.examples[0]
    from ..engines.hf import TokenCounter

    encoder = _Encoder(TokenCounter(spec, options.add_special_tokens))
    m.position, expected_ids = _document_at(units[task], policy, encoder, j)
    if options.ids and expected_ids is not None and m.found_tokens is not None and m.bin_token is not None:
        found = comparator.bin_tokens(m.bin_token, m.found_tokens)
        common = min(found.size, expected_ids.size)
        differ = np.flatnonzero(found[:common] != expected_ids[:common])
        p = int(differ[0]) if differ.size else (common if found.size != expected_ids.size else None)
        if p is not None:
            m.first_differing_token = p
            m.expected_id = int(expected_ids[p]) if p < expected_ids.size else None
            m.found_id = int(found[p]) if p < found.size else None
            m.bin_token = m.bin_token + p
    return m


def _hints(comparator: _Comparator, result: RawCheckResult, options: CheckOptions) -> list[str]:
    hints: list[str] = []
    if result.ok or not comparator.compared:
        return hints
    share = {d: c / comparator.compared for d, c in comparator.deltas.items()}
    if share.get(-1, 0) >= 0.5:
        hints.append(
            f"{share[-1]:.0%} of the documents are 1 token shorter in the index: "
            + (
                "preprocessed without --append-eod?"
                if options.append_eod
                else "was a special token (BOS) not added? try --no-add-special-tokens"
            )
        )
    if share.get(1, 0) >= 0.5:
        hints.append(
            f"{share[1]:.0%} of the documents are 1 token longer in the index: "
            + (
                "a BOS token from the tokenizer's post-processor?"
                if options.append_eod
                else "preprocessed with --append-eod?"
            )
        )
    found_empty = result.index_counts["empty_documents"]
    one_longer = comparator.deltas.get(1, 0)
    if (
        options.preset == "megatron"
        and options.append_eod
        and found_empty == 0
        and one_longer
        and comparator.empty_one_longer == one_longer
    ):
        # only when the documents one token longer are exactly the raw data's empty ones
        hints.append("empty documents appear as 1-token sequences in the index: try --preset megatron-fast")
    differing = comparator.differing / comparator.compared
    constant = len(comparator.deltas) == 1 and set(comparator.deltas) <= {-1, 1}
    if differing >= 0.8 and not constant and comparator.expected_tokens:
        ratio = result.index_counts["tokens"] / comparator.expected_tokens
        hints.append(
            f"nearly every document differs ({comparator.differing:,} of {comparator.compared:,}) and by varying "
            f"amounts: the index holds {ratio:.3f}x the tokens this tokenizer gives the raw text. Was the data "
            "preprocessed with another tokenizer?"
        )
    e, f = result.expected_counts, result.index_counts
    if len(result.raw_paths) > 1 and e.get("documents") == f["documents"] and e.get("tokens") == f["tokens"]:
        hints.append(
            "the totals agree but documents differ: were the raw files given in another order than preprocessing "
            "read them? (Megatron --partitions writes {input}_0.jsonl, {input}_1.jsonl, ...: pass them in that order)"
        )
    return hints
