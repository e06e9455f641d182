"""Code stores: where a PostgreSQL compressed column keeps its codes (catalog 0.4.0).

A compressed column of layout ``store`` keeps its codes in ``vecext."store_<id>"``
``(pk <the table's primary key type> PRIMARY KEY, code <bytea | bit(n) | halfvec(n)>)``,
one row per row of the user's table that has a vector; triggers on the user's table
(``vecext.store_trigger``, ``vecext.store_truncate_trigger``) keep it current, so the
user's table is never altered, updated or rewritten. Layout ``table`` is the code
column inside the user's table that catalogs 0.1.0-0.3.0 made: still read, and moved
to a store by :func:`vecext.postgres.migrate_to_store`.

Catalog rows are found by the table's OID and the source column's attnum, with the
names read live from ``pg_class`` / ``pg_attribute``: renaming the table or its
columns changes nothing, and a dropped and re-created table of the same name does
not see the old rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from vecext.catalog.columns import CompressedColumn
from vecext.catalog.scripts import vtuple
from vecext.errors import CatalogError
from vecext.postgres.catalog import require_catalog
from vecext.postgres.tables import TableRef

#: The first catalog with code stores and OID-keyed rows.
STORE_CATALOG = "0.4.0"


@dataclass(frozen=True)
class PgCompressedColumn(CompressedColumn):
    """A PostgreSQL compressed column: the catalog row, names as they are now, and its
    layout (``store`` or ``table``)."""

    layout: str = "table"

    @property
    def store_name(self) -> str | None:
        """``store_<id>`` (in schema ``vecext``) for layout ``store``, else ``None``."""
        return f"store_{self.id}" if self.layout == "store" else None

    @property
    def store(self) -> sql.Identifier | None:
        return sql.Identifier("vecext", self.store_name) if self.store_name else None


def require_store_catalog(conn: psycopg.Connection) -> str:
    """The installed catalog version, which must have code stores (>= 0.4.0)."""
    version = require_catalog(conn)
    if vtuple(version) < vtuple(STORE_CATALOG):
        raise CatalogError(
            f"the vecext catalog in database {conn.info.dbname!r} is version {version}, older "
            f"than this vecext ({STORE_CATALOG}): run `vecext install` (or "
            "vecext.postgres.install(conn)) to upgrade it; compressed columns already made "
            "keep working"
        )
    return version


def has_stores(conn: psycopg.Connection) -> bool:
    """Whether the installed catalog has code stores and OID-keyed rows (>= 0.4.0)."""
    return vtuple(require_catalog(conn)) >= vtuple(STORE_CATALOG)


#: rows of a catalog before 0.4.0: keyed by names, codes in the table (layout 'table')
_OLD_ROWS = """SELECT k.id, r.oid, k.table_schema, k.table_name, k.source_column,
       k.code_column, k.codec_name, k.codec_fingerprint, k.key_column, k.status,
       k.backfill_position, k.rows_encoded, k.list_column, k.ivf_codec_name, 'table'
  FROM vecext.compressed_columns k
  JOIN pg_namespace n ON n.nspname = k.table_schema
  JOIN pg_class r ON r.relnamespace = n.oid AND r.relname = k.table_name"""

_ROWS = """SELECT k.id, r.oid, n.nspname, r.relname,
       coalesce(sa.attname, k.source_column), k.code_column, k.codec_name,
       k.codec_fingerprint, coalesce(ka.attname, k.key_column), k.status,
       k.backfill_position, k.rows_encoded, k.list_column, k.ivf_codec_name, k.layout
  FROM vecext.compressed_columns k
  JOIN pg_class r ON r.oid = k.table_oid
  JOIN pg_namespace n ON n.oid = r.relnamespace
  LEFT JOIN pg_attribute sa
         ON sa.attrelid = k.table_oid AND sa.attnum = k.source_attnum AND NOT sa.attisdropped
  LEFT JOIN pg_attribute ka
         ON ka.attrelid = k.table_oid AND ka.attnum = k.key_attnum AND NOT ka.attisdropped"""


def compressed_columns(
    conn: psycopg.Connection, oid: int | None = None, code_column: str | None = None
) -> list[PgCompressedColumn]:
    """The registered compressed columns (of table ``oid``, named ``code_column``, when
    given), oldest first. (A catalog before 0.4.0 is read by names.)"""
    new = has_stores(conn)
    where, params = [], []
    if oid is not None:
        where.append("k.table_oid = %s" if new else "r.oid = %s")
        params.append(oid)
    if code_column is not None:
        where.append("k.code_column = %s")
        params.append(code_column)
    query = (
        (_ROWS if new else _OLD_ROWS)
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY k.id"
    )
    return [
        PgCompressedColumn(
            id=int(r[0]), table=TableRef(int(r[1]), r[2], r[3]), source_column=r[4],
            code_column=r[5], codec=r[6], codec_fingerprint=r[7], key_column=r[8],
            status=r[9], backfill_position=r[10], rows_encoded=int(r[11]), list_column=r[12],
            ivf_codec=r[13], layout=r[14],
        )
        for r in conn.execute(query, params).fetchall()  # type: ignore[arg-type]
    ]  # fmt: skip


def compressed_column(
    conn: psycopg.Connection, t: TableRef, code_column: str
) -> PgCompressedColumn:
    """The row of compressed column ``code_column`` of table ``t``; a :class:`CatalogError`
    naming the table's compressed columns if there is none."""
    found = compressed_columns(conn, t.oid, code_column)
    if found:
        return found[0]
    known = [c.code_column for c in compressed_columns(conn, t.oid)]
    raise CatalogError(
        f"{t}.{code_column} is not a vecext compressed column "
        f"(compressed columns of {t}: {', '.join(known) if known else 'none'})"
    )


def has_code(cc: PgCompressedColumn, key: sql.Composable) -> sql.Composable:
    """A condition on a row of the user's table (``key``: its primary key, qualified as
    the query needs) that holds when the row has a code."""
    if cc.store is not None:
        return sql.SQL("EXISTS (SELECT FROM {} s WHERE s.pk = {})").format(cc.store, key)
    return sql.SQL("{} IS NOT NULL").format(sql.Identifier(cc.code_column))


def store_size(conn: psycopg.Connection, cc: Any) -> int:
    """Bytes on disk of a code store (table, TOAST and its primary key index)."""
    row = conn.execute(
        "SELECT pg_total_relation_size(to_regclass(%s))", [f'vecext."{cc.store_name}"']
    ).fetchone()
    return int(row[0] or 0) if row else 0


# ---------------------------------------------------------------------------
# migration, orphans, privileges (the SQL functions of catalog 0.4.0)


def migrate_to_store(conn: psycopg.Connection, table: str, code_column: str) -> str:
    """Move compressed column ``table.code_column`` of the in-table layout (made before
    catalog 0.4.0) to a code store, in one transaction; returns the store's name.

    The store gets the codes of every row with a vector, its triggers replace the code
    column's, and searches read the store from then on. The table is locked against
    writes (``SHARE``) while the codes are copied (a read of one column). The old code
    column stays in the table, no longer kept current: drop it yourself
    (``ALTER TABLE ... DROP COLUMN``) once nothing reads it. A no-op for a column that
    already has a store.
    """
    from vecext.postgres.tables import resolve_table

    require_store_catalog(conn)
    t = resolve_table(conn, table)
    compressed_column(conn, t, code_column)  # a clear error when it is not one
    with conn.transaction():
        row = conn.execute(
            "SELECT vecext.migrate_to_store(%s::oid::regclass, %s)::text", [t.oid, code_column]
        ).fetchone()
    assert row is not None
    return str(row[0])


def drop_orphaned_compressed_columns(conn: psycopg.Connection) -> list[str]:
    """Drop the catalog rows, code stores and IVF codecs of compressed columns whose table
    or vector column was dropped; returns them as ``schema.table.column`` (the names
    they had). Installed by a superuser, the catalog's event trigger does this at every
    DROP; otherwise call it after dropping such tables."""
    require_store_catalog(conn)
    with conn.transaction():
        rows = conn.execute("SELECT vecext.drop_orphaned_compressed_columns()").fetchall()
    return [str(r[0]) for r in rows]


def grant_usage(conn: psycopg.Connection, role: str, *, writer: bool = False) -> None:
    """Let ``role`` search (``SELECT vecext.grant_usage(role)``, run by the catalog's
    owner): USAGE on schema ``vecext``, SELECT on its catalog and code stores (today's
    and those made later), EXECUTE on its functions. Writing needs no grant from vecext:
    the triggers run as the catalog's owner. No role but the owner can change the
    catalog."""
    require_store_catalog(conn)
    with conn.transaction():
        conn.execute("SELECT vecext.grant_usage(%s, %s)", [role, writer])


def revoke_usage(conn: psycopg.Connection, role: str) -> None:
    """Undo :func:`grant_usage`."""
    require_store_catalog(conn)
    with conn.transaction():
        conn.execute("SELECT vecext.revoke_usage(%s)", [role])
