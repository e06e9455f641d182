"""Move IVF lists made before catalog 0.5.0 from the user's table to the code store.

Before catalog 0.5.0, ``add_ivf_lists`` kept the list ids of every compressed column in
an ``integer`` column of the user's table, with a BEFORE trigger and indexes on it. From
0.5.0 on, the lists of a column of layout ``store`` live in its code store
(:mod:`vecext.postgres.ivf_store`); older lists stay where they were and keep working.
:func:`move_ivf_lists` moves them without training again (the same centroids, the same
assignments) and leaves the table without the list column, its trigger and indexes:

1. the store's trigger is given the lists' codec (from then on every write assigns the
   store row's list too; the table's own trigger still assigns the table's) and the
   store gets its ``list`` column;
2. the list ids are copied from the table to the store in committed batches of store
   keys, only into store rows whose list is still missing (a write since step 1 set a
   newer one); any row still without one is assigned from its vector, as
   ``add_ivf_lists`` fills a store; the store is vacuumed between batches on an
   autocommit connection and its ``list`` index is built;
3. one short transaction switches the catalog to the store's lists and drops the
   table's trigger and list column (its indexes go with it). ``ALTER TABLE ... DROP
   COLUMN`` changes the catalog only (no rewrite) but needs an ACCESS EXCLUSIVE lock of
   the table for that moment: it waits at most ``lock_timeout`` seconds for it, so that
   reads never queue behind it for long, and tries ``attempts`` times.

Until step 3 commits, searches read the table's lists. If any step fails, the store
loses its list column and its trigger goes back to assigning none; the table's lists,
their codec and centroids are untouched.
"""

from __future__ import annotations

import time

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from vecext.catalog import ivf as cat_ivf
from vecext.catalog import scripts as _scripts
from vecext.catalog.ivf import IVFLists
from vecext.codecs.ivf import IVFCodec
from vecext.errors import CatalogError
from vecext.postgres.catalog import PgDialect, require_catalog
from vecext.postgres.codecs import load_codec
from vecext.postgres.ivf import STORE_LISTS, ivf_lists
from vecext.postgres.ivf_store import (
    STORE_LIST_COLUMN,
    fill_lists,
    ident_name,
    primary_key,
    store_trigger,
)
from vecext.postgres.ivf_triggers import trigger_name
from vecext.postgres.stores import PgCompressedColumn, compressed_column
from vecext.postgres.tables import resolve_column

__all__ = ["move_ivf_lists"]


def move_ivf_lists(
    conn: psycopg.Connection,
    table: str,
    code_column: str,
    *,
    batch_size: int = 50_000,
    lock_timeout: float = 5.0,
    attempts: int = 5,
) -> IVFLists:
    """Move the IVF lists of compressed column ``table.code_column`` (layout ``store``)
    from the table, where catalogs before 0.5.0 kept them, to its code store, with the
    same centroids and assignments (see the module docstring). Returns the lists as they
    are now."""
    version = require_catalog(conn)
    if _scripts.vtuple(version) < _scripts.vtuple(STORE_LISTS):
        raise CatalogError(
            f"the vecext catalog in database {conn.info.dbname!r} is version {version}: "
            f"IVF lists live in code stores from catalog {STORE_LISTS} on; run `vecext "
            "install` (or vecext.postgres.install(conn)) to upgrade it first"
        )
    if int(batch_size) < 1 or float(lock_timeout) <= 0 or int(attempts) < 1:
        raise ValueError(
            f"batch_size ({batch_size}) and attempts ({attempts}) must be >= 1 and "
            f"lock_timeout ({lock_timeout}) > 0"
        )
    lists = ivf_lists(conn, table, code_column)
    if lists is None:
        raise CatalogError(f"{table}.{code_column} has no IVF lists")
    if lists.store is not None:
        raise CatalogError(
            f"the IVF lists of {lists.table}.{code_column} are in its code store already"
        )
    t = lists.table
    cc = compressed_column(conn, t, code_column)
    if cc.store is None:
        raise CatalogError(
            f"{t}.{code_column} keeps its codes in the table (layout 'table'), and its IVF "
            "lists with them; only the lists of a column of layout 'store' move to its store"
        )
    col = resolve_column(conn, t.qualified, lists.source_column)
    codec = load_codec(conn, lists.codec_name)
    assert isinstance(codec, IVFCodec)
    st, lst = cc.store, sql.Identifier(STORE_LIST_COLUMN)
    with conn.transaction():
        store_trigger(conn, cc, lists.codec_name)  # the table first, as writers lock
        conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(st, lst))
        conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} integer").format(st, lst))
    index = ident_name(str(cc.store_name), STORE_LIST_COLUMN, suffix="_idx")
    try:
        _copy_lists(conn, cc, lists.list_column, batch_size)
        fill_lists(conn, col, STORE_LIST_COLUMN, codec, batch_size, st)  # any left
        with conn.transaction():
            conn.execute(
                sql.SQL("CREATE INDEX {} ON {} ({})").format(sql.Identifier(index), st, lst)
            )
        _switch(conn, cc, lists, lock_timeout, attempts)
    except BaseException:
        with conn.transaction():
            store_trigger(conn, cc, None)
            conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(st, lst))
        raise
    conn.execute(sql.SQL("ANALYZE {}").format(st))
    return IVFLists(
        t, lists.source_column, code_column, STORE_LIST_COLUMN, lists.codec_name,
        lists.nlist, lists.metric, (index,), store=str(cc.store_name),
    )  # fmt: skip


def _copy_lists(
    conn: psycopg.Connection, cc: PgCompressedColumn, table_lists: str, batch_size: int
) -> int:
    """The table's list ids into the store rows of the same key whose list is missing,
    one committed batch of store keys at a time; returns the rows set."""
    key, _ = primary_key(conn, cc.table)
    st, k = cc.store, sql.Identifier(key)
    assert st is not None
    lst, src = sql.Identifier(STORE_LIST_COLUMN), sql.Identifier(table_lists)
    upper = sql.SQL(
        "SELECT max(pk) FROM (SELECT s.pk FROM {} s WHERE {} ORDER BY s.pk LIMIT {}) b"
    )  # the batch's last key
    update = sql.SQL(
        "UPDATE {st} s SET {lst} = t.{src} FROM {t} t WHERE t.{k} = s.pk AND {after} "
        "AND s.pk <= %s AND s.{lst} IS NULL AND t.{src} IS NOT NULL"
    )
    done, last = 0, None
    while True:
        after = sql.SQL("TRUE") if last is None else sql.SQL("s.pk > %s")
        args = [] if last is None else [last]
        with conn.transaction():
            (end,) = conn.execute(  # type: ignore[misc]
                upper.format(st, after, sql.Literal(int(batch_size))), args
            ).fetchone()
            if end is None:
                return done
            with conn.cursor() as cur:
                cur.execute(
                    update.format(st=st, lst=lst, src=src, t=cc.table.ident, k=k, after=after),
                    [*args, end],
                )
                done += max(cur.rowcount, 0)
        if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
            conn.execute(sql.SQL("VACUUM {}").format(st))
        last = end


def _switch(
    conn: psycopg.Connection,
    cc: PgCompressedColumn,
    lists: IVFLists,
    lock_timeout: float,
    attempts: int,
) -> None:
    """The catalog to the store's lists, the table's trigger and list column dropped: one
    transaction, waiting at most ``lock_timeout`` s for the table's lock, ``attempts``
    times."""
    t, db = cc.table, PgDialect(conn)
    # set back at the end: inside a caller's transaction (a savepoint) it would stay
    (old,) = conn.execute("SELECT current_setting('lock_timeout')").fetchone()  # type: ignore[misc]
    for attempt in range(1, attempts + 1):
        try:
            with conn.transaction():
                conn.execute(
                    "SELECT set_config('lock_timeout', %s, true)", [f"{int(lock_timeout * 1000)}"]
                )
                conn.execute(
                    sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                        sql.Identifier(trigger_name(lists.list_column)), t.ident
                    )
                )
                conn.execute(
                    sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(
                        t.ident, sql.Identifier(lists.list_column)
                    )
                )
                cat_ivf.set_lists(db, cc.id, STORE_LIST_COLUMN, lists.codec_name)
                conn.execute(
                    "UPDATE vecext.compressed_columns SET list_layout = 'store' WHERE id = %s",
                    [cc.id],
                )
                conn.execute("SELECT set_config('lock_timeout', %s, true)", [old])
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == attempts:
                raise CatalogError(
                    f"table {t} stayed locked by other sessions: {attempts} waits of "
                    f"{lock_timeout:g} s for the moment that drops its IVF list column "
                    f"{lists.list_column!r}; its lists stay in the table (try again later, "
                    "or with a larger lock_timeout)"
                ) from None
            time.sleep(min(1.0, lock_timeout))
