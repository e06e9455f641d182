"""Measuring one candidate codec against exact search on a sample.

The rerank depth for a recall target is read off the positions of the true
neighbours in code order (see :func:`code_positions`), on nested prefixes of the
sample, and extrapolated to the table with :func:`fit_growth`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vecext import topk
from vecext.codecs import make_codec
from vecext.tools.advise.candidates import Candidate

__all__ = [
    "RERANK_ROW_BYTES",
    "Measurement",
    "code_positions",
    "depth_for_recall",
    "exact_distances",
    "exact_neighbours",
    "fit_growth",
    "measure",
    "prefix_sizes",
]

#: bytes charged per rerank candidate: a random heap fetch reads a whole 8 kB page
RERANK_ROW_BYTES = 8192
#: at most this many candidate rows are ranked per block of queries (memory bound)
BLOCK_CELLS = 1 << 24


@dataclass
class Measurement:
    label: str
    spec: str
    kind: str
    params: dict[str, Any]
    bytes_per_vector: int
    compression: float
    recall_codes: float
    rerank_depth: int
    rerank_fraction: float
    #: rerank depth for the target on nested prefixes of the sample, and the fitted
    #: exponent of its growth with the number of rows
    depth_by_size: dict[int, int]
    depth_growth: float
    rerank_depth_table: int
    est_bytes_per_query: float
    vs_exact: float
    train_s: float
    encode_per_s: float
    storage_bytes_table: int
    verdict: str = ""


def exact_distances(xb: np.ndarray, xq: np.ndarray, metric: str) -> np.ndarray:
    """Exact ``(nq, n)`` distances in the codecs' convention (smaller is closer; cosine
    ranks by ``-cos``), as :mod:`vecext.topk` ranks."""
    return topk.ranking(topk.prepare(xq, metric), topk.prepare(xb, metric), metric)


def exact_neighbours(xb: np.ndarray, xq: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Exact top-``k`` row ids of ``xb`` per query (ties to the lower row)."""
    return topk.exact_topk(xb, xq, k, metric)[1]


def prefix_sizes(n: int, k: int) -> list[int]:
    """Nested sample prefixes the depth is measured on: n/8, n/4, n/2, n (each >= 50 k)."""
    sizes = sorted({n // f for f in (8, 4, 2, 1) if n // f >= 50 * k} | {n})
    return sizes


def fit_growth(sizes: Sequence[int], depths: Sequence[int]) -> float:
    """Exponent ``a`` of ``depth ~ n^a`` at the largest sizes: the slope of log(depth)
    on log(n) between the last two prefixes, clamped to [0, 1] (0 for one size).

    The local slope, not a fit over all prefixes: the depth of a coarse codec grows
    faster as the table grows (on 300k synthetic embeddings a fit over all prefixes
    under-predicted the depth of PQ m=16 twice over, the last slope by 12%), and an
    estimate that errs high only costs a deeper rerank.
    """
    if len(sizes) < 2:
        return 0.0
    slope = math.log(depths[-1] / depths[-2]) / math.log(sizes[-1] / sizes[-2])
    return min(1.0, max(0.0, slope))


def code_positions(D: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Position of each true neighbour in code order (``(nq, k)``, 0 = first).

    Code order is ascending estimated distance with ties to the lower row, the order
    in which a search over codes hands candidates to the rerank.
    """
    nq, n = D.shape
    rows = np.arange(n)
    pos = np.empty(truth.shape, dtype=np.int64)
    for i in range(nq):
        vals = D[i, truth[i]]  # (k,)
        before = D[i][None, :] < vals[:, None]
        tied = (D[i][None, :] == vals[:, None]) & (rows[None, :] < truth[i][:, None])
        pos[i] = before.sum(1) + tied.sum(1)
    return pos


def depth_for_recall(pos: np.ndarray, target: float, k: int) -> int:
    """The fewest candidates (at least ``k``) whose exact rerank reaches ``target``."""
    flat = np.sort(pos.ravel())
    need = max(1, math.ceil(target * flat.size - 1e-9))
    return max(k, int(flat[need - 1]) + 1)


def measure(
    c: Candidate,
    xt: np.ndarray,
    xb: np.ndarray,
    xq: np.ndarray,
    truths: dict[int, np.ndarray],
    *,
    metric: str,
    k: int,
    target: float,
    rows: int,
) -> Measurement:
    """Train ``c`` on ``xt``, encode ``xb`` and measure it; ``truths[m]`` holds the exact
    top-k of every query among the first ``m`` rows of ``xb``."""
    d, n = xb.shape[1], xb.shape[0]
    codec = make_codec(c.kind, d, metric, **c.params)
    t0 = time.perf_counter()
    codec.train(xt)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    codes = codec.encode(xb)
    encode_s = max(time.perf_counter() - t0, 1e-9)
    sizes = sorted(truths)
    pos = {m: np.empty((xq.shape[0], k), dtype=np.int64) for m in sizes}
    step = max(1, BLOCK_CELLS // n)
    for i0 in range(0, xq.shape[0], step):
        D = codec.distances(xq[i0 : i0 + step], codes)
        for m in sizes:
            pos[m][i0 : i0 + step] = code_positions(D[:, :m], truths[m][i0 : i0 + step])
    depths = [depth_for_recall(pos[m], target, k) for m in sizes]
    growth = fit_growth(sizes, depths)
    depth = depths[-1]
    scaled = min(rows, max(depth, math.ceil(depth * (rows / n) ** growth)))
    cs = codec.code_size
    cost = rows * cs + scaled * max(RERANK_ROW_BYTES, 4 * d)
    exact = rows * 4 * d
    return Measurement(
        label=c.label,
        spec=c.spec,
        kind=c.kind,
        params=dict(c.params),
        bytes_per_vector=cs,
        compression=4 * d / cs,
        recall_codes=float((pos[n] < k).mean()),
        rerank_depth=depth,
        rerank_fraction=depth / n,
        depth_by_size={int(m): int(v) for m, v in zip(sizes, depths, strict=True)},
        depth_growth=growth,
        rerank_depth_table=int(scaled),
        est_bytes_per_query=float(cost),
        vs_exact=float(exact / cost),
        train_s=train_s,
        encode_per_s=n / encode_s,
        storage_bytes_table=int(rows * cs),
    )
