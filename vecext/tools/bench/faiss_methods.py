"""FAISS references in memory: the speed ceiling a database-side method is measured against.

Cosine on unit vectors is inner product, so every index uses
``METRIC_INNER_PRODUCT``. Queries run one at a time (as the databases see them).

* ``exact``: ``IndexFlatIP``; a filter is an ``IDSelectorBitmap`` (pre-filter).
* ``faiss-pq``: ``IndexPQ`` with ``M = d / 8`` sub-quantizers of 8 bits. ``IndexPQ``
  takes no ID selector, so a filter is applied the way a FAISS user would: the
  codes of the matching rows are copied into a second ``IndexPQ`` sharing the
  trained quantizer (part of ``build_s``), and only those are scanned.
* ``faiss-ivfpq``: ``IndexIVFPQ``, ``nlist = round(4 sqrt(n))``, ``M = d / 8``, 8 bits,
  ``nprobe = 10`` (the value of FAISS's own tutorial, which shows that its default
  of 1 misses neighbours); a filter is an ``IDSelectorBitmap`` inside the probed lists.
"""

from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np

from vecext.tools.bench.context import BenchContext
from vecext.tools.bench.registry import BaseMethod, BenchError, register_method

IVF_NPROBE = 10
PQ_NBITS = 8
TRAIN_SEED = 1234


def _pq_m(d: int) -> int:
    if d % 8:
        raise BenchError(f"faiss PQ with M = d/8 needs d divisible by 8, got d={d}")
    return d // 8


def _train_sample(xb: np.ndarray, n_train: int) -> np.ndarray:
    if n_train >= xb.shape[0]:
        return xb
    rng = np.random.default_rng(TRAIN_SEED)
    return xb[np.sort(rng.choice(xb.shape[0], n_train, replace=False))]


class _FaissMethod(BaseMethod):
    index: Any

    def __init__(
        self, ctx: BenchContext, *, params: dict[str, Any], bytes_per_vector: float
    ) -> None:
        params = {**params, "metric": "inner_product", "omp_threads": faiss.omp_get_max_threads()}
        super().__init__(ctx, params=params, bytes_per_vector=bytes_per_vector)
        self.search_params: Any = None
        self._bitmap: np.ndarray | None = None  # kept alive: the selector points into it

    def _selector(self) -> Any:
        self._bitmap = np.packbits(self.ctx.filter_mask, bitorder="little")
        return faiss.IDSelectorBitmap(self.ctx.n, faiss.swig_ptr(self._bitmap))

    def search(self, q: np.ndarray) -> np.ndarray:
        _, I = self.index.search(q.reshape(1, -1), self.ctx.k, params=self.search_params)
        ids = I[0]
        return ids[ids >= 0].astype(np.int64)

    def storage_bytes(self) -> int:
        return int(faiss.serialize_index(self.index).nbytes)


class FaissExact(_FaissMethod):
    def __init__(self, ctx: BenchContext) -> None:
        super().__init__(ctx, params={"index": "IndexFlatIP"}, bytes_per_vector=4 * ctx.d)

    def build(self) -> float | None:
        self.index = faiss.IndexFlatIP(self.ctx.d)
        self.index.add(self.ctx.xb)
        if self.ctx.filter is not None:
            self.search_params = faiss.SearchParameters(sel=self._selector())  # type: ignore[call-arg]
        return None


class FaissPQ(_FaissMethod):
    def __init__(self, ctx: BenchContext) -> None:
        self.m = _pq_m(ctx.d)
        n_train = min(ctx.n, 256 * 256)  # FAISS samples at most 256 points per centroid
        params = {"index": f"IndexPQ M={self.m} nbits={PQ_NBITS}", "M": self.m, "n_train": n_train}
        if ctx.filter is not None:
            params["filter"] = (
                "codes of matching rows copied into a sub-index (IndexPQ has no ID selector)"
            )
        super().__init__(ctx, params=params, bytes_per_vector=self.m * PQ_NBITS / 8)
        self.n_train = n_train
        self.ids: np.ndarray | None = None
        self.full: Any = None

    def build(self) -> float | None:
        ctx = self.ctx
        with ctx.task(f"faiss IndexPQ train ({self.n_train:,}) + add ({ctx.n:,})"):
            full = faiss.IndexPQ(ctx.d, self.m, PQ_NBITS, faiss.METRIC_INNER_PRODUCT)
            full.train(_train_sample(ctx.xb, self.n_train))
            full.add(ctx.xb)
        self.full = full
        self.index = full
        if ctx.filter is not None:
            self.ids = np.flatnonzero(ctx.filter_mask).astype(np.int64)
            codes = faiss.vector_to_array(full.codes).reshape(ctx.n, full.code_size)
            sub = faiss.IndexPQ(ctx.d, self.m, PQ_NBITS, faiss.METRIC_INNER_PRODUCT)
            sub.pq = full.pq
            sub.is_trained = True
            sub.add_sa_codes(np.ascontiguousarray(codes[self.ids]))
            self.index = sub
        return None

    def search(self, q: np.ndarray) -> np.ndarray:
        ids = super().search(q)
        return ids if self.ids is None else self.ids[ids]

    def storage_bytes(self) -> int:
        return int(faiss.serialize_index(self.full).nbytes)


class FaissIVFPQ(_FaissMethod):
    def __init__(self, ctx: BenchContext) -> None:
        self.m = _pq_m(ctx.d)
        self.nlist = max(1, min(ctx.n, round(4 * math.sqrt(ctx.n))))
        self.n_train = min(ctx.n, max(64 * self.nlist, 65536))
        params = {
            "index": f"IndexIVFPQ nlist={self.nlist} M={self.m} nbits={PQ_NBITS}",
            "nlist": self.nlist,
            "M": self.m,
            "nprobe": IVF_NPROBE,
            "n_train": self.n_train,
        }
        super().__init__(ctx, params=params, bytes_per_vector=self.m * PQ_NBITS / 8)

    def build(self) -> float | None:
        ctx = self.ctx
        with ctx.task(f"faiss IndexIVFPQ train ({self.n_train:,}) + add ({ctx.n:,})"):
            quantizer = faiss.IndexFlatIP(ctx.d)
            index = faiss.IndexIVFPQ(
                quantizer, ctx.d, self.nlist, self.m, PQ_NBITS, faiss.METRIC_INNER_PRODUCT
            )
            index.train(_train_sample(ctx.xb, self.n_train))
            index.add(ctx.xb)
            index.nprobe = IVF_NPROBE
        self.quantizer = quantizer  # the IVF index does not own it
        self.index = index
        sel = self._selector() if ctx.filter is not None else None
        self.search_params = faiss.SearchParametersIVF(nprobe=IVF_NPROBE, sel=sel)  # type: ignore[call-arg]
        return None


register_method("exact", "faiss", FaissExact)
register_method("faiss-pq", "faiss", FaissPQ)
register_method("faiss-ivfpq", "faiss", FaissIVFPQ)
