"""The check a prepared search sends with each query (PostgreSQL).

A :class:`~vecext.search.prepared.PreparedSearch` keeps a table's facts and its plan
between queries, so it cannot afford the table stamp of
:mod:`vecext.postgres.info_cache` (0.28-0.31 ms of a 1 ms search on wiki-vital). What
it must never miss is a change that would make its rows *wrong* or let it search what
it may no longer search; a change that only makes its plan slower may wait for
:meth:`~vecext.search.prepared.PreparedSearch.refresh`. The guard reads, in the
select list that also sets the statement's settings (no extra statement):

* without a catalog, the catalog's state (one installed since changes it);
* the indexes on the table and on its code stores (one created or dropped re-plans);
* with a catalog, the table's ``compressed_columns`` rows (a codec replaced, a column
  re-encoding, mirrors or a calibration changed), every ``tenant_columns`` row (a
  tenant column declared: a search must then name its tenant) and the installed
  version (an upgrade); a dropped catalog or a revoked USAGE on it makes the guard
  fail, which counts as a change.

What it leaves to :meth:`refresh`: ANALYZE (the row estimates a filtered plan was
chosen with) and index calibrations (their comments). A column retyped or dropped,
a code store or mirrored column dropped, make the kept statement fail; the prepared
search then plans again (:mod:`vecext.search.prepared`).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from vecext.postgres.info_cache import _STATE, NAMED_CATALOG, NO_CATALOG, OID_CATALOG
from vecext.postgres.statement import Check, cached_sql, execute_prepared
from vecext.search.contracts import FactsChanged, TableInfo

__all__ = ["GUARD_SQL", "guard_check", "prepared_guard", "read_guard"]

_INDEXES = (
    "(SELECT array_agg(i.indexrelid::bigint ORDER BY i.indexrelid) FROM pg_index i "
    "WHERE i.indrelid = ANY(%s::oid[]))"
)

#: the catalog rows, one array (one subquery: 14 against 21 us of server time for three)
_ROW_IDS = "x.xmin::text || x.ctid::text"


def _guard_sql(state: int) -> sql.Composed:
    if state == NO_CATALOG:  # a catalog installed since changes the state
        return sql.SQL(", ").join([sql.SQL(_STATE), sql.SQL(_INDEXES)])
    # with a catalog, no state (16 us): an upgrade rewrites installed_version, a dropped
    # catalog or a revoked USAGE makes the guard fail, which counts as changed
    own = "x.table_oid = %s" if state == OID_CATALOG else "true"
    rows = (
        f"(SELECT array_agg(x.r) FROM (SELECT 'c' || {_ROW_IDS} AS r "
        f"FROM vecext.compressed_columns x WHERE {own} "
        f"UNION ALL SELECT 't' || {_ROW_IDS} FROM vecext.tenant_columns x "
        f"UNION ALL SELECT 'v' || {_ROW_IDS} FROM vecext.installed_version x) x)"
    )
    return sql.SQL(", ").join([sql.SQL(_INDEXES), sql.SQL(rows)])


#: the guard's select list by catalog state
GUARD_SQL = {s: _guard_sql(s) for s in (NO_CATALOG, NAMED_CATALOG, OID_CATALOG)}


def _relations(conn: psycopg.Connection, info: TableInfo) -> list[int]:
    """The table's OID and its code stores' (the relations whose indexes are guarded)."""
    stores = [c.store for c in info.codes.values() if getattr(c, "store", None)]
    if not stores:
        return [int(info.ref.oid)]
    rows = conn.execute(
        "SELECT c.oid FROM pg_class c WHERE c.relnamespace = 'vecext'::regnamespace "
        "AND c.relname = ANY(%s::text[]) ORDER BY c.oid",
        [stores],
    ).fetchall()
    return [int(info.ref.oid), *(int(r[0]) for r in rows)]


def _params(state: int, oids: list[int], table_oid: int) -> list[Any]:
    # the OIDs as the text of an oid[] (a Python list took longer to send)
    text = "{" + ",".join(str(o) for o in oids) + "}"
    return [text, table_oid] if state == OID_CATALOG else [text]


def _state(conn: psycopg.Connection) -> int:
    (state,) = conn.execute(f"SELECT {_STATE}").fetchone()  # type: ignore[misc]
    return int(state)


def read_guard(conn: psycopg.Connection, info: TableInfo) -> tuple[int, list[int], tuple[Any, ...]]:
    """The guard's value now: ``(catalog state, guarded relations, row)``. Read it
    *before* the facts a plan is made from: a change in between then re-plans once
    more, never leaves a plan older than its guard."""
    state = _state(conn)
    oids = _relations(conn, info)
    text = cached_sql(conn, ("guard", state, ""), lambda: sql.SQL("SELECT ") + GUARD_SQL[state])
    row = execute_prepared(conn.cursor(), text, _params(state, oids, int(info.ref.oid))).fetchone()
    return state, oids, tuple(row)  # type: ignore[arg-type]


def guard_check(state: int, oids: list[int], table_oid: int, value: tuple[Any, ...]) -> Check:
    """The :class:`~vecext.postgres.statement.Check` sent ahead of a prepared search's
    first statement: it raises :class:`FactsChanged` when the guard's value differs
    from ``value`` (or could not be read)."""

    def send(conn: psycopg.Connection, calls: str, values: list[Any]) -> psycopg.Cursor[Any]:
        # the statement's set_config calls ride on the guard's row, after its columns
        text = cached_sql(
            conn,
            ("guard", state, calls),
            lambda: sql.SQL("SELECT ") + GUARD_SQL[state] + sql.SQL(f", {calls}"),
        )
        return execute_prepared(conn.cursor(), text, [*_params(state, oids, table_oid), *values])

    def accept(row: Any) -> None:
        if row is None or tuple(row[: len(value)]) != value:
            raise FactsChanged("the prepared search's guard changed")

    return Check(send, accept)


def prepared_guard(conn: psycopg.Connection, info: TableInfo) -> Check:
    """The guard of a plan made from ``info``, as :func:`guard_check` sends it."""
    state, oids, value = read_guard(conn, info)
    return guard_check(state, oids, int(info.ref.oid), value)
