"""DuckDB adapter: the catalog, vecext's functions and the VSS extension in one call."""

from __future__ import annotations

from pathlib import Path

import duckdb

from vecext.duckdb.catalog import install, installed_version, require_catalog
from vecext.duckdb.functions import register_functions
from vecext.duckdb.vss import VssStatus, load_vss, vss_extension_path


def connect(
    database: str | Path = ":memory:",
    *,
    read_only: bool = False,
    vss: bool = True,
) -> duckdb.DuckDBPyConnection:
    """Open DuckDB with vecext ready: catalog installed, functions registered, VSS loaded.

    Parameters
    ----------
    database
        A file path or ``":memory:"``.
    vss
        Try to load the VSS extension (HNSW). Failure is not an error here:
        ``vecext.duckdb.load_vss(con, required=True)`` says why.
    """
    con = duckdb.connect(str(database), read_only=read_only)
    attach(con, vss=vss, install_catalog=not read_only)
    return con


def attach(
    con: duckdb.DuckDBPyConnection, *, vss: bool = True, install_catalog: bool = True
) -> VssStatus | None:
    """Make an existing DuckDB connection a vecext one (the entry point for your own connections)."""
    if install_catalog:
        install(con)
    register_functions(con)
    return load_vss(con) if vss else None


__all__ = [
    "VssStatus",
    "attach",
    "connect",
    "install",
    "installed_version",
    "load_vss",
    "register_functions",
    "require_catalog",
    "vss_extension_path",
]
