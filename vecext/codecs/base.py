"""The codec protocol: the base class every codec kind implements.

A codec compresses float vectors into fixed-width byte codes and estimates distances
between float queries and codes.

Distance conventions (smaller is always closer, as in FAISS ``search``):

* ``"l2"``: squared Euclidean distance (FAISS ``METRIC_L2``; pgvector ``<->`` squared).
* ``"ip"``: *negative* inner product, like pgvector ``<#>``.
* ``"cosine"``: ``1 - cosine similarity``. The codec L2-normalises every input
  (training vectors, database vectors and queries) and then works as ``"ip"`` on the
  unit vectors, so the estimate is ``1 - <q, x_hat>`` where ``x_hat`` is the decoded
  (approximately unit) vector, *not* renormalised. In SQL this is ``1 + (q <#> x_hat)``.
  Zero vectors stay zero.

Codes are ``(n, code_size)`` ``uint8`` arrays; every vector gets the same width.

Pipeline of every codec::

    x --(normalise if cosine)--> --(pretransform, optional)--> y  (dimension d_inner)
      --(quantiser)--> codes

``d`` is always the input dimension; ``d_inner`` the dimension the quantiser sees.
``decode`` maps back through the pretransform's inverse (PCA: ``y @ P + mean``;
Matryoshka: zero padding of the truncated, renormalised prefix).

Inputs are checked by :mod:`vecext.codecs.checks`; a trained codec is saved as a
:class:`~vecext.codecs.state.CodecState`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from vecext.codecs.checks import (
    METRICS,
    CodecError,
    CodecVersionError,
    as_codes,
    as_float32_rows,
    normalize_rows,
    positive_int,
)
from vecext.codecs.state import STATE_FORMAT, CodecState
from vecext.codecs.transforms import Expand, Transform, parse_pretransform

# the checks and the state live in their own modules (the pre-transforms need the
# checks too); they stay importable from here, where they have always been
__all__ = [
    "METRICS",
    "STATE_FORMAT",
    "Codec",
    "CodecError",
    "CodecState",
    "CodecVersionError",
    "as_codes",
    "as_float32_rows",
    "check_fingerprint",
    "knn_from_distances",
    "normalize_rows",
]


def knn_from_distances(D: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k smallest entries per row of ``D`` (nq, n), ties broken by the lower index.

    Like FAISS, missing results (k > n) are padded with ``D = inf``, ``I = -1``.
    """
    nq, n = D.shape
    Dk = np.full((nq, k), np.inf, dtype=np.float32)
    Ik = np.full((nq, k), -1, dtype=np.int64)
    kk = min(k, n)
    if kk == 0:
        return Dk, Ik
    for i in range(nq):
        row = D[i]
        if kk < n:
            # every candidate <= the kk-th value, so ties at the boundary all compete
            thr = np.partition(row, kk - 1)[kk - 1]
            cand = np.flatnonzero(row <= thr)
        else:
            cand = np.arange(n)
        order = cand[np.argsort(row[cand], kind="stable")][:kk]
        Dk[i, :kk] = row[order]
        Ik[i, :kk] = order
    return Dk, Ik


# ---------------------------------------------------------------------------
# the protocol


class Codec(ABC):
    """Base class of all codecs (see the module docstring for the conventions).

    Subclasses implement the quantiser on already normalised / transformed float32
    data of dimension ``d_inner`` through ``_train``, ``_encode``, ``_decode`` and
    ``_distances``, and say what their state holds: ``_param_names`` (constructor
    keyword arguments kept as attributes of the same name) and ``_array_shapes``
    (trained float32 arrays, also attributes); a codec whose state needs more
    overrides ``_params``, ``_arrays`` and ``_load_arrays``.
    """

    kind: ClassVar[str]
    metric: str
    d: int

    #: minimum number of training vectors of the quantiser itself
    _min_train: ClassVar[int] = 1
    #: constructor keyword arguments saved in the state (attributes of the same name)
    _param_names: ClassVar[tuple[str, ...]] = ()
    #: Hamming codes of the (centred) coordinates' signs: an ``expand`` pretransform adds bits
    _sign_code: ClassVar[bool] = False

    def __init__(
        self, d: int, metric: str = "l2", pretransform: Transform | str | None = None
    ) -> None:
        d = positive_int(d, "d")
        if metric not in METRICS:
            raise CodecError(f"unknown metric {metric!r}; known metrics: {', '.join(METRICS)}")
        self.d = d
        self.metric = metric
        self.pretransform: Transform | None = parse_pretransform(pretransform, self.d, metric)
        if isinstance(self.pretransform, Expand) and not self._sign_code:
            raise CodecError(
                f"pretransform {self.pretransform.spec!r} is for binary codes: a {self.kind} "
                "code of the expanded vector is larger and its distances are not the metric's"
            )
        self._trained = False
        self._fingerprint: str | None = None

    # -- properties ---------------------------------------------------------

    @property
    def d_inner(self) -> int:
        """Dimension seen by the quantiser (after the pretransform)."""
        return self.pretransform.d_out if self.pretransform is not None else self.d

    @property
    def inner_metric(self) -> str:
        """``"l2"`` or ``"ip"``: the metric the quantiser works with."""
        return "l2" if self.metric == "l2" else "ip"

    @property
    @abstractmethod
    def code_size(self) -> int:
        """Bytes per encoded vector."""

    @property
    def min_train(self) -> int:
        """Minimum number of training vectors."""
        m = self._quantiser_min_train()
        if self.pretransform is not None:
            m = max(m, self.pretransform.min_train)
        return m

    @property
    def is_trained(self) -> bool:
        return self._trained

    @property
    def distance_offset(self) -> float:
        """Constant added to the quantiser's estimate (1.0 for cosine, else 0.0)."""
        return 1.0 if self.metric == "cosine" else 0.0

    @property
    def fingerprint(self) -> str:
        """16 hex chars identifying this trained codec (see :meth:`CodecState.fingerprint`)."""
        self._require_trained()
        if self._fingerprint is None:
            self._fingerprint = self.to_state().fingerprint()
        return self._fingerprint

    def __repr__(self) -> str:
        extra = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        pt = f", pretransform={self.pretransform.spec!r}" if self.pretransform else ""
        sep = ", " if extra else ""
        return (
            f"{type(self).__name__}(d={self.d}, metric={self.metric!r}{sep}{extra}{pt}, "
            f"trained={self.is_trained})"
        )

    # -- public API ---------------------------------------------------------

    def train(self, xt: np.ndarray) -> Codec:
        """Train on ``xt`` (n, d); returns ``self``. Retraining replaces the old state."""
        xt = as_float32_rows(xt, self.d, "xt")
        if xt.shape[0] < self.min_train:
            raise CodecError(
                f"{self.kind} codec needs at least {self.min_train} training vectors, "
                f"got {xt.shape[0]}"
            )
        if self.metric == "cosine":
            xt = normalize_rows(xt)
        if self.pretransform is not None:
            self.pretransform.train(xt)
            xt = self.pretransform.apply(xt)
        self._train(xt)
        self._trained = True
        self._fingerprint = None
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Encode ``x`` (n, d) into ``(n, code_size)`` uint8 codes."""
        y = self._forward(x, "x")
        codes = self._encode(y)
        assert codes.dtype == np.uint8 and codes.shape == (y.shape[0], self.code_size)
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Reconstruct ``(n, d)`` float32 vectors in the input space.

        With a pretransform, the reduced-space reconstruction is mapped back with the
        transform's :meth:`~vecext.codecs.transforms.Transform.reverse`.
        """
        self._require_trained()
        codes = as_codes(codes, self.code_size)
        y = self._decode(codes)
        if self.pretransform is not None:
            y = self.pretransform.reverse(y)
        return np.ascontiguousarray(y, dtype=np.float32)

    def distances(self, xq: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Estimated distances ``(nq, n)`` float32 between queries and codes."""
        q = self._forward(xq, "xq")
        codes = as_codes(codes, self.code_size)
        D = self._distances(q, codes)
        if self.distance_offset:
            D += np.float32(self.distance_offset)
        return D.astype(np.float32, copy=False)

    def scan(self, q: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` codes nearest to one query ``q`` (d,): ``(D, I)``, 1-D, at most ``k``
        of them, nearest first, ties in any order.

        The candidate stage of a search over stored codes: :meth:`distances` of the
        nearest, without the full sort of :meth:`search`; PQ and binary codecs scan with
        FAISS (:meth:`_scan`)."""
        k = positive_int(k, "k")
        codes = as_codes(codes, self.code_size)
        y = self._forward(np.asarray(q, dtype=np.float32).reshape(1, -1), "q")
        kk = min(k, codes.shape[0])
        if kk == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        D, Ik = self._scan(y, codes, kk)
        if self.distance_offset:
            D = D + np.float32(self.distance_offset)
        return D.astype(np.float32, copy=False), Ik.astype(np.int64, copy=False)

    def _scan(self, y: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`scan` of the transformed query ``y`` (1, d_inner), ``0 < k <= n``,
        without the distance offset: numpy here, FAISS in the PQ and binary codecs."""
        D = self._distances(y, codes)[0]
        Ik = np.argpartition(D, k - 1)[:k] if k < D.shape[0] else np.arange(D.shape[0])
        Ik = Ik[np.argsort(D[Ik], kind="stable")]
        return D[Ik], Ik

    def search(self, xq: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Brute-force k-NN over ``codes`` with :meth:`distances`.

        Returns ``D`` (nq, k) float32 sorted ascending and ``I`` (nq, k) int64 row
        numbers into ``codes``; ties go to the lower row; padded with inf / -1 if
        ``k > n``.
        """
        k = positive_int(k, "k")
        codes = as_codes(codes, self.code_size)
        xq = as_float32_rows(xq, self.d, "xq")
        Ds, Is = [], []
        # bound the (nq, n) distance matrix to ~64 MB per block
        bs = max(1, (1 << 24) // max(1, codes.shape[0]))
        for i0 in range(0, xq.shape[0], bs):
            Dk, Ik = knn_from_distances(self.distances(xq[i0 : i0 + bs], codes), k)
            Ds.append(Dk)
            Is.append(Ik)
        if not Ds:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        return np.vstack(Ds), np.vstack(Is)

    def to_state(self) -> CodecState:
        """Serialisable state; :func:`vecext.codecs.codec_from_state` restores it."""
        self._require_trained()
        params: dict[str, Any] = {
            "format": STATE_FORMAT,
            "d": self.d,
            "metric": self.metric,
            "pretransform": None,
        }
        arrays: dict[str, np.ndarray] = {}
        if self.pretransform is not None:
            tparams, tarrays = self.pretransform.to_state()
            params["pretransform"] = tparams
            arrays.update({f"pretransform.{k}": v for k, v in tarrays.items()})
        params.update(self._params())
        arrays.update(self._arrays())
        return CodecState(self.kind, params, arrays)

    # -- helpers for subclasses ---------------------------------------------

    def _require_trained(self) -> None:
        if not self._trained:
            raise CodecError(f"{self.kind} codec is not trained; call train(xt) first")

    def _forward(self, x: np.ndarray, name: str) -> np.ndarray:
        """Checks, cosine normalisation and pretransform: (n, d) -> (n, d_inner)."""
        self._require_trained()
        x = as_float32_rows(x, self.d, name)
        if self.metric == "cosine":
            x = normalize_rows(x)
        if self.pretransform is not None:
            x = self.pretransform.apply(x)
        return x

    def _set_trained_from_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Used by ``codec_from_state``: load quantiser arrays and mark trained."""
        self._load_arrays(arrays)
        self._trained = True
        self._fingerprint = None

    @staticmethod
    def _get_array(
        arrays: dict[str, np.ndarray], name: str, dtype: Any, shape: tuple[int, ...]
    ) -> np.ndarray:
        if name not in arrays:
            raise CodecError(f"state is missing array {name!r}")
        a = np.asarray(arrays[name])
        if a.dtype != np.dtype(dtype) or a.shape != shape:
            raise CodecError(
                f"state array {name!r} has dtype {a.dtype} and shape {a.shape}, "
                f"expected {np.dtype(dtype)} and {shape}"
            )
        return np.ascontiguousarray(a)

    # -- to implement ----------------------------------------------------------

    @abstractmethod
    def _train(self, xt: np.ndarray) -> None: ...

    @abstractmethod
    def _encode(self, y: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _decode(self, codes: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _distances(self, q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Estimates for the inner metric (l2 or negative ip), without the offset."""

    def _quantiser_min_train(self) -> int:
        """Training vectors the quantiser itself needs (``_min_train`` unless it
        depends on the parameters)."""
        return self._min_train

    def _array_shapes(self) -> dict[str, tuple[int, ...]]:
        """Trained float32 arrays of the state (attributes of the same name) and the
        shape each must have."""
        return {}

    def _params(self) -> dict[str, Any]:
        """Codec-specific JSON parameters (constructor keyword arguments)."""
        return {name: getattr(self, name) for name in self._param_names}

    def _arrays(self) -> dict[str, np.ndarray]:
        out = {name: getattr(self, name) for name in self._array_shapes()}
        assert all(a is not None for a in out.values())
        return out

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        for name, shape in self._array_shapes().items():
            setattr(self, name, self._get_array(arrays, name, np.float32, shape))


def check_fingerprint(codec: Codec, fingerprint: str) -> None:
    """Raise :class:`CodecVersionError` unless ``codec`` has the given fingerprint.

    Use it before mixing stored codes with a codec: codes made by another trained
    version decode and compare to garbage without any error otherwise.
    """
    actual = codec.fingerprint
    if fingerprint != actual:
        raise CodecVersionError(
            f"codes were made by {codec.kind} codec version {fingerprint}, "
            f"but this codec is version {actual}; re-encode or load the matching codec"
        )
