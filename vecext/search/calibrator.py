"""Measure a code column's calibration curves in one streamed pass (:class:`Calibrator`)."""

from __future__ import annotations

import numpy as np

from vecext.search.curves import LADDER, calibration_record, probe_curve, recall_curve
from vecext.topk import merge_topk, prepare, ranking

#: Row subsets measured besides the whole table: what a filter of that selectivity
#: leaves, either rows drawn at random or whole clusters of rows (filters on
#: attributes that follow the embedding, like a topic, behave like the latter).
SUBSETS: tuple[tuple[float, str], ...] = ((0.1, "random"), (0.01, "random"),
                                          (0.1, "cluster"), (0.01, "cluster"))  # fmt: skip


def _hash01(ids: np.ndarray, salt: int) -> np.ndarray:
    """A deterministic uniform [0, 1) value per row id (splitmix64 / crc32)."""
    if ids.dtype.kind in "iu":
        z = ids.astype(np.uint64) + np.uint64(salt) * np.uint64(0x9E3779B97F4A7C15)
        with np.errstate(over="ignore"):
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
        return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    import zlib

    return np.array([zlib.crc32(f"{salt}:{v}".encode()) / 2**32 for v in ids.tolist()])


class _Track:
    """Exact top-k (with list ids) and top-depth by codes, among one row subset."""

    def __init__(self, nq: int, id_dtype: np.dtype) -> None:
        self.true_d = np.full((nq, 0), np.inf, np.float32)
        self.true_i = np.empty((nq, 0), dtype=id_dtype)
        self.true_l = np.empty((nq, 0), dtype=np.int64)
        self.cand_d = np.full((nq, 0), np.inf, np.float32)
        self.cand_i = np.empty((nq, 0), dtype=id_dtype)
        self.rows = 0

    def add(self, D, C, ids, lists, k: int, depth: int) -> None:  # type: ignore[no-untyped-def]
        nq = D.shape[0]
        bi = np.broadcast_to(ids[None, :], (nq, ids.shape[0]))
        bl = np.broadcast_to(lists[None, :], (nq, ids.shape[0]))
        self.true_d, self.true_i, self.true_l = merge_topk(
            self.true_d, self.true_i, D, bi, k, extra=[self.true_l, bl]
        )
        self.cand_d, self.cand_i = merge_topk(self.cand_d, self.cand_i, C, bi, depth)
        self.rows += ids.shape[0]


class Calibrator:
    """Measure a code column's rerank-depth and IVF probe curves in one pass.

    By default sample rows of the table serve as queries (each excluded from its
    own results); with ``exclude_self=False`` the queries are given ones (e.g.
    from a query log). The database rows are fed in batches with :meth:`add`, so
    memory stays bounded by ``(n_queries, batch + depth)``. Exact distances are
    float32 numpy; code distances come from the codec itself (equal to the
    database's, ties aside).

    Besides the whole table, the same curves are measured within ``subsets``:
    random rows and whole clusters (k-means on the first batch) of the given
    selectivities, because a filter leaves true neighbours that are farther from
    the query and harder to rank.

    Parameters
    ----------
    xq, query_ids
        ``(nq, d)`` query vectors and, for sample rows, their row ids.
    codec
        The trained codec of the column (its ``metric`` is the search metric).
    coarse
        The IVF coarse quantizer, when the column has lists.
    """

    def __init__(
        self,
        xq: np.ndarray,
        query_ids: np.ndarray,
        k: int,
        codec: object,
        coarse: object | None = None,
        ladder: tuple[int, ...] = LADDER,
        *,
        subsets: tuple[tuple[float, str], ...] = SUBSETS,
        exclude_self: bool = True,
        seed: int = 0,
    ) -> None:
        self.xq = np.ascontiguousarray(xq, dtype=np.float32)
        self.qids = np.asarray(query_ids)
        self.k, self.codec, self.coarse, self.ladder = int(k), codec, coarse, ladder
        self.metric = codec.metric  # type: ignore[attr-defined]
        self.depth = ladder[-1] * self.k
        self.subsets, self.exclude_self, self.seed = tuple(subsets), exclude_self, seed
        nq = self.xq.shape[0]
        self._q = self._prep(self.xq)
        self.full = _Track(nq, self.qids.dtype)
        self.tracks = [_Track(nq, self.qids.dtype) for _ in self.subsets]
        self._clusters: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(self.subsets)

    def _prep(self, x: np.ndarray) -> np.ndarray:
        return prepare(x, self.metric)

    def _exact(self, xb: np.ndarray) -> np.ndarray:
        return ranking(self._q, self._prep(xb), self.metric)

    def _members(self, j: int, ids: np.ndarray, xb: np.ndarray) -> np.ndarray:
        s, kind = self.subsets[j]
        if kind == "random":
            return _hash01(ids, self.seed * 7919 + j) < s
        if self._clusters[j] is None:  # k-means on the first batch, then fixed
            import faiss

            x = self._prep(xb)
            nc = int(min(max(2, round(5 / s)), max(2, x.shape[0] // 20)))
            km = faiss.Kmeans(x.shape[1], nc, niter=10, seed=1234 + j, verbose=False,
                              spherical=self.metric == "cosine", min_points_per_centroid=1)  # fmt: skip
            km.train(x)
            rng = np.random.default_rng(self.seed + j)
            chosen = rng.permutation(nc)[: max(1, round(s * nc))]
            self._clusters[j] = (np.ascontiguousarray(km.centroids, np.float32), chosen)
        cent, chosen = self._clusters[j]  # type: ignore[misc]
        x = self._prep(xb)
        assign = np.argmin((cent**2).sum(1)[None, :] - 2 * x @ cent.T, axis=1)
        return np.isin(assign, chosen)

    def add(self, ids: np.ndarray, xb: np.ndarray) -> None:
        """Feed one batch of database rows (ids, float32 vectors)."""
        ids = np.asarray(ids)
        if ids.shape[0] == 0:
            return
        xb = np.ascontiguousarray(xb, dtype=np.float32)
        D = self._exact(xb).astype(np.float32)
        C = self.codec.distances(self.xq, self.codec.encode(xb))  # type: ignore[attr-defined]
        if self.exclude_self:
            self_hit = self.qids[:, None] == ids[None, :]
            D[self_hit] = np.inf
            C[self_hit] = np.inf
        lists = (
            self.coarse.assign(xb)  # type: ignore[attr-defined]
            if self.coarse is not None
            else np.zeros(ids.shape[0], np.int64)
        )
        self.full.add(D, C, ids, lists, self.k, self.depth)
        for j, track in enumerate(self.tracks):
            m = self._members(j, ids, xb)
            if m.any():
                track.add(D[:, m], C[:, m], ids[m], lists[m], self.k, self.depth)

    def _curves(self, t: _Track) -> tuple[dict[str, float], dict[str, float] | None]:
        valid = np.isfinite(t.true_d)
        if self.qids.dtype.kind in "iu" and t.true_i.dtype.kind in "iu":
            true_ids = np.where(valid, t.true_i, -1)
            cand = np.where(np.isfinite(t.cand_d), t.cand_i, -2)
        else:  # other keys: map them to integers
            keymap: dict[object, int] = {}
            enc = np.vectorize(lambda v: keymap.setdefault(v, len(keymap)), otypes=[np.int64])
            true_ids = np.where(valid, enc(t.true_i), -1) if t.true_i.size else t.true_i
            cand = np.where(np.isfinite(t.cand_d), enc(t.cand_i), -2) if t.cand_i.size else t.cand_i
        curve = recall_curve(true_ids, cand, self.k, self.ladder)
        probe = None
        if self.coarse is not None:
            n_lists = int(self.coarse.nlist)  # type: ignore[attr-defined]
            order = self.coarse.probe(self.xq, n_lists)  # type: ignore[attr-defined]
            probe = probe_curve(np.where(valid, t.true_l, -1), order)
        return curve, probe

    def result(self) -> dict[str, object]:
        """The calibration record (:func:`calibration_record`)."""
        curve, probe = self._curves(self.full)
        subsets = []
        for (s, kind), t in zip(self.subsets, self.tracks, strict=True):
            if t.rows < self.k:
                continue  # too few rows to measure anything
            c, p = self._curves(t)
            entry: dict[str, object] = {
                "selectivity": s,
                "kind": kind,
                "fraction": t.rows / max(self.full.rows, 1),
                "depth": c,
            }
            if p is not None:
                entry["nprobe"] = p
            subsets.append(entry)
        return calibration_record(
            curve,
            k=self.k,
            n_queries=self.xq.shape[0],
            probe=probe,
            subsets=subsets,
            queries="rows" if self.exclude_self else "given",
        )
