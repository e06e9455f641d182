"""The triggers that keep IVF list columns current, and the lists they outlive.

``add_ivf_lists`` gives every list column a trigger (``vecext.ivf_lists_trigger``,
named ``vecext_<list column>``, arguments: vector column, list column, IVF codec).
The trigger is how lists are found that no compressed column records any more:
the SQL function ``vecext.drop_compressed_column`` of catalog 0.1.0 dropped the code
column only and left its lists (0.2.0's drops them too), and an interrupted
``add_ivf_lists`` may leave a half-made one. :func:`orphaned_ivf_lists` lists them,
:func:`drop_orphaned_ivf_lists` drops them, and ``drop_codec`` refuses to drop the
centroids a list trigger still reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from vecext.postgres.catalog import require_catalog
from vecext.postgres.tables import TableRef, resolve_table


def trigger_name(list_column: str) -> str:
    """``left('vecext_' || list_column, 63)``: the naming of compressed-column triggers."""
    return ("vecext_" + list_column)[:63]


@dataclass(frozen=True)
class ListTrigger:
    """The trigger keeping an IVF list column current, as ``add_ivf_lists`` made it.

    It is *orphaned* when no compressed column records its list column: the
    compressed column was dropped by the SQL function ``vecext.drop_compressed_column``
    of catalog 0.1.0 (which drops the code column only; 0.2.0's drops the lists too),
    or ``add_ivf_lists`` was interrupted while filling the list column."""

    table: TableRef
    source_column: str
    list_column: str
    codec_name: str
    trigger: str


def list_triggers(conn: psycopg.Connection, oid: int | None) -> list[ListTrigger]:
    """Every trigger ``add_ivf_lists`` made (on table ``oid``, or on any table): function
    ``vecext.ivf_lists_trigger``, named ``vecext_<list column>``, arguments: vector
    column, list column, IVF codec."""
    rows = conn.execute(
        """SELECT c.oid, n.nspname, c.relname, g.tgname, g.tgargs
           FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE g.tgfoid = 'vecext.ivf_lists_trigger'::regproc AND NOT g.tgisinternal
             AND (%s::oid IS NULL OR c.oid = %s::oid)
           ORDER BY n.nspname, c.relname, g.tgname""",
        [oid, oid],
    ).fetchall()
    out = []
    for toid, schema, name, tgname, tgargs in rows:
        args = [a.decode() for a in bytes(tgargs).split(b"\x00")[:-1]]
        if len(args) == 3 and tgname == trigger_name(args[1]):
            src, lcol, codec = args
            out.append(ListTrigger(TableRef(int(toid), schema, name), src, lcol, codec, tgname))
    return out


def orphaned_ivf_lists(conn: psycopg.Connection, table: str | None = None) -> list[ListTrigger]:
    """The orphaned IVF lists of ``table`` (or of every table): see :class:`ListTrigger`.
    They are found by the trigger each list column keeps."""
    require_catalog(conn)
    oid = resolve_table(conn, table).oid if table is not None else None
    used = {
        (r[0], r[1], r[2], r[3])
        for r in conn.execute(
            "SELECT table_schema, table_name, list_column, ivf_codec_name "
            "FROM vecext.compressed_columns WHERE list_column IS NOT NULL"
        ).fetchall()
    }
    return [
        o
        for o in list_triggers(conn, oid)
        if (o.table.schema, o.table.name, o.list_column, o.codec_name) not in used
    ]


def drop_orphaned_ivf_lists(conn: psycopg.Connection, table: str | None = None) -> list[str]:
    """Drop the orphaned IVF lists of ``table`` (or of every table): each one's trigger,
    its ``integer`` list column (with its indexes) and its centroids, unless a
    compressed column still uses that codec. Vectors and codes are never touched.

    The SQL function ``vecext.drop_compressed_column`` of catalog 0.1.0 dropped the
    code column only and left its lists so; from catalog 0.2.0 it drops them too (and
    :func:`vecext.postgres.drop_compressed_column` does on either catalog). Upgrading
    the catalog leaves lists already orphaned in place: this drops them. Returns the
    ``schema.table.list_column`` names dropped.
    """
    done = []
    with conn.transaction():
        for o in orphaned_ivf_lists(conn, table):
            typ = conn.execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s AND attname = %s AND attnum > 0 AND NOT attisdropped",
                [o.table.oid, o.list_column],
            ).fetchone()
            conn.execute(
                sql.SQL("DROP TRIGGER {} ON {}").format(sql.Identifier(o.trigger), o.table.ident)
            )
            if typ is not None and typ[0] == "integer":
                conn.execute(
                    sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(
                        o.table.ident, sql.Identifier(o.list_column)
                    )
                )
            in_use = conn.execute(
                "SELECT 1 FROM vecext.compressed_columns WHERE codec_name = %(c)s "
                "OR ivf_codec_name = %(c)s",
                {"c": o.codec_name},
            ).fetchone() or any(t.codec_name == o.codec_name for t in list_triggers(conn, None))
            if not in_use:
                conn.execute(
                    "DELETE FROM vecext.codecs WHERE name = %s AND kind = 'ivf'", [o.codec_name]
                )
            done.append(f"{o.table}.{o.list_column}")
    return done
