"""IVF coarse quantizer: the inverted-list id of a vector, as a 4-byte code.

A vector's *list* is its nearest of ``nlist`` centroids trained with FAISS
k-means. The code is the list id as a little-endian ``int32`` (4 bytes), so the
quantizer fits the codec protocol and its catalog rows; in the databases the
list id is kept in an ``integer`` column next to the vector.

Assignment follows FAISS ``IndexIVF`` with the codec's inner metric:

* ``l2``: ``argmin_c ||y - C[c]||^2``;
* ``ip``: ``argmax_c <y, C[c]>`` (centroids from ordinary k-means);
* ``cosine``: inputs are normalised by the codec and k-means is spherical (unit
  centroids), so ``argmax_c <y_hat, C[c]>`` is also the nearest centroid by
  cosine distance -- in SQL ``ORDER BY centroid <=> v LIMIT 1`` gives the same list.

Ties go to the lower list id. ``decode`` returns the list's centroid, and
``distances`` the query's distance to the centroid of each code's list (the
usual metric conventions of :mod:`vecext.codecs.base`): the coarse estimate that
ranks lists for probing.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from vecext.codecs.base import Codec
from vecext.codecs.checks import CodecError, as_codes, positive_int
from vecext.codecs.kernels import inner_products
from vecext.codecs.transforms import Transform


def default_nlist(n: int) -> int:
    """``4 * sqrt(n)`` lists (FAISS' rule of thumb), at least 1 and at most ``n``."""
    return max(1, min(int(n), int(round(4 * math.sqrt(max(n, 0))))))


class IVFCodec(Codec):
    """Coarse quantizer with ``nlist`` lists; code = list id (``<i4``, 4 bytes).

    Parameters
    ----------
    d : int
        Input dimension.
    metric : {"l2", "ip", "cosine"}
    nlist : int
        Number of lists (k-means centroids).
    niter : int
        k-means iterations.
    seed : int
        k-means seed.
    max_points_per_centroid : int
        FAISS subsamples the training set to this many points per centroid.
    pretransform : str or Transform, optional

    State array: ``centroids`` (nlist, d_inner) float32 (unit rows for cosine).
    """

    kind = "ivf"
    _param_names = ("nlist", "niter", "seed", "max_points_per_centroid")

    def __init__(
        self,
        d: int,
        metric: str = "l2",
        nlist: int = 256,
        niter: int = 20,
        seed: int = 1234,
        max_points_per_centroid: int = 256,
        pretransform: Transform | str | None = None,
    ) -> None:
        super().__init__(d, metric, pretransform)
        self.nlist = positive_int(nlist, "nlist", "ivf: ")
        self.niter = positive_int(niter, "niter", "ivf: ")
        self.max_points_per_centroid = positive_int(
            max_points_per_centroid, "max_points_per_centroid", "ivf: "
        )
        if self.nlist > 2**31 - 1:
            raise CodecError(f"ivf: nlist={nlist} does not fit an int32 list id")
        self.seed = int(seed)
        self.centroids: np.ndarray | None = None

    @property
    def code_size(self) -> int:
        return 4

    def _quantiser_min_train(self) -> int:
        return self.nlist  # k-means needs at least one point per centroid

    @property
    def spherical(self) -> bool:
        return self.metric == "cosine"

    # -- training -------------------------------------------------------------

    def _train(self, xt: np.ndarray) -> None:
        km = faiss.Kmeans(
            self.d_inner,
            self.nlist,
            niter=self.niter,
            seed=self.seed,
            spherical=self.spherical,
            max_points_per_centroid=self.max_points_per_centroid,
            min_points_per_centroid=1,
            verbose=False,
        )
        km.train(xt)
        self.centroids = np.ascontiguousarray(km.centroids, dtype=np.float32).reshape(
            self.nlist, self.d_inner
        )

    # -- lists ----------------------------------------------------------------

    def _centroid_distances(self, y: np.ndarray) -> np.ndarray:
        """Inner-metric distances (nq, nlist): squared L2 or negative inner product."""
        assert self.centroids is not None
        if y.shape[0] == 1:  # one query (a search): not BLAS, see vecext.codecs.kernels
            ip = inner_products(self.centroids, y[0])[None, :]
        else:
            ip = y @ self.centroids.T
        if self.inner_metric == "l2":
            c2 = (self.centroids.astype(np.float64) ** 2).sum(1)
            y2 = (y.astype(np.float64) ** 2).sum(1)
            return (y2[:, None] - 2 * ip + c2[None, :]).astype(np.float32)
        return np.negative(ip, dtype=np.float32)

    def assign(self, x: np.ndarray) -> np.ndarray:
        """List id (int64) of each row of ``x`` (n, d): its nearest centroid."""
        y = self._forward(x, "x")
        out = np.empty(y.shape[0], dtype=np.int64)
        bs = max(1, (1 << 24) // self.nlist)  # bound the (bs, nlist) block to ~64 MB
        for i0 in range(0, y.shape[0], bs):
            out[i0 : i0 + bs] = np.argmin(self._centroid_distances(y[i0 : i0 + bs]), axis=1)
        return out

    def probe(self, xq: np.ndarray, nprobe: int) -> np.ndarray:
        """The ``nprobe`` nearest lists of each query, nearest first: (nq, nprobe) int64."""
        nprobe = min(positive_int(nprobe, "nprobe", "ivf: "), self.nlist)
        y = self._forward(xq, "xq")
        D = self._centroid_distances(y)
        # stable argsort: ties to the lower list id, as in assign()
        return np.argsort(D, axis=1, kind="stable")[:, :nprobe].astype(np.int64)

    def centroid_distances(self, xq: np.ndarray) -> np.ndarray:
        """Distances (nq, nlist) from each query to every centroid (metric convention)."""
        D = self._centroid_distances(self._forward(xq, "xq"))
        if self.distance_offset:
            D += np.float32(self.distance_offset)
        return D

    # -- codec protocol -------------------------------------------------------

    def _encode(self, y: np.ndarray) -> np.ndarray:
        ids = np.argmin(self._centroid_distances(y), axis=1)
        return np.ascontiguousarray(ids.astype("<i4")).view(np.uint8).reshape(-1, 4)

    def list_ids(self, codes: np.ndarray) -> np.ndarray:
        """Codes (n, 4) uint8 -> list ids (n,) int64."""
        codes = as_codes(codes, 4)
        ids = np.ascontiguousarray(codes).view("<i4").reshape(-1).astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.nlist):
            raise CodecError(
                f"ivf: list ids must be in [0, {self.nlist}), got {ids.min()}..{ids.max()}"
            )
        return ids

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        assert self.centroids is not None
        return self.centroids[self.list_ids(codes)].copy()

    def _distances(self, q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return self._centroid_distances(q)[:, self.list_ids(codes)]

    # -- state ----------------------------------------------------------------

    def _array_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"centroids": (self.nlist, self.d_inner)}
