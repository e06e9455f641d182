"""Product quantization (PQ), optionally OPQ-rotated, with 8-bit sub-quantizers.

The d_inner-dimensional vector is cut into ``m`` contiguous sub-vectors of
``dsub = d_inner / m`` dimensions; each is replaced by the index (one byte) of its
nearest centroid among 256 trained by k-means in that subspace.

Encoding is the nearest centroid per subspace in *squared L2*, for every metric
(FAISS does the same for inner product): ``code[m] = argmin_k ||y_m - C[m, k]||^2``,
ties to the lower ``k``. With OPQ, ``y`` is first rotated: ``y <- y @ rotation.T``.
Encoding runs FAISS ``ProductQuantizer.compute_codes`` with transposed centroids
(its fastest CPU path, which evaluates ``||c||^2 - 2 <y, c>``); a reimplementation
(SQL, numpy) agrees except where two centroids are tied to float rounding.

Distances are asymmetric (ADC): the query stays float, and for each query a lookup
table ``lut`` (M, 256) holds its distance to every centroid of every subspace:

* l2: ``lut[m, k] = ||q_m - C[m, k]||^2`` (squared L2, summed = squared distance
  to the decoded vector);
* ip / cosine: ``lut[m, k] = -<q_m, C[m, k]>``.

Then ``distances(xq, codes)[i, j] = sum_m lut[i, m, codes[j, m]] + distance_offset``,
with ``distance_offset = 1.0`` for cosine (``1 - <q, x_hat>``) and 0 otherwise.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from vecext.codecs.base import Codec
from vecext.codecs.checks import CodecError, positive_int
from vecext.codecs.transforms import Transform


class PQCodec(Codec):
    """Product quantizer: ``m`` bytes per vector.

    Parameters
    ----------
    d : int
        Input dimension.
    metric : {"l2", "ip", "cosine"}
    m : int
        Number of sub-quantizers = bytes per code; ``d_inner`` must be divisible by it.
    nbits : int
        Bits per sub-quantizer; only 8 is supported (one byte per sub-code).
    opq : bool
        Learn an orthonormal OPQ rotation (faiss ``OPQMatrix``) before PQ.
    niter : int
        k-means iterations per subspace.
    opq_niter : int
        OPQ alternating-optimisation iterations.
    seed : int
        k-means seed.
    pretransform : str or Transform, optional
        ``"pca:<d_out>"`` or ``"matryoshka:<d_out>"``.

    State arrays: ``centroids`` (m, 256, dsub) float32; ``rotation`` (d_inner, d_inner)
    float32 when ``opq`` (``y_rot = y @ rotation.T``).
    """

    kind = "pq"
    _min_train = 256  # k-means with 256 centroids per subspace
    _param_names = ("m", "nbits", "opq", "niter", "opq_niter", "seed")

    def __init__(
        self,
        d: int,
        metric: str = "l2",
        m: int = 8,
        nbits: int = 8,
        opq: bool = False,
        niter: int = 25,
        opq_niter: int = 50,
        seed: int = 1234,
        pretransform: Transform | str | None = None,
    ) -> None:
        super().__init__(d, metric, pretransform)
        self.m = positive_int(m, "m", "pq: ")
        if nbits != 8:
            raise CodecError(f"pq: only nbits=8 is supported, got nbits={nbits!r}")
        self.nbits = 8
        self.ksub = 256
        if self.d_inner % self.m != 0:
            where = (
                f"d={self.d}"
                if self.pretransform is None
                else f"d={self.d_inner} (after pretransform {self.pretransform.spec})"
            )
            raise CodecError(f"pq: {where} is not divisible by m={self.m}")
        self.dsub = self.d_inner // self.m
        self.opq = bool(opq)
        self.niter = positive_int(niter, "niter", "pq: ")
        self.opq_niter = positive_int(opq_niter, "opq_niter", "pq: ")
        self.seed = int(seed)
        self.centroids: np.ndarray | None = None
        self.rotation: np.ndarray | None = None
        self._pq: Any = None

    @property
    def code_size(self) -> int:
        return self.m

    # -- training -------------------------------------------------------------

    def _train(self, xt: np.ndarray) -> None:
        rotation = None
        if self.opq:
            opq = faiss.OPQMatrix(self.d_inner, self.m)
            opq.niter = self.opq_niter
            opq.verbose = False
            # OPQ's inner PQ: same k-means settings (the local name keeps it alive)
            opq_pq = self._new_faiss_pq()
            opq.pq = opq_pq
            opq.train(xt)
            rotation = faiss.vector_to_array(opq.A).reshape(self.d_inner, self.d_inner)
            xt = self._rotate(xt, rotation)
        pq = self._new_faiss_pq()
        pq.train(xt)
        centroids = faiss.vector_to_array(pq.centroids).reshape(self.m, self.ksub, self.dsub)
        self._set(centroids, rotation)

    def _new_faiss_pq(self) -> Any:
        pq = faiss.ProductQuantizer(self.d_inner, self.m, self.nbits)
        pq.cp.niter = self.niter
        pq.cp.seed = self.seed
        # we enforce our own minimum (256); silence FAISS' "please provide at least
        # 39 * 256 points" warning below that
        pq.cp.min_points_per_centroid = 1
        pq.verbose = False
        return pq

    def _set(self, centroids: np.ndarray, rotation: np.ndarray | None) -> None:
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.rotation = None if rotation is None else np.ascontiguousarray(rotation, np.float32)
        pq = faiss.ProductQuantizer(self.d_inner, self.m, self.nbits)
        faiss.copy_array_to_vector(self.centroids.ravel(), pq.centroids)
        # (ksub, dsub)-transposed centroids + their norms: FAISS' fast encoding path
        pq.sync_transposed_centroids()
        self._pq = pq

    @staticmethod
    def _rotate(y: np.ndarray, rotation: np.ndarray | None) -> np.ndarray:
        if rotation is None:
            return y
        return np.ascontiguousarray(y @ rotation.T, dtype=np.float32)

    # -- codes ----------------------------------------------------------------

    def _encode(self, y: np.ndarray) -> np.ndarray:
        y = self._rotate(y, self.rotation)
        if y.shape[0] == 0:
            return np.zeros((0, self.m), dtype=np.uint8)
        return self._pq.compute_codes(y)

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        assert self.centroids is not None
        # concatenate the selected centroid of each subspace
        y = np.empty((codes.shape[0], self.d_inner), dtype=np.float32)
        for j in range(self.m):
            y[:, j * self.dsub : (j + 1) * self.dsub] = self.centroids[j, codes[:, j]]
        if self.rotation is not None:
            y = y @ self.rotation  # rotation is orthonormal: inverse = transpose
        return y

    # -- distances ------------------------------------------------------------

    def _lut(self, q: np.ndarray) -> np.ndarray:
        q = self._rotate(q, self.rotation)
        nq = q.shape[0]
        lut = np.empty((nq, self.m, self.ksub), dtype=np.float32)
        if nq == 0:
            return lut
        if self.inner_metric == "l2":
            self._pq.compute_distance_tables(nq, faiss.swig_ptr(q), faiss.swig_ptr(lut))
        else:
            self._pq.compute_inner_prod_tables(nq, faiss.swig_ptr(q), faiss.swig_ptr(lut))
            np.negative(lut, out=lut)
        return lut

    def distance_table(self, xq: np.ndarray) -> np.ndarray:
        """Per-query lookup table ``(nq, m, 256)`` float32.

        ``distances(xq, codes)[i, j] == lut[i, arange(m), codes[j]].sum() +
        distance_offset`` (summed in float32 in subspace order).
        """
        return self._lut(self._forward(xq, "xq"))

    def _distances(self, q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        lut = self._lut(q)
        D = np.zeros((q.shape[0], codes.shape[0]), dtype=np.float32)
        for j in range(self.m):
            D += lut[:, j, :][:, codes[:, j]]
        return D

    def _scan(self, y: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        # FAISS' ADC scan over the codes in place (its LUT is this codec's: same
        # centroids; the inner-product scan keeps the largest, negated here)
        y = np.ascontiguousarray(self._rotate(y, self.rotation), dtype=np.float32)
        D = np.empty((1, k), dtype=np.float32)
        Ik = np.empty((1, k), dtype=np.int64)
        ip = self.inner_metric != "l2"
        heap = faiss.float_minheap_array_t() if ip else faiss.float_maxheap_array_t()
        heap.nh = 1
        heap.k = k
        heap.ids = faiss.swig_ptr(Ik)
        heap.val = faiss.swig_ptr(D)
        scan = self._pq.search_ip if ip else self._pq.search
        scan(faiss.swig_ptr(y), 1, faiss.swig_ptr(codes), codes.shape[0], heap, True)
        if ip:
            np.negative(D, out=D)
        return D[0], Ik[0]

    # -- state ----------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        assert self.centroids is not None
        out = {"centroids": self.centroids}
        if self.rotation is not None:
            out["rotation"] = self.rotation
        return out

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        c = self._get_array(arrays, "centroids", np.float32, (self.m, self.ksub, self.dsub))
        r = None
        if self.opq:
            r = self._get_array(arrays, "rotation", np.float32, (self.d_inner, self.d_inner))
        self._set(c, r)
