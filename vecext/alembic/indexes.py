"""The vector-index operations on top of :mod:`vecext.postgres.indexes`.

That module builds the index (operator class per storage and metric, the
``halfvec`` / ``binary_quantize`` expression, ``maintenance_work_mem`` sized from
its build-memory estimate, ``CONCURRENTLY``); this one maps the migration
operation onto it, logs the estimate, and refuses to drop an index that is not a
pgvector index.
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


def create(pconn: Any, op: CreateVectorIndexOp, dim: int) -> None:
    from vecext.postgres import indexes as pg

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
