"""Calibration: measure on a table's own data what a search needs, for every backend.

Two measurements, one driver each, for any connection; a backend only says how to
read its rows (:class:`RowSource`) and where to keep the record (its ``code_source``
and ``index_source``, :class:`CodeSource` and :class:`IndexSource`):

* :func:`calibrate` (:func:`measure_codes`) - a compressed column's rerank depth (and IVF probes):
  sample rows serve as queries (each left out of its own results), the table is
  streamed once, and :class:`~vecext.search.calibrator.Calibrator` records the
  recall@k reached when the best ``mult * k`` candidates by code distance are
  reranked, for a ladder of multipliers, and the share of true neighbours in the
  ``nprobe`` nearest IVF lists. The planner takes the smallest multiplier that
  reaches the caller's target (:func:`vecext.search.planner.rerank_depth`).
* :func:`calibrate_index` (:func:`measure_index`) - an HNSW index's recall@k for a ladder of ``ef_search``
  values, each query run through the search engine with that ef and compared with
  the exact top-k (:mod:`vecext.topk`).

Queries: given ones (e.g. from a query log), else rows of the table. For the index,
rows are moved to a typical k-th-neighbour distance first (:func:`perturbed_queries`),
in PostgreSQL and DuckDB alike: a row used as a query sits on a node of the graph it
searches, and the walk starts next to its answer, which makes an index look far better
than it is for real queries (wordnet-minilm, VSS: rows reach recall 0.995 at ef 40,
held-out queries 0.90). For codes, rows stay rows: the row is left out of its own
results, the codes of the others do not know where it is, and the engine's floors
cover the rest of the gap (:mod:`vecext.search.settings`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from vecext.codecs.base import as_float32_rows
from vecext.search import engine
from vecext.search.calibrator import SUBSETS, Calibrator, _hash01
from vecext.search.contracts import Backend
from vecext.search.curves import (
    LADDER,
    calibration_record,
    max_depth,
    planner_calibration,
    probe_curve,
    probe_ladder,
    recall_curve,
)
from vecext.search.planner import Plan
from vecext.search.registry import backend_for
from vecext.search.settings import PlannerSettings
from vecext.search.sources import CodeSource, IndexSource, RowSource
from vecext.topk import TopK

__all__ = [
    "EF_LADDER",
    "LADDER",
    "SUBSETS",
    "Calibrator",
    "RowSource",
    "_hash01",
    "CodeSource",
    "IndexSource",
    "calibrate",
    "calibrate_index",
    "calibration_record",
    "check_positive",
    "exact_neighbours",
    "index_target",
    "measure_codes",
    "measure_index",
    "max_depth",
    "perturbed_queries",
    "planner_calibration",
    "probe_curve",
    "probe_ladder",
    "recall_curve",
]

#: ``ef_search`` values measured by :func:`calibrate_index` (pgvector allows 1..1000).
EF_LADDER = (40, 64, 100, 160, 250, 400, 640, 1000)


def check_positive(**values: Any) -> None:
    """``ValueError`` naming the first value that is not a positive integer."""
    for label, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")


def _keys(keys: Any) -> np.ndarray:
    arr = np.asarray(keys)
    return arr if arr.dtype.kind in "iu" else np.asarray(keys, dtype=object)


def exact_neighbours(
    rows: RowSource, xq: np.ndarray, k: int, metric: str, batch_size: int = 20_000
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` ``(distances, keys)`` of ``xq`` over every row, streamed."""
    acc: TopK | None = None
    for keys, xb in rows.batches(batch_size):
        kk = _keys(keys)
        if acc is None:
            acc = TopK(xq, k, metric, kk.dtype if kk.dtype.kind in "iu" else object)
        acc.add(kk, xb)
    return (acc or TopK(xq, k, metric)).result()


def perturbed_queries(x: np.ndarray, kth_distance: float, metric: str, seed: int = 0) -> np.ndarray:
    """Rows moved by Gaussian noise to about ``kth_distance`` from where they were.

    A row used as a query sits on a node of the graph it searches, which makes an
    HNSW index look better than it is; a query as far from its row as a typical
    k-th neighbour behaves more like a real one (still a little easier, so the
    search aims these measurements at a fraction of the allowed loss).
    """
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    g = rng.standard_normal(x.shape).astype(np.float32)
    if metric == "cosine":
        dist = float(min(max(kth_distance, 1e-4), 0.9))
        sigma = np.sqrt((1 / (1 - dist) ** 2 - 1) / d)
        xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        return (xn + sigma * g).astype(np.float32)
    sigma = np.sqrt(max(kth_distance, 0.0)) / np.sqrt(d)  # kth_distance: squared L2
    return (x + sigma * g).astype(np.float32)


def measure_codes(
    rows: RowSource,
    codec: Any,
    coarse: Any = None,
    *,
    k: int = 10,
    n_queries: int = 200,
    seed: int = 0,
    batch_size: int = 20_000,
    queries: Any = None,
    what: str = "the column",
) -> dict[str, Any]:
    """The calibration record of a compressed column (see the module docstring).

    ``rows`` yields the rows that have codes; ``codec`` is the column's codec and
    ``coarse`` its IVF coarse quantizer (or ``None``); ``queries`` replaces the sample
    rows; ``seed`` chooses the sample and the measured row subsets.
    """
    check_positive(k=k, n_queries=n_queries, batch_size=batch_size)
    if queries is not None:
        xq = as_float32_rows(queries, rows.dim, "queries")
        qids: Any = np.full(xq.shape[0], -1, dtype=np.int64)
    else:
        qids, xq = rows.sample(n_queries, seed)
        if xq.shape[0] == 0:
            raise ValueError(f"{what} has no encoded rows to calibrate on")
        qids = _keys(qids)
    cal = Calibrator(xq, qids, k, codec, coarse, exclude_self=queries is None, seed=seed)
    for keys, xb in rows.batches(batch_size):
        cal.add(_keys(keys), xb)
    return cal.result()


def index_target(
    backend: Backend, table: str, column: str, index: str, metric: str
) -> engine.Prepared:
    """A search target that plans with the native index ``index`` (no filter, no tenant:
    the whole table), for :func:`measure_index`."""
    info = backend.table_info(table, column, metric)
    if index not in info.alternatives:
        raise ValueError(f"index {index!r} cannot order a {metric} search of {table}.{column}")
    info.caps = info.alternatives[index]
    s = PlannerSettings().resolve(getattr(backend, "planner_defaults", None))
    q = np.zeros(info.dim, dtype=np.float32)
    return engine.Prepared(backend, info, q, metric, None, s, float(info.caps.n_rows))


def measure_index(
    target: engine.Prepared,
    rows: RowSource,
    *,
    k: int = 10,
    n_queries: int = 100,
    seed: int = 0,
    queries: Any = None,
    ef_ladder: tuple[int, ...] = EF_LADDER,
) -> dict[str, Any]:
    """The calibration record of the HNSW index ``target`` plans with
    (:func:`index_target`): ``{"k", "n_queries", "metric", "ef_search": {ef: recall@k},
    "queries"}`` (see the module docstring)."""
    check_positive(k=k, n_queries=n_queries)
    metric = target.metric
    if queries is not None:
        xq, how = as_float32_rows(queries, rows.dim, "queries"), "given"
    else:
        _, xs = rows.sample(n_queries, seed)
        if xs.shape[0] == 0:
            raise ValueError(f"{target.info.table} has no rows to calibrate on")
        d, _ = exact_neighbours(rows, xs, k + 1, metric)  # [:, 0] is the row itself
        kth = float(np.median(d[:, k]))
        xq, how = perturbed_queries(xs, kth, metric, seed), "perturbed rows"
    dist, best = exact_neighbours(rows, xq, k, metric)
    # keys as the backend's searches return them: integers, else their text
    norm: Callable[[Any], Any] = int if best.dtype.kind in "iu" else str
    truth = [
        {norm(v) for v, d in zip(row, drow, strict=True) if np.isfinite(d)}
        for row, drow in zip(best.tolist(), dist, strict=True)
    ]
    curve: dict[str, float] = {}
    for ef in ef_ladder:
        hits = []
        for i, q in enumerate(xq):
            one = replace(target, q=np.asarray(q, dtype=np.float32))
            plan = Plan("hnsw", "calibration", {"ef_search": int(ef), "ef_floor": False})
            got = engine.execute(one, one.request(k), plan).ids
            hits.append(len(truth[i] & {norm(g) for g in got.tolist()}) / max(len(truth[i]), 1))
        curve[str(ef)] = float(np.mean(hits))
    return {"k": int(k), "n_queries": int(len(xq)), "metric": metric, "ef_search": curve,
            "queries": how}  # fmt: skip


def calibrate(
    conn: Any,
    table: str,
    code_column: str,
    *,
    k: int = 10,
    n_queries: int = 200,
    seed: int = 0,
    batch_size: int = 20_000,
    queries: Any = None,
    store: bool = True,
) -> dict[str, Any]:
    """Measure and (with ``store``) save the calibration of ``table.code_column``, the
    record the planner reads to choose the rerank depth and nprobe for a recall target.

    Parameters
    ----------
    conn
        A psycopg or DuckDB connection (any registered backend's).
    k
        The k the recall@k curve is measured at (the planner scales depths by the
        caller's k).
    n_queries
        Sample rows used as queries (each is left out of its own results).
    seed
        Chooses the sample (repeatably) and the measured row subsets.
    batch_size
        Rows streamed at once (memory: ``n_queries x (batch_size + 128 k)``).
    queries
        ``(nq, d)`` query vectors to measure with instead of sample rows (e.g. from a
        query log): real queries often sit farther from the rows than the rows sit
        from each other, and need deeper reranks and wider probes.

    Returns
    -------
    dict
        ``{"k", "n_queries", "queries", "depth": {mult: recall}, "nprobe": {nprobe:
        share}, "subsets": [...]}`` (:func:`calibration_record`).
    """
    check_positive(k=k, n_queries=n_queries, batch_size=batch_size)
    src = backend_for(conn).code_source(table, code_column)
    record = measure_codes(
        src.rows, src.codec, src.coarse, k=k, n_queries=n_queries, seed=seed,
        batch_size=batch_size, queries=queries, what=src.what,
    )  # fmt: skip
    if store:
        src.save(record)
    return record


def calibrate_index(
    conn: Any,
    table: str,
    index: str,
    *,
    metric: str | None = None,
    k: int = 10,
    n_queries: int = 100,
    seed: int = 0,
    queries: Any = None,
    ef_ladder: tuple[int, ...] = EF_LADDER,
    store: bool = True,
) -> dict[str, Any]:
    """Measure recall@k of an HNSW index against exact search for a ladder of
    ``ef_search`` values and (with ``store``) keep the record in the index's comment,
    where the planner reads it to choose ef_search for a recall target.

    HNSW recall depends on the data (its intrinsic dimension, even insertion order), so
    it is measured on the table itself: ``queries`` when given (e.g. from a query log),
    else sample rows moved to a typical k-th-neighbour distance
    (:func:`perturbed_queries`). ``metric`` is the searches' (default: the index's own;
    cosine for an index over bits).

    Returns
    -------
    dict
        ``{"k", "n_queries", "metric", "ef_search": {ef: recall@k}, "queries"}``.
    """
    check_positive(k=k, n_queries=n_queries)
    src = backend_for(conn).index_source(table, index, metric)
    record = measure_index(
        src.target, src.rows, k=k, n_queries=n_queries, seed=seed, queries=queries,
        ef_ladder=ef_ladder,
    )  # fmt: skip
    if store:
        src.save(record)
    return record
