"""The little a catalog store needs to know about a database: :class:`Dialect`.

The catalog tables are the same in PostgreSQL and DuckDB (``sql/<backend>/``), so the
code that reads and writes their rows is written once, in :mod:`vecext.catalog.store`
and :mod:`vecext.catalog.columns`, against this protocol. Each database adapter
implements it over its own connection (``vecext.postgres.catalog.PgDialect``,
``vecext.duckdb.catalog.DuckDialect``) and passes it in; nothing in
:mod:`vecext.catalog` imports a driver.

SQL given to a dialect uses ``?`` placeholders and no ``%``; values are always bound.
The few places where the two databases differ are the attributes below: how a
JSON or vector parameter is cast, how thousands of codebook vectors are loaded,
how identifiers compare, and whether concurrent writers need a lock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np

from vecext.errors import CatalogError


class Dialect(Protocol):
    """A connection to a database that holds the vecext catalog."""

    #: ``"postgres"`` or ``"duckdb"`` (picks the codec kinds' column types)
    backend: str
    #: the adapter's public module, named in messages (``vecext.postgres``)
    api: str
    #: identifiers compare case-insensitively (DuckDB) or exactly (PostgreSQL)
    case_insensitive: bool
    #: the SQL type a JSON text parameter is cast to (``jsonb``, ``VARCHAR``)
    json_type: str
    #: the SQL type of a float vector parameter (pgvector ``vector``, ``FLOAT[]``)
    vector_type: str

    def require_catalog(self) -> str:
        """The installed catalog version; :class:`CatalogError` saying how to install it."""
        ...

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement, return its rows (``[]`` for a statement without)."""
        ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement for its effect."""
        ...

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters (nothing when ``rows`` is empty)."""
        ...

    def vector(self, v: np.ndarray | None) -> Any:
        """A float32 vector (or NULL) as a parameter to cast to :attr:`vector_type`."""
        ...

    def copy_vectors(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert many rows whose last column is a float32 vector, the fastest way the
        database has (PostgreSQL ``COPY``, DuckDB an Arrow scan)."""
        ...

    def transaction(self) -> AbstractContextManager[Any]:
        """A block that commits as a whole, or joins the caller's transaction."""
        ...

    def lock(self, key: str) -> None:
        """Serialise writers of ``key`` until the transaction ends (no-op where the
        database has a single writer)."""
        ...

    def name_text(self, *parts: str) -> str:
        """``schema.table.column`` as the database would print it, for messages."""
        ...


def same_name(db: Dialect, column: str) -> str:
    """A WHERE condition comparing ``column`` with one ``?`` parameter as the database
    compares identifiers."""
    return f"lower({column}) = lower(?)" if db.case_insensitive else f"{column} = ?"


#: (connection class, dialect) in the order they registered (each adapter registers
#: its own when it is imported)
_DIALECTS: list[tuple[type, type[Dialect]]] = []


def register(connection: type) -> Callable[[type[Dialect]], type[Dialect]]:
    """Class decorator: the dialect of connections of class ``connection``."""

    def decorate(cls: type[Dialect]) -> type[Dialect]:
        if (connection, cls) not in _DIALECTS:
            _DIALECTS.append((connection, cls))
        return cls

    return decorate


def dialect_for(conn: Any) -> Dialect:
    """The catalog of ``conn``'s database, installed (:class:`CatalogError` otherwise).

    The adapter that handles ``conn`` must have been imported (``vecext.postgres``,
    ``vecext.duckdb``): it registers its dialect.
    """
    for connection, cls in _DIALECTS:
        if isinstance(conn, connection):
            db = cls(conn)  # type: ignore[call-arg]
            db.require_catalog()
            return db
    raise CatalogError(
        f"no vecext adapter handles a {type(conn).__module__}.{type(conn).__name__}: "
        "pass a psycopg connection (import vecext.postgres) or a DuckDB one "
        "(import vecext.duckdb)"
    )
