"""``vecext info``, ``vecext install`` and ``vecext stop``: the set-up around the data."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from vecext.errors import VecextError
from vecext.tools.cli.common import DsnOption, console, err_console, fail
from vecext.tools.info import collect


def info(
    dsn: DsnOption = None,
    duckdb_path: Annotated[
        str | None, typer.Option("--duckdb", help="Also report on this DuckDB file's catalog.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Versions of vecext, PostgreSQL, pgvector, DuckDB, VSS and FAISS, and where things live."""
    report = collect(dsn, duckdb_path)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        table = Table(title="vecext info", show_header=False)
        table.add_column("item", style="bold")
        table.add_column("value")
        for key, value in report.rows:
            table.add_row(key, value)
        console.print(table)
        for msg in report.warnings:
            err_console.print(f"[bold yellow]warning:[/] {msg}")
        for msg in report.errors:
            err_console.print(f"[bold red]error:[/] {msg}")
    if report.errors:
        raise typer.Exit(code=1)


def install(
    dsn: DsnOption = None,
    duckdb_path: Annotated[
        str | None,
        typer.Option("--duckdb", help="Install into this DuckDB file instead of PostgreSQL."),
    ] = None,
) -> None:
    """Install or upgrade the vecext catalog (idempotent, one transaction)."""
    # the adapters are optional extras (vecext[postgres], vecext[duckdb]): a command
    # imports the one it uses when it runs, so that `vecext --help` needs neither
    try:
        if duckdb_path:
            import duckdb

            from vecext.duckdb.catalog import install as duck_install

            con = duckdb.connect(duckdb_path)
            try:
                result = duck_install(con)
            finally:
                con.close()
            where = duckdb_path
        else:
            from vecext.postgres import catalog, connection

            with connection.connect(dsn) as conn:
                result = catalog.install(conn)
                where = connection.describe_target(connection.resolve_dsn(dsn))
    except VecextError as exc:
        raise fail(exc) from exc
    if result.changed:
        console.print(
            f"vecext catalog {result.previous or '(none)'} -> {result.current} in {where}: "
            f"applied {', '.join(result.applied)}"
        )
    else:
        console.print(f"vecext catalog already at {result.current} in {where}: nothing to do")


def uninstall(dsn: DsnOption = None) -> None:
    """Drop vecext's own objects from PostgreSQL (functions, catalog tables, triggers,
    code stores), never your tables, views or columns: refuses, naming them, while
    objects of yours depend on vecext's. Code columns keep their data."""
    try:
        from vecext.postgres import catalog, connection

        with connection.connect(dsn) as conn:
            dropped = catalog.uninstall(conn)
            where = connection.describe_target(connection.resolve_dsn(dsn))
    except VecextError as exc:
        raise fail(exc) from exc
    if dropped:
        console.print(f"vecext uninstalled from {where}: dropped {len(dropped)} objects")
    else:
        console.print(f"no vecext catalog in {where}: nothing to do")


def stop() -> None:
    """Stop the embedded PostgreSQL server (it is otherwise left running for reuse)."""
    from vecext.postgres.embedded import default_datadir, stop_embedded  # optional extra

    if stop_embedded():
        console.print(f"stopped the embedded server in {default_datadir()}")
    else:
        console.print("the embedded server is not running")
