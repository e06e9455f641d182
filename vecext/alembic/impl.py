"""What each vecext operation does when a migration runs.

The operations work through the migration's own connection (the psycopg
connection under ``op.get_bind()``), inside its transaction, except the steps
PostgreSQL refuses in a transaction block: a batched backfill commits each batch
and ``CREATE INDEX CONCURRENTLY`` cannot run in a transaction, so both run in
Alembic's ``autocommit_block()`` (which commits the migration's work so far).
A downgrade only ever drops what vecext added: codes, triggers, indexes, codecs.
The mirror operations are in :mod:`vecext.alembic.mirrors`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic.operations import Operations

from vecext.alembic import ops
from vecext.alembic.base import _catalog, _pg, _qualified, table_ref
from vecext.alembic.mirrors import mirror_added
from vecext.alembic.ops import MigrationError

log = logging.getLogger("vecext.alembic")

#: rows read to train a codec when the migration does not say
DEFAULT_SAMPLE = 100_000


def _regclass(pconn: Any, table: str, schema: str | None) -> int:
    from vecext.errors import CatalogError
    from vecext.postgres.tables import resolve_table

    try:
        return resolve_table(pconn, table_ref(table, schema)).oid
    except CatalogError as exc:
        raise MigrationError(f"{exc} (database {pconn.info.dbname!r})") from None


def column_type(pconn: Any, table: str, column: str, schema: str | None = None) -> str:
    """``format_type`` of a column, e.g. ``vector(384)``; a clear error when missing."""
    oid = _regclass(pconn, table, schema)
    row = pconn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s AND attname = %s AND attnum > 0 AND NOT attisdropped",
        [oid, column],
    ).fetchone()
    if row is None:
        raise MigrationError(
            f"column {column!r} does not exist in table {_qualified(table, schema)}"
        )
    return str(row[0])


def check_vector_column(pconn: Any, table: str, column: str, schema: str | None = None) -> int:
    """The dimension of a pgvector ``vector(d)`` column; raise for any other type."""
    typ = column_type(pconn, table, column, schema)
    if not typ.startswith("vector"):
        raise MigrationError(
            f"column {_qualified(table, schema)}.{column} has type {typ}; vecext codecs and "
            "compressed columns need a pgvector vector(d) source column"
        )
    if typ == "vector":
        raise MigrationError(
            f"column {_qualified(table, schema)}.{column} is a vector without a dimension; "
            "declare it as vector(d) (ALTER COLUMN ... TYPE vector(d))"
        )
    return int(typ[len("vector(") : -1])


def codec_row(pconn: Any, name: str) -> tuple[str, int, str] | None:
    """``(kind, dim, metric)`` of a catalog codec, or ``None``."""
    row = pconn.execute(
        "SELECT kind, dim, metric FROM vecext.codecs WHERE name = %s", [name]
    ).fetchone()
    return None if row is None else (str(row[0]), int(row[1]), str(row[2]))


def require_codec(pconn: Any, name: str) -> tuple[str, int, str]:
    row = codec_row(pconn, name)
    if row is None:
        known = [r[0] for r in pconn.execute("SELECT name FROM vecext.codecs ORDER BY name")]
        raise MigrationError(
            f"codec {name!r} does not exist in the vecext catalog of database "
            f"{pconn.info.dbname!r} (codecs there: {', '.join(known) or 'none'}); create it "
            "first with op.create_codec(...)"
        )
    return row


# ---------------------------------------------------------------------------
# codecs


def _load_file(operations: Operations, path: str) -> Any:
    from vecext.codecs import CodecError, codec_from_state, load_state

    p = Path(path)
    if not p.is_absolute():
        script = operations.get_context().script
        base = Path(script.dir) if script is not None else Path.cwd()
        p = base / p
    if not p.is_file():
        raise MigrationError(f"codec file {str(p)!r} does not exist")
    try:
        return codec_from_state(load_state(p.read_bytes()))
    except CodecError as exc:
        raise MigrationError(f"codec file {str(p)!r} is not a saved vecext codec: {exc}") from exc


@Operations.implementation_for(ops.CreateCodecOp)
def create_codec(operations: Operations, op: ops.CreateCodecOp) -> None:
    from vecext.codecs import CodecError
    from vecext.postgres import codecs as pg_codecs

    pconn = _pg(operations)
    _catalog(pconn)
    if codec_row(pconn, op.name) is not None:
        raise MigrationError(
            f"codec {op.name!r} already exists in the vecext catalog; drop it first "
            "(op.drop_codec) or choose another name"
        )
    if op.from_file is not None:
        codec = _load_file(operations, op.from_file)
        if op.table is not None and op.column is not None:
            d = check_vector_column(pconn, op.table, op.column, op.schema)
            if d != codec.d:
                raise MigrationError(
                    f"codec file {op.from_file!r} encodes {codec.d}-d vectors, column "
                    f"{op.table}.{op.column} holds vector({d})"
                )
    else:
        assert op.table is not None and op.column is not None and op.kind is not None
        check_vector_column(pconn, op.table, op.column, op.schema)
        log.info("training %s codec %r on %s.%s", op.kind, op.name, op.table, op.column)
        try:
            pg_codecs.train_codec(
                pconn,
                op.name,
                table_ref(op.table, op.schema),
                op.column,
                op.kind,
                metric=op.metric,
                sample=op.sample or DEFAULT_SAMPLE,
                seed=op.seed,
                **op.params,
            )
        except CodecError as exc:
            raise MigrationError(
                f"create_codec({op.name!r}) on {op.table}.{op.column}: {exc} (a codec is "
                "trained on rows already in the table: load data first, or create it "
                "from_file=)"
            ) from exc
        return
    pg_codecs.save_codec(pconn, op.name, codec)


@Operations.implementation_for(ops.DropCodecOp)
def drop_codec(operations: Operations, op: ops.DropCodecOp) -> None:
    from vecext.postgres import codecs as pg_codecs

    pconn = _pg(operations)
    _catalog(pconn)
    require_codec(pconn, op.name)
    users = pconn.execute(
        "SELECT table_schema || '.' || table_name || '.' || code_column "
        "FROM vecext.compressed_columns WHERE codec_name = %s OR ivf_codec_name = %s",
        [op.name, op.name],
    ).fetchall()
    if users:
        raise MigrationError(
            f"codec {op.name!r} is still used by compressed column(s) "
            f"{', '.join(u[0] for u in users)}; drop them first (op.drop_compressed_column)"
        )
    pg_codecs.drop_codec(pconn, op.name)


# ---------------------------------------------------------------------------
# compressed columns


def _store_catalog(pconn: Any) -> bool:
    """Catalog 0.4.0 or later: code stores, rows keyed by OID."""
    from vecext.postgres.stores import has_stores

    return has_stores(pconn)


def _registered(pconn: Any, table_oid: int, code_column: str) -> tuple[str, str, str] | None:
    """``(source column, codec, layout)`` of a registered compressed column, or ``None``."""
    if _store_catalog(pconn):  # rows keyed by OID
        query = (
            "SELECT coalesce(a.attname, c.source_column), c.codec_name, c.layout "
            "FROM vecext.compressed_columns c LEFT JOIN pg_attribute a "
            "ON a.attrelid = c.table_oid AND a.attnum = c.source_attnum AND NOT a.attisdropped "
            "WHERE c.table_oid = %s AND c.code_column = %s"
        )
    else:
        query = (
            "SELECT c.source_column, c.codec_name, 'table' FROM vecext.compressed_columns c "
            "JOIN pg_class t ON t.relname = c.table_name "
            "JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = c.table_schema "
            "WHERE t.oid = %s AND c.code_column = %s"
        )
    row = pconn.execute(query, [table_oid, code_column]).fetchone()
    return None if row is None else (str(row[0]), str(row[1]), str(row[2]))


def _model_columns(operations: Operations, table: str, schema: str | None) -> set[str] | None:
    """Column names of ``table`` in the migration's ``target_metadata`` (``None`` when
    env.py gives none or it has no such table)."""
    metadata = operations.get_context().opts.get("target_metadata")
    if metadata is None:
        return None
    for md in metadata if isinstance(metadata, (list, tuple)) else [metadata]:
        t = md.tables.get(f"{schema}.{table}" if schema else table)
        if t is not None:
            return {c.name for c in t.columns}
    return None


def resolve_layout(operations: Operations, pconn: Any, op: ops.AddCompressedColumnOp) -> str:
    """The layout of an ``add_compressed_column`` written without ``layout=`` (see
    :meth:`vecext.alembic.ops.AddCompressedColumnOp.add_compressed_column`)."""
    if op.layout is not None:
        return op.layout
    if not _store_catalog(pconn):
        return "table"
    model = _model_columns(operations, op.table, op.schema)
    if model is not None and op.code_column in model:
        log.info(
            "add_compressed_column(%r, %r) without layout=: the model maps %s as a table "
            "column, so layout 'table'",
            op.table,
            op.code_column,
            op.code_column,
        )
        return "table"
    return "store"


@Operations.implementation_for(ops.AddCompressedColumnOp)
def add_compressed_column(operations: Operations, op: ops.AddCompressedColumnOp) -> str:
    pconn = _pg(operations)
    _catalog(pconn)
    kind, cdim, _metric = require_codec(pconn, op.codec)
    d = check_vector_column(pconn, op.table, op.source_column, op.schema)
    if d != cdim:
        raise MigrationError(
            f"codec {op.codec!r} encodes {cdim}-d vectors, column "
            f"{_qualified(op.table, op.schema)}.{op.source_column} holds vector({d})"
        )
    oid = _regclass(pconn, op.table, op.schema)
    existing = _registered(pconn, oid, op.code_column) if op.code_column else None
    if existing is not None:
        if existing[:2] != (op.source_column, op.codec):
            raise MigrationError(
                f"{op.table}.{op.code_column} already holds codes of {existing[0]} by codec "
                f"{existing[1]!r}, not of {op.source_column} by {op.codec!r}"
            )
        if op.layout is not None and existing[2] != op.layout:
            raise MigrationError(
                f"{op.table}.{op.code_column} is already a compressed column of layout "
                f"{existing[2]!r}, not {op.layout!r}; drop it first (op.drop_compressed_column) "
                "or, from 'table' to 'store', use vecext.postgres.migrate_to_store"
            )
        # an earlier run stopped during the backfill: resume it
        name, layout = op.code_column, existing[2]
        log.info("compressed column %s.%s exists: resuming its backfill", op.table, name)
    else:
        layout = resolve_layout(operations, pconn, op)
        if _store_catalog(pconn):
            row = pconn.execute(
                "SELECT vecext.add_compressed_column(%s::oid::regclass, %s, %s, %s, %s)",
                [oid, op.source_column, op.codec, op.code_column, layout],
            ).fetchone()
        elif layout == "table":
            row = pconn.execute(
                "SELECT vecext.add_compressed_column(%s::oid::regclass, %s, %s, %s)",
                [oid, op.source_column, op.codec, op.code_column],
            ).fetchone()
        else:
            raise MigrationError(
                "layout='store' needs vecext catalog 0.4.0: upgrade it first "
                "(the vecext_0_4_0 revision)"
            )
        name = str(row[0])
    # before the backfill, which then writes the mirrored values with the codes
    mirror_added(operations, op, name, layout, new=existing is None)
    if op.backfill:
        # vecext.backfill commits every batch (resumable), so it runs outside the
        # migration's transaction block
        with operations.get_context().autocommit_block():
            _pg(operations).execute(
                "CALL vecext.backfill(%s::oid::regclass, %s, %s)", [oid, name, op.batch_size]
            )
    return name


@Operations.implementation_for(ops.DropCompressedColumnOp)
def drop_compressed_column(operations: Operations, op: ops.DropCompressedColumnOp) -> None:
    pconn = _pg(operations)
    _catalog(pconn)
    oid = _regclass(pconn, op.table, op.schema)
    if _registered(pconn, oid, op.code_column) is None:
        typ = column_type(pconn, op.table, op.code_column, op.schema)
        raise MigrationError(
            f"{_qualified(op.table, op.schema)}.{op.code_column} ({typ}) is not a vecext "
            "compressed column; refusing to drop it (vector columns are never dropped by "
            "vecext operations)"
        )
    # the SQL function drops the column's IVF lists too, except catalog 0.1.0's
    from vecext.postgres.ivf import drop_lists_for_old_catalog

    drop_lists_for_old_catalog(pconn, table_ref(op.table, op.schema), op.code_column)
    pconn.execute(
        "SELECT vecext.drop_compressed_column(%s::oid::regclass, %s)", [oid, op.code_column]
    )


# ---------------------------------------------------------------------------
# vector indexes


@Operations.implementation_for(ops.CreateVectorIndexOp)
def create_vector_index(operations: Operations, op: ops.CreateVectorIndexOp) -> None:
    from vecext.alembic import indexes

    pconn = _pg(operations)
    # a compressed column in a code store (not a column of the table): HNSW over its codes
    d = (
        None
        if indexes.code_store_target(pconn, op)
        else check_vector_column(pconn, op.table, op.column, op.schema)
    )
    if op.concurrently:
        with operations.get_context().autocommit_block():
            indexes.create(_pg(operations), op, d)
    else:
        indexes.create(_pg(operations), op, d)


@Operations.implementation_for(ops.DropVectorIndexOp)
def drop_vector_index(operations: Operations, op: ops.DropVectorIndexOp) -> None:
    from vecext.alembic import indexes

    if op.concurrently:
        with operations.get_context().autocommit_block():
            indexes.drop(_pg(operations), op)
    else:
        indexes.drop(_pg(operations), op)
