"""Test-side simulation of the trainers' index building (``shared/spec/megatron_neox.md`` §3.4,
§3.6, §4.4, §4.5, §4.7): the sample walk as the spec writes it (a plain loop), RandomState
shuffles, and the real file names, shapes and dtypes. Independent of tokcount's closed forms."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import OrderedDict

import numpy as np


def walk(doc_idx, sizes, seq_len, extra, num_samples):
    """The sample walk of §3.4 (x = 1) / §4.5 (any x), one token run at a time."""
    rows = [(0, 0)]
    d, off = 0, 0
    for _ in range(num_samples):
        rem = seq_len + extra
        while rem != 0:
            length = int(sizes[doc_idx[d]]) - off
            rem -= length
            if rem <= 0:
                off += rem + length - extra
                rem = 0
            else:
                if d == len(doc_idx) - 1:  # Megatron: ran out of documents
                    off = int(sizes[doc_idx[d]]) - extra
                    break
                d += 1
                off = 0
        rows.append((d, off))
    return np.asarray(rows)


def epochs_needed(tokens, num_samples, seq_len, extra):
    if num_samples is None:
        return 1
    e, total = 0, 0
    while True:  # the trainers' loop (§3.3 / §4.3)
        e += 1
        total += tokens
        if total >= num_samples * seq_len + extra:
            return e


def build(sizes, beg, end, num_samples, seq_len, seed, framework, extra=1):
    """(doc_idx, sample_idx, shuffle_idx, epochs, separate) as the trainer builds them."""
    docs = np.arange(beg, end, dtype=np.int32)
    T = int(np.sum(sizes[beg:end], dtype=np.int64))
    E = epochs_needed(T, num_samples, seq_len, extra)
    rng = np.random.RandomState(seed)
    separate = False
    if framework == "megatron" and E > 1:
        sans = ((E - 1) * T - extra) // seq_len
        per_epoch = (T - extra) // seq_len
        separate = (num_samples - sans) < int(0.80 * per_epoch)
    if separate:
        first = np.tile(docs, E - 1)
        rng.shuffle(first)
        last = docs.copy()
        rng.shuffle(last)
        doc_idx = np.concatenate([first, last]).astype(np.int32)
    else:
        doc_idx = np.tile(docs, E).astype(np.int32)
        rng.shuffle(doc_idx)
    B = (E * T - extra) // seq_len
    sample_dtype = np.int32 if (2 * ((E * T - 1) / seq_len + 1) < 2**31 - 1) else np.int64
    if framework == "megatron":
        sample_dtype = np.int32
    sample_idx = walk(doc_idx, sizes, seq_len, extra, B).astype(sample_dtype)
    if separate:
        a = np.arange(sans, dtype=np.uint32)
        b = np.arange(sans, B, dtype=np.uint32)
        rng.shuffle(a)
        rng.shuffle(b)
        shuffle_idx = np.concatenate([a, b])
    else:
        shuffle_idx = np.arange(B, dtype=np.uint32)
        rng.shuffle(shuffle_idx)
    return doc_idx, sample_idx, shuffle_idx, E, separate


def write_neox(prefix, sizes, name, beg, end, num_samples, seq_len, seed=1234):
    """Write NeoX's three cache files next to the data prefix (§3.6). Returns (paths, E, B)."""
    doc, sample, shuffle, E, _ = build(sizes, beg, end, num_samples, seq_len, seed, "neox")
    stem = f"{prefix}_{name}_indexmap_{num_samples}ns_{seq_len}sl_{seed}s_packedpi_ac"
    paths = {}
    for kind, arr in (("doc", doc), ("sample", sample), ("shuffle", shuffle)):
        paths[kind] = f"{stem}_{kind}_idx.npy"
        np.save(paths[kind], arr, allow_pickle=True)
    return paths, E, sample.shape[0] - 1


def neox_ranges(split, n):
    """§3.2 split rounding (per part, then shift)."""
    parts = [float(p) for p in split.split(",")] + [0.0, 0.0]
    parts = parts[:3]
    w = [p / sum(parts) for p in parts]
    idx = [0]
    for p in w:
        idx.append(idx[-1] + int(round(p * float(n))))
    diff = idx[-1] - n
    idx = [idx[0]] + [i - diff for i in idx[1:]]
    return idx


def write_megatron(prefix, sizes, split_name, split_string, num_samples, seq_len, seed=1234, cache_dir=None, extra=1):
    """Write Megatron-core's four cache files (§4.7). Returns (paths, E, B, separate)."""
    v = [float(t) for t in split_string.split(",")]
    v = [t / sum(v) for t in v]
    cum = [0.0, v[0], v[0] + v[1], v[0] + v[1] + v[2]]
    matrix = [None if cum[k + 1] <= cum[k] else [cum[k], cum[k + 1]] for k in range(3)]
    k = ["train", "valid", "test"].index(split_name)
    n = len(sizes)
    beg, end = int(round(matrix[k][0] * float(n))), int(round(matrix[k][1] * float(n)))
    doc, sample, shuffle, E, separate = build(sizes, beg, end, num_samples, seq_len, seed, "megatron", extra)
    description = json.dumps(
        OrderedDict(
            [
                ("class", "GPTDataset"),
                ("dataset_path", str(prefix)),
                ("num_samples", num_samples),
                ("index_split", split_name),
                ("random_seed", seed),
                ("sequence_length", seq_len),
                ("split", split_string),
                ("split_matrix", matrix),
                ("tokenizer", {"class": "NullTokenizer"}),
            ]
        ),
        indent=4,
    )
    md5 = hashlib.md5(description.encode("utf-8")).hexdigest()
    directory = cache_dir or os.path.join(str(prefix), "cache", "GPTDataset_indices")
    os.makedirs(directory, exist_ok=True)
    stem = os.path.join(directory, f"{md5}-GPTDataset-{split_name}-")
    with open(stem + "description.txt", "w") as f:
        f.write(description)
    paths = {"description": stem + "description.txt"}
    for kind, arr in (("document_index", doc), ("sample_index", sample), ("shuffle_index", shuffle)):
        paths[kind] = stem + kind + ".npy"
        np.save(paths[kind], arr, allow_pickle=True)
    return paths, E, sample.shape[0] - 1, separate, (beg, end)


def neox_log(ranges, per_split):
    """NeoX log lines (§3.5): split stats, then per built split the helpers.cpp block and the
    python lines. per_split: {name: (E, B, seq_len, n_docs)}."""
    out = ["> building train, validation, and test datasets ...", " > dataset split:"]
    for label, (a, b) in zip(("train", "validation", "test"), ranges):
        out += [f"    {label}:", f"     document indices in [{a}, {b}) total of {b - a} documents"]
    for name in ("train", "valid", "test"):
        if name not in per_split:
            continue
        E, B, S, n = per_split[name]
        out += [
            " > WARNING: could not find index map files, building the indices on rank 0 ...",
            "    using:",
            f"     number of documents:       {n}",
            f"     number of epochs:          {E}",
            f"     sequence length:           {S}",
            f"     total number of samples:   {B}",
            f" > loading doc-idx mapping from x_{name}_doc_idx.npy",
            f"    total number of samples: {B + 1}",
            f"    total number of epochs: {E}",
        ]
    return "\n".join(out) + "\n"


def megatron_log(sequences, documents, matrix, per_split):
    """Megatron log lines (§4.9). per_split: {name: (E, B)}."""
    pairs = ", ".join("None" if m is None else f"({m[0]}, {m[1]})" for m in matrix)
    out = [
        f"INFO:megatron.core.datasets.indexed_dataset:> total number of sequences: {sequences}",
        f"INFO:megatron.core.datasets.indexed_dataset:> total number of documents: {documents}",
        f"INFO:megatron.core.datasets.blended_megatron_dataset_config:Let split_matrix = [{pairs}]",
    ]
    for name, (E, B) in per_split.items():
        out += [
            f"INFO:megatron.core.datasets.gpt_dataset:Build and save the GPTDataset {name} indices",
            f"INFO:megatron.core.datasets.gpt_dataset:> total number of samples: {B}",
            f"INFO:megatron.core.datasets.gpt_dataset:> total number of epochs: {E}",
        ]
    return "\n".join(out) + "\n"


def ceil_div(a, b):
    return -(-a // b) if b else math.inf


def nanotron_samples(ds_paths, seq_len, token_size):
    """DatatroveFolderDataset's length as its items are read (datatrove 0.10.1
    datatrove/utils/dataset.py): item i of a file is the (seq_len + 1)-token chunk at byte
    i·token_size·(seq_len + 1); a file contributes the items whose chunk is whole."""
    chunk = token_size * (seq_len + 1)
    total = 0
    for path in ds_paths:
        with open(path, "rb") as f:
            item = 0
            while True:
                f.seek(item * chunk)
                if len(f.read(chunk)) < chunk:
                    break
                item += 1
        total += item
    return total


def olmo_instances(npy_paths, seq_len, dtype):
    """NumpyFSLDataset's instances as they are read (OLMo-core olmo_core/data/numpy_dataset.py):
    instance i of an array is tokens [i·seq_len, (i+1)·seq_len) of the raw file, kept while whole."""
    itemsize = np.dtype(dtype).itemsize
    total = 0
    for path in npy_paths:
        with open(path, "rb") as f:
            i = 0
            while True:
                f.seek(i * seq_len * itemsize)
                if len(f.read(seq_len * itemsize)) < seq_len * itemsize:
                    break
                i += 1
        total += i
    return total
