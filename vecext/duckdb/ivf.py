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

import hashlib
import re
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from vecext.codecs import CodecError
from vecext.codecs.ivf import IVFCodec, default_nlist
from vecext.duckdb import _arrow as ar
from vecext.duckdb._sql import (
    TableRef,
    has_column,
    quote_ident,
    registered,
    resolve_table,
    transaction,
    vector_dim,
)
from vecext.duckdb.catalog import require_catalog
from vecext.errors import CatalogError

HASH_SUFFIX = "__vecext_hash"


@dataclass(frozen=True)
class IVFLists:
    """IVF lists attached to a compressed column."""

    table: TableRef
    source_column: str
    code_column: str
    list_column: str
    codec_name: str
    nlist: int
    metric: str

    @property
    def hash_column(self) -> str:
        return self.list_column + HASH_SUFFIX


def _codec_name(t: TableRef, column: str, nlist: int) -> str:
    raw = f"ivf{nlist}_{t.name}_{column}".lower()
    clean = re.sub(r"[^a-z0-9_]", "_", raw)
    h = hashlib.sha256(f"{t.schema}.{t.name}.{column}".encode()).hexdigest()[:6]
    return f"{clean[:40]}_{h}"


def _compressed_row(
    con: duckdb.DuckDBPyConnection, t: TableRef, column: str, code_column: str | None
) -> tuple[int, str, str | None, str]:
    """``(id, code_column, list_column, codec metric)`` of the compressed column to use."""
    rows = con.execute(
        """SELECT k.id, k.code_column, k.list_column, c.metric, k.status
           FROM vecext.compressed_columns k JOIN vecext.codecs c ON c.name = k.codec_name
           WHERE k.table_schema = ? AND k.table_name = ? AND lower(k.source_column) = lower(?)
           ORDER BY k.id""",
        [t.schema, t.name, column],
    ).fetchall()
    if code_column is not None:
        rows = [r for r in rows if r[1].lower() == code_column.lower()]
        if not rows:
            raise CatalogError(f"{t}.{code_column} is not a compressed column of {t}.{column}")
    if not rows:
        raise CatalogError(
            f"{t}.{column} has no compressed column: IVF lists rank rows by codes, so add one "
            "first (vecext.duckdb.add_compressed_column)"
        )
    if len(rows) > 1:
        names = ", ".join(r[1] for r in rows)
        raise CatalogError(
            f"{t}.{column} has several compressed columns ({names}): pass code_column="
        )
    r = rows[0]
    if r[4] != "ready":
        raise CatalogError(
            f"compressed column {t}.{r[1]} is still backfilling: finish it with "
            "vecext.duckdb.refresh() first"
        )
    return int(r[0]), str(r[1]), r[2], str(r[3])


def add_ivf_lists(
    con: duckdb.DuckDBPyConnection,
    table: str,
    column: str,
    nlist: int | None = None,
    *,
    code_column: str | None = None,
    list_column: str | None = None,
    codec_name: str | None = None,
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
    sample
        Training vectors (FAISS subsamples further to 256 per list).
    codec
        An already trained coarse quantizer to use instead of training one (its
        dimension and metric must match; ``nlist`` is then its own).
    """
    from vecext.duckdb.codecs import drop_codec, read_vectors, save_codec

    require_catalog(con)
    t = resolve_table(con, table)
    src, d = vector_dim(con, t, column)
    cc_id, code_col, existing, metric = _compressed_row(con, t, src, code_column)
    if existing:
        raise CatalogError(f"{t}.{code_col} already has IVF lists in column {existing!r}")
    row = con.execute(f"SELECT count(*) FROM {t.sql} WHERE {quote_ident(src)} IS NOT NULL")
    n = int(row.fetchone()[0])  # type: ignore[index]
    lcol = list_column or f"{src}_list"
    for col in (lcol, lcol + HASH_SUFFIX):
        if has_column(con, t, col):
            raise CatalogError(f"table {t} already has a column {col!r}")
    if codec is not None:
        if not codec.is_trained or codec.d != d or codec.metric != metric:
            raise CodecError(
                f"the IVF codec given must be trained for dimension {d} and metric {metric}, "
                f"got dimension {codec.d}, metric {codec.metric}"
            )
        nlist = codec.nlist
    else:
        nlist = default_nlist(n) if nlist is None else nlist
        codec = IVFCodec(d, metric, nlist=nlist, niter=niter, seed=seed)
        xt = read_vectors(
            con, f"{t.schema}.{t.name}", src, sample=max(sample, codec.min_train), seed=seed
        )
        if xt.shape[0] < codec.min_train:
            raise CodecError(
                f"{t}.{src} has {xt.shape[0]} vectors, fewer than the nlist={nlist} lists "
                "asked for; use fewer lists"
            )
        codec.train(xt)
    name = codec_name or _codec_name(t, src, int(nlist))
    save_codec(con, name, codec)
    lists = IVFLists(t, src, code_col, lcol, name, int(nlist), metric)
    try:
        with transaction(con):
            con.execute(f"ALTER TABLE {t.sql} ADD COLUMN {quote_ident(lcol)} INTEGER")
            con.execute(f"ALTER TABLE {t.sql} ADD COLUMN {quote_ident(lists.hash_column)} UBIGINT")
        _assign(con, lists, codec, batch_size)
        con.execute(
            "UPDATE vecext.compressed_columns SET list_column = ?, ivf_codec_name = ?, "
            "updated_at = current_timestamp WHERE id = ?",
            [lcol, name, cc_id],
        )
    except BaseException:
        for col in (lcol, lists.hash_column):
            if has_column(con, t, col):
                con.execute(f"ALTER TABLE {t.sql} DROP COLUMN {quote_ident(col)}")
        drop_codec(con, name, missing_ok=True)
        raise
    return lists


def _stale_sql(lists: IVFLists) -> str:
    src, lst = quote_ident(lists.source_column), quote_ident(lists.list_column)
    h = quote_ident(lists.hash_column)
    return f"({h} IS DISTINCT FROM hash({src}) OR ({src} IS NOT NULL AND {lst} IS NULL))"


def _assign(
    con: duckdb.DuckDBPyConnection, lists: IVFLists, codec: IVFCodec, batch_size: int
) -> int:
    """Assign every stale row, one committed batch of ``batch_size`` rowids at a time."""
    t, stale = lists.table, _stale_sql(lists)
    src, lst = quote_ident(lists.source_column), quote_ident(lists.list_column)
    h = quote_ident(lists.hash_column)
    rowids = con.execute(f"SELECT rowid FROM {t.sql} WHERE {stale} ORDER BY rowid").fetchnumpy()
    rids = np.asarray(rowids["rowid"], dtype=np.int64)
    done = 0
    for i0 in range(0, rids.size, batch_size):
        lo, hi = int(rids[i0]), int(rids[min(i0 + batch_size, rids.size) - 1])
        with transaction(con):
            batch = con.execute(
                f"SELECT rowid AS rid, {src} AS v, hash({src}) AS h FROM {t.sql} "
                f"WHERE rowid BETWEEN ? AND ? AND {stale}",
                [lo, hi],
            ).to_arrow_table()
            if batch.num_rows == 0:
                continue
            X, valid = ar.list_matrix(batch.column("v"), codec.d, np.float32, f"{t}.{src}")
            ids = np.zeros(batch.num_rows, dtype=np.int32)
            ids[valid] = codec.assign(X).astype(np.int32)
            update = pa.table(
                {
                    "rid": batch.column("rid"),
                    "l": pa.array(ids, mask=~valid),
                    "h": batch.column("h"),
                }
            )
            with registered(con, update) as u:
                con.execute(
                    f"UPDATE {t.sql} AS tgt SET {lst} = u.l, {h} = u.h FROM {u} AS u "
                    "WHERE tgt.rowid = u.rid AND tgt.rowid BETWEEN ? AND ?",
                    [lo, hi],
                )
            done += batch.num_rows
    return done


def ivf_lists(con: duckdb.DuckDBPyConnection, table: str, code_column: str) -> IVFLists | None:
    """The IVF lists of compressed column ``table.code_column``, or ``None``."""
    require_catalog(con)
    t = resolve_table(con, table)
    row = con.execute(
        """SELECT k.source_column, k.code_column, k.list_column, k.ivf_codec_name, c.params,
                  c.metric
           FROM vecext.compressed_columns k JOIN vecext.codecs c ON c.name = k.ivf_codec_name
           WHERE k.table_schema = ? AND k.table_name = ? AND lower(k.code_column) = lower(?)""",
        [t.schema, t.name, code_column],
    ).fetchone()
    if row is None:
        return None
    import json

    src, code, lcol, name, params, metric = row
    nlist = int(json.loads(params)["nlist"]) if isinstance(params, str) else int(params["nlist"])
    return IVFLists(t, src, code, lcol, name, nlist, metric)


def refresh_lists(
    con: duckdb.DuckDBPyConnection, table: str, code_column: str, *, batch_size: int = 50_000
) -> int:
    """Assign the rows whose list id is missing or whose vector changed; returns how many.
    :func:`vecext.duckdb.refresh` calls this after re-encoding the codes."""
    from vecext.duckdb.strategies import cached_codec

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
    from vecext.duckdb.codecs import drop_codec

    lists = ivf_lists(con, table, code_column)
    if lists is None:
        raise CatalogError(f"{table}.{code_column} has no IVF lists")
    t = lists.table
    with transaction(con):
        con.execute(
            "UPDATE vecext.compressed_columns SET list_column = NULL, ivf_codec_name = NULL "
            "WHERE table_schema = ? AND table_name = ? AND code_column = ?",
            [t.schema, t.name, lists.code_column],
        )
        for col in (lists.list_column, lists.hash_column):
            if has_column(con, t, col):
                con.execute(f"ALTER TABLE {t.sql} DROP COLUMN {quote_ident(col)}")
    drop_codec(con, lists.codec_name, missing_ok=True)
