"""Test-side preprocessing: jsonl -> .bin/.idx the way each preprocessor does it
(``shared/spec/megatron_neox.md`` §2), one document at a time with a plain ``Tokenizer.encode``,
independently of tokcount's batched code. Writes through ``idx_writer.write_mmidx``."""

from __future__ import annotations

import gzip
import json

import numpy as np
from idx_writer import write_mmidx
from tokenizers import Tokenizer


def preprocess_documents(
    records, tokenizer_path, preset, append_eod=False, eod=None, add_special_tokens=True, key="text"
):
    """Documents (lists of sequences of ids) for a list of parsed JSON records.

    megatron: each non-empty part (a list value's element) is a sequence; EOD on the last one of
    a non-empty document; empty documents have no sequence. megatron-fast: one sequence per
    document, EOD on every document. neox: a list joins with "\\n\\n", empty texts are dropped
    entirely, one sequence per non-empty document, EOD appended to it.
    """
    tok = Tokenizer.from_file(tokenizer_path)

    def encode(text):
        return tok.encode(text, add_special_tokens=add_special_tokens).ids

    documents = []
    for record in records:
        value = record[key] if isinstance(record, dict) else record
        if preset == "neox":
            text = "\n\n".join(value) if isinstance(value, list) else value
            if not text:
                continue
            ids = encode(text)
            if append_eod:
                ids.append(eod)  # NeoX raises IndexError when ids is empty; tests avoid that case
            documents.append([ids] if ids else [])
        elif preset == "megatron":
            parts = value if isinstance(value, list) else [value]
            sentences = [encode(p) for p in parts]
            sentences = [s for s in sentences if s]
            if append_eod and sentences:
                sentences[-1].append(eod)
            documents.append(sentences)
        elif preset == "megatron-fast":
            parts = value if isinstance(value, list) else [value]
            ids = [i for p in parts for i in encode(p)]
            if append_eod:
                ids.append(eod)
            documents.append([ids])
        else:
            raise ValueError(preset)
    return documents


def neox_gz_documents(gz_path, tokenizer_path, append_eod=False, eod=None):
    """NeoX's lm_dataformat .gz branch: every raw line is a text, braces and newline included."""
    tok = Tokenizer.from_file(tokenizer_path)
    documents = []
    with gzip.open(gz_path, "rb") as f:
        for line in f:
            ids = tok.encode(line.decode("utf-8")).ids
            if append_eod:
                ids.append(eod)
            documents.append([ids] if ids else [])
    return documents


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def preprocess(prefix, records, tokenizer_path, preset, append_eod=False, eod=None, dtype=np.uint16, **kw):
    documents = preprocess_documents(records, tokenizer_path, preset, append_eod, eod, **kw)
    write_mmidx(prefix, documents, dtype=dtype)
    return documents
