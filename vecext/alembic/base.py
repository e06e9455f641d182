"""What every vecext Alembic operation shares: its error, how it says that a step
cannot be reversed, and the migration's psycopg connection its implementation uses."""

from __future__ import annotations

from typing import Any

from vecext.errors import VecextError


class MigrationError(VecextError, ValueError):
    """A vecext migration step that cannot run: names what is wrong and how to fix it."""


def irreversible(what: str, missing: str) -> MigrationError:
    """The error of a ``reverse()`` whose operation lacks what the reverse rebuilds."""
    return MigrationError(
        f"{what} cannot be reversed: it does not record {missing}; pass it to the operation "
        "so that autogenerate and downgrades can rebuild what it removes"
    )


def _pg(operations: Any) -> Any:
    """The psycopg connection under the migration's SQLAlchemy connection."""
    ctx = operations.get_context()
    if ctx.as_sql:
        raise MigrationError(
            "vecext operations read and write the database (training samples, catalog "
            "rows): run this migration online, not with --sql"
        )
    bind = operations.get_bind()
    pconn = bind.connection.driver_connection
    if type(pconn).__module__.split(".")[0] != "psycopg":
        raise MigrationError(
            f"vecext operations need the psycopg (3) driver, got {type(pconn).__module__}: "
            "use a postgresql+psycopg:// URL"
        )
    return pconn


def _catalog(pconn: Any) -> None:
    from vecext.postgres.catalog import require_catalog

    require_catalog(pconn)


def _qualified(table: str, schema: str | None) -> str:
    return f"{schema}.{table}" if schema else table


def table_ref(table: str, schema: str | None) -> Any:
    """What vecext's functions take for an Alembic ``(table, schema)``: the parts as they
    are with a schema, else the name as :mod:`vecext.catalog.names` reads it."""
    return (schema, table) if schema else table
