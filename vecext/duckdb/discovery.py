"""How the DuckDB backend finds a table, its columns and its vector column.

Names are matched case-insensitively, as DuckDB's SQL does, in one query each (a
failing query would abort a caller's open transaction, so nothing is probed by trial).
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from vecext.duckdb._sql import TableRef, lookup
from vecext.errors import CatalogError
from vecext.search.contracts import SearchError

_VECTOR_TYPES = ("FLOAT", "DOUBLE")


def vector_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> tuple[str, str, int]:
    """``(quoted table, stored column name, dimension)`` of a ``FLOAT[d]``/``DOUBLE[d]``
    column, or a :class:`SearchError` naming what is wrong."""
    t, _ = _table(con, table)
    columns, _, _, _ = _columns(con, t)
    name, typ = _find_column(t, columns, column)
    base, dim = _array_type(typ)
    if base not in _VECTOR_TYPES or dim is None:
        raise SearchError(
            f"column {t}.{name} has type {typ}: a vector column must be FLOAT[d] or DOUBLE[d] "
            "(a fixed-size array)"
        )
    return t.sql, name, dim


def _table(con: duckdb.DuckDBPyConnection, table: Any) -> tuple[TableRef, bool]:
    """``table`` (:mod:`vecext.catalog.names`: ``name``, ``schema.name`` or
    ``database.schema.name``, case-insensitive as in SQL, ATTACHed databases included), and
    whether vecext's catalog applies to it (the table is in the current database, which has
    the catalog), in one query (failing queries would abort a caller's open transaction,
    so nothing is probed by trial)."""
    try:
        query, cands = lookup(table)
    except CatalogError as exc:
        raise SearchError(str(exc)) from None
    row = con.execute(
        f"SELECT f.*, f.database_name = current_database() AND EXISTS (SELECT 1 FROM "
        "duckdb_tables() WHERE database_name = current_database() AND schema_name = 'vecext' "
        f"AND table_name = 'tenant_columns') FROM ({query}) f",
        [cands],
    ).fetchone()
    if row is None:
        raise SearchError(f"table {table!r} does not exist")
    return TableRef(str(row[0]), str(row[1]), str(row[2])), bool(row[3])


def _columns(
    con: duckdb.DuckDBPyConnection, t: TableRef, count: bool = False
) -> tuple[dict[str, str], list[str], int, bool]:
    """Column name -> type, the primary key's columns and, with ``count``, the row count
    and whether the table has an HNSW index, in one query."""
    extra = (
        f"(SELECT count(*) FROM {t.sql}), (SELECT count(*) > 0 FROM duckdb_indexes() "
        "WHERE database_name = ? AND schema_name = ? AND table_name = ? "
        "AND sql ILIKE '%USING HNSW%')"
        if count
        else "0, false"
    )
    params = [t.database, t.schema, t.name] if count else []
    # duckdb_columns(), not pragma_table_info(): the latter misreads a quoted name with ""
    rows = con.execute(
        f"SELECT c.column_name, c.data_type, list_contains(coalesce((SELECT "
        "first(k.constraint_column_names) FROM duckdb_constraints() k WHERE k.database_name = "
        "c.database_name AND k.schema_name = c.schema_name AND k.table_name = c.table_name AND "
        f"k.constraint_type = 'PRIMARY KEY'), []), c.column_name), {extra} "
        "FROM duckdb_columns() c WHERE c.database_name = ? AND c.schema_name = ? "
        "AND c.table_name = ? ORDER BY c.column_index",
        [*params, t.database, t.schema, t.name],
    ).fetchall()
    columns = {str(r[0]): str(r[1]) for r in rows}
    pk = [str(r[0]) for r in rows if r[2]]
    return columns, pk, int(rows[0][3]) if rows else 0, bool(rows and rows[0][4])


def _find_column(t: TableRef, columns: dict[str, str], column: str) -> tuple[str, str]:
    if not isinstance(column, str) or not column:
        raise SearchError(f"invalid column name {column!r}")
    for name, typ in columns.items():
        if name.lower() == column.lower():  # DuckDB identifiers are case-insensitive
            return name, typ
    raise SearchError(f"table {t} has no column {column!r}; its columns are: {', '.join(columns)}")


def _array_type(typ: str) -> tuple[str, int | None]:
    if typ.endswith("]") and "[" in typ:
        base, _, dim = typ[:-1].rpartition("[")
        return base, int(dim) if dim.isdigit() else None
    return typ, None


def _json(text: Any) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text) if isinstance(text, str) else dict(text)
    except (ValueError, TypeError):
        return None
    return value if isinstance(value, dict) else None
