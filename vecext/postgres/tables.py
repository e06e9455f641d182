"""Tables and vector columns of PostgreSQL as vecext resolves them.

A table name follows :mod:`vecext.catalog.names` and is resolved the way PostgreSQL
resolves it (``to_regclass``: search path), once, into a :class:`TableRef` that carries its OID; a vector column
into a :class:`VectorColumn` with its dimension. :func:`read_vectors` samples a
column with binary COPY for training codecs and IVF lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from vecext.catalog.names import parse_pg_table, quote_ident
from vecext.codecs import CodecError
from vecext.errors import CatalogError
from vecext.postgres import copybin


@dataclass(frozen=True)
class TableRef:
    """A table as PostgreSQL resolved it: OID, schema and name as stored."""

    oid: int
    schema: str
    name: str

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def qualified(self) -> str:
        """The quoted, schema-qualified name (what ``to_regclass`` reads back)."""
        return self.ident.as_string(None)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class VectorColumn:
    """A pgvector ``vector(dim)`` (or, where allowed, ``halfvec(dim)``) column of a table."""

    table: TableRef
    name: str
    dim: int
    #: ``vector``, or ``halfvec`` for a column kept at half precision (storage mode)
    storage: str = "vector"
    #: the schema pgvector is installed in
    pgvector_schema: str = "public"

    @property
    def expr(self) -> sql.Composable:
        """The column as float32 ``vector`` values (halfvec cast), for binary COPY."""
        return vector_expr(sql.Identifier(self.name), self.storage, self.pgvector_schema)


def vector_expr(col: sql.Composable, storage: str, schema: str) -> sql.Composable:
    """``col`` as pgvector ``vector`` values: itself, or cast from ``halfvec``."""
    if storage == "vector":
        return col
    return sql.SQL("CAST({} AS {})").format(col, sql.Identifier(schema, "vector"))


def table_candidates(table: Any) -> list[str]:
    """Quoted ``to_regclass`` texts for ``table``, in the order vecext tries them.

    ``table`` follows :mod:`vecext.catalog.names` (``name``, ``schema.name``, parts
    quoted or not, a ``psycopg.sql.Identifier``): the parts as written, then with the
    unquoted ones in lower case, as SQL folds them.
    """
    name = parse_pg_table(table)
    return [".".join(quote_ident(p) for p in parts) for parts in name.candidates()]


_RESOLVE = """SELECT c.oid, n.nspname, c.relname
      FROM unnest(%s::text[]) WITH ORDINALITY AS u(name, i)
      JOIN pg_class c ON c.oid = to_regclass(u.name)
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') ORDER BY u.i LIMIT 1"""


def resolve_table(conn: psycopg.Connection, table: Any) -> TableRef:
    """A table by name (see :mod:`vecext.catalog.names`), as PostgreSQL resolves it."""
    row = conn.execute(_RESOLVE, [table_candidates(table)]).fetchone()
    if row is None:
        raise CatalogError(f"table {str(parse_pg_table(table))!r} does not exist")
    return TableRef(int(row[0]), row[1], row[2])


def column_type(
    conn: psycopg.Connection, t: TableRef, column: str
) -> tuple[str, str, int, str] | None:
    """(type text, ``vector``/``halfvec``/``""`` for a pgvector type or another, typmod,
    pgvector's schema) of ``t.column``, or ``None`` when there is no such column."""
    row = conn.execute(
        """SELECT format_type(a.atttypid, a.atttypmod),
                  coalesce((SELECT t.typname FROM pg_type t JOIN pg_extension e
                              ON e.extnamespace = t.typnamespace
                             WHERE e.extname = 'vector' AND t.oid = a.atttypid
                               AND t.typname IN ('vector', 'halfvec')), ''),
                  a.atttypmod,
                  (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n
                     ON n.oid = e.extnamespace WHERE e.extname = 'vector')
           FROM pg_attribute a WHERE a.attrelid = %s AND a.attname = %s AND a.attnum > 0
           AND NOT a.attisdropped""",
        [t.oid, column],
    ).fetchone()
    return None if row is None else (row[0], str(row[1]), int(row[2]), str(row[3] or "public"))


def resolve_column(
    conn: psycopg.Connection,
    table: str,
    column: str,
    *,
    dim: int | None = None,
    halfvec: bool = False,
) -> VectorColumn:
    """A ``vector(d)`` column (or ``halfvec(d)``, with ``halfvec``); with ``dim``, ``d``
    must equal it (the error names both)."""
    t = resolve_table(conn, table)
    typ = column_type(conn, t, column)
    if typ is None:
        raise CatalogError(f"table {t} has no column {column!r}")
    text, kind, typmod, schema = typ
    want = f"vector({dim})" if dim else "vector(d)"
    if halfvec:
        want += f" or halfvec({dim or 'd'})"
    if not (kind == "vector" or (halfvec and kind == "halfvec")) or typmod < 0:
        raise CodecError(f"column {t}.{column} is {text}, expected {want}")
    if dim is not None and typmod != dim:
        raise CodecError(
            f"column {t}.{column} has dimension {typmod} ({text}), "
            f"but the codec expects dimension {dim} ({want})"
        )
    return VectorColumn(t, column, typmod, kind, schema)


def read_vectors(
    conn: psycopg.Connection, col: VectorColumn, *, sample: int, seed: int
) -> np.ndarray:
    """Up to ``sample`` non-NULL vectors of ``col``, repeatable for a given ``seed``.

    A table of at most ``2 * sample`` rows is shuffled (``setseed`` + ``ORDER BY
    random()``); a larger one is sampled row by row (``TABLESAMPLE BERNOULLI``
    at ``sample / rows``, ``REPEATABLE (seed)``), so neither favours the first
    rows on disk.
    """
    t, c = col.table, sql.Identifier(col.name)
    est = conn.execute("SELECT reltuples FROM pg_class WHERE oid = %s", [t.oid]).fetchone()
    rows = float(est[0]) if est else -1.0
    if rows < 0:  # never analysed
        n = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(t.ident)).fetchone()
        rows = float(n[0]) if n else 0.0
    if rows <= 2 * sample:
        conn.execute("SELECT setseed(%s)", [(int(seed) % 2000 - 1000) / 1000])
        query = sql.SQL(
            "COPY (SELECT {e} FROM {t} WHERE {c} IS NOT NULL ORDER BY random() LIMIT {n}) "
            "TO STDOUT (FORMAT binary)"
        ).format(e=col.expr, c=c, t=t.ident, n=sql.Literal(int(sample)))
    else:
        query = sql.SQL(
            "COPY (SELECT {e} FROM {t} TABLESAMPLE BERNOULLI ({pct}) REPEATABLE ({seed}) "
            "WHERE {c} IS NOT NULL LIMIT {n}) TO STDOUT (FORMAT binary)"
        ).format(
            e=col.expr,
            c=c,
            t=t.ident,
            pct=sql.Literal(min(100.0, 100.0 * sample / rows)),
            seed=sql.Literal(int(seed)),
            n=sql.Literal(int(sample)),
        )
    with conn.cursor() as cur, cur.copy(query) as copy:
        data = b"".join(bytes(b) for b in copy)
    _, x = copybin.parse_key_vectors(data, col.dim, None)
    return x
