"""Exact filtered top-k by brute force (the ground truth every method is scored against).

A view of :func:`vecext.topk.exact_topk` in the benchmark's convention: similarities
(inner products of unit vectors), best first.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vecext import topk

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
    running top-k per query (:class:`vecext.topk.TopK`). Ties are broken by the lower
    row id.

    Returns ``(D, I)``: float32 ``(nq, k)`` similarities (best first, ``-inf`` padding)
    and int64 ``(nq, k)`` row ids (``-1`` padding when fewer than ``k`` rows match).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    D, I = topk.exact_topk(xb, xq, k, "ip", keep=keep, block=block, on_block=on_block)
    return -D, I
