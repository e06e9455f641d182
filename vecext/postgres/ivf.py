"""IVF coarse lists in PostgreSQL: centroids in the catalog, list ids kept current.

``add_ivf_lists`` trains ``nlist`` centroids with FAISS k-means on a sample of the
vector column (an ``ivf`` codec, :class:`vecext.codecs.ivf.IVFCodec`), stores them
as catalog rows (``vecext.codebook_vectors`` part ``centroids``, so SQL alone can
assign lists) and keeps each row's list id current, then records the lists on the
compressed column's catalog row (``list_column``, ``ivf_codec_name``,
``list_layout``): the two-stage IVF search probes lists, ranks rows inside them by
those codes, and reranks exactly.

Where the list ids live (catalog 0.5.0, issue 11):

* a compressed column of layout ``store`` keeps them in its code store, column
  ``list`` of ``vecext."store_<id>"`` (``list_layout`` ``store``): the store's trigger
  (``vecext.store_trigger`` with the IVF codec as its fifth argument) assigns inserted
  and updated rows, deletes and TRUNCATE take the store rows with them, and the
  existing rows are filled in committed batches (binary COPY of key and vector out of
  the user's table, numpy assignment, COPY into a temporary buffer, one UPDATE of
  those store rows), the store vacuumed between batches on an autocommit connection
  so that each batch reuses the space the last one freed. The user's table is only
  read: not altered, updated, rewritten or indexed. The store gets an index on
  ``list``; filter columns stay on the user's table, which filtered probes join by
  primary key;
* layout ``table`` (codes in the user's table, catalogs before 0.4.0), and lists made
  before catalog 0.5.0 (``list_layout`` ``table``): an ``integer`` list column of the
  user's table with a BEFORE trigger (``vecext.ivf_lists_trigger``), filled by UPDATE
  in batches, with indexes on ``(list)`` and ``(filter column, list)`` (Curator's
  shared lists with per-tenant access paths).

The lists belong to that compressed column: the SQL function
``vecext.drop_compressed_column`` (and so ``drop_compressed_column``) drops them with
it, since catalog 0.2.0. Lists the function of catalog 0.1.0 left behind are found
by their trigger (:mod:`vecext.postgres.ivf_triggers`).
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

from vecext.catalog import columns as cat
from vecext.catalog import ivf as cat_ivf
from vecext.catalog import scripts as _scripts
from vecext.catalog import store
from vecext.catalog.ivf import IVFLists
from vecext.catalog.rows import check_name, codec_record
from vecext.codecs.ivf import IVFCodec
from vecext.errors import CatalogError
from vecext.postgres.catalog import PgDialect, require_catalog
from vecext.postgres.codecs import cached_codec
from vecext.postgres.ivf_store import (
    STORE_LIST_COLUMN,
    add_to_store,
    drop_from_store,
    fill_lists,
    ident_name,
)
from vecext.postgres.ivf_triggers import (
    ListTrigger,
    drop_orphaned_ivf_lists,
    list_triggers,
    orphaned_ivf_lists,
    trigger_name,
)
from vecext.postgres.stores import compressed_column, has_stores
from vecext.postgres.tables import (
    TableRef,
    read_vectors,
    resolve_column,
    resolve_table,
)

#: The first catalog whose SQL function vecext.drop_compressed_column drops IVF lists.
SQL_DROPS_LISTS = "0.2.0"
#: The first catalog that keeps the IVF lists of a code-store column in its store.
STORE_LISTS = "0.5.0"


def add_ivf_lists(
    conn: psycopg.Connection,
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
    """Train IVF lists for ``table.column`` and keep a list-id column current: in the
    compressed column's code store (catalog 0.5.0; the table is only read), or in the
    table for a compressed column of layout ``table``.

    Parameters
    ----------
    column
        The source ``vector(d)`` column; it must have a (ready) compressed column,
        whose codec's metric the lists use.
    nlist
        Number of lists (default ``4 * sqrt(rows)``).
    code_column
        The compressed column to attach the lists to, when there are several.
    list_column
        Name of the new ``integer`` column: of the code store for a column of layout
        ``store`` (default ``list``), else of the table (default ``<column>_list``).
    codec_name
        Name of the lists' coarse quantizer in the catalog (default: made of the
        table, column and ``nlist``).
    index_columns
        Filter columns that get a ``(column, list)`` index on the table, for lists in
        the table (layout ``table``); the declared tenant column always gets one. Lists
        in a code store get an index on ``list`` only (the table is not indexed: a
        filtered probe joins the rows passing the filter by primary key); the columns
        are still checked.
    sample, niter, seed
        Training vectors (FAISS subsamples further to 256 per list), k-means
        iterations and seed.
    batch_size
        Rows assigned per committed batch.
    codec
        An already trained coarse quantizer to use instead of training one (its
        dimension and metric must match; ``nlist`` is then its own).

    Returns
    -------
    IVFLists
    """
    version = require_catalog(conn)
    if codec_name is not None:
        check_name(codec_name)  # before the training it would waste
    db = PgDialect(conn)
    col = resolve_column(conn, table, column)
    t = col.table
    cc_id, code_col, existing, metric = cat_ivf.lists_source(db, t, column, code_column)
    if existing:
        raise CatalogError(f"{t}.{code_col} already has IVF lists in column {existing!r}")
    cc = compressed_column(conn, t, code_col) if has_stores(conn) else None
    in_store = cc is not None and cc.store is not None
    if in_store and _scripts.vtuple(version) < _scripts.vtuple(STORE_LISTS):
        raise CatalogError(
            f"the vecext catalog in database {conn.info.dbname!r} is version {version}: IVF "
            f"lists of {t}.{code_col} go to its code store from catalog {STORE_LISTS} on; run "
            "`vecext install` (or vecext.postgres.install(conn)) to upgrade it"
        )
    (n,) = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL").format(
            t.ident, sql.Identifier(column)
        )
    ).fetchone()  # type: ignore[misc]
    have = {
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 "
            "AND NOT attisdropped",
            [t.oid],
        ).fetchall()
    }
    if in_store:
        lcol = list_column or STORE_LIST_COLUMN
        if lcol in ("pk", "code"):
            raise CatalogError(
                f"list_column {lcol!r} is a column of the code store of {t}.{code_col}; "
                f"leave it out (the lists go to column {STORE_LIST_COLUMN!r} of the store)"
            )
    else:
        lcol = list_column or f"{column}_list"
        if lcol in have:
            orphan = any(o.list_column == lcol for o in orphaned_ivf_lists(conn, t.qualified))
            raise CatalogError(
                f"table {t} already has a column {lcol!r}"
                + (
                    ": IVF lists no compressed column records (left by the SQL function "
                    "vecext.drop_compressed_column of catalog 0.1.0, or an interrupted "
                    "add_ivf_lists); drop them "
                    "with vecext.postgres.drop_orphaned_ivf_lists()"
                    if orphan
                    else ""
                )
            )
    missing = [c for c in index_columns if c not in have]
    if missing:
        raise CatalogError(f"table {t} has no column(s) {', '.join(map(repr, missing))}")
    codec = cat_ivf.coarse_quantizer(
        col.dim, metric, rows=int(n), nlist=nlist, codec=codec, what=f"{t}.{column}",
        read=lambda k: read_vectors(conn, col, sample=k, seed=seed),
        niter=niter, seed=seed, sample=sample,
    )  # fmt: skip
    name = check_name(codec_name or cat_ivf.ivf_codec_name(t, column, codec.nlist))
    if in_store:
        assert cc is not None
        return add_to_store(conn, cc, col, lcol, name, codec, metric, batch_size)
    tenant = cat.tenant_column(db, t)
    idx_cols = list(dict.fromkeys([*index_columns, *([tenant] if tenant else [])]))
    trigger = trigger_name(lcol)
    with conn.transaction():
        if store.codec_version(db, name) is not None:
            raise CatalogError(f"codec {name!r} already exists; pass another codec_name")
        store.insert_codec(db, codec_record(name, codec))
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN {} integer").format(t.ident, sql.Identifier(lcol))
        )
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER {} BEFORE INSERT OR UPDATE OF {} ON {} FOR EACH ROW "
                "EXECUTE FUNCTION vecext.ivf_lists_trigger({}, {}, {})"
            ).format(
                sql.Identifier(trigger),
                sql.Identifier(column),
                t.ident,
                sql.Literal(column),
                sql.Literal(lcol),
                sql.Literal(name),
            )
        )
    try:
        fill_lists(conn, col, lcol, codec, batch_size)
        indexes = []
        with conn.transaction():
            for cols in [[lcol], *[[c, lcol] for c in idx_cols]]:
                iname = ident_name(t.name, *cols, suffix="_idx")
                conn.execute(
                    sql.SQL("CREATE INDEX {} ON {} ({})").format(
                        sql.Identifier(iname),
                        t.ident,
                        sql.SQL(", ").join(map(sql.Identifier, cols)),
                    )
                )
                indexes.append(iname)
            cat_ivf.set_lists(db, cc_id, lcol, name)
            if _scripts.vtuple(version) >= _scripts.vtuple(STORE_LISTS):
                conn.execute(
                    "UPDATE vecext.compressed_columns SET list_layout = 'table' WHERE id = %s",
                    [cc_id],
                )
            conn.execute(sql.SQL("ANALYZE {}").format(t.ident))
    except BaseException:
        with conn.transaction():
            _drop(conn, t, lcol, trigger, name)
        raise
    return IVFLists(t, column, code_col, lcol, name, codec.nlist, metric, tuple(indexes))


# ---------------------------------------------------------------------------
# lists in the user's table (layout 'table', and lists made before catalog 0.5.0)


def _drop(conn: psycopg.Connection, t: TableRef, lcol: str, trigger: str, codec: str) -> None:
    conn.execute(
        sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(trigger), t.ident)
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(t.ident, sql.Identifier(lcol))
    )
    db = PgDialect(conn)
    cat_ivf.clear_lists(db, codec)
    if _scripts.vtuple(require_catalog(conn)) >= _scripts.vtuple(STORE_LISTS):
        conn.execute(
            "UPDATE vecext.compressed_columns SET list_layout = NULL WHERE list_column IS NULL "
            "AND list_layout IS NOT NULL"
        )
    store.delete_codec(db, codec)


def drop_ivf_lists(conn: psycopg.Connection, table: str, code_column: str) -> None:
    """Drop the IVF lists of a compressed column: list column (and its indexes),
    trigger (for lists in the code store: the store's trigger no longer assigns lists),
    catalog entry and centroids. The codes and vectors stay.

    :func:`vecext.postgres.drop_compressed_column` drops them itself.
    """
    require_catalog(conn)
    lists = ivf_lists(conn, table, code_column)
    if lists is None:
        raise CatalogError(f"{table}.{code_column} has no IVF lists")
    with conn.transaction():
        drop_lists_of(conn, lists.table, code_column)


def drop_lists_of(conn: psycopg.Connection, t: TableRef, code_column: str) -> IVFLists | None:
    """Drop the IVF lists of compressed column ``t.code_column``, if it has any, in the
    caller's transaction; returns what was dropped."""
    lists = ivf_lists(conn, t.qualified, code_column)
    if lists is not None and lists.store is not None:
        cc = compressed_column(conn, t, code_column)
        drop_from_store(conn, cc, lists.list_column, lists.codec_name)
    elif lists is not None:
        _drop(conn, t, lists.list_column, trigger_name(lists.list_column), lists.codec_name)
    return lists


def drop_lists_for_old_catalog(conn: psycopg.Connection, table: str, code_column: str) -> None:
    """What to run before the SQL function ``vecext.drop_compressed_column`` on a catalog
    older than 0.2.0, in the same transaction: that function drops the code column only,
    so the column's IVF lists are dropped here (they would be orphaned). A no-op on a
    current catalog, whose function drops them itself."""
    if _scripts.vtuple(require_catalog(conn)) >= _scripts.vtuple(SQL_DROPS_LISTS):
        return
    drop_lists_of(conn, resolve_table(conn, table), code_column)


def ivf_lists(conn: psycopg.Connection, table: str, code_column: str) -> IVFLists | None:
    """The IVF lists of compressed column ``table.code_column``, or ``None``."""
    t = resolve_table(conn, table)
    found = cat_ivf.lists_of(PgDialect(conn), t, code_column)
    if found is None:
        return None
    src, _, lcol, name, nlist, metric = found
    in_store = None
    if _scripts.vtuple(require_catalog(conn)) >= _scripts.vtuple(STORE_LISTS):
        row = conn.execute(
            "SELECT vecext.store_name(id) FROM vecext.compressed_columns "
            "WHERE table_oid = %s AND code_column = %s AND list_layout = 'store'",
            [t.oid, code_column],
        ).fetchone()
        in_store = str(row[0]) if row else None
    return IVFLists(t, src, code_column, lcol, name, nlist, metric, store=in_store)


__all__ = [
    "IVFLists",
    "ListTrigger",
    "add_ivf_lists",
    "cached_codec",
    "drop_ivf_lists",
    "drop_lists_for_old_catalog",
    "drop_lists_of",
    "drop_orphaned_ivf_lists",
    "ivf_lists",
    "list_triggers",
    "orphaned_ivf_lists",
    "trigger_name",
]
