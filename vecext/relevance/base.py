"""The interface every relevance method implements, its persisted state, and helpers.

A relevance method turns the raw cosine similarities ``S`` of a query's retrieved
candidates into scores (calibrated to ``[0, 1]`` for all methods but ``fixed``), with a
map that is monotone non-decreasing in the similarity for a fixed query, and keeps the
candidates whose score reaches one global ``threshold``. Monotonicity means the
threshold can be pushed down to the search as a per-query similarity bound.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from vecext.errors import VecextError
from vecext.evaluation import PRF

__all__ = [
    "RelevanceError",
    "RelevanceMethod",
    "RelevanceState",
    "best_f1_threshold",
    "make_relevance",
    "parse_method_spec",
    "register",
    "relevance_from_state",
]


class RelevanceError(VecextError, ValueError):
    """Bad input to a relevance method (wrong shape or dimension, NaN, one-class
    training data, threshold out of range, unknown method or state)."""


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class RelevanceState:
    """Everything needed to rebuild a trained relevance method.

    ``method`` registry name; ``d`` embedding dimension (``None`` when the method
    ignores the query); ``version`` format version of that method's state; ``params``
    a JSON object (as text) of scalars and short lists; ``arrays`` named 1-D/2-D numpy
    arrays (weight vectors, float32). Maps onto the catalog tables
    ``vecext.relevance_adapters`` / ``vecext.relevance_arrays``.
    """

    method: str
    d: int | None
    version: int
    params: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def params_dict(self) -> dict[str, Any]:
        return json.loads(self.params)

    def fingerprint(self) -> str:
        """16 hex chars of sha256 over the canonical JSON of method, d, version and params
        and, for each array sorted by name, its name, dtype, shape and little-endian
        bytes (the same recipe as ``CodecState.fingerprint``)."""
        h = hashlib.sha256()
        head = {
            "method": self.method,
            "d": self.d,
            "version": self.version,
            "params": json.loads(self.params),
        }
        h.update(json.dumps(head, sort_keys=True, separators=(",", ":"), allow_nan=False).encode())
        for name in sorted(self.arrays):
            a = np.asarray(self.arrays[name])
            a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
            h.update(b"\x00" + name.encode() + b"\x00")
            h.update(a.dtype.str.encode() + json.dumps(list(a.shape)).encode())
            h.update(a.tobytes())
        return h.hexdigest()[:16]


def _json_params(params: dict[str, Any]) -> str:
    def fix(v: Any) -> Any:
        if isinstance(v, (np.floating, float)):
            f = float(v)
            if not math.isfinite(f):
                raise RelevanceError(f"non-finite parameter {v!r} cannot be stored")
            return f
        if isinstance(v, np.integer):
            return int(v)
        if isinstance(v, (list, tuple)):
            return [fix(x) for x in v]
        if isinstance(v, dict):
            return {str(k): fix(x) for k, x in v.items()}
        return v

    return json.dumps(fix(params), sort_keys=True)


# --------------------------------------------------------------------------- validation


def _check_scores(S: Any, name: str = "S") -> np.ndarray:
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


def _check_labels(Y: Any, shape: tuple[int, ...]) -> np.ndarray:
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


def _check_n_relevant(n_relevant: Any, Y: np.ndarray) -> np.ndarray:
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


# --------------------------------------------------------------------------- thresholds


def best_f1_threshold(
    scores: np.ndarray, labels: np.ndarray, n_relevant_total: int | None = None
) -> tuple[float, PRF]:
    """The global threshold maximising micro-F1 of ``score >= threshold``.

    ``n_relevant_total`` is the recall denominator (all relevant pairs of the queries,
    also those outside the candidates; default ``labels.sum()``). The threshold returned
    is the midpoint between the lowest selected score and the next lower score (so a
    tiny perturbation of a score does not flip the decision); when everything is
    selected it is the lowest score. Returns ``(threshold, PRF at that threshold)``.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=bool).ravel()
    if s.size == 0:
        raise RelevanceError("no scores to choose a threshold from")
    R = int(y.sum()) if n_relevant_total is None else int(n_relevant_total)
    order = np.argsort(-s, kind="stable")
    s = s[order]
    tp = np.cumsum(y[order], dtype=np.int64)
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    f1 = 2.0 * tp[last] / (last + 1 + R)
    b = int(np.argmax(f1))
    i = int(last[b])
    thr = float(s[i]) if i + 1 >= s.size else float(0.5 * (s[i] + s[i + 1]))
    if thr > s[i] or (i + 1 < s.size and thr <= s[i + 1]):  # midpoint rounded onto a neighbour
        thr = float(s[i])
    n_sel, n_ok = i + 1, int(tp[i])
    p = n_ok / n_sel
    r = n_ok / R if R else 0.0
    return thr, PRF(p, r, float(f1[b]), n_sel, n_ok, R)


# --------------------------------------------------------------------------- interface


class RelevanceMethod(ABC):
    """A monotone map from raw similarity to a relevance score, plus a global threshold.

    Subclasses set ``name``, ``calibrated`` (scores in ``[0, 1]``) and ``uses_query``
    and implement ``_fit``, ``score``, ``query_params``, ``_params`` / ``_arrays`` and
    ``_load``. ``fit`` validates the data, trains, then sets ``threshold`` to the
    micro-F1-optimal global cut-off (see :func:`best_f1_threshold`).
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    calibrated: ClassVar[bool] = True
    uses_query: ClassVar[bool] = False

    def __init__(self) -> None:
        self.d: int | None = None
        self.threshold: float = float("nan")
        self.fit_info: dict[str, Any] = {}
        self._fitted = False

    # ---- public API

    def fit(
        self,
        xq: np.ndarray | None,
        S: np.ndarray,
        Y: np.ndarray,
        n_relevant: np.ndarray | None = None,
    ) -> RelevanceMethod:
        """Train on queries ``xq`` (nq, d), their candidates' similarities ``S`` (nq, N)
        and labels ``Y`` (nq, N); ``n_relevant`` (nq,) all relevant docs per query.
        Returns ``self``."""
        S64 = _check_scores(S)
        Yb = _check_labels(Y, S64.shape)
        nrel = _check_n_relevant(n_relevant, Yb)
        n_pos = int(Yb.sum())
        if n_pos == 0:
            raise RelevanceError("training data has no positive (relevant) candidate: cannot fit")
        if n_pos == Yb.size:
            raise RelevanceError("training data has no negative (irrelevant) candidate: cannot fit")
        xq64 = self._check_queries(xq, S64.shape[0], fitting=True)
        thr = self._fit(xq64, S64, Yb, nrel)
        self._fitted = True
        if thr is None:
            thr, prf = best_f1_threshold(self.score(xq, S64), Yb, int(nrel.sum()))
        else:
            prf = None
        self.set_threshold(thr)
        self.fit_info.setdefault("train_prf", prf._asdict() if prf is not None else None)
        return self

    @abstractmethod
    def score(self, xq: np.ndarray | None, S: np.ndarray) -> np.ndarray:
        """float64 scores, same shape as ``S``, non-decreasing in ``S`` for each query."""

    def select(self, xq: np.ndarray | None, S: np.ndarray) -> np.ndarray:
        """Bool mask ``score(xq, S) >= threshold``."""
        return self.score(xq, S) >= self.threshold

    @abstractmethod
    def query_params(
        self, xq: np.ndarray | None, S: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Per-query parameters of the monotone map (float64 arrays of shape (nq,)).

        Always contains ``s_min``: the raw similarity at which the score reaches the
        threshold, i.e. ``score >= threshold  <=>  s >= s_min`` for that query (up to
        rounding) — the bound a search can push down.
        """

    def set_threshold(self, threshold: float) -> None:
        """Set the global threshold (in ``[0, 1]`` for calibrated methods)."""
        t = float(threshold)
        if math.isnan(t):
            raise RelevanceError("threshold is NaN")
        if self.calibrated and not 0.0 <= t <= 1.0:
            raise RelevanceError(
                f"threshold {t} outside [0, 1] for calibrated method {self.name!r}"
            )
        if not self.calibrated and not math.isfinite(t):
            raise RelevanceError(f"threshold must be finite, got {t}")
        self.threshold = t

    def to_state(self) -> RelevanceState:
        self._require_fitted()
        params = dict(self._params())
        params["threshold"] = self.threshold
        return RelevanceState(
            method=self.name,
            d=self.d,
            version=self.version,
            params=_json_params(params),
            arrays={k: np.ascontiguousarray(v) for k, v in self._arrays().items()},
        )

    @classmethod
    def from_state(cls, state: RelevanceState) -> RelevanceMethod:
        if state.method != cls.name:
            raise RelevanceError(f"state is for method {state.method!r}, not {cls.name!r}")
        if state.version > cls.version:
            raise RelevanceError(
                f"state version {state.version} of {cls.name!r} is newer than supported "
                f"({cls.version}); upgrade vecext"
            )
        params = state.params_dict
        obj = cls.__new__(cls)
        RelevanceMethod.__init__(obj)
        obj.d = state.d
        obj._load(params, state.arrays)
        obj._fitted = True
        obj.set_threshold(params["threshold"])
        return obj

    # ---- subclass hooks

    @abstractmethod
    def _fit(
        self, xq: np.ndarray | None, S: np.ndarray, Y: np.ndarray, n_relevant: np.ndarray
    ) -> float | None:
        """Train; may return a threshold (else the best-F1 one on the training scores)."""

    @abstractmethod
    def _params(self) -> dict[str, Any]: ...

    def _arrays(self) -> dict[str, np.ndarray]:
        return {}

    @abstractmethod
    def _load(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None: ...

    # ---- shared checks

    def _require_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError(f"relevance method {self.name!r} is not fitted")

    def _check_queries(self, xq: Any, nq: int, *, fitting: bool = False) -> np.ndarray | None:
        if not self.uses_query:
            return None
        if xq is None:
            raise RelevanceError(f"method {self.name!r} needs the query vectors xq")
        arr = np.asarray(xq)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2:
            raise RelevanceError(f"xq must be a 2-D (nq, d) array, got shape {arr.shape}")
        arr = arr.astype(np.float64, copy=False)
        if arr.shape[0] != nq:
            raise RelevanceError(f"xq has {arr.shape[0]} queries but S has {nq} rows")
        if not fitting and self.d is not None and arr.shape[1] != self.d:
            raise RelevanceError(
                f"query dimension {arr.shape[1]} does not match the adapter's dimension {self.d}"
            )
        if not np.isfinite(arr).all():
            raise RelevanceError("xq contains NaN or infinite values")
        return arr

    def __repr__(self) -> str:
        state = f"threshold={self.threshold:.6g}" if self._fitted else "unfitted"
        return f"{type(self).__name__}(d={self.d}, {state})"


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, type[RelevanceMethod]] = {}


def register(cls: type[RelevanceMethod]) -> type[RelevanceMethod]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name:
        raise RelevanceError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def make_relevance(name: str, **params: Any) -> RelevanceMethod:
    """A new, unfitted method by registry name (``fixed``, ``platt``, ``cosine-adapter``).

    ``name`` may carry options as a spec, e.g. ``"cosine-adapter:features=top1+gap12"``
    (see :func:`parse_method_spec`); keyword ``params`` override them.
    """
    base, spec_params = parse_method_spec(name)
    if base not in _REGISTRY:
        raise RelevanceError(f"unknown relevance method {base!r}; known: {sorted(_REGISTRY)}")
    spec_params.update(params)
    return _REGISTRY[base](**spec_params)


def relevance_from_state(state: RelevanceState) -> RelevanceMethod:
    """Rebuild a trained method from its :class:`RelevanceState`."""
    if state.method not in _REGISTRY:
        raise RelevanceError(f"unknown relevance method {state.method!r} in state")
    return _REGISTRY[state.method].from_state(state)


def _parse_value(v: str) -> Any:
    if "+" in v or v == "":
        return tuple(x for x in v.split("+") if x)
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def parse_method_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"cosine-adapter:features=top1+gap12,lam=0.01"`` -> ``("cosine-adapter", {...})``.

    Options are ``key=value`` separated by ``,``; ``+`` joins list items (a value with
    a ``+`` is a tuple; ``features=`` alone is the empty tuple); ``true``/``false``/
    ``none`` and numbers are converted.
    """
    base, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        k, sep, v = item.partition("=")
        if not sep:
            raise RelevanceError(f"bad option {item!r} in method spec {spec!r} (want key=value)")
        val = _parse_value(v.strip())
        if k.strip() == "features" and isinstance(val, str):
            val = (val,)
        params[k.strip()] = val
    return base.strip(), params
