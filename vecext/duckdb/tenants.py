"""Multi-tenant tables in DuckDB: one declared tenant column per table.

Once a table has a tenant column (``vecext.tenant_columns``, the same catalog
table as in PostgreSQL), :func:`vecext.search.search` requires ``tenant=`` and
ANDs ``tenant_column = tenant`` into every strategy, fallback included, so a
tenant's search never returns another tenant's rows.

DuckDB has no partial indexes (VSS builds one HNSW graph per column), so the
planner treats a tenant like any filter: a small tenant's rows are counted and
scanned exactly (a columnar scan of the tenant column is cheap; DuckDB's
zone maps skip row groups when the table is loaded or sorted by tenant), and a
large tenant uses the shared IVF lists or codes with the tenant condition
(Curator's shared-structure idea), or the shared HNSW index when the tenant
holds at least half of the table. No ART index is created: DuckDB uses one only
for point lookups of a few thousand rows.
"""

from __future__ import annotations

import duckdb

from vecext.duckdb import info_cache
from vecext.duckdb._sql import catalog_table, column_type
from vecext.duckdb.catalog import require_catalog
from vecext.errors import CatalogError


def tenant_column(con: duckdb.DuckDBPyConnection, table: str) -> str | None:
    """The declared tenant column of ``table``, or ``None``."""
    require_catalog(con)
    t = catalog_table(con, table)
    row = con.execute(
        "SELECT tenant_column FROM vecext.tenant_columns WHERE table_schema = ? AND table_name = ?",
        [t.schema, t.name],
    ).fetchone()
    return None if row is None else str(row[0])


def declare_tenant_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> str:
    """Declare ``table.column`` the tenant column; searches must then pass ``tenant=``.

    Returns the column's stored name. Declaring the same column again is a no-op;
    another column is refused (undeclare the first one).
    """
    require_catalog(con)
    t = catalog_table(con, table)
    name, _ = column_type(con, t, column)  # CatalogError naming the table if missing
    current = tenant_column(con, f"{t.schema}.{t.name}")
    if current is not None:
        if current.lower() != name.lower():
            raise CatalogError(f"table {t} already has tenant column {current!r}")
        return current
    info_cache.bump()
    con.execute(
        "INSERT INTO vecext.tenant_columns (table_schema, table_name, tenant_column) "
        "VALUES (?, ?, ?)",
        [t.schema, t.name, name],
    )
    return name


def undeclare_tenant_column(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Forget the tenant column: searches no longer require (or accept) ``tenant=``."""
    require_catalog(con)
    t = catalog_table(con, table)
    info_cache.bump()
    con.execute(
        "DELETE FROM vecext.tenant_columns WHERE table_schema = ? AND table_name = ?",
        [t.schema, t.name],
    )
