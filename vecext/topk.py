"""Exact top-k by brute force: the one reference every approximate result is measured against.

Calibration (:mod:`vecext.search.calibrate`), the benchmark's ground truth, ``vecext
advise`` and the synthetic data of :mod:`vecext.evaluation` all rank with this code,
so "exact" means the same thing everywhere:

* distances follow the search metrics (smaller is closer): ``l2`` the squared
  Euclidean distance ``|q|^2 - 2 q.x + |x|^2``, ``ip`` the negative inner product,
  ``cosine`` ``1 - cos`` (rows and queries normalised first; zero rows stay zero).
  Cosine ranks by ``-cos``, exactly the negated similarity, so that two rows whose
  similarities differ are never tied by the rounding of ``1 - cos``;
* ties are broken by the lower id (the lower row when no ids are given);
* the database side is consumed in blocks (:class:`TopK` keeps a running top-k per
  query), so memory stays bounded by ``(n_queries, block + k)``.

Pure numpy, float32 throughout (as FAISS and the databases compute).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["METRICS", "TopK", "exact_topk", "merge_topk", "prepare", "ranking", "smallest_k"]

#: Metrics :func:`ranking` knows.
METRICS = ("l2", "ip", "cosine")


def prepare(x: np.ndarray, metric: str) -> np.ndarray:
    """float32 rows, L2-normalised for ``cosine`` (zero rows stay zero, not NaN)."""
    x = np.asarray(x, dtype=np.float32)
    if metric != "cosine":
        return x
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1)).astype(np.float32, copy=False)


def ranking(xq: np.ndarray, xb: np.ndarray, metric: str) -> np.ndarray:
    """``(nq, n)`` float32 ranking values of already :func:`prepare`-d rows, smaller is
    closer: squared L2, ``-q.x`` (ip), ``-cos`` (cosine; add 1 for the cosine distance)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    ip = xq @ xb.T
    if metric == "l2":
        return (xq**2).sum(1)[:, None] - 2 * ip + (xb**2).sum(1)[None, :]
    return -ip


def _order(d: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Positions of one row sorted by (distance, id); ids that numpy cannot order as an
    array (mixed types) keep their arrival order among equal distances."""
    try:
        return np.lexsort((i, d))
    except TypeError:
        return np.argsort(d, kind="stable")


def merge_topk(
    d0: np.ndarray,
    i0: np.ndarray,
    d1: np.ndarray,
    i1: np.ndarray,
    n: int,
    extra: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """The ``n`` smallest of two ``(nq, *)`` distance/id arrays per row, sorted by
    (distance, id); ``extra`` (an array aligned with ``d0`` and one with ``d1``) follows.

    Returns ``[D, I]`` (and the merged extra) of width ``min(n, total width)``.
    """
    d = np.concatenate([d0, d1], axis=1)
    i = np.concatenate([i0, i1], axis=1)
    e = np.concatenate(list(extra), axis=1) if extra is not None else None
    nq, width = d.shape
    n = min(int(n), width)
    if n == 0:
        return [d[:, :0], i[:, :0]] + ([e[:, :0]] if e is not None else [])  # type: ignore[index]
    if n < width:
        part = np.argpartition(d, n - 1, axis=1)[:, :n]
        thr = np.take_along_axis(d, part, axis=1).max(axis=1)
        # rows where more values than n are <= the n-th smallest have ties at the
        # boundary: all of those compete and the ids settle them (below)
        tied = np.isnan(thr) | ((d <= thr[:, None]).sum(axis=1) > n)
    else:
        part = np.broadcast_to(np.arange(width)[None, :], (nq, width))
        tied = np.zeros(nq, dtype=bool)
    sel = np.empty((nq, n), dtype=np.int64)
    plain = np.flatnonzero(~tied)
    if plain.size:
        p = part[plain]
        dp = np.take_along_axis(d[plain], p, axis=1)
        ip = np.take_along_axis(i[plain], p, axis=1)
        try:
            order = np.lexsort((ip, dp), axis=1)
        except TypeError:
            order = np.argsort(dp, axis=1, kind="stable")
        sel[plain] = np.take_along_axis(p, order, axis=1)
    for r in np.flatnonzero(tied):
        cand = np.arange(width) if np.isnan(thr[r]) else np.flatnonzero(d[r] <= thr[r])
        sel[r] = cand[_order(d[r, cand], i[r, cand])][:n]
    out = [np.take_along_axis(d, sel, axis=1), np.take_along_axis(i, sel, axis=1)]
    if e is not None:
        out.append(np.take_along_axis(e, sel, axis=1))
    return out


def smallest_k(D: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest entries of each row of ``D`` and their column indexes, ties to
    the lower column (``argsort(D, kind="stable")[:, :k]``, without sorting whole rows)."""
    D = np.asarray(D)
    cols = np.broadcast_to(np.arange(D.shape[1], dtype=np.int64)[None, :], D.shape)
    empty_d, empty_i = D[:, :0], cols[:, :0]
    d, i = merge_topk(empty_d, empty_i, D, cols, k)
    return d, i


class TopK:
    """A running exact top-k of ``xq`` over database rows fed in blocks (:meth:`add`).

    Parameters
    ----------
    xq
        ``(nq, d)`` queries.
    k
        Neighbours kept per query.
    metric
        ``l2``, ``ip`` or ``cosine`` (see the module docstring for the distances).
    id_dtype
        dtype of the ids (int64 row ids, or ``object`` for other keys).
    """

    def __init__(self, xq: np.ndarray, k: int, metric: str, id_dtype: object = np.int64) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.k, self.metric = int(k), metric
        self.q = prepare(np.ascontiguousarray(xq, dtype=np.float32), metric)
        if self.q.ndim != 2:
            raise ValueError(f"queries must be a 2-D array, got shape {self.q.shape}")
        nq = self.q.shape[0]
        self.D = np.full((nq, 0), np.inf, dtype=np.float32)
        self.I = np.empty((nq, 0), dtype=id_dtype)  # type: ignore[call-overload]

    def add(self, ids: np.ndarray, xb: np.ndarray) -> None:
        """Feed one block: ``ids`` ``(n,)`` and float32 vectors ``(n, d)``."""
        ids = np.asarray(ids)
        if ids.shape[0] == 0:
            return
        xb = prepare(np.ascontiguousarray(xb, dtype=np.float32), self.metric)
        if xb.ndim != 2 or xb.shape[1] != self.q.shape[1]:
            raise ValueError(f"shapes do not fit: xb {xb.shape}, xq {self.q.shape}")
        D = ranking(self.q, xb, self.metric).astype(np.float32, copy=False)
        bi = np.broadcast_to(ids.astype(self.I.dtype, copy=False)[None, :], D.shape)
        self.D, self.I = merge_topk(self.D, self.I, D, bi, self.k)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(D, I)``: float32 ``(nq, k)`` distances, ascending (``inf`` padding), and ids
        (``-1`` padding for integer ids, ``None`` otherwise) when fewer rows were fed."""
        nq, got = self.D.shape
        D = np.full((nq, self.k), np.inf, dtype=np.float32)
        pad = -1 if self.I.dtype.kind in "iu" else None
        I = np.full((nq, self.k), pad, dtype=self.I.dtype)
        D[:, :got], I[:, :got] = self.D, self.I
        if self.metric == "cosine":
            D = D + np.float32(1.0)  # -cos -> 1 - cos
        return D, I


def exact_topk(
    xb: np.ndarray,
    xq: np.ndarray,
    k: int,
    metric: str = "cosine",
    *,
    keep: np.ndarray | None = None,
    ids: np.ndarray | None = None,
    block: int = 32768,
    on_block: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` rows of ``xb`` for each query, among the rows where ``keep``.

    Parameters
    ----------
    xb, xq
        ``(n, d)`` rows and ``(nq, d)`` queries.
    keep
        Bool ``(n,)``: only these rows compete (a filter); all rows when ``None``.
    ids
        ``(n,)`` id of each row (default: the row number).
    block
        Rows ranked at once (memory: ``nq * block`` float32 values).
    on_block
        Called with the number of rows after each block (progress).

    Returns
    -------
    D, I
        float32 ``(nq, k)`` distances, ascending, ``inf`` padding, and int64 ``(nq, k)``
        ids, ``-1`` padding when fewer than ``k`` rows compete; ties to the lower id.
    """
    xb = np.asarray(xb)
    xq = np.asarray(xq)
    if xb.ndim != 2 or xq.ndim != 2 or xb.shape[1] != xq.shape[1]:
        raise ValueError(f"shapes do not fit: xb {xb.shape}, xq {xq.shape}")
    rows = np.arange(xb.shape[0], dtype=np.int64) if keep is None else np.flatnonzero(keep)
    row_ids = rows if ids is None else np.asarray(ids)[rows]
    acc = TopK(xq, k, metric, row_ids.dtype)
    for start in range(0, rows.size, block):
        sel = rows[start : start + block]
        acc.add(row_ids[start : start + block], xb[sel])
        if on_block is not None:
            on_block(sel.size)
    return acc.result()
