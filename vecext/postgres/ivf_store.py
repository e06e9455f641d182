"""IVF lists in a code store (catalog 0.5.0): the list ids of a compressed column of
layout ``store`` live in column ``list`` of its code store ``vecext."store_<id>"``.

The store's row trigger (``vecext.store_trigger``, given the IVF codec as a fifth
argument) assigns the list of every inserted or updated row in the same statement that
writes its code, by the centroids in ``vecext.codebook_vectors``; deletes and TRUNCATE
take the store rows with them. :func:`add_to_store` fills the rows already there in
committed batches: key and vector read from the user's table with a binary COPY (the
table is only read), numpy assignment (:meth:`IVFCodec.assign`), list ids copied into
a temporary buffer and set by one UPDATE of those store rows per batch. The store is
vecext's own, so updating it costs the user nothing but the store's space: between
batches an autocommit connection vacuums the store, and the next batch's new row
versions take the space the last one freed (the store grows by about one batch, not
by its size). The list column is indexed once it is filled.

:mod:`vecext.postgres.ivf` decides which layout a column's lists take.
"""

from __future__ import annotations

import hashlib

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from vecext.catalog import ivf as cat_ivf
from vecext.catalog import store
from vecext.catalog.ivf import IVFLists
from vecext.catalog.rows import codec_record
from vecext.codecs.ivf import IVFCodec
from vecext.errors import CatalogError
from vecext.postgres import copybin
from vecext.postgres.catalog import PgDialect
from vecext.postgres.stores import PgCompressedColumn
from vecext.postgres.tables import TableRef, VectorColumn

#: the temporary table list ids go through on their way to the store or table
BUFFER = "vecext_ivf_buffer"


def buffer_lists(
    conn: psycopg.Connection,
    query: sql.Composable,
    col: VectorColumn,
    codec: IVFCodec,
    key_type: str,
    int_key: bool,
) -> list:
    """One batch of a list fill, inside the caller's transaction: the keys and vectors
    ``query`` copies out (binary), their lists assigned in numpy, into the temporary
    table :data:`BUFFER` ``(k, l)`` (dropped at commit); returns the keys, in order."""
    with conn.cursor() as cur, cur.copy(query) as cp:
        data = b"".join(bytes(b) for b in cp)
    keys, x = copybin.parse_key_vectors(data, col.dim, key_type if int_key else "text")
    if not keys:
        return []
    ids = codec.assign(x)
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} (k {}, l integer) ON COMMIT DROP").format(
            sql.Identifier(BUFFER),
            sql.SQL(key_type),  # type name from pg_catalog
        )
    )
    copy_in = sql.SQL("COPY {} (k, l) FROM STDIN").format(sql.Identifier(BUFFER))
    with conn.cursor() as cur, cur.copy(copy_in) as cp:
        for kv, lv in zip(keys, ids.tolist(), strict=True):
            cp.write_row((kv, lv))
    return list(keys)


#: The list-id column of a code store with IVF lists.
STORE_LIST_COLUMN = "list"


def ident_name(*parts: str, suffix: str = "") -> str:
    """A PostgreSQL object name (<= 63 bytes) made of ``parts``."""
    base = "_".join(parts) + suffix
    if len(base.encode()) <= 63:
        return base
    h = hashlib.sha256(base.encode()).hexdigest()[:8]
    return base.encode()[: 63 - 9].decode(errors="ignore") + "_" + h


def store_trigger(
    conn: psycopg.Connection,
    cc: PgCompressedColumn,
    ivf: str | None,
    mirrors: list[int] | None = None,
) -> None:
    """(Re)create the row trigger of ``cc``'s code store, with IVF codec ``ivf`` as its
    fifth argument (the store's trigger then assigns lists) or without one, and the
    attnums of the mirrored columns after it (catalog 0.6.0; ``None``: those the catalog
    records). The arguments are those ``vecext.add_compressed_column`` gives it; the
    trigger fires on updates of the vector, the key and the mirrored columns, named as
    they are today (read by attnum)."""
    t = cc.table
    if mirrors is None:
        mirrors = recorded_mirrors(conn, cc.id)
    row = conn.execute(
        """SELECT s.attname, s.attnum, k.attname, k.attnum,
                  coalesce((SELECT array_agg(a.attnum::int ORDER BY m.i)
                              FROM unnest(%s::int2[])
                                   WITH ORDINALITY AS m(n, i)
                              JOIN pg_attribute a ON a.attrelid = c.table_oid AND a.attnum = m.n
                                                 AND NOT a.attisdropped), '{}'),
                  coalesce((SELECT array_agg(a.attname::text ORDER BY m.i)
                              FROM unnest(%s::int2[])
                                   WITH ORDINALITY AS m(n, i)
                              JOIN pg_attribute a ON a.attrelid = c.table_oid AND a.attnum = m.n
                                                 AND NOT a.attisdropped), '{}')
             FROM vecext.compressed_columns c
             JOIN pg_attribute s ON s.attrelid = c.table_oid AND s.attnum = c.source_attnum
             JOIN pg_attribute k ON k.attrelid = c.table_oid AND k.attnum = c.key_attnum
            WHERE c.id = %s""",
        [mirrors, mirrors, cc.id],
    ).fetchone()
    if row is None:
        raise CatalogError(f"the source or key column of {t}.{cc.code_column} is gone")
    src, src_num, key, key_num, mnums, mnames = row
    args = [cc.store_name, cc.codec, str(src_num), str(key_num)]
    if mnums:  # catalog 0.6.0: '' for no IVF codec, then the mirrored columns' attnums
        args += [ivf or "", *map(str, mnums)]
    elif ivf:
        args.append(ivf)
    trig = sql.Identifier(str(cc.store_name))
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in [src, key, *mnames])
    # CREATE OR REPLACE: SHARE ROW EXCLUSIVE on the user's table (writers wait, readers
    # do not); DROP TRIGGER took ACCESS EXCLUSIVE, which also queued every read of the
    # table behind any long one already running
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE TRIGGER {} AFTER INSERT OR UPDATE OF {} OR DELETE ON {} FOR EACH ROW "
            "EXECUTE FUNCTION vecext.store_trigger({})"
        ).format(trig, cols, t.ident, sql.SQL(", ").join(map(sql.Literal, args)))
    )


def recorded_mirrors(conn: psycopg.Connection, cc_id: int) -> list[int]:
    """The attnums of the columns compressed column ``cc_id`` mirrors into its code store
    (catalog 0.6.0; none before), as the catalog records them."""
    row = conn.execute(
        "SELECT to_jsonb(c) -> 'mirror_attnums' FROM vecext.compressed_columns c WHERE c.id = %s",
        [cc_id],
    ).fetchone()
    return [int(n) for n in (row[0] or [])] if row else []


def add_to_store(
    conn: psycopg.Connection,
    cc: PgCompressedColumn,
    col: VectorColumn,
    lcol: str,
    name: str,
    codec: IVFCodec,
    metric: str,
    batch_size: int,
) -> IVFLists:
    """The lists of a code-store column: column ``lcol`` of its store, assigned by the
    store's trigger from now on, the existing rows filled in batches; the user's table
    is only read."""
    db = PgDialect(conn)
    st = cc.store
    assert st is not None
    with conn.transaction():
        if store.codec_version(db, name) is not None:
            raise CatalogError(f"codec {name!r} already exists; pass another codec_name")
        store.insert_codec(db, codec_record(name, codec))
        # committed before the fill reads a vector: every write from then on assigns its
        # row's list, and the fill never overwrites one (it sets NULL lists only). First:
        # it locks the user's table before the store, in the order writers take them
        store_trigger(conn, cc, name)
        # (a column an interrupted add_ivf_lists left goes: the store is vecext's)
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(st, sql.Identifier(lcol))
        )
        # nullable, no default: no rewrite of the store
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN {} integer").format(st, sql.Identifier(lcol))
        )
    index = ident_name(str(cc.store_name), lcol, suffix="_idx")
    try:
        fill_lists(conn, col, lcol, codec, batch_size, cc.store)
        with conn.transaction():
            conn.execute(
                sql.SQL("CREATE INDEX {} ON {} ({})").format(
                    sql.Identifier(index), st, sql.Identifier(lcol)
                )
            )
            cat_ivf.set_lists(db, cc.id, lcol, name)
            conn.execute(
                "UPDATE vecext.compressed_columns SET list_layout = 'store' WHERE id = %s",
                [cc.id],
            )
            conn.execute(sql.SQL("ANALYZE {}").format(st))
    except BaseException:
        with conn.transaction():
            drop_from_store(conn, cc, lcol, name)
        raise
    return IVFLists(
        cc.table, col.name, cc.code_column, lcol, name, codec.nlist, metric, (index,),
        store=cc.store_name,
    )  # fmt: skip


def fill_lists(
    conn: psycopg.Connection,
    col: VectorColumn,
    lcol: str,
    codec: IVFCodec,
    batch_size: int,
    store: sql.Composable | None = None,
) -> int:
    """Assign the rows whose list is missing, one committed batch at a time: the vectors
    are read from the user's table (key order, binary COPY), the list ids go to a
    temporary buffer and from there, in one UPDATE per batch, to the code ``store``
    (keyed ``pk``) or, without one, to the list column of the user's table (layout
    ``table``). Only missing lists are set: one the trigger wrote meanwhile (its row was
    written after the read) is newer. Between batches an autocommit connection vacuums
    the store, so the next batch's new row versions take the space this one's old
    versions freed: it grows by about one batch, not by its size. Returns the rows
    assigned."""
    t = col.table
    key, key_type = primary_key(conn, t)
    int_key = key_type in copybin.INT_KEYS
    k, src, lst = sql.Identifier(key), sql.Identifier(col.name), sql.Identifier(lcol)
    if store is not None:  # vectors from t, lists in s
        source = sql.SQL("{} t JOIN {} s ON s.pk = t.{}").format(t.ident, store, k)
        lists, target, target_key = sql.SQL("s"), store, sql.Identifier("pk")
    else:
        source = sql.SQL("{} t").format(t.ident)
        lists, target, target_key = sql.SQL("t"), t.ident, k
    update = sql.SQL(
        "UPDATE {} AS s SET {} = b.l FROM {} b WHERE s.{} = b.k AND s.{} IS NULL"
    ).format(target, lst, sql.Identifier(BUFFER), target_key, lst)
    done, last = 0, None
    while True:
        # COPY takes no bound parameters: the last key (an int or the text of a key
        # read back from the table) is quoted by psycopg
        after = (
            sql.SQL("TRUE") if last is None else sql.SQL("t.{} > {}").format(k, sql.Literal(last))
        )
        query = sql.SQL(
            "COPY (SELECT {key}, t.{src} FROM {source} WHERE {after} AND {lists}.{lst} IS NULL "
            "AND t.{src} IS NOT NULL ORDER BY t.{k} LIMIT {n}) TO STDOUT (FORMAT binary)"
        ).format(
            key=sql.SQL("t.{}").format(k) if int_key else sql.SQL("t.{}::text").format(k),
            src=src, source=source, after=after, lists=lists, lst=lst, k=k,
            n=sql.Literal(int(batch_size)),
        )  # fmt: skip
        with conn.transaction():
            keys = buffer_lists(conn, query, col, codec, key_type, int_key)
            if not keys:
                return done
            with conn.cursor() as cur:
                cur.execute(update)
                done += max(cur.rowcount, 0)
        if store is not None and (
            conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE
        ):
            conn.execute(sql.SQL("VACUUM {}").format(store))
        last = keys[-1]


def drop_from_store(
    conn: psycopg.Connection, cc: PgCompressedColumn, lcol: str, codec: str
) -> None:
    """Undo :func:`add_to_store` in the caller's transaction: the store's trigger
    without lists, its list column (and index) dropped, the catalog's record and the
    centroids gone. The user's table is not touched beyond its trigger."""
    store_trigger(conn, cc, None)
    st = cc.store
    assert st is not None
    conn.execute(
        sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(st, sql.Identifier(lcol))
    )
    db = PgDialect(conn)
    cat_ivf.clear_lists(db, codec)
    conn.execute("UPDATE vecext.compressed_columns SET list_layout = NULL WHERE id = %s", [cc.id])
    store.delete_codec(db, codec)


def primary_key(conn: psycopg.Connection, t: TableRef) -> tuple[str, str]:
    """The name and type of ``t``'s single-column primary key."""
    row = conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod)
           FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           WHERE i.indrelid = %s AND i.indisprimary AND i.indnkeyatts = 1""",
        [t.oid],
    ).fetchone()
    if row is None:
        raise CatalogError(f"table {t} needs a single-column primary key for IVF lists")
    return str(row[0]), str(row[1])
