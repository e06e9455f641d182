"""Pre-transforms that compose with a codec: two reduce the dimension, one expands it.

* :class:`PCA` -- linear projection on the top principal directions, ``y = (x - mean) @ P.T``
  with orthonormal rows in ``P`` (d_out, d_in). ``reverse(y) = y @ P + mean`` is the
  least-squares reconstruction in the input space.
* :class:`Matryoshka` -- keep the first ``d_out`` dimensions and renormalise to unit
  length (for embedding models trained so that prefixes work). ``reverse`` pads the
  unit-length prefix with zeros: the truncated tail and the original norm are lost.
* :class:`Expand` -- for ``binary`` codes only: keep the input's
  coordinates and append its coordinates in random orthonormal bases, ``d_out`` in all,
  ``y = x @ [I | R]``. Each sign bit is then one more hyperplane through the data's
  centre (SimHash), so a Hamming distance over ``d_out`` bits estimates the angle with
  less variance than over ``d_in``: on wordnet-minilm (384 dimensions) 768 bits need a
  rerank depth of about 50 for recall@10 0.95 where 384 bits need 130, and an HNSW graph
  over them walks a smaller ``ef``. Orthonormal bases, not independent Gaussian
  directions: there, 768 Gaussian hyperplanes reach recall@10 0.952 at depth 100, the
  input plus one orthonormal basis 0.983. ``reverse`` is the least-squares inverse
  ``y @ pinv([I | R])``.

Centring and inner products: with ``y = P (x - m)``, ``<x, q>`` picks up the
code-dependent term ``<m, x>``, which no per-query constant can absorb. A codec with
metric ``"ip"`` or ``"cosine"`` therefore builds its PCA with ``center=False``
(principal directions of the second-moment matrix ``E[x x^T]``; mean fixed at zero),
so that ``<P x, P q> = <x, P^T P q>`` approximates ``<x, q>``. ``"l2"`` uses the
centred PCA, for which ``||P (x - q)||^2`` is a lower bound of ``||x - q||^2``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from vecext.codecs.checks import CodecError, as_float32_rows, normalize_rows, positive_int
from vecext.codecs.kernels import inner_products


def _rows_times(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``x @ rows.T`` as float32; one row of ``x`` with FAISS' single-threaded kernel
    (a query: numpy's BLAS would wake its thread pool, milliseconds next to a database's
    threads, see :mod:`vecext.codecs.kernels`), batches with BLAS."""
    if x.shape[0] == 1:
        return inner_products(rows, x[0])[None, :]
    return np.ascontiguousarray(x @ rows.T, dtype=np.float32)


class Transform(ABC):
    """A trained map from ``d_in`` to ``d_out`` dimensions with an approximate inverse."""

    kind: ClassVar[str]

    def __init__(self, d_out: int, d_in: int | None = None) -> None:
        self.d_out = positive_int(d_out, "d_out", f"{self.kind}: ")
        self.d_in: int | None = None
        if d_in is not None:
            self._set_d_in(int(d_in))

    def _set_d_in(self, d_in: int) -> None:
        self._check_dims(d_in)
        if self.d_in is not None and self.d_in != d_in:
            raise CodecError(f"{self.kind}: input dimension is {self.d_in}, got {d_in}")
        self.d_in = d_in

    def _check_dims(self, d_in: int) -> None:
        if self.d_out > d_in:
            raise CodecError(
                f"{self.kind}: output dimension {self.d_out} exceeds input dimension {d_in}"
            )

    @property
    def spec(self) -> str:
        """Short text form accepted by ``make_codec(..., pretransform=...)``."""
        return f"{self.kind}:{self.d_out}"

    @property
    def min_train(self) -> int:
        return 0

    @property
    @abstractmethod
    def is_trained(self) -> bool: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d_out={self.d_out}, d_in={self.d_in})"

    def _check(self, x: np.ndarray, name: str) -> np.ndarray:
        if self.d_in is None:
            x = np.asarray(x)
            if x.ndim not in (1, 2):
                raise CodecError(f"{name} must be 2-D, got shape {x.shape}")
            self._set_d_in(int(x.shape[-1]))
        assert self.d_in is not None
        return as_float32_rows(x, self.d_in, name)

    def train(self, xt: np.ndarray) -> Transform:
        """Fit on ``xt`` (n, d_in); returns ``self``."""
        xt = self._check(xt, "xt")
        if xt.shape[0] < self.min_train:
            raise CodecError(
                f"{self.kind} needs at least {self.min_train} training vectors, got {xt.shape[0]}"
            )
        self._train(xt)
        return self

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Map ``x`` (n, d_in) to ``(n, d_out)`` float32."""
        if not self.is_trained:
            raise CodecError(f"{self.kind} transform is not trained; call train(xt) first")
        return self._apply(self._check(x, "x"))

    def reverse(self, y: np.ndarray) -> np.ndarray:
        """Map ``y`` (n, d_out) back to ``(n, d_in)`` float32 (approximate inverse)."""
        if not self.is_trained:
            raise CodecError(f"{self.kind} transform is not trained; call train(xt) first")
        return self._reverse(as_float32_rows(y, self.d_out, "y"))

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(params, arrays)``; params carry ``kind``, ``d_in`` and ``d_out``."""
        if not self.is_trained:
            raise CodecError(f"{self.kind} transform is not trained")
        return {"kind": self.kind, "d_in": self.d_in, "d_out": self.d_out}, {}

    @abstractmethod
    def _train(self, xt: np.ndarray) -> None: ...

    @abstractmethod
    def _apply(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _reverse(self, y: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _load(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore trained arrays (used by :func:`transform_from_state`)."""


class PCA(Transform):
    """Principal component projection to ``d_out`` dimensions.

    Parameters
    ----------
    d_out : int
        Output dimension.
    d_in : int, optional
        Input dimension (otherwise taken from the training data).
    center : bool
        Subtract the training mean first (default). ``False`` projects on the top
        eigenvectors of the uncentred second moment, which preserves inner products.

    Arrays: ``mean`` (d_in,) float32 (zeros when not centred) and ``projection``
    (d_out, d_in) float32 with orthonormal rows, sorted by decreasing variance; the
    sign of each row makes its largest-magnitude entry positive (deterministic).
    """

    kind = "pca"

    def __init__(self, d_out: int, d_in: int | None = None, center: bool = True) -> None:
        super().__init__(d_out, d_in)
        self.center = bool(center)
        self.mean: np.ndarray | None = None
        self.projection: np.ndarray | None = None
        self.eigenvalues: np.ndarray | None = None

    @property
    def min_train(self) -> int:
        return self.d_out + 1 if self.center else self.d_out

    @property
    def is_trained(self) -> bool:
        return self.projection is not None

    def _train(self, xt: np.ndarray) -> None:
        # covariance in float64: sums of n products lose digits in float32
        x64 = xt.astype(np.float64)
        mean = x64.mean(axis=0) if self.center else np.zeros(xt.shape[1])
        xc = x64 - mean
        cov = xc.T @ xc / xt.shape[0]
        evals, evecs = np.linalg.eigh(cov)  # ascending
        order = np.argsort(evals)[::-1][: self.d_out]
        P = evecs[:, order].T
        # eigenvectors are defined up to sign; fix it so training is reproducible
        idx = np.argmax(np.abs(P), axis=1)
        P *= np.sign(P[np.arange(P.shape[0]), idx])[:, None]
        self.mean = mean.astype(np.float32)
        self.projection = np.ascontiguousarray(P, dtype=np.float32)
        self.eigenvalues = evals[order].astype(np.float32)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        assert self.mean is not None and self.projection is not None
        return _rows_times(x - self.mean, self.projection)

    def _reverse(self, y: np.ndarray) -> np.ndarray:
        assert self.mean is not None and self.projection is not None
        return np.ascontiguousarray(y @ self.projection + self.mean, dtype=np.float32)

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params, _ = super().to_state()
        params["center"] = self.center
        assert self.mean is not None and self.projection is not None
        return params, {"mean": self.mean, "projection": self.projection}

    def _load(self, arrays: dict[str, np.ndarray]) -> None:
        assert self.d_in is not None
        for name, shape in (("mean", (self.d_in,)), ("projection", (self.d_out, self.d_in))):
            a = arrays.get(name)
            if a is None or a.dtype != np.float32 or a.shape != shape:
                raise CodecError(f"pca state array {name!r} must be float32 of shape {shape}")
        self.mean = np.ascontiguousarray(arrays["mean"])
        self.projection = np.ascontiguousarray(arrays["projection"])


class Matryoshka(Transform):
    """Keep the first ``d_out`` dimensions, then renormalise to unit length.

    Needs no training (``train`` only checks the input). Zero prefixes stay zero.
    ``reverse`` pads with zeros, so a decoded vector is the unit-length prefix.
    """

    kind = "matryoshka"

    @property
    def is_trained(self) -> bool:
        return self.d_in is not None

    def _train(self, xt: np.ndarray) -> None:
        pass

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return normalize_rows(np.ascontiguousarray(x[:, : self.d_out]))

    def _reverse(self, y: np.ndarray) -> np.ndarray:
        assert self.d_in is not None
        out = np.zeros((y.shape[0], self.d_in), dtype=np.float32)
        out[:, : self.d_out] = y
        return out

    def _load(self, arrays: dict[str, np.ndarray]) -> None:
        pass


class Expand(Transform):
    """The input followed by its coordinates in random orthonormal bases: ``d_out`` > ``d_in``.

    ``y = x @ [I | R]`` with ``R`` (d_in, d_out - d_in) made of blocks of orthonormal
    columns (the Q of a QR factorisation of a Gaussian matrix, drawn from ``seed``; the
    last block keeps its first columns). Linear and uncentred: a sign codec centres in
    the expanded space, ``[x - m, (x - m) R]``. Needs no data to train (the input
    dimension is read from it). Only Hamming codes gain from it (see the module docstring):
    a distance computed in the expanded space is not the metric's unless ``d_out`` is a
    multiple of ``d_in``, and even then it is scaled.

    Arrays: ``rotation`` (d_in, d_out - d_in) float32; the least-squares inverse used by
    ``reverse`` is recomputed from it.
    """

    kind = "expand"

    def __init__(self, d_out: int, d_in: int | None = None, seed: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise CodecError(f"expand: seed must be a non-negative integer, got {seed!r}")
        self.seed = seed
        self.rotation: np.ndarray | None = None
        self.columns: np.ndarray | None = None
        self.inverse: np.ndarray | None = None
        super().__init__(d_out, d_in)

    def _check_dims(self, d_in: int) -> None:
        if self.d_out <= d_in:
            raise CodecError(
                f"expand: output dimension {self.d_out} must exceed the input dimension "
                f"{d_in} (it appends d_out - d_in coordinates; 'expand:{2 * d_in}' doubles it)"
            )

    @property
    def is_trained(self) -> bool:
        return self.rotation is not None

    def _train(self, xt: np.ndarray) -> None:
        assert self.d_in is not None
        rng = np.random.default_rng(self.seed)
        extra, blocks = self.d_out - self.d_in, []
        while sum(b.shape[1] for b in blocks) < extra:
            q, r = np.linalg.qr(rng.standard_normal((self.d_in, self.d_in)))
            blocks.append(q * np.sign(np.diag(r)))  # a Haar-distributed rotation
        self._set_rotation(np.hstack(blocks)[:, :extra].astype(np.float32))

    def _set_rotation(self, rotation: np.ndarray) -> None:
        assert self.d_in is not None
        full = np.hstack([np.eye(self.d_in), rotation.astype(np.float64)])
        self.rotation = np.ascontiguousarray(rotation, dtype=np.float32)
        self.columns = np.ascontiguousarray(self.rotation.T)  # R's columns as rows
        self.inverse = np.ascontiguousarray(np.linalg.pinv(full), dtype=np.float32)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        assert self.columns is not None
        return np.ascontiguousarray(np.hstack([x, _rows_times(x, self.columns)]))

    def _reverse(self, y: np.ndarray) -> np.ndarray:
        assert self.inverse is not None
        return np.ascontiguousarray(y @ self.inverse, dtype=np.float32)

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params, _ = super().to_state()
        params["seed"] = self.seed
        assert self.rotation is not None
        return params, {"rotation": self.rotation}

    def _load(self, arrays: dict[str, np.ndarray]) -> None:
        assert self.d_in is not None
        shape = (self.d_in, self.d_out - self.d_in)
        a = arrays.get("rotation")
        if a is None or a.dtype != np.float32 or a.shape != shape:
            raise CodecError(f"expand state array 'rotation' must be float32 of shape {shape}")
        self._set_rotation(a)


TRANSFORMS: dict[str, type[Transform]] = {"pca": PCA, "matryoshka": Matryoshka, "expand": Expand}


def parse_pretransform(spec: Transform | str | None, d: int, metric: str) -> Transform | None:
    """Build the pretransform of a codec from ``"pca:128"``, ``"matryoshka:256"``,
    a :class:`Transform` object or ``None``. A PCA given as text is centred only for
    the ``"l2"`` metric (see the module docstring)."""
    if spec is None or spec == "":
        return None
    if isinstance(spec, Transform):
        spec._set_d_in(d)
        return spec
    if not isinstance(spec, str):
        raise CodecError(f"pretransform must be a string like 'pca:128', got {spec!r}")
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in TRANSFORMS:
        raise CodecError(
            f"unknown pretransform {kind!r} in {spec!r}; known: {', '.join(sorted(TRANSFORMS))}"
        )
    try:
        d_out = int(arg)
    except ValueError:
        raise CodecError(
            f"pretransform {spec!r} needs an output dimension, e.g. '{kind}:128'"
        ) from None
    if kind == "pca":
        return PCA(d_out, d_in=d, center=(metric == "l2"))
    if kind == "expand":
        return Expand(d_out, d_in=d)
    return Matryoshka(d_out, d_in=d)


def transform_from_state(params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Transform:
    """Rebuild a trained transform from :meth:`Transform.to_state` output."""
    kind = params.get("kind")
    if kind not in TRANSFORMS:
        raise CodecError(f"unknown pretransform kind {kind!r} in state")
    t: Transform
    if kind == "pca":
        t = PCA(params["d_out"], d_in=params["d_in"], center=params.get("center", True))
    elif kind == "expand":
        t = Expand(params["d_out"], d_in=params["d_in"], seed=int(params.get("seed", 0)))
    else:
        t = Matryoshka(params["d_out"], d_in=params["d_in"])
    t._load(arrays)
    return t
