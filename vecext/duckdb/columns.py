"""Compressed columns in DuckDB: a code column beside a vector column, kept current by
:func:`~vecext.duckdb.refresh` (see :mod:`vecext.duckdb.refresh` for how stale rows are
found without triggers).

DuckDB updates a list column (``UTINYINT[M]``, ``UBIGINT[W]``) by deleting and
re-inserting the whole row, 30-50x slower than an in-place ``BLOB`` update. So a new
PQ or binary column is *staged*: it starts as ``BLOB``, the backfill writes the code
bytes in place, and once no row is stale one ``ALTER TABLE ... SET DATA TYPE`` turns it
into its list type (status ``ready``). DuckDB refuses that ``ALTER`` (and ``DROP
COLUMN``) on a table with indexes (``CREATE INDEX``, HNSW); such tables get the list
type at once and the slower row updates. Later refreshes update rows of the final type.
"""

from __future__ import annotations

import duckdb

from vecext.catalog import columns as cat
from vecext.codecs import CodecError
from vecext.duckdb import _arrow as ar
from vecext.duckdb._sql import (
    TableRef,
    catalog_table,
    has_column,
    primary_key,
    quote_ident,
    table_indexes,
    transaction,
    vector_dim,
)
from vecext.duckdb.catalog import DuckDialect, require_catalog
from vecext.duckdb.codecs import drop_codec, load_codec
from vecext.duckdb.refresh import (
    HASH_SUFFIX,
    CompressedColumn,
    backfill,
    checked_codec,
    refresh,
    refuse_with_indexes,
    registration,
    stale_rows,
)
from vecext.errors import CatalogError


def list_compressed_columns(
    con: duckdb.DuckDBPyConnection, table: str | None = None
) -> list[CompressedColumn]:
    """The registered compressed columns (of ``table``, or all)."""
    require_catalog(con)
    db = con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
    t = catalog_table(con, table) if table is not None else None
    return cat.compressed_columns(  # type: ignore[return-value]
        DuckDialect(con),
        lambda s, n: TableRef(db, s, n),
        schema=t.schema if t else None,
        table=t.name if t else None,
        cls=CompressedColumn,
    )


def compressed_column(
    con: duckdb.DuckDBPyConnection, table: str, code_column: str
) -> CompressedColumn:
    """The catalog entry of ``table.code_column``; :class:`CatalogError` if it has none."""
    require_catalog(con)
    return registration(con, catalog_table(con, table), code_column)


def check_column_current(
    con: duckdb.DuckDBPyConnection, table: str, code_column: str
) -> CompressedColumn:
    """Check that the codes of ``table.code_column`` were made by the codec version the
    catalog holds now (search helpers call this before trusting the codes).

    Raises :class:`~vecext.codecs.CodecVersionError` naming both fingerprints otherwise.
    (Whether every row is encoded is :func:`stale_rows`' question.)
    """
    cc = compressed_column(con, table, code_column)
    checked_codec(con, cc)
    return cc


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
    cat.check_batch_size(batch_size)
    c = load_codec(con, codec)
    t = catalog_table(con, table)
    src, d = vector_dim(con, t, source_column)
    if d != c.d:
        raise CodecError(
            f"column {t}.{src} has dimension {d}, but codec {codec!r} expects dimension {c.d}"
        )
    code = code_column if code_column is not None else f"{src}_{codec}"
    if not isinstance(code, str) or not code:
        raise CatalogError(f"code_column must be a non-empty string, got {code!r}")
    db = DuckDialect(con)
    for col in (code, code + HASH_SUFFIX):
        if has_column(con, t, col):
            already = cat.compressed_columns(
                db, lambda s, n: t, schema=t.schema, table=t.name, code_column=code
            )
            hint = (
                f"; it is a compressed column of codec {already[0].codec!r}: call "
                "vecext.duckdb.refresh() to fill it"
                if already
                else ""
            )
            raise CatalogError(f"table {t} already has a column {col!r}{hint}")
    # staged as BLOB when the final list type can be set by ALTER later (module docstring)
    staged = ar.code_layout(c) != "blob" and not table_indexes(con, t)
    ctype = "BLOB" if staged else ar.column_sql_type(c)
    with transaction(con):
        con.execute(f"ALTER TABLE {t.sql} ADD COLUMN {quote_ident(code)} {ctype}")
        con.execute(f"ALTER TABLE {t.sql} ADD COLUMN {quote_ident(code + HASH_SUFFIX)} UBIGINT")
        cat.register(db, t, src, code, codec, c.fingerprint, primary_key(con, t))
    if backfill:
        refresh(con, f"{t.schema}.{t.name}", code, batch_size=batch_size, progress=progress)
    return code


def drop_compressed_column(con: duckdb.DuckDBPyConnection, table: str, code_column: str) -> None:
    """Drop a code column, its hash column and its catalog row; the source is untouched.

    IVF lists added to the column (:func:`vecext.duckdb.add_ivf_lists`) rank rows by
    its codes and belong to it: their list and hash columns and their centroids go
    too, in the same transaction.
    """
    require_catalog(con)
    t = catalog_table(con, table)
    reg = registration(con, t, code_column)
    refuse_with_indexes(con, t, f"drop column {reg.code_column}")
    list_column, ivf_codec = reg.list_column, reg.ivf_codec
    columns = [reg.code_column, reg.hash_column]
    if list_column:
        columns += [list_column, list_column + HASH_SUFFIX]
    with transaction(con):
        for col in columns:
            if has_column(con, t, col):
                con.execute(f"ALTER TABLE {t.sql} DROP COLUMN {quote_ident(col)}")
        cat.unregister(DuckDialect(con), reg.id)
        if ivf_codec:
            drop_codec(con, ivf_codec, missing_ok=True)


__all__ = [
    "HASH_SUFFIX",
    "CompressedColumn",
    "add_compressed_column",
    "backfill",
    "check_column_current",
    "compressed_column",
    "drop_compressed_column",
    "list_compressed_columns",
    "refresh",
    "stale_rows",
]
