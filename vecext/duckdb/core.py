"""Functions every vecext DuckDB connection has."""

from __future__ import annotations

import duckdb

from vecext.duckdb._sql import is_read_only
from vecext.duckdb.functions import registrar


@registrar
def register_core(con: duckdb.DuckDBPyConnection) -> None:
    if is_read_only(con):
        return  # macros are catalog entries: a read-only database keeps the ones it has
    # same name and meaning as the Postgres function vecext.vecext_version()
    con.execute(
        "CREATE OR REPLACE MACRO vecext.vecext_version() AS "
        "(SELECT version FROM vecext.installed_version)"
    )
