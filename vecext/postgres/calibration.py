"""Calibrate a compressed column's rerank depth (and IVF probes) on its own data.

``calibrate(conn, table, code_column)`` samples rows as queries, streams the
table once (binary COPY, in key order), and measures with
:class:`vecext.search.calibrate.Calibrator` the recall@k reached when the best
``mult * k`` candidates by code distance are reranked exactly, for a ladder of
multipliers, and, when the column has IVF lists, the share of true neighbours
found in the ``nprobe`` nearest lists. The record is stored in
``vecext.compressed_columns.calibration``; the planner reads it to choose the
rerank depth and nprobe for the caller's recall target.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from vecext.postgres import copybin
from vecext.postgres.columns import check_column_current, resolve_column, resolve_table
from vecext.postgres.index_catalog import list_vector_indexes
from vecext.postgres.ivf import cached_codec, ivf_lists
from vecext.search.calibrate import Calibrator
from vecext.topk import TopK


def _key(conn: psycopg.Connection, oid: int) -> tuple[str, str]:
    row = conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod)
           FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           WHERE i.indrelid = %s AND i.indisprimary AND i.indnkeyatts = 1""",
        [oid],
    ).fetchone()
    if row is None:
        raise psycopg.ProgrammingError("calibration needs a single-column primary key")
    return row[0], row[1]


def _copy(conn: psycopg.Connection, query: sql.Composed, d: int, key_type: str) -> Any:
    with conn.cursor() as cur, cur.copy(query) as cp:
        data = b"".join(bytes(b) for b in cp)
    return copybin.parse_key_vectors(data, d, key_type)


def calibrate(
    conn: psycopg.Connection,
    table: str,
    code_column: str,
    *,
    k: int = 10,
    n_queries: int = 200,
    seed: int = 0,
    batch_size: int = 20_000,
    store: bool = True,
    queries: Any = None,
) -> dict[str, Any]:
    """Measure and (with ``store``) save the calibration of ``table.code_column``.

    Parameters
    ----------
    k
        The k the recall@k curve is measured at (the planner scales depths by the
        caller's k).
    n_queries
        Sample rows used as queries (each is left out of its own results).
    seed
        Chooses the sample (rows ordered by ``md5(key || seed)``).
    queries
        ``(nq, d)`` sample queries (e.g. from a query log) to measure with instead of
        rows of the table: real queries can be harder than rows (another
        distribution), and the planner then starts closer to what they need.

    Returns
    -------
    dict
        ``{"k", "n_queries", "depth": {mult: recall}, "nprobe": {nprobe: share}}``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if isinstance(n_queries, bool) or not isinstance(n_queries, int) or n_queries <= 0:
        raise ValueError(f"n_queries must be a positive integer, got {n_queries!r}")
    cc = check_column_current(conn, table, code_column)
    codec = cached_codec(conn, cc.codec, cc.codec_fingerprint)
    col = resolve_column(conn, cc.table.qualified, cc.source_column)
    lists = ivf_lists(conn, cc.table.qualified, code_column)
    coarse = None
    if lists is not None:
        (fp,) = conn.execute(
            "SELECT fingerprint FROM vecext.codecs WHERE name = %s", [lists.codec_name]
        ).fetchone()  # type: ignore[misc]
        coarse = cached_codec(conn, lists.codec_name, fp)
    key, key_type = _key(conn, cc.table.oid)
    int_key = key_type in copybin.INT_KEYS
    kt = key_type if int_key else "text"
    k_sql = sql.Identifier(key)
    k_out = k_sql if int_key else sql.SQL("{}::text").format(k_sql)
    src, t = sql.Identifier(cc.source_column), cc.table.ident
    if queries is not None:
        from vecext.codecs.base import as_float32_rows

        xq = as_float32_rows(queries, col.dim, "queries")
        qids = []
    else:
        qids, xq = _copy(
            conn,
            sql.SQL(
                "COPY (SELECT {ko}, {src} FROM {t} WHERE {src} IS NOT NULL AND {code} IS NOT NULL "
                "ORDER BY md5({k}::text || {seed}) LIMIT {n}) TO STDOUT (FORMAT binary)"
            ).format(
                ko=k_out,
                src=src,
                t=t,
                code=sql.Identifier(code_column),
                k=k_sql,
                seed=sql.Literal(str(seed)),
                n=sql.Literal(int(n_queries)),
            ),  # fmt: skip
            col.dim,
            kt,
        )
    if xq.shape[0] == 0:
        raise ValueError(f"{cc.table}.{code_column} has no encoded rows to calibrate on")
    if queries is not None:
        cal = Calibrator(xq, np.zeros(xq.shape[0], np.int64), k, codec, coarse, exclude_self=False)
    else:
        cal = Calibrator(xq, np.asarray(qids), k, codec, coarse)
    last = None
    while True:
        after = (
            sql.SQL("TRUE") if last is None else sql.SQL("{} > {}").format(k_sql, sql.Literal(last))
        )
        keys, xb = _copy(
            conn,
            sql.SQL(
                "COPY (SELECT {ko}, {src} FROM {t} WHERE {after} AND {src} IS NOT NULL "
                "AND {code} IS NOT NULL ORDER BY {k} LIMIT {n}) TO STDOUT (FORMAT binary)"
            ).format(
                ko=k_out,
                src=src,
                t=t,
                after=after,
                code=sql.Identifier(code_column),
                k=k_sql,
                n=sql.Literal(int(batch_size)),
            ),  # fmt: skip
            col.dim,
            kt,
        )
        if not keys:
            break
        cal.add(np.asarray(keys), xb)
        last = keys[-1]
    record = cal.result()
    if store:
        with conn.transaction():
            conn.execute(
                """UPDATE vecext.compressed_columns SET calibration = %s::jsonb, updated_at = now()
                   WHERE id = %s""",
                [json.dumps(record), cc.id],
            )
    return record


#: hnsw.ef_search values measured by :func:`calibrate_index` (pgvector allows 1..1000).
EF_LADDER = (40, 64, 100, 160, 250, 400, 640, 1000)


def _exact_topk(
    conn: psycopg.Connection, q: _KeyedScan, xq: np.ndarray, metric: str, kk: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``kk`` (distances by :mod:`vecext.topk`, keys) of ``xq`` over the table,
    streamed in key order."""
    acc = TopK(xq, kk, metric, object)
    for keys, xb in q.batches(conn):
        acc.add(np.asarray(keys, dtype=object), xb)
    return acc.result()


class _KeyedScan:
    """``(key, vector)`` batches of a table in key order (binary COPY)."""

    def __init__(self, conn: psycopg.Connection, t: Any, column: str, dim: int) -> None:
        key, key_type = _key(conn, t.oid)
        self.int_key = key_type in copybin.INT_KEYS
        self.kt = key_type if self.int_key else "text"
        self.k_sql = sql.Identifier(key)
        self.k_out = self.k_sql if self.int_key else sql.SQL("{}::text").format(self.k_sql)
        self.t, self.src, self.dim = t, sql.Identifier(column), dim

    def sample(self, conn: psycopg.Connection, n: int, seed: int) -> tuple[list[Any], np.ndarray]:
        return _copy(  # type: ignore[no-any-return]
            conn,
            sql.SQL(
                "COPY (SELECT {ko}, {src} FROM {t} WHERE {src} IS NOT NULL "
                "ORDER BY md5({k}::text || {seed}) LIMIT {n}) TO STDOUT (FORMAT binary)"
            ).format(
                ko=self.k_out,
                src=self.src,
                t=self.t.ident,
                k=self.k_sql,
                seed=sql.Literal(str(seed)),
                n=sql.Literal(int(n)),
            ),  # fmt: skip
            self.dim,
            self.kt,
        )

    def batches(self, conn: psycopg.Connection, size: int = 20_000) -> Any:
        last = None
        while True:
            after = (
                sql.SQL("TRUE")
                if last is None
                else sql.SQL("{} > {}").format(self.k_sql, sql.Literal(last))
            )
            keys, xb = _copy(
                conn,
                sql.SQL(
                    "COPY (SELECT {ko}, {src} FROM {t} WHERE {after} AND {src} IS NOT NULL "
                    "ORDER BY {k} LIMIT {n}) TO STDOUT (FORMAT binary)"
                ).format(
                    ko=self.k_out,
                    src=self.src,
                    t=self.t.ident,
                    after=after,
                    k=self.k_sql,
                    n=sql.Literal(size),
                ),  # fmt: skip
                self.dim,
                self.kt,
            )
            if not keys:
                return
            yield keys, xb
            last = keys[-1]


def perturbed_queries(x: np.ndarray, kth_distance: float, metric: str, seed: int = 0) -> np.ndarray:
    """Rows moved by Gaussian noise to about ``kth_distance`` from where they were.

    A row used as a query sits on a node of the graph it searches, which makes an
    HNSW index look better than it is; a query as far from its row as a typical
    k-th neighbour behaves more like a real one (still a little easier, so the
    planner aims these measurements at half the allowed loss).
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


def calibrate_index(
    conn: psycopg.Connection,
    table: str,
    index: str,
    *,
    metric: str = "cosine",
    k: int = 10,
    n_queries: int = 100,
    seed: int = 0,
    queries: Any = None,
    ef_ladder: tuple[int, ...] = EF_LADDER,
    store: bool = True,
) -> dict[str, Any]:
    """Measure recall@k of an HNSW index against exact search for a ladder of
    ``hnsw.ef_search`` values, and (with ``store``) keep it in the index's JSON
    comment, where the planner reads it to choose ef_search for a recall target.

    HNSW recall depends on the data (its intrinsic dimension, even insertion
    order), so it is measured on the table itself: ``queries`` when given (e.g. from
    a query log), else sample rows moved to a typical k-th-neighbour distance
    (:func:`perturbed_queries`). Exact neighbours come from streamed passes over the
    table in numpy.
    """
    from vecext.postgres.backend import PostgresBackend
    from vecext.search.contracts import Request
    from vecext.search.planner import Plan

    t = resolve_table(conn, table)
    found = [i for i in list_vector_indexes(conn, t.qualified) if i.name == index]
    if not found or found[0].method != "hnsw":
        raise ValueError(f"{t} has no HNSW index named {index!r}")
    ix = found[0]
    col = resolve_column(conn, t.qualified, ix.column)
    scan = _KeyedScan(conn, t, ix.column, col.dim)
    if queries is not None:
        from vecext.codecs.base import as_float32_rows

        xq, how = as_float32_rows(queries, col.dim, "queries"), "given"
    else:
        _, xs = scan.sample(conn, n_queries, seed)
        d, _ = _exact_topk(conn, scan, xs, metric, k + 1)  # [:, 0] is the row itself
        xq, how = perturbed_queries(xs, float(np.median(d[:, k])), metric, seed), "perturbed rows"
    _, best_i = _exact_topk(conn, scan, xq, metric, k)
    backend = PostgresBackend(conn)
    info = backend.table_info(f"{t.schema}.{t.name}", ix.column, metric)
    if index not in info.alternatives:
        raise ValueError(f"index {index!r} cannot order a {metric} search of {t}.{ix.column}")
    info.caps = info.alternatives[index]
    norm = (lambda v: int(v)) if scan.int_key else (lambda v: str(v))  # noqa: E731
    truth = [{norm(v) for v in row if v is not None} for row in best_i.tolist()]
    curve: dict[str, float] = {}
    for ef in ef_ladder:
        hits = []
        for i, q in enumerate(xq):
            req = Request(t.qualified, ix.column, q, k, metric, None)
            got, _ = backend.hnsw(info, req, Plan("hnsw", "calibration"), min(max(ef, k), 1000))
            hits.append(len(truth[i] & {norm(g) for g in got.tolist()}) / k)
        curve[str(ef)] = float(np.mean(hits))
    record = {"k": k, "n_queries": int(len(xq)), "metric": metric, "ef_search": curve,
              "queries": how}  # fmt: skip
    if store:
        meta = dict(ix.comment)
        meta["calibration"] = record
        with conn.transaction():
            conn.execute(
                sql.SQL("COMMENT ON INDEX {} IS {}").format(
                    sql.Identifier(t.schema, index), sql.Literal(json.dumps(meta, sort_keys=True))
                )
            )
    return record
