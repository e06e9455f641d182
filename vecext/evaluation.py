"""Retrieval metrics and seeded synthetic data.

Everything here is pure numpy and exact. Conventions shared by all functions:

* ``I_pred`` / ``I_true`` are ``(nq, k)`` integer arrays of document ids, best first;
  ``-1`` marks padding (a search that returned fewer than ``k`` rows). A document id
  repeated within one row counts once (its first occurrence).
* ``qrels`` is a sequence with one 1-D integer array per query holding that query's
  relevant document ids (possibly empty).
* Queries with nothing to find (no true neighbour, no relevant document) are left out
  of averages; when no query is left the metric is ``nan``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from vecext.topk import smallest_k

__all__ = [
    "PRF",
    "SyntheticEmbeddings",
    "SyntheticQueries",
    "labels_from_qrels",
    "ndcg_at_k",
    "pr_auc",
    "pr_curve",
    "precision_recall_f1",
    "recall_at_k",
    "relevance_recall_at_k",
    "synthetic_embeddings",
    "synthetic_queries",
]


# --------------------------------------------------------------------------- helpers


def _as_id_matrix(I: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(I)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (nq, k) array of ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer ids, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _first_occurrence(I: np.ndarray) -> np.ndarray:
    """Bool mask, True where ``I[i, j]`` is a valid id not seen earlier in row ``i``."""
    nq, k = I.shape
    valid = I >= 0
    if k <= 1:
        return valid
    order = np.argsort(I, axis=1, kind="stable")
    srt = np.take_along_axis(I, order, axis=1)
    dup_sorted = np.zeros((nq, k), dtype=bool)
    dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
    dup = np.zeros((nq, k), dtype=bool)
    np.put_along_axis(dup, order, dup_sorted, axis=1)
    return valid & ~dup


def _check_k(k: int, width: int) -> int:
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return min(k, width)


def _qrels_list(qrels: Sequence[np.ndarray], nq: int) -> list[np.ndarray]:
    if len(qrels) != nq:
        raise ValueError(f"qrels has {len(qrels)} queries but the result has {nq} rows")
    return [np.unique(np.asarray(r, dtype=np.int64).ravel()) for r in qrels]


def labels_from_qrels(I: np.ndarray, qrels: Sequence[np.ndarray]) -> np.ndarray:
    """Bool ``(nq, k)`` matrix: is ``I[i, j]`` relevant to query ``i``.

    Padding (``-1``) is never relevant. Repeated ids are all labelled (use
    :func:`_first_occurrence` semantics in the metrics, not here).
    """
    I = _as_id_matrix(I, "I")
    nq, k = I.shape
    rel = _qrels_list(qrels, nq)
    lens = np.fromiter((r.size for r in rel), dtype=np.int64, count=nq)
    if lens.sum() == 0 or I.size == 0:
        return np.zeros((nq, k), dtype=bool)
    rel_docs = np.concatenate(rel)
    big = int(max(rel_docs.max(initial=0), I.max(initial=0))) + 1
    keys_rel = np.repeat(np.arange(nq, dtype=np.int64), lens) * big + rel_docs
    keys_res = np.arange(nq, dtype=np.int64)[:, None] * big + I
    return np.isin(keys_res, keys_rel) & (I >= 0)


# --------------------------------------------------------------------------- ranking metrics


def recall_at_k(I_pred: np.ndarray, I_true: np.ndarray, k: int) -> float:
    """Neighbour recall: ``|top-k(pred) ∩ top-k(true)| / min(k, #true)``, averaged.

    ``I_true`` is the exact result (e.g. brute force), possibly with fewer than ``k``
    valid rows (``-1`` padding); the denominator is the number of valid true ids in its
    first ``k`` columns. Queries with no valid true id are skipped.
    """
    P = _as_id_matrix(I_pred, "I_pred")
    T = _as_id_matrix(I_true, "I_true")
    if P.shape[0] != T.shape[0]:
        raise ValueError(f"I_pred has {P.shape[0]} rows, I_true has {T.shape[0]}")
    kp = _check_k(k, P.shape[1])
    kt = _check_k(k, T.shape[1])
    P = P[:, :kp]
    T = T[:, :kt]
    t_ok = _first_occurrence(T)
    p_ok = _first_occurrence(P)
    n_true = t_ok.sum(axis=1)
    keep = n_true > 0
    if not keep.any():
        return float("nan")
    hits = np.zeros(P.shape[0], dtype=np.int64)
    for i in np.flatnonzero(keep):
        hits[i] = np.intersect1d(P[i][p_ok[i]], T[i][t_ok[i]], assume_unique=True).size
    return float(np.mean(hits[keep] / n_true[keep]))


def relevance_recall_at_k(I_pred: np.ndarray, qrels: Sequence[np.ndarray], k: int) -> float:
    """``|top-k ∩ relevant| / |relevant|`` averaged over queries with a relevant document."""
    P = _as_id_matrix(I_pred, "I_pred")
    kk = _check_k(k, P.shape[1])
    P = P[:, :kk]
    rel = _qrels_list(qrels, P.shape[0])
    n_rel = np.fromiter((r.size for r in rel), dtype=np.int64, count=len(rel))
    keep = n_rel > 0
    if not keep.any():
        return float("nan")
    hits = (labels_from_qrels(P, rel) & _first_occurrence(P)).sum(axis=1)
    return float(np.mean(hits[keep] / n_rel[keep]))


def ndcg_at_k(I_pred: np.ndarray, qrels: Sequence[np.ndarray], k: int) -> float:
    """nDCG@k with binary gains; ideal DCG over ``min(k, |relevant|)`` hits.

    ``DCG = sum_r rel_r / log2(r + 1)`` for ranks ``r = 1..k``. Averaged over queries
    with at least one relevant document.
    """
    P = _as_id_matrix(I_pred, "I_pred")
    kk = int(k)
    if kk < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    P = P[:, : min(kk, P.shape[1])]
    rel = _qrels_list(qrels, P.shape[0])
    n_rel = np.fromiter((r.size for r in rel), dtype=np.int64, count=len(rel))
    keep = n_rel > 0
    if not keep.any():
        return float("nan")
    disc = 1.0 / np.log2(np.arange(2, kk + 2, dtype=np.float64))
    gains = (labels_from_qrels(P, rel) & _first_occurrence(P)).astype(np.float64)
    dcg = gains @ disc[: P.shape[1]]
    ideal = np.cumsum(disc)[np.minimum(n_rel, kk) - 1]
    return float(np.mean(dcg[keep] / ideal[keep]))


# --------------------------------------------------------------------------- set metrics


class PRF(NamedTuple):
    """Micro-averaged precision / recall / F1 with the counts behind them."""

    precision: float
    recall: float
    f1: float
    n_selected: int
    n_correct: int
    n_relevant: int


def _prf(n_sel: int, n_ok: int, n_rel: int) -> PRF:
    p = n_ok / n_sel if n_sel else 0.0
    r = n_ok / n_rel if n_rel else 0.0
    f = 2.0 * n_ok / (n_sel + n_rel) if (n_sel + n_rel) else 0.0
    return PRF(float(p), float(r), float(f), int(n_sel), int(n_ok), int(n_rel))


def precision_recall_f1(
    selected: Sequence[np.ndarray] | np.ndarray, qrels: Sequence[np.ndarray]
) -> PRF:
    """Micro precision, recall and F1 of a selection against ``qrels``.

    ``selected`` holds the documents returned per query: either a sequence of 1-D id
    arrays (any length, also empty) or a 2-D id array with ``-1`` padding. Precision
    is ``correct / selected`` pairs, recall is ``correct / relevant`` pairs where the
    denominator counts *every* relevant pair of these queries, also those never
    retrieved. Nothing selected gives precision 0.
    """
    if isinstance(selected, np.ndarray) and selected.ndim == 2:
        rows = [r[r >= 0] for r in _as_id_matrix(selected, "selected")]
    else:
        rows = [np.asarray(r, dtype=np.int64).ravel() for r in selected]
        rows = [r[r >= 0] for r in rows]
    rel = _qrels_list(qrels, len(rows))
    n_sel = n_ok = n_rel = 0
    for s, r in zip(rows, rel, strict=True):
        s = np.unique(s)
        n_sel += s.size
        n_rel += r.size
        n_ok += np.intersect1d(s, r, assume_unique=True).size
    return _prf(n_sel, n_ok, n_rel)


def pr_curve(
    scores: np.ndarray, labels: np.ndarray, n_relevant_total: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision-recall curve of ``score >= t`` over all distinct thresholds ``t``.

    ``scores``/``labels`` are any-shape arrays of candidate pairs (flattened);
    ``n_relevant_total`` is the recall denominator (defaults to ``labels.sum()``; pass
    the count of all relevant pairs to charge for relevant documents that were never
    candidates). Returns ``(precision, recall, thresholds)``, float64, thresholds in
    decreasing order; point ``i`` is the selection ``score >= thresholds[i]``.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"scores ({s.size}) and labels ({y.size}) differ in size")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    n_rel = int(y.sum()) if n_relevant_total is None else int(n_relevant_total)
    if n_rel < int(y.sum()):
        raise ValueError(f"n_relevant_total={n_rel} is below the {int(y.sum())} labelled positives")
    if s.size == 0:
        empty = np.zeros(0, dtype=np.float64)
        return empty, empty, empty
    order = np.argsort(-s, kind="stable")
    s = s[order]
    tp = np.cumsum(y[order], dtype=np.int64)
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]  # end of each tie group
    tp = tp[last].astype(np.float64)
    n = (last + 1).astype(np.float64)
    precision = tp / n
    recall = tp / n_rel if n_rel else np.zeros_like(tp)
    return precision, recall, s[last]


def pr_auc(scores: np.ndarray, labels: np.ndarray, n_relevant_total: int | None = None) -> float:
    """Area under the precision-recall curve (step rule, i.e. average precision).

    ``sum_i (R_i - R_{i-1}) * P_i`` over the points of :func:`pr_curve` with
    ``R_0 = 0``. With ``n_relevant_total`` above the labelled positives, the curve
    stops short of recall 1 and so does the area.
    """
    precision, recall, _ = pr_curve(scores, labels, n_relevant_total)
    if precision.size == 0:
        return 0.0
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


# --------------------------------------------------------------------------- synthetic data


@dataclass(frozen=True)
class SyntheticEmbeddings:
    """Seeded clustered embeddings with filterable attributes.

    ``xb`` float32 ``(n, d)``; ``cluster`` int32 hidden topic of each document;
    ``category`` int32 categorical attribute with skewed (Zipf-like) sizes, correlated
    with the topic; ``value`` float32 numeric attribute, uniform on ``[0, 1)``.
    ``centers``, ``spread``, ``scales`` and ``rotation`` are the generator's internals,
    needed by :func:`synthetic_queries`.
    """

    xb: np.ndarray
    cluster: np.ndarray
    category: np.ndarray
    value: np.ndarray
    centers: np.ndarray
    spread: np.ndarray
    scales: np.ndarray
    rotation: np.ndarray
    normalized: bool
    seed: int
    attrs: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.xb.shape[0])

    @property
    def d(self) -> int:
        return int(self.xb.shape[1])


def _spectral_noise(
    rng: np.random.Generator, m: int, scales: np.ndarray, rotation: np.ndarray
) -> np.ndarray:
    z = rng.standard_normal((m, scales.size), dtype=np.float32)
    z *= scales
    return z @ rotation


def _normalize_rows(x: np.ndarray) -> None:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(norms, np.float32(1e-12), out=norms)
    x /= norms


def synthetic_embeddings(
    n: int,
    d: int,
    *,
    n_clusters: int | None = None,
    seed: int = 0,
    spectrum_decay: float = 0.5,
    normalize: bool = True,
    spread_range: tuple[float, float] = (0.3, 1.5),
    mean_offset: float = 0.3,
    n_categories: int = 20,
    category_skew: float = 1.1,
    block_rows: int = 65536,
) -> SyntheticEmbeddings:
    """Clustered embeddings with a decaying spectrum, like real text embeddings.

    Model: a random orthonormal ``rotation`` and per-axis ``scales`` ``(1 + i) **
    -spectrum_decay`` (normalised to unit total variance) shape every random vector.
    Cluster centers are such vectors plus a shared ``mean_offset`` direction (real
    embeddings are anisotropic: unrelated texts still have positive cosine). Cluster
    sizes are log-normal (skewed). A document is its center plus noise scaled by the
    cluster's own ``spread`` (log-uniform in ``spread_range``), so some topics are
    tight and some diffuse; rows are L2-normalised when ``normalize``.

    Attributes: ``category`` (``n_categories`` values, Zipf sizes with exponent
    ``category_skew``; half of each cluster's documents take the cluster's home
    category) and ``value`` (uniform float). Generation runs in blocks of
    ``block_rows`` rows, so peak memory is about the output itself.
    """
    n = int(n)
    d = int(d)
    if n < 1 or d < 2:
        raise ValueError(f"need n >= 1 and d >= 2, got n={n}, d={d}")
    if n_clusters is None:
        n_clusters = max(1, min(n // 10, 100_000))
    n_clusters = int(n_clusters)
    if n_clusters < 1:
        raise ValueError(f"n_clusters must be >= 1, got {n_clusters}")
    lo, hi = (float(v) for v in spread_range)
    if not 0.0 <= lo <= hi:
        raise ValueError(f"spread_range must satisfy 0 <= lo <= hi, got {spread_range}")
    rng = np.random.default_rng(seed)

    g = rng.standard_normal((d, d))
    q, r = np.linalg.qr(g)
    rotation = (q * np.sign(np.diag(r))).astype(np.float32)
    scales = (1.0 + np.arange(d, dtype=np.float64)) ** (-float(spectrum_decay))
    scales = (scales / np.sqrt(np.sum(scales**2))).astype(np.float32)

    offset = rng.standard_normal(d).astype(np.float32)
    offset *= np.float32(mean_offset) / np.linalg.norm(offset)
    centers = _spectral_noise(rng, n_clusters, scales, rotation)
    centers += offset
    spread = np.exp(rng.uniform(np.log(max(lo, 1e-6)), np.log(max(hi, 1e-6)), n_clusters))
    spread = spread.astype(np.float32)

    weights = rng.lognormal(0.0, 1.0, n_clusters)
    cluster = rng.choice(n_clusters, size=n, p=weights / weights.sum()).astype(np.int32)

    cat_p = 1.0 / (1.0 + np.arange(n_categories)) ** float(category_skew)
    cat_p /= cat_p.sum()
    home = rng.choice(n_categories, size=n_clusters, p=cat_p)
    category = rng.choice(n_categories, size=n, p=cat_p)
    use_home = rng.random(n) < 0.5
    category[use_home] = home[cluster[use_home]]
    category = category.astype(np.int32)
    value = rng.random(n, dtype=np.float32)

    xb = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, block_rows):
        stop = min(n, start + block_rows)
        c = cluster[start:stop]
        blk = _spectral_noise(rng, stop - start, scales, rotation)
        blk *= spread[c][:, None]
        blk += centers[c]
        if normalize:
            _normalize_rows(blk)
        xb[start:stop] = blk
    return SyntheticEmbeddings(
        xb=xb,
        cluster=cluster,
        category=category,
        value=value,
        centers=centers,
        spread=spread,
        scales=scales,
        rotation=rotation,
        normalized=bool(normalize),
        seed=int(seed),
        attrs={"category": category, "value": value},
    )


@dataclass(frozen=True)
class SyntheticQueries:
    """Queries with known relevance: ``xq`` float32 ``(nq, d)``; ``qrels`` one int64
    array of relevant document rows per query; ``cluster`` int32 the query's topic."""

    xq: np.ndarray
    qrels: list[np.ndarray]
    cluster: np.ndarray


def synthetic_queries(
    data: SyntheticEmbeddings,
    nq: int,
    *,
    seed: int = 1,
    noise: float = 0.5,
    max_relevant: int | None = 50,
) -> SyntheticQueries:
    """Queries near documents, relevant = the documents of the query's topic.

    Each query picks a random non-empty cluster ``c`` (uniformly, so relevant-set sizes
    are as skewed as the cluster sizes) and is
    ``center[c] + noise * spread[c] * spectral noise`` (normalised like the docs).
    Its relevant set is every document of cluster ``c`` — or, when the cluster holds
    more than ``max_relevant`` documents, the ``max_relevant`` of them most similar to
    the query (so relevant sets stay small, as in search). Because clusters differ in
    spread, the cosine that separates relevant from irrelevant documents differs from
    query to query: the situation a query-dependent threshold is for.
    """
    nq = int(nq)
    if nq < 1:
        raise ValueError(f"nq must be >= 1, got {nq}")
    rng = np.random.default_rng(seed)
    sizes = np.bincount(data.cluster, minlength=data.centers.shape[0])
    c = rng.choice(np.flatnonzero(sizes), size=nq)
    xq = _spectral_noise(rng, nq, data.scales, data.rotation)
    xq *= (np.float32(noise) * data.spread[c])[:, None]
    xq += data.centers[c]
    if data.normalized:
        _normalize_rows(xq)
    order = np.argsort(data.cluster, kind="stable")
    bounds = np.searchsorted(data.cluster[order], np.arange(data.centers.shape[0] + 1))
    qrels: list[np.ndarray] = []
    for i in range(nq):
        members = order[bounds[c[i]] : bounds[c[i] + 1]].astype(np.int64)
        if max_relevant is not None and members.size > max_relevant:
            # the most similar members, ties to the lower row (vecext.topk's order)
            sims = data.xb[members] @ xq[i]
            members = members[smallest_k(-sims[None, :], max_relevant)[1][0]]
        qrels.append(np.sort(members))
    return SyntheticQueries(xq=xq, qrels=qrels, cluster=c.astype(np.int32))
