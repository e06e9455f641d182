"""IVF coarse lists in DuckDB: centroids in the catalog, a list-id column beside the vectors.

:func:`add_ivf_lists` trains ``nlist`` centroids with FAISS k-means on a sample of
the vector column (an ``ivf`` codec, :class:`vecext.codecs.ivf.IVFCodec`, saved
in the catalog like any codec), adds an ``INTEGER`` list column and fills it,
and records it on the compressed column's catalog row (``list_column``,
``ivf_codec_name``): the IVF search probes the lists nearest to the query, ranks
the rows inside them by those codes, and reranks exactly.

DuckDB has no triggers: like the code column, the list column has a companion
``<list>__vecext_hash`` holding ``hash()`` of the vector it was assigned from, and
:func:`refresh_lists` reassigns exactly the rows whose vector changed or that
have none. :func:`vecext.duckdb.refresh` calls it after re-encoding the codes, so
the one call that keeps a compressed column current after writes keeps its lists
current too. Until then the IVF search treats rows without a list (or without
codes) as candidates of every query, so inserted rows are never missed; a row
whose vector was *updated* keeps its old list and codes until ``refresh``, as
with the codes alone (telling it from the others would mean hashing every
vector on every search, which costs more than an exact scan).

The lists belong to their compressed column: ``drop_compressed_column`` drops
them with it (list and hash columns, centroids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from vecext.catalog import ivf as cat_ivf
from vecext.codecs.ivf import IVFCodec
from vecext.duckdb import _arrow as ar
from vecext.duckdb._sql import (
    HASH_SUFFIX,
    catalog_table,
    has_column,
    quote_ident,
    transaction,
    vector_dim,
)
from vecext.duckdb.catalog import DuckDialect, require_catalog
from vecext.duckdb.codecs import cached_codec, drop_codec, read_vectors, save_codec
from vecext.duckdb.derived import batches, read_batch, stale_rowids, stale_sql, write_batch
from vecext.errors import CatalogError


@dataclass(frozen=True)
class IVFLists(cat_ivf.IVFLists):
    """IVF lists attached to a compressed column (the fields of ``vecext.postgres``'s)."""

    @property
    def hash_column(self) -> str:
        """The companion column holding ``hash(source)`` of the vector a row's list
        was assigned from."""
        return self.list_column + HASH_SUFFIX


def add_ivf_lists(
    con: duckdb.DuckDBPyConnection,
    table: str,
    column: str,
    nlist: int | None = None,
    *,
    code_column: str | None = None,
    list_column: str | None = None,
    codec_name: str | None = None,
    index_columns: Sequence[str] = (),
    sample: int = 100_000,
    niter: int = 20,
    seed: int = 1234,
    batch_size: int = 50_000,
    codec: IVFCodec | None = None,
) -> IVFLists:
    """Train IVF lists for ``table.column``, add and fill a list-id column.

    Parameters
    ----------
    column
        The source ``FLOAT[d]`` column; it must have a ready compressed column,
        whose codec's metric the lists use.
    nlist
        Number of lists (default ``4 * sqrt(rows)``).
    code_column
        The compressed column to attach the lists to, when there are several.
    list_column
        Name of the new ``INTEGER`` column (default ``<column>_list``).
    codec_name
        Name of the lists' coarse quantizer in the catalog (default: made of the
        table, column and ``nlist``).
    index_columns
        Filter columns the lists are probed with. PostgreSQL indexes ``(column,
        list)`` for each; DuckDB builds no such index (its zone maps and columnar
        scans serve the filter), so here they are only checked to exist.
    sample, niter, seed
        Training vectors (FAISS subsamples further to 256 per list), k-means
        iterations and seed.
    batch_size
        Rows assigned per committed batch.
    codec
        An already trained coarse quantizer to use instead of training one (its
        dimension and metric must match; ``nlist`` is then its own).
    """
    require_catalog(con)
    t = catalog_table(con, table)
    src, d = vector_dim(con, t, column)
    db = DuckDialect(con)
    cc_id, code_col, existing, metric = cat_ivf.lists_source(db, t, src, code_column)
    if existing:
        raise CatalogError(f"{t}.{code_col} already has IVF lists in column {existing!r}")
    row = con.execute(f"SELECT count(*) FROM {t.sql} WHERE {quote_ident(src)} IS NOT NULL")
    n = int(row.fetchone()[0])  # type: ignore[index]
    lcol = list_column or f"{src}_list"
    for col in (lcol, lcol + HASH_SUFFIX):
        if has_column(con, t, col):
            raise CatalogError(f"table {t} already has a column {col!r}")
    missing = [c for c in index_columns if not has_column(con, t, c)]
    if missing:
        raise CatalogError(f"table {t} has no column(s) {', '.join(map(repr, missing))}")
    codec = cat_ivf.coarse_quantizer(
        d, metric, rows=n, nlist=nlist, codec=codec, what=f"{t}.{src}",
        read=lambda k: read_vectors(con, f"{t.schema}.{t.name}", src, sample=k, seed=seed),
        niter=niter, seed=seed, sample=sample,
    )  # fmt: skip
    name = codec_name or cat_ivf.ivf_codec_name(t, src, codec.nlist)
    save_codec(con, name, codec)
    lists = IVFLists(t, src, code_col, lcol, name, codec.nlist, metric)
    try:
        with transaction(con):
            con.execute(f"ALTER TABLE {t.sql} ADD COLUMN {quote_ident(lcol)} INTEGER")
            con.execute(f"ALTER TABLE {t.sql} ADD COLUMN {quote_ident(lists.hash_column)} UBIGINT")
        _assign(con, lists, codec, batch_size)
        cat_ivf.set_lists(db, cc_id, lcol, name)
    except BaseException:
        for col in (lcol, lists.hash_column):
            if has_column(con, t, col):
                con.execute(f"ALTER TABLE {t.sql} DROP COLUMN {quote_ident(col)}")
        drop_codec(con, name, missing_ok=True)
        raise
    return lists


def _assign(
    con: duckdb.DuckDBPyConnection, lists: IVFLists, codec: IVFCodec, batch_size: int
) -> int:
    """Assign every stale row, one committed batch of ``batch_size`` rowids at a time."""
    t, src = lists.table, lists.source_column
    stale = stale_sql(src, lists.list_column)
    done = 0
    for lo, hi in batches(stale_rowids(con, t, stale), batch_size):
        with transaction(con):
            batch = read_batch(con, t, src, stale, lo, hi)
            if batch.num_rows == 0:
                continue
            X, valid = ar.list_matrix(batch.column("v"), codec.d, np.float32, f"{t}.{src}")
            ids = np.zeros(batch.num_rows, dtype=np.int32)
            ids[valid] = codec.assign(X).astype(np.int32)
            write_batch(con, t, lists.list_column, pa.array(ids, mask=~valid), batch, lo, hi)
            done += batch.num_rows
    return done


def ivf_lists(con: duckdb.DuckDBPyConnection, table: str, code_column: str) -> IVFLists | None:
    """The IVF lists of compressed column ``table.code_column``, or ``None``."""
    require_catalog(con)
    t = catalog_table(con, table)
    found = cat_ivf.lists_of(DuckDialect(con), t, code_column)
    return None if found is None else IVFLists(t, *found)


def refresh_lists(
    con: duckdb.DuckDBPyConnection, table: str, code_column: str, *, batch_size: int = 50_000
) -> int:
    """Assign the rows whose list id is missing or whose vector changed; returns how many.
    :func:`vecext.duckdb.refresh` calls this after re-encoding the codes."""
    lists = ivf_lists(con, table, code_column)
    if lists is None:
        raise CatalogError(f"{table}.{code_column} has no IVF lists")
    fp = con.execute(
        "SELECT fingerprint FROM vecext.codecs WHERE name = ?", [lists.codec_name]
    ).fetchone()
    codec = cached_codec(con, lists.codec_name, str(fp[0]))  # type: ignore[index]
    assert isinstance(codec, IVFCodec)
    return _assign(con, lists, codec, batch_size)


def drop_ivf_lists(con: duckdb.DuckDBPyConnection, table: str, code_column: str) -> None:
    """Drop the IVF lists of a compressed column (list and hash columns, catalog entry,
    centroids). The codes and vectors stay."""
    lists = ivf_lists(con, table, code_column)
    if lists is None:
        raise CatalogError(f"{table}.{code_column} has no IVF lists")
    t = lists.table
    with transaction(con):
        cat_ivf.clear_lists(DuckDialect(con), lists.codec_name)
        for col in (lists.list_column, lists.hash_column):
            if has_column(con, t, col):
                con.execute(f"ALTER TABLE {t.sql} DROP COLUMN {quote_ident(col)}")
    drop_codec(con, lists.codec_name, missing_ok=True)
