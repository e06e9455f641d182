"""Compressed columns in DuckDB: a code column beside a vector column, kept current by
:func:`refresh`.

DuckDB has no triggers, so nothing re-encodes a row when its vector changes. Each
code column ``<code>`` has a companion column ``<code>__vecext_hash`` (``UBIGINT``)
holding DuckDB's ``hash()`` of the source vector the codes were made from. A row is
*stale* when that hash differs from ``hash(<source>)`` (the vector was inserted,
updated or set to NULL since) or when it has a vector but no codes; :func:`refresh`
re-encodes exactly the stale rows (and reassigns their IVF lists, if the column
has some). Call it after writing vectors, before searching the codes. (Another
DuckDB release may hash differently; the first refresh after an upgrade then
re-encodes every row once. Codes written by hand are not detected.)

Encoding runs in Python with the numpy/FAISS codec, in batches that each commit on
their own: rows are read through Arrow, encoded, and written back with
``UPDATE ... FROM`` a registered Arrow table. The source column is never written, so
a failed batch leaves everything as before it, and :func:`refresh` resumes.

DuckDB updates a list column (``UTINYINT[M]``, ``UBIGINT[W]``) by deleting and
re-inserting the whole row, 30-50x slower than an in-place ``BLOB`` update. So a new
PQ or binary column is *staged*: it starts as ``BLOB``, the backfill writes the code
bytes in place, and once no row is stale one ``ALTER TABLE ... SET DATA TYPE`` turns it
into its list type (status ``ready``). DuckDB refuses that ``ALTER`` (and ``DROP
COLUMN``) on a table with indexes (``CREATE INDEX``, HNSW); such tables get the list
type at once and the slower row updates. Later refreshes update rows of the final type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from vecext.codecs import Codec, CodecError, CodecVersionError
from vecext.duckdb import _arrow as ar
from vecext.duckdb._sql import (
    TableRef,
    column_type,
    has_column,
    primary_key,
    quote_ident,
    registered,
    resolve_table,
    transaction,
    vector_dim,
)
from vecext.duckdb.catalog import require_catalog
from vecext.duckdb.codecs import codec_info, load_codec
from vecext.duckdb.udfs import ensure_udfs
from vecext.errors import CatalogError

HASH_SUFFIX = "__vecext_hash"
#: passes over the table before refresh gives up on rows that keep turning stale
_MAX_PASSES = 3


@dataclass(frozen=True)
class CompressedColumn:
    """A row of ``vecext.compressed_columns`` (fields as ``vecext.postgres``'s)."""

    id: int
    table: TableRef
    source_column: str
    code_column: str
    codec: str
    codec_fingerprint: str
    key_column: str | None
    status: str
    backfill_position: str | None
    rows_encoded: int

    @property
    def hash_column(self) -> str:
        """The companion column holding ``hash(source)`` of the encoded vector."""
        return self.code_column + HASH_SUFFIX


_CC_SELECT = (
    "SELECT id, table_schema, table_name, source_column, code_column, codec_name, "
    "codec_fingerprint, key_column, status, backfill_position, rows_encoded "
    "FROM vecext.compressed_columns"
)


def _cc(database: str, r: tuple[Any, ...]) -> CompressedColumn:
    return CompressedColumn(int(r[0]), TableRef(database, r[1], r[2]), *r[3:10], int(r[10]))


def list_compressed_columns(
    con: duckdb.DuckDBPyConnection, table: str | None = None
) -> list[CompressedColumn]:
    """The registered compressed columns (of ``table``, or all)."""
    require_catalog(con)
    db = con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
    sql, args = _CC_SELECT, []
    if table is not None:
        t = resolve_table(con, table)
        sql += " WHERE table_schema = ? AND table_name = ?"
        args = [t.schema, t.name]
    rows = con.execute(sql + " ORDER BY table_schema, table_name, code_column", args).fetchall()
    return [_cc(db, r) for r in rows]


def compressed_column(
    con: duckdb.DuckDBPyConnection, table: str, code_column: str
) -> CompressedColumn:
    """The catalog entry of ``table.code_column``; :class:`CatalogError` if it has none."""
    require_catalog(con)
    return _registration(con, resolve_table(con, table), code_column)


def _registration(
    con: duckdb.DuckDBPyConnection, t: TableRef, code_column: str
) -> CompressedColumn:
    row = con.execute(
        _CC_SELECT + " WHERE table_schema = ? AND table_name = ? AND lower(code_column) = lower(?)",
        [t.schema, t.name, code_column],
    ).fetchone()
    if row is None:
        known = [c.code_column for c in list_compressed_columns(con, f"{t.schema}.{t.name}")]
        raise CatalogError(
            f"{t}.{code_column} is not a vecext compressed column "
            f"(compressed columns of {t}: {', '.join(known) if known else 'none'})"
        )
    return _cc(t.database, row)


def check_column_current(
    con: duckdb.DuckDBPyConnection, table: str, code_column: str
) -> CompressedColumn:
    """Check that the codes of ``table.code_column`` were made by the codec version the
    catalog holds now (search helpers call this before trusting the codes).

    Raises :class:`~vecext.codecs.CodecVersionError` naming both fingerprints otherwise.
    (Whether every row is encoded is :func:`stale_rows`' question.)
    """
    cc = compressed_column(con, table, code_column)
    _checked_codec(con, cc)
    return cc


def _checked_codec(con: duckdb.DuckDBPyConnection, cc: CompressedColumn) -> Codec:
    info = codec_info(con, cc.codec)
    if info.fingerprint != cc.codec_fingerprint:
        raise CodecVersionError(
            f"compressed column {cc.table}.{cc.code_column} holds codes of codec {cc.codec!r} "
            f"version {cc.codec_fingerprint}, but the catalog holds version {info.fingerprint}; "
            "re-encode the column (drop_compressed_column + add_compressed_column)"
        )
    return load_codec(con, cc.codec, fingerprint=cc.codec_fingerprint)


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise CodecError(f"batch_size must be a positive integer, got {batch_size!r}")


def add_compressed_column(
    con: duckdb.DuckDBPyConnection,
    table: str,
    source_column: str,
    codec: str,
    code_column: str | None = None,
    *,
    backfill: bool = True,
    batch_size: int = 10_000,
    progress: bool = True,
) -> str:
    """Add a code column beside a vector column, register it and (by default) fill it.

    Parameters
    ----------
    table, source_column
        The table and its ``FLOAT[d]`` / ``DOUBLE[d]`` column, ``d`` = the codec's.
    codec
        Name of a codec saved in the catalog.
    code_column
        Name of the new column; default ``<source_column>_<codec>``.
        Its type is ``UTINYINT[M]`` for PQ, ``UBIGINT[ceil(d/64)]`` for binary and
        ``BLOB`` otherwise; a companion ``<code_column>__vecext_hash`` is added too
        (see the module docstring).
    backfill, batch_size, progress
        Encode the existing rows now (:func:`refresh`), in committed batches of
        ``batch_size`` rows, with a progress bar. A PQ or binary column is ``BLOB``
        until every row is encoded (see the module docstring), also with
        ``backfill=False`` until :func:`refresh` has run.

    Returns
    -------
    str
        The code column's name.
    """
    require_catalog(con)
    _check_batch_size(batch_size)
    c = load_codec(con, codec)
    t = resolve_table(con, table)
    src, d = vector_dim(con, t, source_column)
    if d != c.d:
        raise CodecError(
            f"column {t}.{src} has dimension {d}, but codec {codec!r} expects dimension {c.d}"
        )
    code = code_column if code_column is not None else f"{src}_{codec}"
    if not isinstance(code, str) or not code:
        raise CatalogError(f"code_column must be a non-empty string, got {code!r}")
    for col in (code, code + HASH_SUFFIX):
        if has_column(con, t, col):
            registered_already = con.execute(
                "SELECT codec_name FROM vecext.compressed_columns WHERE table_schema = ? "
                "AND table_name = ? AND lower(code_column) = lower(?)",
                [t.schema, t.name, code],
            ).fetchone()
            hint = (
                f"; it is a compressed column of codec {registered_already[0]!r}: call "
                "vecext.duckdb.refresh() to fill it"
                if registered_already
                else ""
            )
            raise CatalogError(f"table {t} already has a column {col!r}{hint}")
    # staged as BLOB when the final list type can be set by ALTER later (module docstring)
    staged = ar.code_layout(c) != "blob" and not _indexes(con, t)
    ctype = "BLOB" if staged else ar.column_sql_type(c)
    with transaction(con):
        con.execute(f"ALTER TABLE {t.sql} ADD COLUMN {quote_ident(code)} {ctype}")
        con.execute(f"ALTER TABLE {t.sql} ADD COLUMN {quote_ident(code + HASH_SUFFIX)} UBIGINT")
        con.execute(
            "INSERT INTO vecext.compressed_columns (table_schema, table_name, source_column, "
            "code_column, codec_name, codec_fingerprint, key_column, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'backfilling')",
            [t.schema, t.name, src, code, codec, c.fingerprint, primary_key(con, t)],
        )
    if backfill:
        refresh(con, f"{t.schema}.{t.name}", code, batch_size=batch_size, progress=progress)
    return code


def _stale_sql(reg: CompressedColumn) -> str:
    src, code = quote_ident(reg.source_column), quote_ident(reg.code_column)
    h = quote_ident(reg.hash_column)
    return f"({h} IS DISTINCT FROM hash({src}) OR ({src} IS NOT NULL AND {code} IS NULL))"


def stale_rows(con: duckdb.DuckDBPyConnection, table: str, code_column: str) -> int:
    """How many rows of a compressed column :func:`refresh` would (re-)encode."""
    require_catalog(con)
    t = resolve_table(con, table)
    reg = _registration(con, t, code_column)
    row = con.execute(f"SELECT count(*) FROM {t.sql} WHERE {_stale_sql(reg)}").fetchone()
    return int(row[0]) if row else 0


def refresh(
    con: duckdb.DuckDBPyConnection,
    table: str,
    code_column: str,
    *,
    batch_size: int = 10_000,
    progress: bool = True,
) -> int:
    """Encode the rows of a compressed column whose codes are missing or stale, and
    reassign their IVF lists if the column has some.

    DuckDB has no triggers: call this after inserting or updating vectors (see the
    module docstring for how staleness is detected). Each batch of ``batch_size``
    rows commits on its own (inside a caller's open transaction, everything joins it),
    so an interrupted refresh keeps its progress and a new call resumes. The source
    column is never written. Then the list ids of the rows whose vector changed or
    that have none are assigned (:func:`vecext.duckdb.refresh_lists`), so the IVF
    search finds every row where its vector is now. Returns the number of rows
    encoded (``refresh_lists`` returns the number of list ids assigned).
    """
    require_catalog(con)
    _check_batch_size(batch_size)
    t = resolve_table(con, table)
    reg = _registration(con, t, code_column)
    for col in (reg.source_column, reg.code_column, reg.hash_column):
        if not has_column(con, t, col):
            raise CatalogError(
                f"compressed column {t}.{reg.code_column} is registered but its table has "
                f"no column {col!r}: drop it with vecext.duckdb.drop_compressed_column()"
            )
    list_column, _ = _lists_of(con, reg)
    for col in (list_column, list_column + HASH_SUFFIX) if list_column else ():
        if not has_column(con, t, col):
            raise CatalogError(
                f"compressed column {t}.{reg.code_column} has IVF lists in column "
                f"{list_column!r}, but its table has no column {col!r}: drop the lists with "
                "vecext.duckdb.drop_ivf_lists() (and add them again)"
            )
    codec = _checked_codec(con, reg)
    stale = _stale_sql(reg)
    final = ar.column_sql_type(codec)
    current = column_type(con, t, reg.code_column)[1]
    staged = current == "BLOB" and final != "BLOB"
    if current != final and not staged:
        raise CatalogError(
            f"compressed column {t}.{reg.code_column} has type {current}, but codec "
            f"{reg.codec!r} writes {final}: drop and re-add the column"
        )
    total = 0
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        disable=not progress,
        transient=False,
    ) as bar:
        task = bar.add_task(f"encoding {t}.{reg.code_column}", total=None, rate="")
        # a pass ends with a scan that finds nothing stale; another pass covers rows
        # whose rowid moved meanwhile (DuckDB may compact row groups on checkpoint)
        done = False
        for _ in range(_MAX_PASSES):
            ids = con.execute(f"SELECT rowid FROM {t.sql} WHERE {stale} ORDER BY rowid")
            rowids = np.asarray(ids.fetchnumpy()["rowid"], dtype=np.int64)
            if rowids.size == 0:
                done = True
                break
            bar.update(task, total=total + rowids.size)
            for i0 in range(0, rowids.size, batch_size):
                lo, hi = int(rowids[i0]), int(rowids[min(i0 + batch_size, rowids.size) - 1])
                n = _encode_range(con, t, reg, codec, stale, lo, hi, staged)
                total += n
                elapsed = bar.tasks[task].elapsed or 0.0
                rate = f"{total / elapsed:,.0f} rows/s" if elapsed > 0 else ""
                bar.update(task, advance=n, rate=rate)
    if done and staged:
        _finalize(con, t, reg, codec)
    if done:
        con.execute(
            "UPDATE vecext.compressed_columns SET status = 'ready', updated_at = current_timestamp "
            "WHERE table_schema = ? AND table_name = ? AND code_column = ?",
            [t.schema, t.name, reg.code_column],
        )
    if list_column:
        from vecext.duckdb.ivf import refresh_lists

        refresh_lists(con, f"{t.schema}.{t.name}", reg.code_column, batch_size=batch_size)
    return total


def _encode_range(
    con: duckdb.DuckDBPyConnection,
    t: TableRef,
    reg: CompressedColumn,
    codec: Codec,
    stale: str,
    lo: int,
    hi: int,
    staged: bool,
) -> int:
    """Encode the stale rows with ``lo <= rowid <= hi`` in one transaction."""
    src = quote_ident(reg.source_column)
    key = f", {quote_ident(reg.key_column)} AS k" if reg.key_column else ""
    in_range = "rowid BETWEEN ? AND ?"
    with transaction(con):
        batch = con.execute(
            f"SELECT rowid AS rid, {src} AS v, hash({src}) AS h{key} FROM {t.sql} "
            f"WHERE {in_range} AND {stale}",
            [lo, hi],
        ).to_arrow_table()
        if batch.num_rows == 0:
            return 0
        X, valid = ar.list_matrix(
            batch.column("v"), codec.d, np.float32, f"{t}.{reg.source_column}"
        )
        bad = ~np.isfinite(X).all(axis=1)
        if bad.any():
            where = _row_name(batch, reg, np.flatnonzero(valid)[np.argmax(bad)])
            raise CodecError(
                f"cannot encode {t}.{reg.source_column}: {where} has NaN or infinite values; "
                f"fix it and call vecext.duckdb.refresh(con, {str(t)!r}, {reg.code_column!r}) "
                "to resume"
            )
        try:
            codes = codec.encode(X)
        except CodecError as exc:
            raise CodecError(
                f"cannot encode {t}.{reg.source_column}: {exc}; fix the data and call "
                "vecext.duckdb.refresh() to resume"
            ) from exc
        update = pa.table(
            {
                "rid": batch.column("rid"),
                "code": ar.codes_to_arrow(
                    codes, "blob" if staged else ar.code_layout(codec), valid, fixed=True
                ),
                "h": batch.column("h"),
            }
        )
        code, h = quote_ident(reg.code_column), quote_ident(reg.hash_column)
        with registered(con, update) as u:
            con.execute(
                f"UPDATE {t.sql} AS tgt SET {code} = u.code, {h} = u.h FROM {u} AS u "
                f"WHERE tgt.rowid = u.rid AND tgt.{in_range}",
                [lo, hi],
            )
        con.execute(
            "UPDATE vecext.compressed_columns SET rows_encoded = rows_encoded + ?, "
            "backfill_position = ?, updated_at = current_timestamp "
            "WHERE table_schema = ? AND table_name = ? AND code_column = ?",
            [batch.num_rows, str(hi), t.schema, t.name, reg.code_column],
        )
    return batch.num_rows


def _indexes(con: duckdb.DuckDBPyConnection, t: TableRef) -> list[str]:
    rows = con.execute(
        "SELECT index_name FROM duckdb_indexes() WHERE database_name = ? AND schema_name = ? "
        "AND table_name = ? ORDER BY 1",
        [t.database, t.schema, t.name],
    ).fetchall()
    return [r[0] for r in rows]


def _refuse_with_indexes(con: duckdb.DuckDBPyConnection, t: TableRef, what: str) -> None:
    found = _indexes(con, t)
    if found:
        raise CatalogError(
            f"DuckDB cannot {what} of table {t} while it has indexes ({', '.join(found)}): "
            "drop them, call this again, and re-create them"
        )


def _finalize(
    con: duckdb.DuckDBPyConnection, t: TableRef, reg: CompressedColumn, codec: Codec
) -> None:
    """Turn a staged BLOB code column into its list type, in one statement."""
    _refuse_with_indexes(con, t, f"change the type of column {reg.code_column}")
    ensure_udfs(con)
    final = ar.column_sql_type(codec)
    fn = "vecext_udf_blob_to_u8" if ar.code_layout(codec) == "u8" else "vecext_udf_blob_to_u64"
    code = quote_ident(reg.code_column)
    con.execute(
        f"ALTER TABLE {t.sql} ALTER COLUMN {code} SET DATA TYPE {final} "
        f"USING CAST({fn}({code}) AS {final})"
    )


def _row_name(batch: pa.Table, reg: CompressedColumn, i: int) -> str:
    if reg.key_column:
        return f"the row with {reg.key_column} = {batch.column('k')[int(i)].as_py()!r}"
    return f"the row with rowid {batch.column('rid')[int(i)].as_py()}"


def drop_compressed_column(con: duckdb.DuckDBPyConnection, table: str, code_column: str) -> None:
    """Drop a code column, its hash column and its catalog row; the source is untouched.

    IVF lists added to the column (:func:`vecext.duckdb.add_ivf_lists`) rank rows by
    its codes and belong to it: their list and hash columns and their centroids go
    too, in the same transaction.
    """
    from vecext.duckdb.codecs import drop_codec

    require_catalog(con)
    t = resolve_table(con, table)
    reg = _registration(con, t, code_column)
    _refuse_with_indexes(con, t, f"drop column {reg.code_column}")
    list_column, ivf_codec = _lists_of(con, reg)
    columns = [reg.code_column, reg.hash_column]
    if list_column:
        columns += [list_column, list_column + HASH_SUFFIX]
    with transaction(con):
        for col in columns:
            if has_column(con, t, col):
                con.execute(f"ALTER TABLE {t.sql} DROP COLUMN {quote_ident(col)}")
        con.execute("DELETE FROM vecext.compressed_columns WHERE id = ?", [reg.id])
        if ivf_codec:
            drop_codec(con, ivf_codec, missing_ok=True)


def _lists_of(
    con: duckdb.DuckDBPyConnection, reg: CompressedColumn
) -> tuple[str | None, str | None]:
    """``(list column, IVF codec)`` recorded for a compressed column, or ``(None, None)``."""
    row = con.execute(
        "SELECT list_column, ivf_codec_name FROM vecext.compressed_columns WHERE id = ?",
        [reg.id],
    ).fetchone()
    return (row[0], row[1]) if row else (None, None)


#: The same call under the PostgreSQL adapter's name (``vecext.postgres.backfill``).
backfill = refresh
