"""Compressed columns in PostgreSQL: add, backfill (resumable, bulk COPY), check, drop.

The DDL lives in SQL (``vecext.add_compressed_column``, ``vecext.drop_compressed_column``
in ``sql/postgres/``), so the Python API and plain SQL create the same column,
trigger and catalog entry. Python adds clear input checks and the fast backfill:
vectors are read with binary COPY, encoded by the numpy codec, written with
binary COPY to a temporary table and merged by primary key, one transaction per
batch, each recording its last key in ``vecext.compressed_columns`` so that an
interrupted backfill resumes after the last committed batch.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from vecext.codecs import CodecError, CodecVersionError
from vecext.errors import CatalogError, VecextError, VecextWarning
from vecext.postgres import copybin, pgvector
from vecext.postgres.catalog import require_catalog
from vecext.postgres.codecs import _FEATURE, codec_errors, codec_info, load_codec


class BackfillError(VecextError):
    """A backfill batch failed; earlier batches are committed and ``backfill`` resumes.

    Attributes: ``position`` (the last committed key, as text, or ``None``) and
    ``rows_encoded`` (rows committed by this call).
    """

    def __init__(self, message: str, position: str | None, rows_encoded: int) -> None:
        super().__init__(message)
        self.position = position
        self.rows_encoded = rows_encoded


@dataclass(frozen=True)
class TableRef:
    oid: int
    schema: str
    name: str

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def qualified(self) -> str:
        """The quoted, schema-qualified name (what ``to_regclass`` reads back)."""
        return self.ident.as_string(None)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class VectorColumn:
    table: TableRef
    name: str
    dim: int


@dataclass(frozen=True)
class CompressedColumn:
    """A row of ``vecext.compressed_columns``."""

    id: int
    table: TableRef
    source_column: str
    code_column: str
    codec: str
    codec_fingerprint: str
    key_column: str
    status: str
    backfill_position: str | None
    rows_encoded: int


# ---------------------------------------------------------------------------
# resolution and checks


def resolve_table(conn: psycopg.Connection, table: str) -> TableRef:
    """A table by (optionally schema-qualified, SQL-quoted) name, as PostgreSQL resolves it."""
    try:
        row = conn.execute(
            """SELECT c.oid, n.nspname, c.relname FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'p')""",
            [table],
        ).fetchone()
    except psycopg.errors.InvalidName as exc:
        if not conn.autocommit:
            conn.rollback()
        raise CatalogError(f"invalid table name {table!r}: {exc.diag.message_primary}") from None
    if row is None:
        raise CatalogError(f"table {table!r} does not exist")
    return TableRef(int(row[0]), row[1], row[2])


def _column_type(conn: psycopg.Connection, t: TableRef, column: str) -> tuple[str, int, int] | None:
    row = conn.execute(
        """SELECT format_type(atttypid, atttypmod), atttypid = to_regtype('vector'), atttypmod
           FROM pg_attribute WHERE attrelid = %s AND attname = %s AND attnum > 0
           AND NOT attisdropped""",
        [t.oid, column],
    ).fetchone()
    return None if row is None else (row[0], bool(row[1]), int(row[2]))


def resolve_column(
    conn: psycopg.Connection, table: str, column: str, *, dim: int | None = None
) -> VectorColumn:
    """A ``vector(d)`` column; with ``dim``, ``d`` must equal it (the error names both)."""
    t = resolve_table(conn, table)
    typ = _column_type(conn, t, column)
    if typ is None:
        raise CatalogError(f"table {t} has no column {column!r}")
    text, is_vector, typmod = typ
    want = f"vector({dim})" if dim else "vector(d)"
    if not is_vector or typmod < 0:
        raise CodecError(f"column {t}.{column} is {text}, expected {want}")
    if dim is not None and typmod != dim:
        raise CodecError(
            f"column {t}.{column} has dimension {typmod} ({text}), "
            f"but the codec expects dimension {dim} ({want})"
        )
    return VectorColumn(t, column, typmod)


def read_vectors(
    conn: psycopg.Connection, col: VectorColumn, *, sample: int, seed: int
) -> np.ndarray:
    """Up to ``sample`` non-NULL vectors of ``col``, repeatable for a given ``seed``.

    A table of at most ``2 * sample`` rows is shuffled (``setseed`` + ``ORDER BY
    random()``); a larger one is sampled row by row (``TABLESAMPLE BERNOULLI``
    at ``sample / rows``, ``REPEATABLE (seed)``), so neither favours the first
    rows on disk.
    """
    t, c = col.table, sql.Identifier(col.name)
    est = conn.execute("SELECT reltuples FROM pg_class WHERE oid = %s", [t.oid]).fetchone()
    rows = float(est[0]) if est else -1.0
    if rows < 0:  # never analysed
        n = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(t.ident)).fetchone()
        rows = float(n[0]) if n else 0.0
    if rows <= 2 * sample:
        conn.execute("SELECT setseed(%s)", [(int(seed) % 2000 - 1000) / 1000])
        query = sql.SQL(
            "COPY (SELECT {c} FROM {t} WHERE {c} IS NOT NULL ORDER BY random() LIMIT {n}) "
            "TO STDOUT (FORMAT binary)"
        ).format(c=c, t=t.ident, n=sql.Literal(int(sample)))
    else:
        query = sql.SQL(
            "COPY (SELECT {c} FROM {t} TABLESAMPLE BERNOULLI ({pct}) REPEATABLE ({seed}) "
            "WHERE {c} IS NOT NULL LIMIT {n}) TO STDOUT (FORMAT binary)"
        ).format(
            c=c,
            t=t.ident,
            pct=sql.Literal(min(100.0, 100.0 * sample / rows)),
            seed=sql.Literal(int(seed)),
            n=sql.Literal(int(sample)),
        )
    with conn.cursor() as cur, cur.copy(query) as copy:
        data = b"".join(bytes(b) for b in copy)
    _, x = copybin.parse_key_vectors(data, col.dim, None)
    return x


def list_compressed_columns(conn: psycopg.Connection) -> list[CompressedColumn]:
    """Every registered compressed column."""
    require_catalog(conn)
    rows = conn.execute(_CC_SELECT + " ORDER BY k.id").fetchall()
    return [_cc(r) for r in rows]


_CC_SELECT = """SELECT k.id, c.oid, k.table_schema, k.table_name, k.source_column,
                       k.code_column, k.codec_name, k.codec_fingerprint, k.key_column,
                       k.status, k.backfill_position, k.rows_encoded
                FROM vecext.compressed_columns k
                LEFT JOIN pg_namespace n ON n.nspname = k.table_schema
                LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = k.table_name"""


def _cc(r: Any) -> CompressedColumn:
    return CompressedColumn(
        int(r[0]),
        TableRef(int(r[1] or 0), r[2], r[3]),
        r[4],
        r[5],
        r[6],
        r[7],
        r[8],
        r[9],
        r[10],
        int(r[11]),
    )


def compressed_column(conn: psycopg.Connection, table: str, code_column: str) -> CompressedColumn:
    """The registration of ``table.code_column`` (:class:`CatalogError` if none)."""
    require_catalog(conn)
    t = resolve_table(conn, table)
    row = conn.execute(
        _CC_SELECT + " WHERE c.oid = %s AND k.code_column = %s", [t.oid, code_column]
    ).fetchone()
    if row is None:
        raise CatalogError(f"{t}.{code_column} is not a vecext compressed column")
    return _cc(row)


def check_column_current(
    conn: psycopg.Connection, table: str, code_column: str
) -> CompressedColumn:
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
    info = codec_info(conn, cc.codec)
    if info.fingerprint != cc.codec_fingerprint:
        raise CodecVersionError(
            f"compressed column {cc.table}.{code_column} holds codes of codec {cc.codec!r} "
            f"version {cc.codec_fingerprint}, but the catalog holds version {info.fingerprint}; "
            "re-encode the column (drop_compressed_column + add_compressed_column)"
        )
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
) -> str:
    """Add a code column of ``codec`` beside ``source_column``, kept current by a trigger.

    Parameters
    ----------
    table
        Table name, optionally schema-qualified (``"app.items"``).
    source_column
        A ``vector(d)`` column; ``d`` must be the codec's dimension.
    codec
        Name of a saved codec.
    code_column
        Name of the new column (default ``<source_column>_<codec>``).
    backfill
        Encode the existing rows now (bulk COPY path, resumable with :func:`backfill`).
    batch_size
        Rows per committed batch.
    progress
        Show a progress bar.

    Returns
    -------
    str
        The code column's name.

    Notes
    -----
    The backfill updates every row. On a table with pgvector HNSW or IVFFlat indexes
    those updates cannot stay on their page (HOT), so PostgreSQL inserts each new row
    version into every index: measured here, 10,000 rows of 384 dimensions took 0.4 s
    without an index and 6.7 s with one HNSW index, which then keeps the dead entries
    until VACUUM. A :class:`~vecext.errors.VecextWarning` says so; add compressed
    columns before building ANN indexes where you can.
    """
    _check_batch_size(batch_size)
    if backfill:
        _require_idle(conn)
    with conn.transaction(), codec_errors():
        require_catalog(conn)
        info = codec_info(conn, codec)
        pgvector.require(conn, _FEATURE.get(info.kind, "vector"))
        col = resolve_column(conn, table, source_column, dim=info.dim)
        if backfill:
            _warn_ann_indexes(conn, col.table)
        pk = conn.execute(
            """SELECT count(*) FROM pg_index
               WHERE indrelid = %s AND indisprimary AND indnkeyatts = 1""",
            [col.table.oid],
        ).fetchone()
        if not pk or not pk[0]:
            raise CatalogError(
                f"table {col.table} needs a single-column primary key: backfills go in "
                "batches keyed by it"
            )
        name = code_column or f"{source_column}_{codec}"
        if _column_type(conn, col.table, name) is not None:
            raise CatalogError(f"table {col.table} already has a column {name!r}")
        row = conn.execute(
            "SELECT vecext.add_compressed_column(%s::oid::regclass, %s, %s, %s)",
            [col.table.oid, source_column, codec, name],
        ).fetchone()
    assert row is not None
    if backfill:
        _backfill(conn, col.table.qualified, row[0], batch_size=batch_size, progress=progress)
    return str(row[0])


def _warn_ann_indexes(conn: psycopg.Connection, t: TableRef) -> None:
    names = [
        r[0]
        for r in conn.execute(
            """SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
               JOIN pg_am am ON am.oid = i.relam
               WHERE x.indrelid = %s AND am.amname IN ('hnsw', 'ivfflat') ORDER BY 1""",
            [t.oid],
        ).fetchall()
    ]
    if names:
        warnings.warn(
            f"table {t} has ANN index(es) {', '.join(names)}: the backfill updates every "
            "row and PostgreSQL inserts each new row version into every index (about 17x "
            "slower with one HNSW index, and the index keeps dead entries until VACUUM); "
            "add compressed columns before building ANN indexes where you can",
            VecextWarning,
            stacklevel=3,
        )


def drop_compressed_column(conn: psycopg.Connection, table: str, code_column: str) -> None:
    """Drop ``table.code_column``, its trigger and its catalog entry (the source stays).

    IVF lists added to the column (:func:`vecext.postgres.add_ivf_lists`) rank rows
    by its codes and belong to it: they go too (list column and its indexes, list
    trigger, centroids), in the same transaction. The SQL function
    ``vecext.drop_compressed_column`` does all of it; on a catalog still at 0.1.0,
    whose function leaves the lists, they are dropped here first (lists it orphaned
    before: :func:`vecext.postgres.drop_orphaned_ivf_lists`).
    """
    from vecext.postgres import ivf

    cc = compressed_column(conn, table, code_column)
    with conn.transaction():
        ivf.drop_lists_for_old_catalog(conn, cc.table.qualified, code_column)
        conn.execute(
            "SELECT vecext.drop_compressed_column(%s::oid::regclass, %s)",
            [cc.table.oid, code_column],
        )


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise CodecError(f"batch_size must be a positive integer, got {batch_size!r}")


# ---------------------------------------------------------------------------
# backfill


def backfill(
    conn: psycopg.Connection,
    table: str,
    code_column: str,
    *,
    batch_size: int = 10_000,
    progress: bool = True,
) -> int:
    """Encode the rows of ``table.code_column`` whose codes are missing, in batches.

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
    from vecext.postgres.bulk import Backfill

    _check_batch_size(batch_size)
    _require_idle(conn)
    with conn.transaction():  # a real transaction: the connection is idle
        cc = check_column_current(conn, table, code_column)
        codec = load_codec(conn, cc.codec, fingerprint=cc.codec_fingerprint)
        job = Backfill(conn, cc, codec, batch_size)
    return job.run(progress)


def _require_idle(conn: psycopg.Connection) -> None:
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise CatalogError(
            "a backfill commits every batch: call it outside a transaction block "
            "(commit or roll back first, or pass backfill=False)"
        )


_backfill = backfill  # add_compressed_column's keyword ``backfill`` shadows the name
