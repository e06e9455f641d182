"""Filter columns mirrored into a code store (catalog 0.6.0, issue 11 item 3).

A filtered search over a code store ``vecext."store_<id>"(pk, code[, list])`` joined the
user's table by primary key to apply the filter. Mirroring the filter columns into the
store, with a btree each, lets it filter the narrow store alone: 1.5-17x faster on
wordnet-minilm (docs/bench-postgres.md). :func:`mirror_columns` adds them:

* the store (vecext's table, never the user's) gets a column ``col_<attnum>`` of the
  source column's type and collation per mirrored column;
* the store's row trigger (``vecext.store_trigger``) gets their attnums as arguments
  and fires on updates of them too, writing the values with the code (an update of
  only a mirrored column rewrites the values, not the code);
* the rows already there are filled in committed batches, the user's rows locked
  ``FOR SHARE`` while their values go in (as the code backfill does), so a concurrent
  write waits and then its trigger writes the newer value; the user's table is only
  read;
* then each column gets a btree and ``compressed_columns.mirror_attnums`` records
  them (by attnum: renames are followed); only then does a search filter on them.

The search (:mod:`vecext.postgres.store_filter`) filters on the store when the
request's filter names mirrored columns only. A declared tenant column is mirrored
into every code store of its table (:func:`vecext.postgres.declare_tenant_column`,
:func:`vecext.postgres.add_compressed_column`). Dropping the compressed column drops
the store and with it the mirrored columns.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from vecext.catalog import columns as cat
from vecext.catalog.scripts import vtuple
from vecext.errors import CatalogError
from vecext.postgres import stores
from vecext.postgres.catalog import require_catalog
from vecext.postgres.ivf_store import ident_name, recorded_mirrors, store_trigger
from vecext.postgres.stores import PgCompressedColumn
from vecext.postgres.tables import resolve_table

__all__ = [
    "MIRROR_CATALOG",
    "has_mirrors",
    "mirror_columns",
    "mirrored_columns",
    "named_mirrors",
    "store_column",
    "unmirror_columns",
]

#: The first catalog that mirrors filter columns into code stores.
MIRROR_CATALOG = "0.6.0"
#: types that are vectors (never mirrored: a filter does not compare them)
_VECTOR_TYPES = ("vector", "halfvec", "sparsevec")


def has_mirrors(conn: psycopg.Connection) -> bool:
    """Whether the installed catalog can mirror columns into code stores (>= 0.6.0)."""
    return vtuple(require_catalog(conn)) >= vtuple(MIRROR_CATALOG)


def store_column(attnum: int) -> str:
    """The store's column that mirrors the table's column of ``attnum``."""
    return f"col_{int(attnum)}"


def mirrored_columns(conn: psycopg.Connection, table: str, code_column: str) -> list[str]:
    """The columns of ``table`` mirrored into ``code_column``'s code store, as named now."""
    t = resolve_table(conn, table)
    cc = stores.compressed_column(conn, t, code_column)
    nums = recorded_mirrors(conn, cc.id) if has_mirrors(conn) else []
    return [name for _, name in named_mirrors(conn, cc, nums)]


def named_mirrors(
    conn: psycopg.Connection, cc: PgCompressedColumn, nums: list[int] | None = None
) -> list[tuple[int, str]]:
    """``(attnum, name as now)`` of the columns ``nums`` (default: those the catalog records
    for ``cc``) of ``cc``'s table, in their order; dropped columns left out."""
    if nums is None:
        nums = recorded_mirrors(conn, cc.id) if cc.store is not None else []
    rows = conn.execute(
        "SELECT a.attnum, a.attname FROM unnest(%s::int2[]) WITH ORDINALITY m(n, i) "
        "JOIN pg_attribute a ON a.attrelid = %s AND a.attnum = m.n AND NOT a.attisdropped "
        "ORDER BY m.i",
        [nums, cc.table.oid],
    ).fetchall()
    return [(int(n), str(name)) for n, name in rows]


def mirror_columns(
    conn: psycopg.Connection,
    table: str,
    code_column: str,
    columns: str | Iterable[str],
    *,
    batch_size: int = 10_000,
) -> list[str]:
    """Mirror ``columns`` of ``table`` into the code store of ``code_column`` (see the
    module docstring); returns every column the store mirrors afterwards.

    Columns the store mirrors already are left as they are. The user's table is only
    read (its rows locked ``FOR SHARE`` batch by batch while their values are copied).

    Raises
    ------
    CatalogError
        The catalog is older than 0.6.0, the column has no code store (layout
        ``table``), or a column is unknown, named twice, the vector or key column, or a
        vector.
    """
    cat.check_batch_size(batch_size)
    wanted = [columns] if isinstance(columns, str) else list(columns)
    # the checks in a transaction of their own: on a connection without autocommit the
    # batches below then commit, and the connection is left idle
    with conn.transaction():
        cc, new, have, attrs = _check(conn, table, code_column, wanted)
    if new:
        _add(conn, cc, have, new, {attrs[c][0]: attrs[c] for c in wanted}, batch_size)
    with conn.transaction():
        return [name for _, name in named_mirrors(conn, cc, have + new)]


def _check(
    conn: psycopg.Connection, table: str, code_column: str, wanted: list[str]
) -> tuple[PgCompressedColumn, list[int], list[int], dict[str, tuple[int, str, str, str | None]]]:
    """The compressed column, the attnums to add and those mirrored already, and the
    table's columns; a :class:`CatalogError` naming what is wrong."""
    if not has_mirrors(conn):
        raise CatalogError(
            f"the vecext catalog is version {require_catalog(conn)}: mirrored filter columns "
            f"need {MIRROR_CATALOG}; run `vecext install` to upgrade it"
        )
    t = resolve_table(conn, table)
    cc = stores.compressed_column(conn, t, code_column)
    if cc.store is None:
        raise CatalogError(
            f"{t}.{code_column} keeps its codes in the table (layout 'table'): only a code "
            "store mirrors columns; move it with migrate_to_store first"
        )
    if not wanted:
        raise CatalogError(f"mirror_columns of {t}.{code_column}: name at least one column")
    seen = {c for c in wanted if wanted.count(c) > 1}
    if seen:
        raise CatalogError(
            f"mirror_columns of {t}.{code_column}: {', '.join(sorted(seen))} named twice"
        )
    attrs = {
        name: (int(num), typ, base, coll)
        for name, num, typ, base, coll in conn.execute(
            """SELECT a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), ty.typname,
                      CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation
                           THEN format('%%I.%%I', cn.nspname, co.collname) END
                 FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
                 LEFT JOIN pg_collation co ON co.oid = a.attcollation
                 LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
                WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped""",
            [t.oid],
        ).fetchall()
    }
    for c in wanted:
        if c not in attrs:
            raise CatalogError(
                f"table {t} has no column {c!r} to mirror; its columns are: {', '.join(attrs)}"
            )
        if c in (cc.source_column, cc.key_column):
            what = "vector" if c == cc.source_column else "primary key"
            raise CatalogError(
                f"{t}.{c} is the {what} column of {code_column}: the code store has it "
                "already; mirror filter columns only"
            )
        if attrs[c][2] in _VECTOR_TYPES:
            raise CatalogError(
                f"{t}.{c} is {attrs[c][1]}: vector columns are not mirrored (a filter "
                "compares scalar columns)"
            )
    have = recorded_mirrors(conn, cc.id)
    return cc, [attrs[c][0] for c in wanted if attrs[c][0] not in have], have, attrs


def unmirror_columns(
    conn: psycopg.Connection, table: str, code_column: str, columns: str | Iterable[str]
) -> list[str]:
    """Stop mirroring ``columns`` into ``code_column``'s code store, in one transaction:
    the store's trigger no longer writes or watches them and their store columns (and
    btrees) go; returns the columns still mirrored. Searches filtering on them join the
    table again. Call it before dropping a mirrored column of the table (the trigger
    fires on updates of it, so ``DROP COLUMN`` is refused while it is mirrored, and
    ``DROP COLUMN ... CASCADE`` would drop the store's trigger)."""
    with conn.transaction():
        return _unmirror(conn, table, code_column, columns)


def _unmirror(
    conn: psycopg.Connection, table: str, code_column: str, columns: str | Iterable[str]
) -> list[str]:
    if not has_mirrors(conn):
        return []
    gone = {columns} if isinstance(columns, str) else set(columns)
    t = resolve_table(conn, table)
    cc = stores.compressed_column(conn, t, code_column)
    have = named_mirrors(conn, cc, recorded_mirrors(conn, cc.id))
    unknown = sorted(gone - {name for _, name in have})
    if unknown:
        raise CatalogError(
            f"{t}.{code_column} does not mirror {', '.join(unknown)} (it mirrors: "
            f"{', '.join(name for _, name in have) or 'nothing'})"
        )
    keep = [n for n, name in have if name not in gone]
    (layout,) = conn.execute(  # type: ignore[misc]
        "SELECT list_layout FROM vecext.compressed_columns WHERE id = %s", [cc.id]
    ).fetchone()
    with conn.transaction():
        conn.execute(
            "UPDATE vecext.compressed_columns SET mirror_attnums = %s::int2[] WHERE id = %s",
            [keep or None, cc.id],
        )
        store_trigger(conn, cc, cc.ivf_codec if layout == "store" else None, keep)
        for n, name in have:
            if name in gone:
                conn.execute(
                    sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(
                        cc.store, sql.Identifier(store_column(n))
                    )
                )
    return [name for n, name in have if n in keep]


def _add(
    conn: psycopg.Connection,
    cc: PgCompressedColumn,
    have: list[int],
    new: list[int],
    attrs: dict[int, tuple[int, str, str, str | None]],
    batch_size: int,
) -> None:
    st = cc.store
    assert st is not None
    with conn.transaction():
        (layout,) = conn.execute(  # type: ignore[misc]
            "SELECT list_layout FROM vecext.compressed_columns WHERE id = %s", [cc.id]
        ).fetchone()
        ivf = cc.ivf_codec if layout == "store" else None
        # the trigger first: it locks the user's table before the store, in
        # the order writers take them (table, then the store in their trigger); the
        # other order deadlocks with a writer. Committed before the fill reads a row:
        # every write from then on writes the values with the code
        store_trigger(conn, cc, ivf, have + new)
        for n in new:
            _, typ, _, coll = attrs[n]
            col = sql.Identifier(store_column(n))
            # (a column an interrupted mirror_columns left goes: the store is vecext's)
            conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(st, col))
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} {}{}").format(
                    st, col, sql.SQL(typ),  # type text from format_type
                    sql.SQL(f" COLLATE {coll}") if coll else sql.SQL(""),  # quoted by format('%I')
                )
            )  # fmt: skip
    try:
        _fill(conn, cc, new, batch_size)
        with conn.transaction():
            for n in new:
                conn.execute(
                    sql.SQL("CREATE INDEX {} ON {} ({})").format(
                        sql.Identifier(
                            ident_name(str(cc.store_name), store_column(n), suffix="_idx")
                        ),
                        st,
                        sql.Identifier(store_column(n)),
                    )
                )
            conn.execute(
                "UPDATE vecext.compressed_columns SET mirror_attnums = %s::int2[] WHERE id = %s",
                [have + new, cc.id],
            )
            conn.execute(sql.SQL("ANALYZE {}").format(st))
    except BaseException:
        with conn.transaction():
            store_trigger(conn, cc, ivf, have)
            for n in new:
                conn.execute(
                    sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(
                        st, sql.Identifier(store_column(n))
                    )
                )
        raise


def _fill(conn: psycopg.Connection, cc: PgCompressedColumn, new: list[int], batch_size: int) -> int:
    """Copy the mirrored values of the store's rows, one committed batch at a time in key
    order; returns the rows filled."""
    st = cc.store
    assert st is not None and cc.key_column is not None
    with conn.transaction():
        names = dict(named_mirrors(conn, cc, new))
    k = sql.Identifier(cc.key_column)
    cols = sql.SQL(", ").join(sql.Identifier(store_column(n)) for n in new)
    vals = sql.SQL(", ").join(sql.SQL("b.{}").format(sql.Identifier(f"m{n}")) for n in new)
    picks = sql.SQL(", ").join(
        sql.SQL("t.{} AS {}").format(sql.Identifier(names[n]), sql.Identifier(f"m{n}")) for n in new
    )
    last_of = sql.SQL(
        "SELECT max(pk), count(*) FROM (SELECT pk FROM {} WHERE %s::bool OR pk > %s "
        "ORDER BY pk LIMIT {}) s"
    ).format(st, sql.Literal(int(batch_size)))
    # the table's rows locked while their values go in: a concurrent write waits, and
    # its trigger then writes the newer value (as the code backfill, vecext.postgres.bulk)
    update = sql.SQL(
        "WITH b AS (SELECT t.{k} AS vx_k, {picks} FROM {t} t WHERE t.{k} > %s AND t.{k} <= %s "
        "OR (%s::bool AND t.{k} <= %s) FOR SHARE OF t) "
        "UPDATE {st} AS s SET ({cols}) = ROW({vals}) FROM b WHERE s.pk = b.vx_k"
    ).format(k=k, picks=picks, t=cc.table.ident, st=st, cols=cols, vals=vals)
    done, last = 0, None
    while True:
        with conn.transaction():
            hi, n = conn.execute(last_of, [last is None, last]).fetchone()  # type: ignore[misc]
            if not n:
                return done
            with conn.cursor() as cur:
                cur.execute(update, [last, hi, last is None, hi])
                done += max(cur.rowcount, 0)
        if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
            # the next batch's row versions take the space this one's freed
            conn.execute(sql.SQL("VACUUM {}").format(st))
        last = hi
