"""Seeded synthetic embeddings with filterable attributes and queries with known relevance.

Pure numpy. The documents imitate real text embeddings (a decaying spectrum, skewed
cluster sizes, clusters of different spread); each query's relevant set is its
topic's documents, so relevance thresholds differ from query to query.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SyntheticEmbeddings", "SyntheticQueries", "synthetic_embeddings", "synthetic_queries"]


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
            sims = data.xb[members] @ xq[i]
            members = members[np.argsort(-sims, kind="stable")[:max_relevant]]
        qrels.append(np.sort(members))
    return SyntheticQueries(xq=xq, qrels=qrels, cluster=c.astype(np.int32))
