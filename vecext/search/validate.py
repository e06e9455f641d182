"""Checks of a search request's arguments, shared by every entry point."""

from __future__ import annotations

from typing import Any

import numpy as np

from vecext.search.contracts import SearchError

#: Largest k accepted: beyond this, a "search" is an export and should be a query.
MAX_K = 10_000


def check_query(q: Any, dim: int, column: str, metric: str | None = None) -> np.ndarray:
    arr = np.asarray(q, dtype=np.float32)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise SearchError(f"the query must be one vector, got an array of shape {np.shape(q)}")
    if arr.shape[0] != dim:
        raise SearchError(
            f"the query has dimension {arr.shape[0]}, column {column} has dimension {dim}"
        )
    if not np.isfinite(arr).all():
        raise SearchError("the query vector holds NaN or infinite values")
    if metric == "cosine" and not np.any(arr):
        raise SearchError(
            "the query vector is all zeros: it has no direction, so its cosine distance to "
            "every row is undefined; use metric='l2' or 'ip', or a non-zero query"
        )
    return arr


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise SearchError(f"k must be an integer, got {k!r}")
    if k <= 0:
        raise SearchError(f"k must be positive, got {k}")
    if k > MAX_K:
        raise SearchError(f"k = {k} is beyond the limit of {MAX_K}; page through a query instead")
    return int(k)
