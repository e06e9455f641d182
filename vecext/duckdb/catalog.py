"""Install and upgrade the vecext catalog (schema ``vecext``) in a DuckDB database."""

from __future__ import annotations

import duckdb

from vecext.catalog import scripts as _scripts
from vecext.catalog.scripts import InstallResult
from vecext.errors import CatalogError


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
    row = con.execute("SELECT version FROM vecext.installed_version").fetchone()
    if row is None:
        raise CatalogError("schema vecext exists but records no installed version")
    return str(row[0])


def install(con: duckdb.DuckDBPyConnection, target: str | None = None) -> InstallResult:
    """Install or upgrade the catalog in one transaction; a no-op when current."""
    previous = installed_version(con)
    steps = _scripts.plan("duckdb", previous, target)
    result = InstallResult(previous=previous, current=previous or "", applied=[])
    if not steps:
        return result
    con.execute("BEGIN TRANSACTION")
    try:
        for script in steps:
            con.execute(script.text())
            now = installed_version(con)
            if now != script.to_version:
                raise CatalogError(
                    f"{script.name} left the catalog at version {now}, expected {script.to_version}"
                )
            result.applied.append(script.name)
            result.current = script.to_version
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
