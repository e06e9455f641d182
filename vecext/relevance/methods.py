"""Query-independent methods: a fixed cosine threshold and global Platt scaling.

Both are a single monotone map shared by all queries, so both select exactly the same
pairs as some raw cosine threshold: Platt adds interpretable (probability-like)
scores, not a better selection. (Isotonic calibration is also a global monotone map,
so it cannot select better than ``fixed`` either; it is not provided.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import expit

from vecext.relevance._logistic import class_weights, fit_monotone_logistic, softplus
from vecext.relevance.base import RelevanceMethod
from vecext.relevance.checks import RelevanceError, check_scores
from vecext.relevance.registry import register

__all__ = ["FixedThreshold", "PlattScaling"]


@register
class FixedThreshold(RelevanceMethod):
    """Keep candidates with raw cosine ``s >= threshold``; the score is ``s`` itself."""

    name = "fixed"
    calibrated = False
    uses_query = False

    def __init__(self, threshold: float | None = None) -> None:
        super().__init__()
        if threshold is not None:
            self.set_threshold(threshold)
            self._fitted = True

    def _fit(self, xq: Any, S: np.ndarray, Y: np.ndarray, n_relevant: np.ndarray) -> None:
        return None

    def score(self, xq: np.ndarray | None, S: np.ndarray) -> np.ndarray:
        return check_scores(S).copy()

    def query_params(
        self, xq: np.ndarray | None, S: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        self._require_fitted()
        nq = _nq(xq, S)
        return {"s_min": np.full(nq, self.threshold, dtype=np.float64)}

    def _params(self) -> dict[str, Any]:
        return {}

    def _load(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        pass


@register
class PlattScaling(RelevanceMethod):
    """Global logistic calibration ``score = sigmoid(A * s + B)`` with ``A > 0``.

    Fitted by (optionally class-balanced) logistic loss on all candidate pairs.
    """

    name = "platt"
    calibrated = True
    uses_query = False

    def __init__(self, class_weight: str | None = None, max_iter: int = 1000) -> None:
        super().__init__()
        self.class_weight = class_weight
        self.max_iter = int(max_iter)
        self.A = float("nan")
        self.B = float("nan")

    def _fit(self, xq: Any, S: np.ndarray, Y: np.ndarray, n_relevant: np.ndarray) -> None:
        center = float(S.mean())
        scale = float(S.std()) or 1.0
        T = (S - center) / scale
        W = class_weights(Y, self.class_weight)
        theta, info = fit_monotone_logistic(
            np.zeros((S.shape[0], 0)), T, Y, W, 0.0, max_iter=self.max_iter
        )
        a_std = float(softplus(np.array(theta[0])))
        self.A = a_std / scale
        self.B = float(theta[1]) - self.A * center
        self.fit_info = {"optimizer": info}
        return None

    def score(self, xq: np.ndarray | None, S: np.ndarray) -> np.ndarray:
        self._require_fitted()
        return expit(self.A * check_scores(S) + self.B)

    def query_params(
        self, xq: np.ndarray | None, S: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        self._require_fitted()
        nq = _nq(xq, S)
        return {
            "a": np.full(nq, self.A),
            "b": np.full(nq, self.B),
            "s_min": np.full(nq, _s_min(self.A, self.B, self.threshold)),
        }

    def _params(self) -> dict[str, Any]:
        return {"A": self.A, "B": self.B, "class_weight": self.class_weight}

    def _load(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.A = float(params["A"])
        self.B = float(params["B"])
        self.class_weight = params.get("class_weight")
        self.max_iter = 1000


def _nq(xq: np.ndarray | None, S: np.ndarray | None) -> int:
    if S is not None:
        return int(np.asarray(S).shape[0])
    if xq is not None:
        return int(np.atleast_2d(np.asarray(xq)).shape[0])
    raise RelevanceError("need xq or S to know the number of queries")


def _s_min(a: Any, b: Any, threshold: float) -> Any:
    """Similarity where ``sigmoid(a * s + b)`` reaches ``threshold`` (vectorised)."""
    if threshold <= 0.0:
        logit = -math.inf
    elif threshold >= 1.0:
        logit = math.inf
    else:
        logit = math.log(threshold) - math.log1p(-threshold)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (logit - np.asarray(b, dtype=np.float64)) / np.asarray(a, dtype=np.float64)
