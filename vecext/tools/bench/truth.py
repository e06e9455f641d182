"""Exact filtered top-k by brute force (the ground truth every method is scored against)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["exact_topk"]


def exact_topk(
    xb: np.ndarray,
    xq: np.ndarray,
    k: int,
    keep: np.ndarray | None = None,
    *,
    block: int = 32768,
    on_block: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` rows of ``xb`` by inner product with each query, among rows where ``keep``.

    Cosine similarity on unit vectors. Blocked float32 matmul over the kept rows, a
    running top-k per query. Ties are broken by the lower row id.

    Returns ``(D, I)``: float32 ``(nq, k)`` similarities (best first, ``-inf`` padding)
    and int64 ``(nq, k)`` row ids (``-1`` padding when fewer than ``k`` rows match).
    """
    xb = np.asarray(xb)
    xq = np.ascontiguousarray(xq, dtype=np.float32)
    if xb.ndim != 2 or xq.ndim != 2 or xb.shape[1] != xq.shape[1]:
        raise ValueError(f"shapes do not fit: xb {xb.shape}, xq {xq.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    nq = xq.shape[0]
    ids = np.arange(xb.shape[0], dtype=np.int64) if keep is None else np.flatnonzero(keep)
    D = np.full((nq, k), -np.inf, dtype=np.float32)
    I = np.full((nq, k), -1, dtype=np.int64)
    for start in range(0, ids.size, block):
        sel = ids[start : start + block]
        sims = xq @ np.ascontiguousarray(xb[sel], dtype=np.float32).T  # (nq, b)
        D, I = _merge(D, I, sims, np.broadcast_to(sel, sims.shape), k)
        if on_block is not None:
            on_block(sel.size)
    return D, I


def _merge(
    D: np.ndarray, I: np.ndarray, sims: np.ndarray, ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` of the running list and a new block, ordered by (-similarity, id)."""
    allD = np.concatenate([D, sims], axis=1)
    allI = np.concatenate([I, ids], axis=1)
    if allD.shape[1] > k:
        # argpartition finds the k-th best value; the exact order, with the id
        # tie-break, is then set by a lexsort over the few candidates at or above it
        part = np.argpartition(-allD, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(allD, part, axis=1).min(axis=1, keepdims=True)
        cand = allD >= kth
        rows = []
        for i in range(allD.shape[0]):
            c = np.flatnonzero(cand[i])
            order = np.lexsort((allI[i, c], -allD[i, c]))[:k]
            rows.append(c[order])
        sel = np.stack(rows)
    else:
        sel = np.stack([np.lexsort((allI[i], -allD[i])) for i in range(allD.shape[0])])
    return np.take_along_axis(allD, sel, axis=1), np.take_along_axis(allI, sel, axis=1)
