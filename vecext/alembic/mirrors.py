"""What ``op.mirror_columns``, ``op.unmirror_columns`` and ``add_compressed_column(...,
mirror=)`` do when a migration runs (the work is :mod:`vecext.postgres.mirrors`').

Filling the mirrored values of a store's rows commits a batch at a time, so
``mirror_columns`` runs in Alembic's ``autocommit_block()``, as the code backfill does.
A new compressed column's store is still empty, so its mirrors are added in the
migration's transaction (a bad column name then leaves nothing behind).
"""

from __future__ import annotations

import logging
from typing import Any

from alembic.operations import Operations

from vecext.alembic import ops
from vecext.alembic.base import MigrationError, _catalog, _pg, _qualified, table_ref

log = logging.getLogger("vecext.alembic")


def _require_mirrors(pconn: Any, what: str) -> None:
    from vecext.postgres.catalog import require_catalog
    from vecext.postgres.mirrors import MIRROR_CATALOG, has_mirrors

    if not has_mirrors(pconn):
        raise MigrationError(
            f"{what}: mirrored filter columns need vecext catalog {MIRROR_CATALOG}, the "
            f"database has {require_catalog(pconn)}; upgrade it first (the vecext_0_6_0 "
            "revision, or `vecext install`)"
        )


def _mirror(pconn: Any, table: str, schema: str | None, code_column: str, **kw: Any) -> list[str]:
    """:func:`vecext.postgres.mirrors.mirror_columns`, its errors as ``MigrationError``."""
    from vecext.errors import CatalogError
    from vecext.postgres.mirrors import mirror_columns

    try:
        return mirror_columns(pconn, table_ref(table, schema), code_column, **kw)  # type: ignore[arg-type]
    except CatalogError as exc:
        raise MigrationError(f"mirror_columns: {exc}") from None


@Operations.implementation_for(ops.MirrorColumnsOp)
def mirror_columns(operations: Operations, op: ops.MirrorColumnsOp) -> list[str]:
    pconn = _pg(operations)
    _catalog(pconn)
    _require_mirrors(pconn, f"mirror_columns({op.table!r}, {op.code_column!r})")
    log.info(
        "mirroring %s into the code store of %s.%s",
        ", ".join(op.columns),
        _qualified(op.table, op.schema),
        op.code_column,
    )
    # the store's rows are filled in committed batches: outside the migration's transaction
    with operations.get_context().autocommit_block():
        return _mirror(
            _pg(operations),
            op.table,
            op.schema,
            op.code_column,
            columns=op.columns,
            batch_size=op.batch_size,
        )


@Operations.implementation_for(ops.UnmirrorColumnsOp)
def unmirror_columns(operations: Operations, op: ops.UnmirrorColumnsOp) -> list[str]:
    from vecext.errors import CatalogError
    from vecext.postgres.mirrors import unmirror_columns as unmirror

    pconn = _pg(operations)
    _catalog(pconn)
    _require_mirrors(pconn, f"unmirror_columns({op.table!r}, {op.code_column!r})")
    try:
        return unmirror(pconn, table_ref(op.table, op.schema), op.code_column, op.columns)  # type: ignore[arg-type]
    except CatalogError as exc:
        raise MigrationError(f"unmirror_columns: {exc}") from None


def mirror_added(
    operations: Operations,
    op: ops.AddCompressedColumnOp,
    name: str,
    layout: str,
    *,
    new: bool,
) -> None:
    """Mirror ``op.mirror`` and the table's tenant column into the store of the
    compressed column ``name`` that ``op`` added (``new``) or resumes, before its backfill."""
    from vecext.postgres.columns import _tenant_to_mirror
    from vecext.postgres.mirrors import has_mirrors
    from vecext.postgres.tables import resolve_table

    pconn = _pg(operations)
    what = f"add_compressed_column({op.table!r}, ..., {name!r}, mirror=...)"
    if op.mirror and layout != "store":
        raise MigrationError(
            f"{what}: {_qualified(op.table, op.schema)}.{name} has layout {layout!r}; only a "
            "code store (layout='store') mirrors columns"
        )
    if op.mirror:
        _require_mirrors(pconn, what)
    elif layout != "store" or not has_mirrors(pconn):
        return
    t = resolve_table(pconn, table_ref(op.table, op.schema))
    wanted = list(op.mirror) + _tenant_to_mirror(pconn, t, layout, list(op.mirror))
    if not wanted:
        return
    if new:  # an empty store: nothing to fill, all in the migration's transaction
        _mirror(pconn, op.table, op.schema, name, columns=wanted, batch_size=op.batch_size)
        return
    with operations.get_context().autocommit_block():  # a resumed store may have rows
        _mirror(
            _pg(operations), op.table, op.schema, name, columns=wanted, batch_size=op.batch_size
        )
