"""What :meth:`DuckDBBackend.table_info` found, kept per connection between searches.

Finding a table, its columns, primary key, code columns, tenant column and VSS indexes
takes DuckDB's system tables (``duckdb_columns()``, ``duckdb_constraints()``, ...)
about 30 ms per search. A search instead reads one *stamp* of everything the answer
depends on, and reuses the cached answer while the stamp is unchanged:

* the current database and schema (how a name resolves);
* the table's ``CREATE`` statement as DuckDB regenerates it (columns, types, primary
  key: any ``ALTER``), its indexes with their comments (VSS calibrations), its row count;
* vecext's catalog rows of the table (compressed columns with their calibration and
  status, the tenant column) and the codecs' fingerprints.

The cache holds a few tables per connection and goes away with the connection.
"""

from __future__ import annotations

import copy
import weakref
from typing import Any

import duckdb

from vecext.duckdb._sql import TableRef
from vecext.search.contracts import TableInfo

_STAMP = """SELECT current_database(), current_schema(),
  (SELECT sql FROM duckdb_tables() WHERE database_name = $db AND schema_name = $sch
     AND table_name = $tbl),
  (SELECT list(coalesce(i.sql, '') || '|' || coalesce(i.comment, '') ORDER BY i.index_name)
     FROM duckdb_indexes() i WHERE i.database_name = $db AND i.schema_name = $sch
     AND i.table_name = $tbl)"""
_CATALOG = """,
  (SELECT list(k ORDER BY k.id)::VARCHAR FROM vecext.compressed_columns k
     WHERE k.table_schema = $sch AND k.table_name = $tbl),
  (SELECT list(tc)::VARCHAR FROM vecext.tenant_columns tc
     WHERE tc.table_schema = $sch AND tc.table_name = $tbl),
  (SELECT list((c.name, c.fingerprint, c.metric) ORDER BY c.name)::VARCHAR FROM vecext.codecs c)"""

#: tables kept per connection
PER_CONNECTION = 16

_cache: weakref.WeakKeyDictionary[Any, dict[Any, tuple[TableRef, bool, Any, TableInfo]]] = (
    weakref.WeakKeyDictionary()
)


def stamp(con: duckdb.DuckDBPyConnection, t: TableRef, catalog: bool) -> tuple[Any, ...] | None:
    """Everything ``table_info`` depends on (see the module), or ``None`` when the table
    is gone."""
    params = {"db": t.database, "sch": t.schema, "tbl": t.name}
    row = con.execute(_STAMP + (_CATALOG if catalog else ""), params).fetchone()
    if row is None or row[2] is None:
        return None
    n = con.execute(f"SELECT count(*) FROM {t.sql}").fetchone()
    return (*row, n[0] if n else None)


def get(con: duckdb.DuckDBPyConnection, key: Any) -> TableInfo | None:
    """The cached answer for ``key`` when its stamp still holds (a copy: callers set
    ``caps``)."""
    try:
        entries = _cache.get(con)
    except TypeError:  # a connection type without weak references: no cache
        return None
    hit = entries.get(key) if entries else None
    if hit is None:
        return None
    t, catalog, before, info = hit
    if stamp(con, t, catalog) != before:
        entries.pop(key, None)  # type: ignore[union-attr]
        return None
    return copy.copy(info)


def put(
    con: duckdb.DuckDBPyConnection, key: Any, t: TableRef, catalog: bool, s: Any, info: TableInfo
) -> None:
    """Keep ``info`` under ``key`` with the stamp ``s`` read *before* it was built."""
    if s is None:
        return
    try:
        entries = _cache.setdefault(con, {})
    except TypeError:
        return
    if len(entries) >= PER_CONNECTION:
        entries.pop(next(iter(entries)))
    entries[key] = (t, catalog, s, copy.copy(info))
