"""Install and upgrade the vecext catalog (schema ``vecext``) in a DuckDB database, and
the :class:`DuckDialect` through which :mod:`vecext.catalog.store` reads and writes it."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from vecext.catalog import scripts as _scripts
from vecext.catalog.dialect import register
from vecext.catalog.scripts import InstallResult
from vecext.duckdb import info_cache
from vecext.duckdb._sql import registered, transaction
from vecext.errors import CatalogError


@register(duckdb.DuckDBPyConnection)
class DuckDialect:
    """The catalog store's view of a DuckDB connection (see :class:`vecext.catalog.dialect.Dialect`)."""

    backend = "duckdb"
    api = "vecext.duckdb"
    case_insensitive = True
    json_type = "VARCHAR"  # DuckDB's catalog keeps JSON as text
    vector_type = "FLOAT[]"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def require_catalog(self) -> str:
        return require_catalog(self.con)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()

    # every write through the dialect is a write to the catalog (or beside it): the
    # searches' cached table facts are re-read (vecext.duckdb.info_cache)

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        info_cache.bump()
        self.con.execute(sql, list(params))

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            info_cache.bump()
            self.con.executemany(sql, [list(r) for r in rows])

    def vector(self, v: np.ndarray | None) -> list[float] | None:
        return None if v is None else np.asarray(v, np.float32).tolist()

    def copy_vectors(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        # one Arrow table scanned by an INSERT: thousands of rows without a Python loop
        vecs = [np.asarray(r[-1], np.float32) for r in rows]
        offsets = np.zeros(len(vecs) + 1, dtype=np.int32)
        np.cumsum([len(v) for v in vecs], out=offsets[1:])
        values = np.concatenate(vecs) if vecs else np.zeros(0, np.float32)
        data = {c: pa.array([r[i] for r in rows]) for i, c in enumerate(columns[:-1])}
        data[columns[-1]] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
        names = ", ".join(columns)
        info_cache.bump()
        with registered(self.con, pa.table(data)) as src:
            self.con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {src}")

    def transaction(self) -> AbstractContextManager[Any]:
        return transaction(self.con)

    def lock(self, key: str) -> None:
        pass  # one writer per DuckDB database: a transaction is enough

    def name_text(self, *parts: str) -> str:
        return ".".join(parts)


def _check_database_name(con: duckdb.DuckDBPyConnection) -> None:
    row = con.execute("SELECT current_database()").fetchone()
    if row and row[0] == "vecext":
        # DuckDB names a database after its file: `vecext.x` would then be ambiguous
        raise CatalogError(
            "this DuckDB database is named 'vecext' (a file called vecext.duckdb?), which "
            "clashes with vecext's catalog schema 'vecext': rename the file or ATTACH it AS "
            "another name"
        )


def installed_version(con: duckdb.DuckDBPyConnection) -> str | None:
    """The catalog version installed in ``con``'s database, or ``None``."""
    _check_database_name(con)
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE schema_name = 'vecext' AND table_name = 'installed_version' "
        "AND database_name = current_database()"
    ).fetchone()
    if not found or not found[0]:
        return None
    return _scripts.recorded_version(con.execute(_scripts.VERSION_SQL).fetchone())


def install(con: duckdb.DuckDBPyConnection, target: str | None = None) -> InstallResult:
    """Install or upgrade the catalog in one transaction; a no-op when current."""
    previous = installed_version(con)
    steps = _scripts.plan("duckdb", previous, target)
    if not steps:
        return InstallResult(previous=previous, current=previous or "", applied=[])
    info_cache.bump()
    con.execute("BEGIN TRANSACTION")
    try:
        result = _scripts.apply(steps, con.execute, lambda: installed_version(con), previous)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return result


def require_catalog(con: duckdb.DuckDBPyConnection) -> str:
    version = installed_version(con)
    if version is None:
        raise CatalogError(
            "the vecext catalog is not installed in this DuckDB database: "
            "call vecext.duckdb.install(con) or open it with vecext.duckdb.connect()"
        )
    return version
