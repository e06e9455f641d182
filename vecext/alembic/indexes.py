"""The vector-index operations on top of :mod:`vecext.postgres.indexes`.

That module builds the index (operator class per storage and metric, the
``halfvec`` / ``binary_quantize`` expression, ``maintenance_work_mem`` sized from
its build-memory estimate, ``CONCURRENTLY``); this one maps the migration
operation onto it, logs the estimate, and refuses to drop an index that is not a
pgvector index.

The column may be a compressed column whose codes live in a code store (catalog
0.4.0): the index is then pgvector's HNSW over the codes, in schema ``vecext``
beside the store (:mod:`vecext.postgres.store_indexes`), and its drop finds it
there (by the table when the operation names it, as a reverse does, else by its
name among the indexes over code stores).
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg import sql

from vecext.alembic.ops import CreateVectorIndexOp, DropVectorIndexOp, MigrationError

log = logging.getLogger("vecext.alembic")


def memory_estimate(pconn: Any, op: CreateVectorIndexOp, dim: int) -> str:
    """A log line: the build-memory estimate of :mod:`vecext.postgres.indexes`."""
    from vecext.postgres import indexes as pg

    tbl = sql.Identifier(op.schema, op.table) if op.schema else sql.Identifier(op.table)
    n = pconn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL").format(
            tbl, sql.Identifier(op.column)
        )
    ).fetchone()[0]
    if op.method == "hnsw":
        need = pg.hnsw_build_memory(n, dim, storage=op.storage, m=op.options.get("m", pg.HNSW_M))
    else:
        lists = op.options.get("lists") or max(10, n // 1000)
        need = pg.ivfflat_build_memory(n, dim, storage=op.storage, lists=lists)
    return (
        f"{op.method} index {op.name} on {op.table}.{op.column} ({n} rows, {op.storage}({dim})): "
        f"estimated build memory {need / 2**20:.0f} MiB (maintenance_work_mem is raised to it)"
    )


def code_store_target(pconn: Any, op: CreateVectorIndexOp) -> bool:
    """Whether ``op.column`` is a compressed column in a code store of ``op.table``."""
    from vecext.errors import CatalogError
    from vecext.postgres.store_indexes import compressed_target
    from vecext.postgres.tables import resolve_table

    try:
        t = resolve_table(pconn, (op.schema, op.table) if op.schema else op.table)
    except CatalogError as exc:
        raise MigrationError(f"create_vector_index({op.name!r}): {exc}") from None
    return compressed_target(pconn, t, op.column) is not None


def create(pconn: Any, op: CreateVectorIndexOp, dim: int | None) -> None:
    """Build ``op``'s index; ``dim`` is ``None`` for a compressed column in a code store."""
    from vecext.postgres import indexes as pg

    if dim is None:
        log.info("hnsw index %s over the code store of %s.%s", op.name, op.table, op.column)
    else:
        log.info("%s", memory_estimate(pconn, op, dim))
    try:
        pg.create_vector_index(
            pconn,
            (op.schema, op.table) if op.schema else op.table,
            op.column,
            metric=op.metric,
            method=op.method,
            storage=op.storage,
            name=op.name,
            concurrently=op.concurrently,
            **op.options,
        )
    except pg.VectorIndexError as exc:
        raise MigrationError(f"create_vector_index({op.name!r}): {exc}") from exc


def drop(pconn: Any, op: DropVectorIndexOp) -> None:
    from vecext.postgres import indexes as pg

    store_index = _code_store_index(pconn, op)
    if store_index is not None:
        pg.drop_index(pconn, op.name, schema=store_index, concurrently=op.concurrently)
        return
    ident = sql.Identifier(op.schema, op.name) if op.schema else sql.Identifier(op.name)
    row = pconn.execute(
        "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
        "WHERE c.oid = to_regclass(%s)",
        [ident.as_string(pconn)],
    ).fetchone()
    if row is None:
        raise MigrationError(f"index {op.name!r} does not exist")
    if row[0] not in pg.METHODS:
        raise MigrationError(
            f"index {op.name!r} is a {row[0]} index, not a vector index; use op.drop_index"
        )
    pg.drop_index(pconn, op.name, schema=op.schema, concurrently=op.concurrently)


def _code_store_index(pconn: Any, op: DropVectorIndexOp) -> str | None:
    """``"vecext"`` when ``op`` names an index over a code store: of the table of the
    index it would recreate (a reverse), or, naming no table and found nowhere on the
    search path, of any table; else ``None`` (an index of the table itself)."""
    from vecext.errors import CatalogError
    from vecext.postgres.catalog import installed_version
    from vecext.postgres.store_indexes import on_code_store
    from vecext.postgres.stores import has_stores
    from vecext.postgres.tables import resolve_table

    if installed_version(pconn) is None or not has_stores(pconn):
        return None
    re = op.recreate
    if re is not None:
        try:
            t = resolve_table(pconn, (re.schema, re.table) if re.schema else re.table)
        except CatalogError:
            return None  # no such table: the drop by name says what is missing
        return "vecext" if on_code_store(pconn, t, op.name) else None
    if op.schema is not None:
        return None
    (on_path,) = pconn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", [sql.Identifier(op.name).as_string(pconn)]
    ).fetchone()
    if on_path:
        return None
    (found,) = pconn.execute(
        """SELECT EXISTS (SELECT FROM pg_class ic JOIN pg_index i ON i.indexrelid = ic.oid
                            JOIN pg_class r ON r.oid = i.indrelid
                           WHERE ic.relname = %s AND ic.relnamespace = 'vecext'::regnamespace
                             AND r.relname ~ '^store_[0-9]+$' AND ic.relam <> 403)""",
        [op.name],
    ).fetchone()
    return "vecext" if found else None
