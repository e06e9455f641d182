"""The recommendation: measure every candidate within the budget, pick the cheapest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vecext import topk
from vecext.codecs import METRICS, CodecError
from vecext.codecs.checks import as_float32_rows
from vecext.tools.advise.candidates import AdviseError, Candidate, code_size, default_candidates
from vecext.tools.advise.measure import (
    BLOCK_CELLS,
    Measurement,
    exact_distances,
    measure,
    prefix_sizes,
)

__all__ = ["MIN_BASE", "Advice", "advise_vectors", "split_sample"]

#: a sample smaller than this leaves too few neighbours to tell codecs apart
MIN_BASE = 1000


@dataclass
class Advice:
    """The measured candidates (cheapest estimated query first) and the pick."""

    source: str
    metric: str
    metric_source: str
    d: int
    rows: int
    k: int
    recall_target: float
    budget: int
    n_base: int
    n_queries: int
    query_source: str
    exact_bytes_per_query: float
    measurements: list[Measurement]
    skipped: list[str]
    recommended: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def best(self) -> Measurement | None:
        return next((m for m in self.measurements if m.label == self.recommended), None)


#: What a PQ recommendation means for speed (issue 11: in PostgreSQL a PQ distance is a
#: SQL lookup, 637 ms for 117,659 codes against 57 ms for pgvector Hamming on bits).
PQ_NOTE = (
    "; PQ is for when size comes first (the codes are the only copy of the vectors, or "
    "memory is the limit): its distance is a table lookup, in PostgreSQL a SQL expression "
    "about 10x slower per row than pgvector's Hamming distance on binary or rbq codes, "
    "which an HNSW index over the code store also serves"
)


def _check_args(budget: int, target: float, k: int, n_queries: int) -> None:
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget <= 0:
        raise AdviseError(f"budget must be a positive number of bytes per vector, got {budget!r}")
    if not isinstance(target, (int, float)) or not 0 < float(target) <= 1:
        raise AdviseError(f"recall target must be in (0, 1], got {target!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise AdviseError(f"k must be a positive integer, got {k!r}")
    if (
        isinstance(n_queries, bool)
        or not isinstance(n_queries, (int, np.integer))
        or n_queries < 10
    ):
        raise AdviseError(f"queries must be an integer >= 10, got {n_queries!r}")


def split_sample(x: np.ndarray, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hold ``n_queries`` random rows of ``x`` out as queries; the rest is the base."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(x.shape[0])
    return x[perm[n_queries:]], x[perm[:n_queries]]


def advise_vectors(
    x: np.ndarray,
    *,
    budget: int,
    recall: float = 0.95,
    metric: str = "cosine",
    k: int = 10,
    n_queries: int = 200,
    queries: np.ndarray | None = None,
    rows: int | None = None,
    candidates: Sequence[Candidate] | None = None,
    train_size: int = 10_000,
    seed: int = 0,
    source: str = "vectors",
    metric_source: str = "given",
    progress: Callable[[str], Any] | None = None,
) -> Advice:
    """Measure candidate codecs on the sample ``x`` (n, d) and recommend one.

    ``queries`` (real queries, (nq, d)) replace held-out rows of ``x``; ``rows`` is the
    table's size (default: the sample's), which scales the rerank depth and the cost.
    ``candidates`` default to :func:`default_candidates` within the budget; given
    ones over the budget are skipped with a note. Codecs train on the first
    ``train_size`` base vectors (a random subset: the sample is shuffled) and encode
    all of them.
    """
    _check_args(budget, recall, k, n_queries)
    if metric not in METRICS:
        raise AdviseError(f"unknown metric {metric!r}; known metrics: {', '.join(METRICS)}")
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise AdviseError(f"the sample holds no vectors (shape {x.shape})")
    d = x.shape[1]
    try:
        x = as_float32_rows(x, d, "the sample")
    except CodecError as exc:
        raise AdviseError(str(exc)) from None
    if queries is None:
        needed = MIN_BASE + n_queries
        if x.shape[0] < needed:
            raise AdviseError(
                f"only {x.shape[0]:,} vectors to sample from: advise needs at least "
                f"{needed:,} ({MIN_BASE:,} base + {n_queries} held-out queries); at this "
                "size an exact scan is the right choice"
            )
        xb, xq = split_sample(x, n_queries, seed)
        query_source = f"{n_queries} held-out rows"
    else:
        try:
            xq = as_float32_rows(queries, d, "queries")
        except CodecError as exc:
            raise AdviseError(str(exc)) from None
        if x.shape[0] < MIN_BASE:
            raise AdviseError(
                f"only {x.shape[0]:,} vectors to sample from: advise needs at least "
                f"{MIN_BASE:,}; at this size an exact scan is the right choice"
            )
        xb = x[np.random.default_rng(seed).permutation(x.shape[0])]
        query_source = f"{xq.shape[0]} given queries"
    n = xb.shape[0]
    rows = n if rows is None else max(int(rows), n)

    skipped: list[str] = []
    if candidates is None:
        chosen = default_candidates(d, int(budget))
    else:
        chosen = []
        for c in candidates:
            try:
                size = code_size(c, d, metric)
            except CodecError as exc:
                raise AdviseError(f"candidate {c.spec!r}: {exc}") from None
            if size > budget:
                skipped.append(f"{c.label} ({size} B/vector, over the budget)")
            else:
                chosen.append(c)
    if not chosen:
        pq_ok = [m for m in range(1, d + 1) if d % m == 0 and 2 <= d // m <= 32]
        smallest = min(
            [(code_size(Candidate("binary"), d), "binary")] + [(m, f"pq m={m}") for m in pq_ok[:1]]
        )
        raise AdviseError(
            f"no candidate codec fits {budget} bytes per vector for d={d}; the smallest "
            f"is {smallest[1]} at {smallest[0]} bytes per vector"
            + (f" (skipped: {'; '.join(skipped)})" if skipped else "")
        )

    if isinstance(train_size, bool) or not isinstance(train_size, int) or train_size < 1:
        raise AdviseError(f"train_size must be a positive integer, got {train_size!r}")
    xt = xb[:train_size]
    truths: dict[int, np.ndarray] = {
        m: np.empty((xq.shape[0], k), np.int64) for m in prefix_sizes(n, k)
    }
    step = max(1, BLOCK_CELLS // n)
    for i0 in range(0, xq.shape[0], step):
        D = exact_distances(xb, xq[i0 : i0 + step], metric)
        for m, t in truths.items():
            t[i0 : i0 + step] = topk.smallest_k(D[:, :m], k)[1]
    exact_cost = float(rows * 4 * d)
    out: list[Measurement] = []
    for c in chosen:
        if progress is not None:
            progress(f"training and measuring {c.label}")
        try:
            out.append(measure(c, xt, xb, xq, truths, metric=metric, k=k, target=recall, rows=rows))
        except CodecError as exc:
            raise AdviseError(f"candidate {c.spec!r}: {exc}") from None
    out.sort(key=lambda m: (m.est_bytes_per_query, m.bytes_per_vector))
    best = out[0]
    if best.est_bytes_per_query < exact_cost:
        recommended: str | None = best.label
        best.verdict = "recommended"
        reason = (
            f"{best.label} reaches recall@{k} {recall:g} by reranking about "
            f"{best.rerank_depth_table:,} of {rows:,} rows: an estimated "
            f"{best.est_bytes_per_query / 1e6:,.1f} MB read per query, {best.vs_exact:.1f}x "
            f"less than an exact scan, in {best.bytes_per_vector} bytes per vector"
        )
    else:
        recommended = None
        reason = (
            f"no codec within {budget} bytes per vector reaches recall@{k} {recall:g} "
            "while reading less than an exact scan; raise the budget or lower the target"
        )
    if recommended is not None and best.label.startswith("pq"):
        reason += PQ_NOTE
    for meas in out:
        if meas.label != recommended:
            cheaper = meas.est_bytes_per_query < exact_cost
            meas.verdict = "costlier" if cheaper else "no gain over exact"
    return Advice(
        source=source,
        metric=metric,
        metric_source=metric_source,
        d=d,
        rows=rows,
        k=int(k),
        recall_target=float(recall),
        budget=int(budget),
        n_base=n,
        n_queries=int(xq.shape[0]),
        query_source=query_source,
        exact_bytes_per_query=exact_cost,
        measurements=out,
        skipped=skipped,
        recommended=recommended,
        reason=reason,
    )
