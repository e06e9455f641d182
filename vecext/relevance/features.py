"""Features of a query's own similarity distribution (its retrieved candidates).

Each is a scalar per query, computed from the raw similarities of the query's top-N
candidates, sorted descending (``s1 >= s2 >= ...``). In SQL they are window
aggregates over the candidate set, so a search that returns the top-N can feed them
to the adapter. Only the first ``k`` candidates enter each feature, so they do not
depend on N as long as N >= 10.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from vecext.relevance.checks import RelevanceError

__all__ = ["FEATURES", "FEATURE_DOCS", "distribution_features", "sorted_desc"]


def sorted_desc(S: np.ndarray) -> np.ndarray:
    """``S`` with each row sorted descending (no copy when already sorted)."""
    if S.shape[1] < 2 or bool(np.all(S[:, :-1] >= S[:, 1:])):
        return S
    return -np.sort(-S, axis=1)


def _col(S: np.ndarray, j: int) -> np.ndarray:
    return S[:, min(j, S.shape[1] - 1)]


FEATURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "top1": lambda S: _col(S, 0),
    "gap12": lambda S: _col(S, 0) - _col(S, 1),
    "mean10": lambda S: S[:, :10].mean(axis=1),
    "gap1_10": lambda S: _col(S, 0) - _col(S, 9),
    "std10": lambda S: S[:, :10].std(axis=1),
}

FEATURE_DOCS: dict[str, str] = {
    "top1": "s1, the best similarity",
    "gap12": "s1 - s2",
    "mean10": "mean of s1..s10",
    "gap1_10": "s1 - s10",
    "std10": "population standard deviation of s1..s10",
}


def distribution_features(S: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """float64 ``(nq, len(names))`` matrix of the named features of each row of ``S``."""
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise RelevanceError(
            f"unknown distribution feature(s) {unknown}; known: {sorted(FEATURES)}"
        )
    S = sorted_desc(np.asarray(S, dtype=np.float64))
    if not names:
        return np.zeros((S.shape[0], 0), dtype=np.float64)
    return np.column_stack([FEATURES[n](S) for n in names]).astype(np.float64, copy=False)
