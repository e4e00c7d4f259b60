"""``--group-by``: documents, tokens and bytes per value of a key (a data mixture's sources).

Workers tally each unit's documents by group (``tally``); the scan adds the units' tallies up
(``merge``) and ``group_rows`` turns them into the report's rows, with each group's share of
the tokens and, given a training plan, its samples per epoch and the epochs a target mixture
needs (``planning.group_plan``). ``.bin/.idx`` shards are grouped by file.

A tally is ``{group: [documents, empty_documents, text_bytes, tokens]}``; a group is a string,
or None for documents where the key is missing or null.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import FileCheckError, UsageError

MAX_GROUPS = 10_000  # distinct values at most: beyond, a key is an id rather than a source
TABLE_GROUPS = 20  # groups shown in the table before "other" (JSON lists them all)
MISSING = "(missing)"  # how the table names the documents without the key


def tally(
    groups: dict, names: Sequence[str | None], doc_tokens: np.ndarray, doc_bytes: np.ndarray | None, path: str, key: str
) -> None:
    """Add a batch's documents to ``groups``. Raises FileCheckError past MAX_GROUPS values."""
    if not len(names):
        return
    index: dict[str | None, int] = {}
    codes = np.fromiter((index.setdefault(n, len(index)) for n in names), np.int64, len(names))
    k = len(index)
    documents = np.bincount(codes, minlength=k)
    empty = np.bincount(codes[doc_tokens == 0], minlength=k)
    tokens = np.zeros(k, np.int64)
    np.add.at(tokens, codes, doc_tokens)
    text_bytes = np.zeros(k, np.int64)
    if doc_bytes is not None:
        np.add.at(text_bytes, codes, doc_bytes)
    for name, i in index.items():
        row = groups.get(name)
        if row is None:
            if len(groups) >= MAX_GROUPS:
                raise FileCheckError(path, "group-by", too_many(key))
            row = groups[name] = [0, 0, 0, 0]
        row[0] += int(documents[i])
        row[1] += int(empty[i])
        row[2] += int(text_bytes[i])
        row[3] += int(tokens[i])


def too_many(key: str) -> str:
    return (
        f"--group-by {key}: more than {MAX_GROUPS:,} distinct values; group by a key with fewer values "
        "(a source or a language, not an id)"
    )


def merge(into: dict, groups: dict | None, key: str) -> None:
    for name, row in (groups or {}).items():
        total = into.get(name)
        if total is None:
            if len(into) >= MAX_GROUPS:
                raise UsageError(too_many(key))
            into[name] = list(row)
        else:
            for i, n in enumerate(row):
                total[i] += n


def encode(groups: dict | None) -> list | None:
    """As JSON can hold it (a key may be None): a list of [group, documents, empty, bytes, tokens]."""
    return None if groups is None else [[name, *row] for name, row in groups.items()]


def decode(rows: list | None) -> dict | None:
    return None if rows is None else {row[0]: list(row[1:]) for row in rows}


def group_rows(
    text_groups: dict,
    shard_groups: Sequence[tuple[str, int, int, int]],
    training=None,
    mixture: dict[str, float] | None = None,
) -> list[dict]:
    """The report's groups, most tokens first: the text tallies, then one group per shard
    (path, documents, empty documents, tokens), with shares, and the plan per group."""
    rows = [
        {"key": name, "documents": d, "empty_documents": e, "text_bytes": b, "tokens": t}
        for name, (d, e, b, t) in text_groups.items()
    ]
    rows += [
        {"key": path, "documents": d, "empty_documents": e, "text_bytes": None, "tokens": t}
        for path, d, e, t in shard_groups
    ]
    total = sum(r["tokens"] for r in rows)
    for r in rows:
        r["tokens_per_byte"] = r["tokens"] / r["text_bytes"] if r["text_bytes"] else None
        r["share"] = r["tokens"] / total if total else 0.0
    rows.sort(key=lambda r: (-r["tokens"], "" if r["key"] is None else str(r["key"])))
    if mixture is not None:
        known = {r["key"] for r in rows}
        unknown = [name for name in mixture if name not in known]
        if unknown:
            shown = ", ".join(str(r["key"]) for r in rows[:10])
            raise UsageError(f"--mixture names {unknown[0]!r}, which no document has as its group (groups: {shown})")
    from . import planning

    if mixture is not None and training is not None and training.framework in planning.CHUNKING_FRAMEWORKS:
        raise UsageError(f"--mixture is not modelled for --framework {training.framework} (no weighted blend)")
    if training is not None and training.framework not in planning.CHUNKING_FRAMEWORKS:
        # nanotron and OLMo-core floor per file, which a group spanning files has no rule for
        weights = [mixture.get(r["key"], 0.0) for r in rows] if mixture is not None else None
        kw = training.plan_kwargs()
        plans = planning.group_plan(
            [r["tokens"] for r in rows],
            seq_len=kw["seq_len"],
            global_batch_size=kw["global_batch_size"],
            framework=kw["framework"],
            extra_token=kw["extra_token"],
            train_iters=kw["train_iters"],
            weights=weights,
        )
        for r, plan in zip(rows, plans):
            r.update(plan)
    return rows
