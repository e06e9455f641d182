"""Small SQL helpers for the DuckDB adapter: quoting, table lookup, transactions, Arrow.

Identifiers are quoted with :func:`quote_ident` (DuckDB's double-quote escaping);
values are bound with ``?`` parameters. Only macro bodies, which DuckDB cannot
parameterise, embed string literals, and those go through :func:`quote_literal`
after the value has been validated.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from vecext.catalog.names import parse_duckdb_table
from vecext.catalog.names import quote_ident as _quote
from vecext.codecs import CodecError
from vecext.errors import CatalogError

#: DuckDB has no triggers: beside each code or list column vecext keeps
#: ``<column>__vecext_hash``, the ``hash()`` of the vector the column was computed from
HASH_SUFFIX = "__vecext_hash"


def quote_ident(name: str) -> str:
    """``name`` as a DuckDB identifier: double-quoted, embedded quotes doubled."""
    try:
        return _quote(name)
    except CatalogError:
        raise CatalogError(f"invalid SQL identifier {name!r}") from None


def quote_literal(value: str) -> str:
    """``value`` as a SQL string literal (for macro bodies, which take no parameters)."""
    if "\x00" in value:
        raise CatalogError(f"invalid SQL string {value!r}")
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class TableRef:
    """A table of the current database, with the names as DuckDB stores them."""

    database: str
    schema: str
    name: str

    @property
    def sql(self) -> str:
        return ".".join(quote_ident(p) for p in (self.database, self.schema, self.name))

    def __str__(self) -> str:
        return self.name if self.schema == "main" else f"{self.schema}.{self.name}"


#: a table among candidate spellings, best first (``rank``); a NULL database / schema
#: stands for the current one
_LOOKUP = """SELECT t.database_name, t.schema_name, t.table_name
      FROM duckdb_tables() t,
           (SELECT unnest(?::STRUCT(rank INTEGER, db VARCHAR, sch VARCHAR, tbl VARCHAR)[],
                          recursive := true)) c
     WHERE lower(t.database_name) = lower(coalesce(c.db, current_database()))
       AND lower(t.schema_name) = lower(coalesce(c.sch, current_schema()))
       AND lower(t.table_name) = lower(c.tbl)
     ORDER BY c.rank LIMIT 1"""


def lookup(table: object) -> tuple[str, list[dict[str, object]]]:
    """The query and its parameter that find ``table`` (:mod:`vecext.catalog.names`):
    ``name`` in the current schema; ``a.name`` in schema ``a``, else in database ``a``'s
    ``main`` schema; ``db.schema.name``. Case-insensitive, as DuckDB's SQL."""
    parts = parse_duckdb_table(table).parts
    if len(parts) == 1:
        cands = [(None, None, parts[0])]
    elif len(parts) == 2:
        cands = [(None, parts[0], parts[1]), (parts[0], "main", parts[1])]
    else:
        cands = [parts]
    return _LOOKUP, [
        {"rank": i, "db": db, "sch": sch, "tbl": tbl} for i, (db, sch, tbl) in enumerate(cands)
    ]


def resolve_table(con: duckdb.DuckDBPyConnection, table: object) -> TableRef:
    """Find ``table`` (``name``, ``schema.name`` or ``database.schema.name``, parts quoted or
    not, see :mod:`vecext.catalog.names`), in any attached database."""
    query, cands = lookup(table)
    row = con.execute(query, [cands]).fetchone()
    if row is None:
        db = con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        raise CatalogError(
            f"table {str(parse_duckdb_table(table))!r} does not exist (current database {db!r})"
        )
    return TableRef(str(row[0]), str(row[1]), str(row[2]))


def catalog_table(con: duckdb.DuckDBPyConnection, table: object) -> TableRef:
    """:func:`resolve_table`, for verbs that write catalog rows: the table must be in the
    current database, whose ``vecext`` schema holds the catalog."""
    t = resolve_table(con, table)
    db = con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
    if t.database != db:
        raise CatalogError(
            f"table {t.sql} is in database {t.database!r}, but vecext's catalog is in the "
            f"current database {db!r}: run USE {quote_ident(t.database)} (and install the "
            "catalog there) to add compressed columns, IVF lists or tenants to it"
        )
    return t


def column_type(con: duckdb.DuckDBPyConnection, t: TableRef, column: str) -> tuple[str, str]:
    """``(stored column name, DuckDB type)``; :class:`CatalogError` if there is no such column."""
    row = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = ? "
        "AND schema_name = ? AND table_name = ? AND lower(column_name) = lower(?)",
        [t.database, t.schema, t.name, column],
    ).fetchone()
    if row is None:
        raise CatalogError(f"table {t} has no column {column!r}")
    return str(row[0]), str(row[1])


def has_column(con: duckdb.DuckDBPyConnection, t: TableRef, column: str) -> bool:
    try:
        column_type(con, t, column)
    except CatalogError:
        return False
    return True


_VECTOR_TYPE = re.compile(r"^(FLOAT|DOUBLE)\[(\d+)\]$")


def vector_dim(con: duckdb.DuckDBPyConnection, t: TableRef, column: str) -> tuple[str, int]:
    """Stored name and dimension of a ``FLOAT[d]`` / ``DOUBLE[d]`` column."""
    name, typ = column_type(con, t, column)
    m = _VECTOR_TYPE.match(typ)
    if m is None:
        raise CodecError(f"column {t}.{name} is {typ}, expected FLOAT[d] or DOUBLE[d]")
    return name, int(m.group(2))


def primary_key(con: duckdb.DuckDBPyConnection, t: TableRef) -> str | None:
    """The table's single-column primary key, if it has one (used in error messages)."""
    row = con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() WHERE database_name = ? "
        "AND schema_name = ? AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
        [t.database, t.schema, t.name],
    ).fetchone()
    if row and len(row[0]) == 1:
        return str(row[0][0])
    return None


def table_indexes(con: duckdb.DuckDBPyConnection, t: TableRef) -> list[str]:
    """Names of every index on table ``t`` (ART and HNSW alike)."""
    rows = con.execute(
        "SELECT index_name FROM duckdb_indexes() WHERE database_name = ? AND schema_name = ? "
        "AND table_name = ? ORDER BY 1",
        [t.database, t.schema, t.name],
    ).fetchall()
    return [r[0] for r in rows]


def is_read_only(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return bool(row and row[0])


def in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con`` has an explicit transaction open.

    DuckDB has no flag for it, and a ``BEGIN`` inside a transaction aborts that
    transaction; but in auto-commit mode every statement is a transaction of its own,
    so two statements see the same ``txid_current()`` only inside an explicit one.
    """
    first = con.execute("SELECT txid_current()").fetchone()
    second = con.execute("SELECT txid_current()").fetchone()
    return first == second


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[bool]:
    """Run the block in a transaction of its own, or in the caller's open one.

    Yields ``True`` when this call owns the transaction (and commits it), ``False``
    when the caller already had one open (DuckDB has no nested transactions or
    savepoints, so the work joins it and the caller commits or rolls back).
    """
    if in_transaction(con):
        yield False
        return
    con.execute("BEGIN TRANSACTION")
    try:
        yield True
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, table: pa.Table) -> Iterator[str]:
    """Expose an Arrow table to SQL under a fresh name for the duration of the block."""
    name = f"_vecext_arrow_{uuid.uuid4().hex}"
    con.register(name, table)
    try:
        yield quote_ident(name)
    finally:
        con.unregister(name)
