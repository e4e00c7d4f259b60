"""``--estimate --group-by``: each group's tokens, documents and share of the tokens, with an
interval, from the same stratified sample as the totals.

Domain estimation (Cochran, *Sampling Techniques*, 2.13 and 6.x; Särndal et al., *Model Assisted
Survey Sampling*, 10.3): a group is a domain of the population. Every sampled unit yields the
group's part of it (y_g: its tokens, d_g: its documents, 0 where the group is absent), and the
group's total in stratum h is the separate ratio estimator over the stratum's exact
auxiliary, T_gh = X_h · Σy_g / Σx, with its residual variance, the finite population correction
and a t quantile. A group's share of the tokens is the ratio T_g / T of two
estimates from the same units: its variance by the delta method, with their covariance.

The t quantile's degrees of freedom are each group's own, by Satterthwaite's approximation
(df = (Σ v_h)² / Σ v_h² / (n_h - 1), v_h the strata's variance terms): a group that lives in
one stratum (a sorted file's segment) has that stratum's few degrees of freedom, not the
sample's many, and its interval is the wider for it (measured: coverage of the smaller groups
of the small mixture of tests/test_estimate_groups.py, per group from 0.705-0.94 to 0.745-0.96).

A group's interval is marked not trusted when fewer than ``RARE_UNITS`` sampled units hold the
group: its variance then rests on a handful of non-zero values. (Cochran's rule for the normal
approximation, n > 25·G1², was tried as a second test: on our corpora it marks nearly every
group of a small sample, the big ones too, so it tells nothing.) Small groups with heavy-tailed
documents cover less often than 95 % even when trusted: see the README for what was measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import UsageError

# A group held by fewer sampled units than this is not trusted: its interval rests on too few
# non-zero values (coverage measured well below 95 % there, benches/bench_estimate.py).
RARE_UNITS = 30


GroupParts = Mapping  # group -> (tokens, documents) of one sampled unit


@dataclass(frozen=True)
class StratumSample:
    """One stratum's draws as the group estimates need them."""

    units_total: int  # N_h
    aux_total: float  # X_h of the tokens' auxiliary
    documents_aux_total: float  # X_h of the documents' auxiliary
    x: np.ndarray  # the draws' auxiliaries
    x_documents: np.ndarray
    tokens: np.ndarray  # the draws' tokens (all groups): the share's denominator
    groups: Sequence[GroupParts | None]  # each draw's parts by group


@dataclass
class _Sums:
    tokens: float = 0.0
    documents: float = 0.0
    var_tokens: float = 0.0
    var_documents: float = 0.0
    cov_total: float = 0.0  # covariance of the group's tokens with the total tokens
    df_terms: float = 0.0  # Σ v_h² / (n_h - 1) of the tokens' variance terms (Satterthwaite)
    seen_tokens: float = 0.0  # tokens of the group in the units read: a hard lower bound
    seen_documents: float = 0.0
    units_seen: int = 0


def _ratio_parts(y: np.ndarray, x: np.ndarray, total: float) -> tuple[float, np.ndarray]:
    r = float(y.sum() / x.sum()) if x.sum() > 0 else 0.0
    return r * total, y - r * x


def group_estimates(
    samples: Sequence[StratumSample],
    total_tokens: float,
    var_total_tokens: float,
    confidence: float,
    exact_groups: Mapping | None = None,
    key: str = "",
    max_groups: int = 10_000,
) -> list[dict]:
    """The report's ``estimate.groups``, most tokens first. ``exact_groups``: group -> (tokens,
    documents) known exactly (token files, grouped by file), added without variance."""
    from .estimate import Interval, _quantile
    from .grouping import too_many

    total_tokens, var_total_tokens = float(total_tokens), float(var_total_tokens)
    sums: dict = {}

    def row(name) -> _Sums:
        s = sums.get(name)
        if s is None:
            if len(sums) >= max_groups:
                raise UsageError(too_many(key))
            s = sums[name] = _Sums()
        return s

    for sample in samples:
        n, N = len(sample.x), sample.units_total
        if n == 0:
            continue
        names = list(dict.fromkeys(g for parts in sample.groups for g in (parts or ())))
        if not names:
            continue
        index = {g: k for k, g in enumerate(names)}
        y = np.zeros((n, len(names)))
        d = np.zeros((n, len(names)))
        for i, parts in enumerate(sample.groups):
            for g, (tokens, documents) in (parts or {}).items():
                y[i, index[g]] = tokens
                d[i, index[g]] = documents
        exhausted = n == N
        scale = N * N * (1 - n / N) / n / (n - 1) if 1 < n < N else math.inf
        _, residual_total = _ratio_parts(sample.tokens, sample.x, sample.aux_total)
        for g, k in index.items():
            s = row(g)
            s.seen_tokens += float(y[:, k].sum())
            s.seen_documents += float(d[:, k].sum())
            s.units_seen += int(np.count_nonzero((y[:, k] > 0) | (d[:, k] > 0)))
            if exhausted:
                s.tokens += float(y[:, k].sum())
                s.documents += float(d[:, k].sum())
                continue
            tokens, e = _ratio_parts(y[:, k], sample.x, sample.aux_total)
            documents, ed = _ratio_parts(d[:, k], sample.x_documents, sample.documents_aux_total)
            s.tokens += tokens
            s.documents += documents
            if math.isinf(scale):
                s.var_tokens = s.var_documents = math.inf
            else:
                v = scale * float(e @ e)
                s.var_tokens += v
                s.df_terms += v * v / (n - 1)
                s.var_documents += scale * float(ed @ ed)
                s.cov_total += scale * float(e @ residual_total)
    for g, (tokens, documents) in (exact_groups or {}).items():
        s = row(g)
        s.tokens += tokens
        s.documents += documents
        s.seen_tokens += tokens
        s.seen_documents += documents

    def interval(value: float, variance: float, q: float, low: float = 0.0, high: float = math.inf) -> Interval:
        half = q * math.sqrt(max(variance, 0.0)) if math.isfinite(variance) else math.inf
        return Interval(value, max(low, value - half), min(high, value + half), confidence)

    out = []
    for name, s in sums.items():
        share = s.tokens / total_tokens if total_tokens else 0.0
        if math.isfinite(s.var_tokens) and math.isfinite(var_total_tokens) and total_tokens:
            var_share = (s.var_tokens + share * share * var_total_tokens - 2 * share * s.cov_total) / total_tokens**2
        else:
            var_share = math.inf
        df = s.var_tokens**2 / s.df_terms if s.df_terms > 0 and math.isfinite(s.var_tokens) else math.inf
        q = _quantile(confidence, max(1, int(df)) if math.isfinite(df) else 10**9)
        out.append(
            {
                "key": name,
                # what was read of a group is in it: the low ends never go below that
                "tokens": interval(s.tokens, s.var_tokens, q, low=s.seen_tokens).to_dict(),
                "documents": interval(s.documents, s.var_documents, q, low=s.seen_documents).to_dict(),
                "share": interval(share, var_share, q, high=1.0).to_dict(),
                "units_seen": s.units_seen,
                "trusted": _trusted(s),
            }
        )
    out.sort(key=lambda r: (-r["tokens"]["value"], "" if r["key"] is None else str(r["key"])))
    return out


def _trusted(s: _Sums) -> bool:
    if s.var_tokens == 0:
        return True  # exact: every unit that holds it was read
    return math.isfinite(s.var_tokens) and s.units_seen >= RARE_UNITS


__all__ = ["RARE_UNITS", "StratumSample", "group_estimates"]
