"""What :meth:`DuckDBBackend.table_info` found, kept per connection between searches.

Finding a table, its columns, primary key, code columns, tenant column and VSS indexes
takes DuckDB's system tables (``duckdb_columns()``, ``duckdb_constraints()``, ...)
about 30 ms per search. A search instead reads one *stamp* of everything the answer
depends on, and reuses the cached answer while the stamp is unchanged. The stamp is one
row of ``duckdb_tables()`` (about 0.5 ms) and a counter in this process:

* the current database and schema (how a name resolves), the database's and the
  table's oids (a re-ATTACHed file, a re-created table);
* the table's ``CREATE`` statement as DuckDB regenerates it (columns, types, primary
  key: any ``ALTER``), its index count (a VSS index created or dropped) and its
  estimated size (the row count the planner uses);
* a generation, which every write of vecext to its catalog bumps (codecs,
  compressed columns with their calibration, refresh mark and status, tenant columns,
  VSS index comments: :func:`bump`, called by the catalog dialect and the few writers
  beside it).

Reading vecext's catalog rows into the stamp instead costs 3-4 ms per search (each
subquery on a small table costs DuckDB 0.4-0.7 ms). The counter is enough because a
DuckDB database file has one writing process, and the connections of a process share
it. What it does not see: the catalog edited by hand with SQL (call :func:`forget`),
and a vecext write inside another connection's explicit transaction that commits
after this connection re-read the facts (this connection then keeps the facts it
read until the next vecext write or DDL; searches stay correct, as the code cache
checks the table's rows itself, but may miss a new calibration until then).

The cache holds a few tables per connection and goes away with the connection.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import weakref
from typing import Any

import duckdb

from vecext.duckdb._sql import TableRef
from vecext.search.contracts import TableInfo

_STAMP = """SELECT current_database(), current_schema(), t.database_oid, t.table_oid, t.sql,
  t.index_count, t.estimated_size
FROM duckdb_tables() t
WHERE t.database_name = $db AND t.schema_name = $sch AND t.table_name = $tbl"""

_counter = itertools.count(1)
_generation = 0


def bump() -> None:
    """vecext wrote to its catalog (or to a VSS index's comment): cached facts are re-read."""
    global _generation
    _generation = next(_counter)


def forget(con: duckdb.DuckDBPyConnection | None = None) -> None:
    """Drop the cached facts (of one connection, or of every one): needed only after
    editing vecext's catalog tables by hand."""
    if con is None:
        bump()
        return
    with contextlib.suppress(TypeError):
        _cache.pop(con, None)


#: tables kept per connection
PER_CONNECTION = 16

_cache: weakref.WeakKeyDictionary[Any, dict[Any, tuple[TableRef, bool, Any, TableInfo]]] = (
    weakref.WeakKeyDictionary()
)


def stamp(con: duckdb.DuckDBPyConnection, t: TableRef, catalog: bool) -> tuple[Any, ...] | None:
    """Everything ``table_info`` depends on (see the module), or ``None`` when the table
    is gone."""
    params = {"db": t.database, "sch": t.schema, "tbl": t.name}
    row = con.execute(_STAMP, params).fetchone()
    if row is None:
        return None
    return (*row, catalog, _generation)


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
