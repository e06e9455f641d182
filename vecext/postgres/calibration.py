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
from vecext.postgres.columns import check_column_current, resolve_column
from vecext.postgres.ivf import cached_codec, ivf_lists
from vecext.search.calibrate import Calibrator


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
