"""Rebuild examples/data from the shared benchmark corpus (needs ../shared; not run by tests).

Takes a few short documents of each source, adds two empty ones (preprocessors must cope with
them), tokenizes with the GPT-2 tokenizer and writes Megatron-LM preprocess_data.py's output:
empty documents dropped to a bare doc_idx entry, EOD (50256) appended to every non-empty one,
uint16 tokens (spec §2.2).
"""

import json
import sys
from pathlib import Path

import pyarrow as pa
from tokenizers import Tokenizer

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
sys.path.insert(0, str(HERE.parent / "tests"))
from idx_writer import write_mmidx  # noqa: E402

PER_SOURCE = 10
MAX_BYTES = 2000
EOD = 50256


def main():
    stream = pa.input_stream(str(SHARED / "corpus" / "bench.jsonl.zst"), compression="zstd")
    taken, per_source = [], {}
    for line in stream.read().decode("utf-8").splitlines():
        record = json.loads(line)
        n = per_source.get(record["source"], 0)
        if n < PER_SOURCE and len(record["text"].encode()) <= MAX_BYTES:
            per_source[record["source"]] = n + 1
            taken.append({"id": record["id"], "source": record["source"], "text": record["text"]})
    taken.insert(10, {"id": "empty-1", "source": "synthetic", "text": ""})
    taken.append({"id": "empty-2", "source": "synthetic", "text": ""})
    out = HERE / "data"
    out.mkdir(exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        for record in taken:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tok = Tokenizer.from_file(str(SHARED / "tokenizers" / "gpt2.json"))
    documents = []
    for record in taken:
        ids = tok.encode(record["text"]).ids
        documents.append([ids + [EOD]] if ids else [])
    write_mmidx(out / "corpus_text_document", documents)
    print(f"{len(taken)} documents, {sum(len(d[0]) for d in documents if d)} tokens")


if __name__ == "__main__":
    main()
