"""Multi-tenant tables: a declared tenant column, partial HNSW indexes for large tenants.

After :func:`declare_tenant_column`, every search on the table must name one
tenant (``search(..., tenant=value)``) and is restricted to it in every strategy,
fallback included. Following Curator's observation (a shared index wastes search
time on other tenants' vectors, one index per tenant wastes memory), large
tenants get their own partial HNSW index (:func:`create_tenant_indexes`), small
ones are scanned exactly through a btree on the tenant column, and IVF lists are
shared by all tenants with a ``(tenant, list)`` index.

A tenant index is recognised by its JSON comment ``{"vecext": "tenant",
"column": ..., "tenant": ...}``; its WHERE clause is ``tenant = <value>``.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg import sql

from vecext.errors import CatalogError
from vecext.postgres.catalog import require_catalog
from vecext.postgres.columns import TableRef, resolve_table
from vecext.postgres.indexes import (
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    VectorIndex,
    create_vector_index,
    list_vector_indexes,
)


def tenant_key(value: Any) -> str:
    """How a tenant value is recorded in an index comment (and looked up)."""
    return json.dumps(value, default=str)


def declare_tenant_column(
    conn: psycopg.Connection, table: str, column: str, *, index: bool = True
) -> None:
    """Declare ``table.column`` the tenant column (searches must then pass ``tenant=``).

    With ``index`` a btree on the column is created unless one already leads with
    it, so that a small tenant's exact scan reads only its rows. From catalog 0.6.0 the
    column is mirrored into the code store of every compressed column of the table
    (:func:`vecext.postgres.mirror_columns`; those added later mirror it too), so that
    a tenant's search over codes scans the store alone.
    """
    require_catalog(conn)
    t = resolve_table(conn, table)
    row = conn.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = %s AND attname = %s AND attnum > 0 "
        "AND NOT attisdropped",
        [t.oid, column],
    ).fetchone()
    if row is None:
        raise CatalogError(f"table {t} has no column {column!r} to declare as the tenant column")
    current = tenant_column(conn, t)
    if current is not None and current != column:
        raise CatalogError(f"table {t} already has tenant column {current!r}")
    with conn.transaction():
        conn.execute(
            """INSERT INTO vecext.tenant_columns (table_schema, table_name, tenant_column)
               VALUES (%s, %s, %s) ON CONFLICT DO NOTHING""",
            [t.schema, t.name, column],
        )
        if index and not _has_leading_btree(conn, t, column):
            conn.execute(
                sql.SQL("CREATE INDEX {} ON {} ({})").format(
                    sql.Identifier(_short(f"{t.name}_{column}_tenant_idx")),
                    t.ident,
                    sql.Identifier(column),
                )
            )
    _mirror_tenant(conn, t, column)


def _mirror_tenant(conn: psycopg.Connection, t: TableRef, column: str) -> None:
    from vecext.postgres.mirrors import has_mirrors, mirror_columns
    from vecext.postgres.stores import compressed_columns

    with conn.transaction():
        found = compressed_columns(conn, t.oid) if has_mirrors(conn) else []
    for cc in found:
        if cc.store is not None and column not in (cc.source_column, cc.key_column):
            mirror_columns(conn, t.qualified, cc.code_column, [column])


def _short(name: str) -> str:
    import hashlib

    if len(name.encode()) <= 63:
        return name
    return (
        name.encode()[:54].decode(errors="ignore")
        + "_"
        + hashlib.sha256(name.encode()).hexdigest()[:8]
    )


def _has_leading_btree(conn: psycopg.Connection, t: TableRef, column: str) -> bool:
    row = conn.execute(
        """SELECT 1 FROM pg_index i
           JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           WHERE i.indrelid = %s AND am.amname = 'btree' AND a.attname = %s
             AND i.indpred IS NULL""",
        [t.oid, column],
    ).fetchone()
    return row is not None


def tenant_column(conn: psycopg.Connection, t: TableRef) -> str | None:
    """The declared tenant column of a table, or ``None``."""
    row = conn.execute(
        "SELECT tenant_column FROM vecext.tenant_columns WHERE table_schema = %s "
        "AND table_name = %s",
        [t.schema, t.name],
    ).fetchone()
    return None if row is None else str(row[0])


def undeclare_tenant_column(conn: psycopg.Connection, table: str) -> None:
    """Forget the tenant column (indexes stay; searches no longer require ``tenant=``)."""
    t = resolve_table(conn, table)
    with conn.transaction():
        conn.execute(
            "DELETE FROM vecext.tenant_columns WHERE table_schema = %s AND table_name = %s",
            [t.schema, t.name],
        )


def tenant_indexes(
    conn: psycopg.Connection, table: str, column: str | None = None
) -> dict[str, list[VectorIndex]]:
    """Partial tenant indexes of ``table`` (on vector ``column``), by :func:`tenant_key`."""
    out: dict[str, list[VectorIndex]] = {}
    for ix in list_vector_indexes(conn, table, column):
        if ix.comment.get("vecext") == "tenant" and "tenant" in ix.comment:
            out.setdefault(str(ix.comment["tenant"]), []).append(ix)
    return out


def create_tenant_indexes(
    conn: psycopg.Connection,
    table: str,
    column: str,
    *,
    min_rows: int = 10_000,
    metric: str = "cosine",
    storage: str = "vector",
    m: int = HNSW_M,
    ef_construction: int = HNSW_EF_CONSTRUCTION,
    max_memory: int | None = None,
    concurrently: bool = False,
) -> list[VectorIndex]:
    """A partial HNSW index on ``column`` for every tenant with at least ``min_rows`` rows.

    Tenants that already have one are skipped; returns the indexes created.
    Smaller tenants are searched exactly (the planner does this on its own).
    """
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows <= 0:
        raise CatalogError(f"min_rows must be a positive integer, got {min_rows!r}")
    require_catalog(conn)
    t = resolve_table(conn, table)
    tcol = tenant_column(conn, t)
    if tcol is None:
        raise CatalogError(
            f"table {t} has no declared tenant column: call declare_tenant_column first"
        )
    big = conn.execute(
        sql.SQL(
            "SELECT {c}, count(*) FROM {t} WHERE {c} IS NOT NULL AND {v} IS NOT NULL "
            "GROUP BY {c} HAVING count(*) >= %s ORDER BY count(*) DESC"
        ).format(c=sql.Identifier(tcol), t=t.ident, v=sql.Identifier(column)),
        [min_rows],
    ).fetchall()
    have = tenant_indexes(conn, t.qualified, column)
    made = []
    for value, _count in big:
        key = tenant_key(value)
        if any(
            ix.metric in (metric, "hamming") and ix.storage == storage for ix in have.get(key, [])
        ):
            continue
        made.append(
            create_vector_index(
                conn,
                t.qualified,
                column,
                metric=metric,
                storage=storage,
                m=m,
                ef_construction=ef_construction,
                where={tcol: value},
                concurrently=concurrently,
                max_memory=max_memory,
                comment={"vecext": "tenant", "column": tcol, "tenant": key},
            )
        )
    return made
