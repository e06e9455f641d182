"""Functions every vecext DuckDB connection has."""

from __future__ import annotations

import duckdb

from vecext.duckdb.functions import registrar


@registrar
def register_core(con: duckdb.DuckDBPyConnection) -> None:
    # same name and meaning as the Postgres function vecext.vecext_version()
    con.execute(
        "CREATE OR REPLACE MACRO vecext.vecext_version() AS "
        "(SELECT version FROM vecext.installed_version)"
    )
