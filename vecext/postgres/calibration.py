"""Calibrate a compressed column or an HNSW index on its own data (PostgreSQL).

:func:`calibrate` and :func:`calibrate_index` are :mod:`vecext.search.calibrate`'s,
the same driver and measurements for every backend; this module is what they ask of
PostgreSQL: the rows (binary COPY, in key order, :class:`KeyedRows`) and where the
records go (a compressed column's in ``vecext.compressed_columns.calibration``, an
index's in its JSON comment), where the planner reads them to choose the rerank
depth, nprobe and ``hnsw.ef_search`` for the caller's recall target.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from vecext.postgres import code_index, copybin
from vecext.postgres.columns import TableRef, check_column_current, resolve_column, resolve_table
from vecext.postgres.index_catalog import list_vector_indexes
from vecext.postgres.ivf import cached_codec, ivf_lists
from vecext.postgres.stores import PgCompressedColumn, has_code
from vecext.postgres.tables import column_type, vector_expr
from vecext.search.calibrate import (
    EF_LADDER,
    CodeSource,
    IndexSource,
    calibrate,
    calibrate_index,
    index_target,
    perturbed_queries,
)
from vecext.search.contracts import METRICS

__all__ = [
    "EF_LADDER",
    "KeyedRows",
    "calibrate",
    "calibrate_index",
    "code_source",
    "index_source",
    "perturbed_queries",
]


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


class KeyedRows:
    """``(primary key, vector)`` rows of a table with a vector (and, when ``codes`` (a
    compressed column) is given, codes), by binary COPY: a sample ordered by ``md5(key || seed)``, and
    every row in key order (keyset pagination). Keys other than integers are text."""

    def __init__(
        self,
        conn: psycopg.Connection,
        t: TableRef,
        column: str,
        dim: int,
        codes: PgCompressedColumn | None = None,
    ) -> None:
        key, key_type = _key(conn, t.oid)
        int_key = key_type in copybin.INT_KEYS
        self.conn, self.t, self.dim = conn, t, dim
        self.kt = key_type if int_key else "text"
        self.k_sql = sql.Identifier(key)
        self.k_out = self.k_sql if int_key else sql.SQL("{}::text").format(self.k_sql)
        self.src = sql.Identifier(column)
        typ = column_type(conn, t, column)
        self.vec = vector_expr(self.src, typ[1], typ[3]) if typ else self.src
        self.has = sql.SQL("{} IS NOT NULL").format(self.src)
        if codes is not None:
            key_of_t = sql.SQL("t.{}").format(self.k_sql)
            self.has = sql.SQL("{} AND {}").format(self.has, has_code(codes, key_of_t))

    def _rows(self, where: sql.Composable, order: sql.Composable, n: int) -> Any:
        query = sql.SQL(
            "COPY (SELECT {ko}, {vec} FROM {t} t WHERE {where} AND {has} ORDER BY {order} "
            "LIMIT {n}) TO STDOUT (FORMAT binary)"
        ).format(ko=self.k_out, vec=self.vec, t=self.t.ident, where=where, has=self.has,
                 order=order, n=sql.Literal(int(n)))  # fmt: skip
        return _copy(self.conn, query, self.dim, self.kt)

    def sample(self, n: int, seed: int) -> tuple[list[Any], np.ndarray]:
        order = sql.SQL("md5({}::text || {})").format(self.k_sql, sql.Literal(str(seed)))
        return self._rows(sql.SQL("TRUE"), order, n)  # type: ignore[no-any-return]

    def batches(self, size: int) -> Iterator[tuple[list[Any], np.ndarray]]:
        last = None
        while True:
            after = (
                sql.SQL("TRUE")
                if last is None
                else sql.SQL("{} > {}").format(self.k_sql, sql.Literal(last))
            )
            keys, xb = self._rows(after, self.k_sql, size)
            if not keys:
                return
            yield keys, xb
            last = keys[-1]


def code_source(backend: Any, table: str, code_column: str) -> CodeSource:
    """``table.code_column``'s rows with codes (in key order), its codec and IVF coarse
    quantizer, and its record's place: ``vecext.compressed_columns.calibration``."""
    conn: psycopg.Connection = backend.conn
    cc = check_column_current(conn, table, code_column)
    codec = cached_codec(conn, cc.codec, cc.codec_fingerprint)
    col = resolve_column(conn, cc.table.qualified, cc.source_column, halfvec=True)
    lists = ivf_lists(conn, cc.table.qualified, code_column)
    coarse = None
    if lists is not None:
        (fp,) = conn.execute(
            "SELECT fingerprint FROM vecext.codecs WHERE name = %s", [lists.codec_name]
        ).fetchone()  # type: ignore[misc]
        coarse = cached_codec(conn, lists.codec_name, fp)

    def save(record: dict[str, Any]) -> None:
        with conn.transaction():
            conn.execute(
                """UPDATE vecext.compressed_columns SET calibration = %s::jsonb, updated_at = now()
                   WHERE id = %s""",
                [json.dumps(record), cc.id],
            )

    rows = KeyedRows(conn, cc.table, cc.source_column, col.dim, cc)
    return CodeSource(rows, codec, coarse, f"{cc.table}.{code_column}", save)


def index_source(backend: Any, table: str, index: str, metric: str | None) -> IndexSource:
    """The HNSW index ``index`` of ``table`` as a search target, the table's rows, and its
    record's place: the index's JSON comment (its other keys kept)."""
    conn: psycopg.Connection = backend.conn
    t = resolve_table(conn, table)
    found = [i for i in list_vector_indexes(conn, t.qualified) if i.name == index]
    if not found:
        # an HNSW index over one of the table's code stores
        return code_index.index_source(backend, t, index, metric, index_target, KeyedRows)
    if found[0].method != "hnsw":
        raise ValueError(f"{t} has no HNSW index named {index!r}")
    ix = found[0]
    # an index over bits orders candidates for any metric: cosine unless told
    metric = metric or (ix.metric if ix.metric in METRICS else "cosine")
    col = resolve_column(conn, t.qualified, ix.column, halfvec=True)
    target = index_target(backend, f"{t.schema}.{t.name}", ix.column, index, metric)

    def save(record: dict[str, Any]) -> None:
        meta = dict(ix.comment)
        meta["calibration"] = record
        with conn.transaction():
            conn.execute(
                sql.SQL("COMMENT ON INDEX {} IS {}").format(
                    sql.Identifier(t.schema, index), sql.Literal(json.dumps(meta, sort_keys=True))
                )
            )

    return IndexSource(target, KeyedRows(conn, t, ix.column, col.dim), save)
