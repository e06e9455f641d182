"""The error every relevance method raises, and its input checks.

``S`` is a ``(nq, N)`` matrix of raw similarities of each query's candidates, ``Y``
their 0/1 labels, ``n_relevant`` ``(nq,)`` the number of relevant documents of each
query (also those outside the candidates), ``xq`` ``(nq, d)`` the query vectors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vecext.errors import VecextError

__all__ = [
    "RelevanceError",
    "check_labels",
    "check_n_relevant",
    "check_queries",
    "check_scores",
]


class RelevanceError(VecextError, ValueError):
    """Bad input to a relevance method (wrong shape or dimension, NaN, one-class
    training data, threshold out of range, unknown method or state)."""


def check_scores(S: Any, name: str = "S") -> np.ndarray:
    """``S`` as a finite float64 ``(nq, N)`` array (``TypeError`` for non-real dtypes)."""
    arr = np.asarray(S)
    if arr.ndim != 2:
        raise RelevanceError(
            f"{name} must be a 2-D (nq, N) array of similarities, got shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise RelevanceError(
            f"{name} contains NaN or infinite values (first at row {bad[0]}, column {bad[1]})"
        )
    return arr


def check_labels(Y: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``Y`` as a bool array of ``shape`` (booleans or 0/1)."""
    arr = np.asarray(Y)
    if arr.shape != shape:
        raise RelevanceError(f"Y must have the shape of S {shape}, got {arr.shape}")
    if arr.dtype != np.bool_:
        if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            raise RelevanceError("Y contains NaN")
        if not np.isin(arr, (0, 1)).all():
            raise RelevanceError("Y must be boolean (or 0/1)")
        arr = arr.astype(bool)
    return arr


def check_n_relevant(n_relevant: Any, Y: np.ndarray) -> np.ndarray:
    """int64 ``(nq,)`` relevant documents per query (default: the positives in ``Y``),
    never below the positives labelled in ``Y``."""
    if n_relevant is None:
        return Y.sum(axis=1).astype(np.int64)
    arr = np.asarray(n_relevant)
    if arr.shape != (Y.shape[0],):
        raise RelevanceError(f"n_relevant must have shape ({Y.shape[0]},), got {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise RelevanceError("n_relevant contains NaN")
    arr = arr.astype(np.int64)
    short = arr < Y.sum(axis=1)
    if short.any():
        i = int(np.flatnonzero(short)[0])
        raise RelevanceError(
            f"n_relevant[{i}]={arr[i]} is below the {int(Y[i].sum())} positives labelled in Y"
        )
    return arr


def check_queries(xq: Any, nq: int, d: int | None = None) -> np.ndarray:
    """``xq`` as a finite float64 ``(nq, d)`` array (1-D = one query); ``d=None``
    accepts any dimension (while fitting, when it is not known yet)."""
    arr = np.asarray(xq)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise RelevanceError(f"xq must be a 2-D (nq, d) array, got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if arr.shape[0] != nq:
        raise RelevanceError(f"xq has {arr.shape[0]} queries but S has {nq} rows")
    if d is not None and arr.shape[1] != d:
        raise RelevanceError(
            f"query dimension {arr.shape[1]} does not match the adapter's dimension {d}"
        )
    if not np.isfinite(arr).all():
        raise RelevanceError("xq contains NaN or infinite values")
    return arr
