"""Keeping DuckDB code columns current: :func:`refresh` (also named ``backfill``).

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

A staged ``BLOB`` code column (see :mod:`vecext.duckdb.columns`) gets its list type in
one ``ALTER TABLE`` once no row is stale.
"""

from __future__ import annotations

from dataclasses import dataclass

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

from vecext.catalog import columns as cat
from vecext.codecs import Codec, CodecError
from vecext.duckdb import _arrow as ar
from vecext.duckdb import codeset
from vecext.duckdb._sql import (
    HASH_SUFFIX,
    TableRef,
    catalog_table,
    column_type,
    has_column,
    quote_ident,
    table_indexes,
    transaction,
)
from vecext.duckdb.catalog import DuckDialect, require_catalog
from vecext.duckdb.codecs import codec_info, load_codec
from vecext.duckdb.derived import batches, read_batch, stale_rowids, stale_sql, write_batch
from vecext.duckdb.ivf import refresh_lists
from vecext.duckdb.udfs import ensure_udfs
from vecext.errors import CatalogError

#: passes over the table before refresh gives up on rows that keep turning stale
_MAX_PASSES = 3


@dataclass(frozen=True)
class CompressedColumn(cat.CompressedColumn):
    """A row of ``vecext.compressed_columns`` (the fields of ``vecext.postgres``'s)."""

    @property
    def hash_column(self) -> str:
        """The companion column holding ``hash(source)`` of the encoded vector."""
        return self.code_column + HASH_SUFFIX


def registration(con: duckdb.DuckDBPyConnection, t: TableRef, code_column: str) -> CompressedColumn:
    """The catalog row of compressed column ``t.code_column``; :class:`CatalogError` if none."""
    cc = cat.compressed_column(DuckDialect(con), t, code_column, cls=CompressedColumn)
    assert isinstance(cc, CompressedColumn)
    return cc


def checked_codec(con: duckdb.DuckDBPyConnection, cc: cat.CompressedColumn) -> Codec:
    """The codec that made ``cc``'s codes; :class:`CodecVersionError` if the catalog now
    holds another version."""
    cat.check_current(cc, codec_info(con, cc.codec))
    return load_codec(con, cc.codec, fingerprint=cc.codec_fingerprint)


def stale_rows(con: duckdb.DuckDBPyConnection, table: str, code_column: str) -> int:
    """How many rows of a compressed column :func:`refresh` would (re-)encode."""
    require_catalog(con)
    t = catalog_table(con, table)
    reg = registration(con, t, code_column)
    stale = stale_sql(reg.source_column, reg.code_column)
    row = con.execute(f"SELECT count(*) FROM {t.sql} WHERE {stale}").fetchone()
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
    cat.check_batch_size(batch_size)
    t = catalog_table(con, table)
    reg = registration(con, t, code_column)
    for col in (reg.source_column, reg.code_column, reg.hash_column):
        if not has_column(con, t, col):
            raise CatalogError(
                f"compressed column {t}.{reg.code_column} is registered but its table has "
                f"no column {col!r}: drop it with vecext.duckdb.drop_compressed_column()"
            )
    list_column = reg.list_column
    for col in (list_column, list_column + HASH_SUFFIX) if list_column else ():
        if not has_column(con, t, col):
            raise CatalogError(
                f"compressed column {t}.{reg.code_column} has IVF lists in column "
                f"{list_column!r}, but its table has no column {col!r}: drop the lists with "
                "vecext.duckdb.drop_ivf_lists() (and add them again)"
            )
    codec = checked_codec(con, reg)
    stale = stale_sql(reg.source_column, reg.code_column)
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
            rowids = stale_rowids(con, t, stale)
            if rowids.size == 0:
                done = True
                break
            bar.update(task, total=total + rowids.size)
            for lo, hi in batches(rowids, batch_size):
                n = _encode_range(con, t, reg, codec, stale, lo, hi, staged)
                total += n
                elapsed = bar.tasks[task].elapsed or 0.0
                rate = f"{total / elapsed:,.0f} rows/s" if elapsed > 0 else ""
                bar.update(task, advance=n, rate=rate)
    if done and staged:
        _finalize(con, t, reg, codec)
    if done:
        cat.mark_ready(DuckDialect(con), reg.id, clear_position=False)
    if list_column:
        refresh_lists(con, f"{t.schema}.{t.name}", reg.code_column, batch_size=batch_size)
    if done:
        _record_mark(con, t, reg, stale)
    return total


def _record_mark(
    con: duckdb.DuckDBPyConnection, t: TableRef, reg: CompressedColumn, stale: str
) -> None:
    """Record the refresh mark (:mod:`vecext.duckdb.codeset`): the highest rowid, read in
    the snapshot that finds no stale codes (nor lists), so every row at or below it is
    current. Rows written later get higher rowids and the search reranks them exactly."""
    if reg.list_column:
        stale = f"({stale} OR {stale_sql(reg.source_column, reg.list_column)})"
    with transaction(con):
        row = con.execute(
            f"SELECT count(*) FILTER (WHERE {stale}), max(rowid) FROM {t.sql}"
        ).fetchone()
        if row is not None and int(row[0]) == 0:
            mark = -1 if row[1] is None else int(row[1])
            cat.set_position(DuckDialect(con), reg.id, codeset.MARK_TEXT.format(mark))


#: The same function under the name of its first use: fill the codes of a new column.
backfill = refresh


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
    with transaction(con):
        batch = read_batch(con, t, reg.source_column, stale, lo, hi, reg.key_column)
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
        layout = "blob" if staged else ar.code_layout(codec)
        values = ar.codes_to_arrow(codes, layout, valid, fixed=True)
        write_batch(con, t, reg.code_column, values, batch, lo, hi)
        cat.record_progress(DuckDialect(con), reg.id, str(hi), batch.num_rows)
    return batch.num_rows


def refuse_with_indexes(con: duckdb.DuckDBPyConnection, t: TableRef, what: str) -> None:
    """DuckDB refuses ``ALTER TABLE`` of a column of an indexed table: say so first."""
    found = table_indexes(con, t)
    if found:
        raise CatalogError(
            f"DuckDB cannot {what} of table {t} while it has indexes ({', '.join(found)}): "
            "drop them, call this again, and re-create them"
        )


def _finalize(
    con: duckdb.DuckDBPyConnection, t: TableRef, reg: CompressedColumn, codec: Codec
) -> None:
    """Turn a staged BLOB code column into its list type, in one statement."""
    refuse_with_indexes(con, t, f"change the type of column {reg.code_column}")
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
