"""Reading a sample of a vector column, and the metric of its index, from a database.

Read-only. The adapters are optional extras (``vecext[postgres]``, ``vecext[duckdb]``):
each reader imports its own when it is called, so that advice on vectors in memory
needs neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vecext.tools.advise.candidates import AdviseError

if TYPE_CHECKING:
    import duckdb
    import psycopg

__all__ = ["duckdb_metric", "postgres_metric", "read_duckdb", "read_postgres", "read_sample"]


#: pgvector operator classes -> metric (vector and halfvec)
_PG_OPS = {
    "vector_cosine_ops": "cosine",
    "vector_l2_ops": "l2",
    "vector_ip_ops": "ip",
    "halfvec_cosine_ops": "cosine",
    "halfvec_l2_ops": "l2",
    "halfvec_ip_ops": "ip",
}


def postgres_metric(conn: psycopg.Connection, table: str, column: str) -> str | None:
    """The metric of a pgvector index on ``table.column`` (``None`` if there is none)."""
    from vecext.postgres.columns import resolve_table

    t = resolve_table(conn, table)
    rows = conn.execute(
        """SELECT opc.opcname FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           JOIN pg_opclass opc ON opc.oid = i.indclass[0]
           WHERE i.indrelid = %s AND a.attname = %s""",
        [t.oid, column],
    ).fetchall()
    for (name,) in rows:
        if name in _PG_OPS:
            return _PG_OPS[name]
    return None


def read_postgres(
    conn: psycopg.Connection, table: str, column: str, *, sample: int, seed: int = 0
) -> tuple[np.ndarray, int]:
    """A repeatable sample of ``table.column`` and the table's row count (estimate)."""
    from psycopg import sql

    from vecext.postgres.columns import read_vectors, resolve_column

    col = resolve_column(conn, table, column)
    est = conn.execute("SELECT reltuples FROM pg_class WHERE oid = %s", [col.table.oid]).fetchone()
    rows = int(est[0]) if est and est[0] is not None and est[0] >= 0 else -1
    if rows < 0:
        got = conn.execute(
            sql.SQL("SELECT count({}) FROM {}").format(sql.Identifier(column), col.table.ident)
        ).fetchone()
        rows = int(got[0]) if got else 0
    x = read_vectors(conn, col, sample=sample, seed=seed)
    if x.shape[0] == 0:
        raise AdviseError(f"table {col.table} has no non-NULL vectors in column {column!r}")
    return x, max(rows, x.shape[0])


def duckdb_metric(con: duckdb.DuckDBPyConnection, table: str, column: str) -> str | None:
    """The metric of a VSS HNSW index on ``table.column`` (``None`` if there is none or
    VSS is not loaded)."""
    import duckdb

    from vecext.duckdb._sql import resolve_table, vector_dim
    from vecext.duckdb.indexes import vss_indexes

    t = resolve_table(con, table)
    col, _ = vector_dim(con, t, column)
    try:
        found = vss_indexes(con, t.schema, t.name, col)
    except duckdb.CatalogException:  # VSS not loaded: no HNSW index can be in use
        return None
    return found[0].metric if found else None


def read_duckdb(
    con: duckdb.DuckDBPyConnection, table: str, column: str, *, sample: int, seed: int = 0
) -> tuple[np.ndarray, int]:
    """A repeatable reservoir sample of ``table.column`` and the table's row count."""
    from vecext.duckdb._sql import quote_ident, resolve_table, vector_dim
    from vecext.duckdb.codecs import read_vectors

    t = resolve_table(con, table)
    col, _ = vector_dim(con, t, column)
    got = con.execute(f"SELECT count({quote_ident(col)}) FROM {t.sql}").fetchone()
    rows = int(got[0]) if got else 0
    if rows == 0:
        raise AdviseError(f"table {t} has no non-NULL vectors in column {col!r}")
    x = read_vectors(con, table, col, sample=sample, seed=seed)
    return x, rows


def read_sample(
    table: str,
    column: str,
    *,
    sample: int,
    seed: int = 0,
    dsn: str | None = None,
    duckdb_path: str | None = None,
) -> tuple[np.ndarray, int, str | None, str]:
    """A sample of ``table.column`` from PostgreSQL (``dsn``, default the embedded
    server) or from the DuckDB file ``duckdb_path``: ``(vectors, table rows, metric of
    its index or None, a description of the source)``."""
    if duckdb_path:
        import duckdb

        if not Path(duckdb_path).exists():
            raise AdviseError(f"DuckDB file {duckdb_path} does not exist")
        con = duckdb.connect(duckdb_path, read_only=True)
        try:
            found = duckdb_metric(con, table, column)
            x, rows = read_duckdb(con, table, column, sample=sample, seed=seed)
        finally:
            con.close()
        return x, rows, found, f"duckdb {duckdb_path}: {table}.{column}"
    from vecext.postgres import connection

    with connection.connect(dsn) as conn:
        found = postgres_metric(conn, table, column)
        x, rows = read_postgres(conn, table, column, sample=sample, seed=seed)
    return x, rows, found, f"postgres {table}.{column}"
