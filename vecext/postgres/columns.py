"""Compressed columns in PostgreSQL: add, refresh (resumable, bulk COPY), check, drop.

The DDL lives in SQL (``vecext.add_compressed_column``, ``vecext.drop_compressed_column``
in ``sql/postgres/``), so the Python API and plain SQL create the same code store,
triggers and catalog entry (:mod:`vecext.postgres.stores`). Python adds clear input
checks and the fast backfill (:mod:`vecext.postgres.bulk`): vectors are read with
binary COPY, encoded by the numpy codec, written with binary COPY to a temporary
table and inserted into the store, one transaction per batch, each recording its
last key in ``vecext.compressed_columns`` so that an interrupted fill resumes after
the last committed batch.

``refresh`` and ``backfill`` are one function under two names, as in
``vecext.duckdb``: bring a compressed column up to date. Here the triggers already
encode every inserted or updated row, so what is left to encode is the rows whose
codes are missing (a column added with ``backfill=False``, an interrupted fill).
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg import sql

from vecext.catalog import columns as cat
from vecext.catalog.columns import CompressedColumn
from vecext.codecs import codec_kind
from vecext.errors import CatalogError
from vecext.postgres import pgvector, stores
from vecext.postgres.bulk import Backfill, BackfillError
from vecext.postgres.catalog import require_catalog
from vecext.postgres.codecs import codec_errors, codec_info, load_codec
from vecext.postgres.ivf import drop_lists_for_old_catalog
from vecext.postgres.stores import PgCompressedColumn
from vecext.postgres.tables import (
    TableRef,
    VectorColumn,
    column_type,
    read_vectors,
    resolve_column,
    resolve_table,
)

# ---------------------------------------------------------------------------
# the catalog's compressed columns


def list_compressed_columns(
    conn: psycopg.Connection, table: str | None = None
) -> list[CompressedColumn]:
    """The registered compressed columns (of ``table``, or all), oldest first; names as
    the tables and columns are called now (rows are keyed by OID and attnum)."""
    require_catalog(conn)
    oid = resolve_table(conn, table).oid if table is not None else None
    return list(stores.compressed_columns(conn, oid))


def compressed_column(conn: psycopg.Connection, table: str, code_column: str) -> PgCompressedColumn:
    """The registration of ``table.code_column`` (:class:`CatalogError` if none)."""
    require_catalog(conn)
    return stores.compressed_column(conn, resolve_table(conn, table), code_column)


def check_column_current(
    conn: psycopg.Connection, table: str, code_column: str
) -> PgCompressedColumn:
    """Check that the codes of ``table.code_column`` were made by the codec version
    the catalog holds now; search helpers call this before trusting the codes.

    Raises
    ------
    CodecVersionError
        The column's codes are of another version (names both fingerprints).
    CatalogError
        Not a registered compressed column.
    """
    cc = compressed_column(conn, table, code_column)
    cat.check_current(cc, codec_info(conn, cc.codec))
    return cc


# ---------------------------------------------------------------------------
# add / drop


def add_compressed_column(
    conn: psycopg.Connection,
    table: str,
    source_column: str,
    codec: str,
    code_column: str | None = None,
    *,
    backfill: bool = True,
    batch_size: int = 10_000,
    progress: bool = True,
    layout: str = "store",
    mirror: Iterable[str] | None = None,
) -> str:
    """Add a compressed column of ``codec`` for ``source_column``: a code store kept
    current by triggers (see :mod:`vecext.postgres.stores`); the table is not altered.

    Parameters
    ----------
    table
        Table name, optionally schema-qualified (``"app.items"``). It needs a
        single-column primary key (the store is keyed by it).
    source_column
        A ``vector(d)`` column, or a ``halfvec(d)`` one (storage mode: the table keeps
        half-precision vectors only, which the search reranks with); ``d`` must be the
        codec's dimension.
    codec
        Name of a saved codec.
    code_column
        Name of the compressed column (default ``<source_column>_<codec>``); search,
        calibration and indexes name it. It is not a column of the table.
    backfill
        Encode the existing rows now (binary COPY into the store, resumable with
        :func:`refresh`).
    batch_size
        Rows per committed batch.
    progress
        Show a progress bar.
    layout
        ``"store"`` (the default): the codes go to a code store. ``"table"``: a code
        column of the table with a BEFORE trigger, as before catalog 0.4.0 (what an ORM
        model that declares the code column, ``vecext.sqlalchemy.compressed_column``,
        needs; the backfill then updates every row).
    mirror
        Filter columns of the table to mirror into the code store (catalog 0.6.0,
        :func:`vecext.postgres.mirror_columns`): a search filtering on them only scans
        the store, with a btree per column, instead of joining the table. The declared
        tenant column (:func:`vecext.postgres.declare_tenant_column`) is always mirrored.

    Returns
    -------
    str
        The compressed column's name.

    Notes
    -----
    The codes go to ``vecext."store_<id>"``; the user's table gets two triggers and
    nothing else (no new column, no UPDATE, no rewrite), so its size and indexes stay
    as they are. Writers need no privilege on schema ``vecext``: the triggers run as
    the catalog owner.
    """
    cat.check_batch_size(batch_size)
    if layout not in ("store", "table"):
        raise CatalogError(f"layout must be 'store' or 'table', got {layout!r}")
    if backfill:
        _require_idle(conn)
    with conn.transaction(), codec_errors():
        require_catalog(conn)  # before 0.4.0: the code column of that catalog's function
        info = codec_info(conn, codec)
        pgvector.require(conn, codec_kind(info.kind).pgvector_feature)
        col = resolve_column(conn, table, source_column, dim=info.dim, halfvec=True)
        if col.storage == "halfvec" and layout == "table":
            raise CatalogError(
                f"{col.table}.{source_column} is halfvec({col.dim}): the in-table layout "
                "encodes vector columns only; use the default layout='store'"
            )
        pk = conn.execute(
            """SELECT count(*) FROM pg_index
               WHERE indrelid = %s AND indisprimary AND indnkeyatts = 1""",
            [col.table.oid],
        ).fetchone()
        if not pk or not pk[0]:
            raise CatalogError(
                f"table {col.table} needs a single-column primary key: its code store "
                "is keyed by it"
            )
        name = code_column or f"{source_column}_{codec}"
        if column_type(conn, col.table, name) is not None:
            raise CatalogError(f"table {col.table} already has a column {name!r}")
        if stores.has_stores(conn):
            row = conn.execute(
                "SELECT vecext.add_compressed_column(%s::oid::regclass, %s, %s, %s, %s)",
                [col.table.oid, source_column, codec, name, layout],
            ).fetchone()
        elif layout == "table":  # a catalog before 0.4.0: its function adds a code column
            row = conn.execute(
                "SELECT vecext.add_compressed_column(%s::oid::regclass, %s, %s, %s)",
                [col.table.oid, source_column, codec, name],
            ).fetchone()
        else:
            raise CatalogError(
                f"the vecext catalog is version {require_catalog(conn)}: code stores need "
                "0.4.0; run `vecext install` to upgrade it (or pass layout='table')"
            )
        wanted = [mirror] if isinstance(mirror, str) else list(mirror or [])
        wanted += _tenant_to_mirror(conn, col.table, layout, wanted)
    assert row is not None
    if wanted:
        _mirror_new(conn, col.table, str(row[0]), wanted, batch_size)
    if backfill:
        refresh(conn, col.table.qualified, row[0], batch_size=batch_size, progress=progress)
    return str(row[0])


def _tenant_to_mirror(
    conn: psycopg.Connection, t: TableRef, layout: str, wanted: list[str]
) -> list[str]:
    """The declared tenant column, when a new code store should mirror it (catalog 0.6.0)."""
    from vecext.postgres.mirrors import has_mirrors

    if layout != "store" or not has_mirrors(conn):
        return []
    row = conn.execute(
        "SELECT tenant_column FROM vecext.tenant_columns WHERE table_schema = %s AND table_name = %s",
        [t.schema, t.name],
    ).fetchone()
    return [str(row[0])] if row is not None and row[0] not in wanted else []


def _mirror_new(
    conn: psycopg.Connection, t: TableRef, name: str, wanted: list[str], batch: int
) -> None:
    """Mirror ``wanted`` into the new column's store, before its backfill (which then
    writes their values with the codes); a bad column drops the new compressed column."""
    from vecext.postgres.mirrors import mirror_columns

    try:
        mirror_columns(conn, t.qualified, name, wanted, batch_size=batch)
    except BaseException:
        drop_compressed_column(conn, t.qualified, name)
        raise


def drop_compressed_column(conn: psycopg.Connection, table: str, code_column: str) -> None:
    """Drop the compressed column ``table.code_column``: its code store (or, layout
    ``table``, its code column) with its triggers, and its catalog entry (the source stays).

    IVF lists added to the column (:func:`vecext.postgres.add_ivf_lists`) rank rows
    by its codes and belong to it: they go too (list column and its indexes, list
    trigger, centroids), in the same transaction. The SQL function
    ``vecext.drop_compressed_column`` does all of it; on a catalog still at 0.1.0,
    whose function leaves the lists, they are dropped here first (lists it orphaned
    before: :func:`vecext.postgres.drop_orphaned_ivf_lists`).
    """
    cc = compressed_column(conn, table, code_column)
    with conn.transaction():
        drop_lists_for_old_catalog(conn, cc.table.qualified, code_column)
        conn.execute(
            "SELECT vecext.drop_compressed_column(%s::oid::regclass, %s)",
            [cc.table.oid, code_column],
        )


# ---------------------------------------------------------------------------
# refresh (backfill)


def refresh(
    conn: psycopg.Connection,
    table: str,
    code_column: str,
    *,
    batch_size: int = 10_000,
    progress: bool = True,
) -> int:
    """Bring a compressed column up to date: encode the rows of ``table.code_column``
    whose codes are missing, in batches. (The trigger keeps inserted and updated rows
    current, and the IVF lists' trigger their list ids.)

    Each batch is one transaction that also records its last key, so after a
    failure (or Ctrl-C) a new call continues after the last committed batch; the
    source column is only read. Returns the number of rows encoded.

    Raises
    ------
    BackfillError
        A batch failed (the message names the batch and the cause).
    CodecVersionError
        The column's codes are of another codec version.
    """
    cat.check_batch_size(batch_size)
    _require_idle(conn)
    with conn.transaction():  # a real transaction: the connection is idle
        cc = check_column_current(conn, table, code_column)
        codec = load_codec(conn, cc.codec, fingerprint=cc.codec_fingerprint)
        job = Backfill(conn, cc, codec, batch_size)
    return job.run(progress)


#: The same function under the name of its first use (and of the SQL procedure
#: ``vecext.backfill``): fill the codes of a new column.
backfill = refresh


def stale_rows(conn: psycopg.Connection, table: str, code_column: str) -> int:
    """How many rows of a compressed column :func:`refresh` would encode (rows with a
    vector and no codes)."""
    cc = compressed_column(conn, table, code_column)
    assert cc.key_column is not None, "a PostgreSQL compressed column has a key"
    (n,) = conn.execute(
        sql.SQL("SELECT count(*) FROM {} t WHERE NOT {} AND t.{} IS NOT NULL").format(
            cc.table.ident,
            stores.has_code(cc, sql.SQL("t.{}").format(sql.Identifier(cc.key_column))),
            sql.Identifier(cc.source_column),
        )
    ).fetchone()  # type: ignore[misc]
    return int(n)


def _require_idle(conn: psycopg.Connection) -> None:
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise CatalogError(
            "a backfill commits every batch: call it outside a transaction block "
            "(commit or roll back first, or pass backfill=False)"
        )


__all__ = [
    "BackfillError",
    "CompressedColumn",
    "PgCompressedColumn",
    "TableRef",
    "VectorColumn",
    "add_compressed_column",
    "backfill",
    "check_column_current",
    "compressed_column",
    "drop_compressed_column",
    "list_compressed_columns",
    "read_vectors",
    "refresh",
    "resolve_column",
    "resolve_table",
    "stale_rows",
]
