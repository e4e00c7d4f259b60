"""Writes the datatrove 0.10.1 outputs in this directory with the real writer (not needed to run
the tests: its output is committed, so that the test extra does not pull in datatrove).

    python3 -m venv /tmp/dt && /tmp/dt/bin/pip install datatrove==0.10.1 'tokenizers==0.23.*'
    /tmp/dt/bin/python tests/data/datatrove/make_files.py [path/to/shared/tokenizers/llama3.json]

- raw/*.jsonl: the inputs, 3 files of {"id", "text"} lines (one empty text, which datatrove's
  reader drops);
- unshuffled/: JsonlReader -> DocumentTokenizer(shuffle_documents=False, save_loss_metadata=True),
  2 tasks, so task i reads raw files i, i + 2, ...; the committed bytelevel_bpe tokenizer (500
  ids, so 2-byte tokens), eos_token "<|endoftext|>";
- shuffled/: the same with shuffle_documents=True, seed 7, no loss file;
- uint32/: with the Llama-3-style tokenizer of shared/ (128,256 ids, so 4-byte tokens), eos_token
  "<|end_of_text|>", 1 task, unshuffled (only when its path is given).
"""

import json
import random
import shutil
import sys
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.tokens import DocumentTokenizer

HERE = Path(__file__).resolve().parent
TOKENIZER = HERE.parent / "tokenizers" / "bytelevel_bpe.json"
WORDS = (
    "the data token count epoch sample sequence shard index über naïve café 東京 データ "
    "Привет мир 12345 3.14 def return {} [] <tag> \t tabs  double  spaces"
).split(" ")


def write_raw() -> None:
    rng = random.Random(16)
    raw = HERE / "raw"
    shutil.rmtree(raw, ignore_errors=True)
    raw.mkdir()
    n = 0
    for f in range(3):
        with open(raw / f"part{f}.jsonl", "w", encoding="utf-8") as out:
            for _ in range(20 + 7 * f):
                words = rng.choices(WORDS, k=rng.randint(1, 60))
                text = " ".join(words) + ("\n" if rng.random() < 0.3 else "")
                if n == 11:
                    text = ""  # dropped by datatrove's reader ("Found document without text, skipping")
                out.write(json.dumps({"id": f"doc{n}", "text": text}, ensure_ascii=False) + "\n")
                n += 1


def tokenize(name: str, tokenizer: Path, tasks: int, eos: str = "<|endoftext|>", **kw) -> None:
    out = HERE / name
    shutil.rmtree(out, ignore_errors=True)
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(HERE / "raw"), glob_pattern="*.jsonl"),
            DocumentTokenizer(str(out), tokenizer_name_or_path=str(tokenizer), eos_token=eos, **kw),
        ],
        tasks=tasks,
        workers=1,
        logging_dir=str(HERE / ".logs" / name),
    ).run()
    # the tokenizer's name in .ds.metadata is the absolute path it was given: keep only its name
    for meta in out.glob("*.ds.metadata"):
        meta.write_text(meta.read_text().replace(str(tokenizer.parent) + "/", ""))
    shutil.rmtree(HERE / ".logs", ignore_errors=True)


if __name__ == "__main__":
    write_raw()
    tokenize("unshuffled", TOKENIZER, 2, shuffle_documents=False, save_loss_metadata=True)
    tokenize("shuffled", TOKENIZER, 2, shuffle_documents=True, seed=7)
    if len(sys.argv) > 1:
        tokenize("uint32", Path(sys.argv[1]).resolve(), 1, eos="<|end_of_text|>", shuffle_documents=False)
