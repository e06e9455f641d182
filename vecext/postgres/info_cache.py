"""What a search needs to know about a table, kept per connection between searches.

A search used to read the table's columns, primary key and indexes, the vecext
catalog rows (codecs, calibrations, tenant column) and the filter's estimate before
every query: 5-13 ms of planning on wordnet-minilm, more than the exact scan it
chose under a selective filter. None of it changes from one query to the next, so
:class:`InfoCache` keeps it per connection and checks it with **one** cheap query
(:data:`STAMP_SQL`) per search: the *stamp* of everything the cached facts were read
from. A new row version gets a new ``xmin``/``ctid``, so any committed or own
uncommitted change of

* the table's ``pg_class`` row (rename, new relfilenode after TRUNCATE / VACUUM FULL /
  a rewrite, ``reltuples``/``relpages`` after ANALYZE), its ``pg_attribute`` rows
  (columns added, dropped, renamed, retyped),
* its ``pg_index`` rows and the indexes' ``pg_class`` rows and comments (an index
  created, dropped, renamed or calibrated: calibrations live in the index comment),
* pgvector's ``pg_extension`` row (an upgrade),
* the vecext catalog rows (codecs, tenant columns, the installed version, and the
  table's own compressed columns with their calibrations: every table's before catalog
  0.4.0, which keys them by name) and the indexes on the table's code stores

changes the stamp, and the next search re-reads the table (an own change inside a
transaction that is then rolled back changes it again). Filter estimates (the
PostgreSQL planner's row count for the WHERE clause) are kept under the same stamp,
which covers the statistics they come from. Row counts of a filter are never cached:
they change with every write.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql

from vecext.postgres.statement import Check, cached_sql, execute_prepared
from vecext.search.contracts import FactsChanged, SearchError, TableInfo

__all__ = ["STAMP_SQL", "InfoCache", "cache_for", "clear"]

#: Filter estimates kept per table (least recently used first out).
MAX_ESTIMATES = 256
#: Tables kept per connection.
MAX_TABLES = 64

_ROWS = "md5(string_agg(x.xmin::text || x.ctid::text, ',' ORDER BY x.ctid))"
_CATALOG = ("compressed_columns", "codecs", "tenant_columns", "installed_version")


#: catalog states a stamp can be read in (the stamp's second column): no catalog (or no
#: USAGE on schema vecext), a catalog before 0.4.0 (rows keyed by names, no code stores),
#: a catalog with OID keys and code stores
NO_CATALOG, NAMED_CATALOG, OID_CATALOG = 0, 1, 2

_STATE = """coalesce((SELECT CASE WHEN NOT has_schema_privilege(v.oid, 'USAGE') THEN 0
                                WHEN EXISTS (SELECT FROM pg_class t
                                               JOIN pg_attribute a ON a.attrelid = t.oid
                                              WHERE t.relnamespace = v.oid
                                                AND t.relname = 'compressed_columns'
                                                AND a.attname = 'table_oid'
                                                AND NOT a.attisdropped) THEN 2
                                ELSE 1 END
                       FROM pg_namespace v WHERE v.nspname = 'vecext'), 0)"""

#: with OID keys, only this table's catalog rows: a backfill of another table writes its
#: compressed_columns row at every batch, which re-read every table's facts meanwhile
_OWN_COLUMNS = ", (SELECT {rows} FROM vecext.compressed_columns x WHERE x.table_oid = c.oid)"

#: the indexes on this table's code stores (HNSW over codes) and their comments, found by
#: store name (pg_class's name index); every store of the database was read before, a
#: cost that grew with the number of compressed columns (0.06 ms with 8 stores)
_STORE_INDEXES = """, (SELECT md5(string_agg(i.xmin::text || i.ctid::text || ic.xmin::text
                                    || ic.ctid::text || coalesce(d.xmin::text || d.ctid::text, ''),
                                    ',' ORDER BY i.indexrelid))
             FROM vecext.compressed_columns k
             JOIN pg_class r ON r.relname = 'store_' || k.id
                   AND r.relnamespace = 'vecext'::regnamespace AND r.relkind = 'r'
             JOIN pg_index i ON i.indrelid = r.oid
             JOIN pg_class ic ON ic.oid = i.indexrelid
             LEFT JOIN pg_description d ON d.objoid = i.indexrelid
                   AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
            WHERE k.table_oid = c.oid AND ic.relam <> 403)"""


def _stamp_sql(state: int) -> sql.Composed:
    catalog = sql.SQL("")
    if state != NO_CATALOG:
        every = _CATALOG if state == NAMED_CATALOG else _CATALOG[1:]
        catalog = sql.SQL("").join(
            sql.SQL(", (SELECT {rows} FROM {t} x)").format(
                rows=sql.SQL(_ROWS), t=sql.Identifier("vecext", name)
            )
            for name in every
        )
        if state == OID_CATALOG:
            catalog += sql.SQL(_OWN_COLUMNS + _STORE_INDEXES).format(rows=sql.SQL(_ROWS))
    return sql.SQL(
        """SELECT c.oid, {state},
          c.xmin::text, c.ctid::text, c.relfilenode, c.reltuples, c.relpages,
          (SELECT {rows} FROM pg_attribute x WHERE x.attrelid = c.oid),
          (SELECT md5(string_agg(i.xmin::text || i.ctid::text || ic.xmin::text || ic.ctid::text
                                 || coalesce(d.xmin::text || d.ctid::text, ''),
                                 ',' ORDER BY i.indexrelid))
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
             LEFT JOIN pg_description d ON d.objoid = i.indexrelid
                   AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
            WHERE i.indrelid = c.oid),
          (SELECT xmin::text || ctid::text FROM pg_extension WHERE extname = 'vector')
          {catalog}
        FROM pg_class c WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'p')"""
    ).format(state=sql.SQL(_STATE), rows=sql.SQL(_ROWS), catalog=catalog)


#: The stamp query by catalog state.
STAMP_SQL = {state: _stamp_sql(state) for state in (NO_CATALOG, NAMED_CATALOG, OID_CATALOG)}


@dataclass
class _Entry:
    stamp: tuple[Any, ...]
    info: TableInfo
    estimates: OrderedDict[Any, float] = field(default_factory=OrderedDict)


class InfoCache:
    """Per-connection cache of :class:`TableInfo` by ``(table oid, column, metric)`` and of
    filter estimates, both valid while the table's stamp is unchanged."""

    def __init__(self) -> None:
        self._tables: OrderedDict[tuple[int, str, str], _Entry] = OrderedDict()
        #: the last stamp read for each table text (``to_regclass``'s argument)
        self._last: dict[str, tuple[Any, ...]] = {}
        #: the catalog state the last stamp saw (``NO_CATALOG``, ``NAMED_CATALOG``,
        #: ``OID_CATALOG``; the catalog's rows join the stamp when there is one); the
        #: first stamp is read without them, so a catalog-less database never sees a
        #: statement naming a missing table
        self.catalog = NO_CATALOG
        self.hits = 0
        self.misses = 0

    def stamp(self, conn: psycopg.Connection, regclass: str) -> tuple[Any, ...] | None:
        """The table's stamp (``None``: no such table); its first element is the OID."""
        row = self._stamp_row(conn, regclass)
        if row is not None and int(row[1]) != self.catalog:
            # the catalog was installed, upgraded or dropped since: read the stamp of that state
            self.catalog = int(row[1])
            row = self._stamp_row(conn, regclass)
        if row is None:
            self._last.pop(regclass, None)
            return None
        if len(self._last) >= 4 * MAX_TABLES:
            self._last.clear()
        stamp = self._last[regclass] = tuple(row)
        return stamp

    def unchecked(self, regclass: str, column: str, metric: str) -> tuple[TableInfo, Check] | None:
        """The info kept under the table's last stamp, *not checked now*, and the
        :class:`~vecext.postgres.statement.Check` that a search's first statement sends
        ahead of it: the stamp again, which raises :class:`FactsChanged` when it differs
        (the rows are then discarded and the search planned again). ``None`` when
        nothing is kept."""
        last = self._last.get(regclass)
        if last is None:
            return None
        entry = self._tables.get((int(last[0]), column, metric))
        if entry is None or entry.stamp != last:
            return None
        catalog = self.catalog

        def send(conn: psycopg.Connection, calls: str, values: list[Any]) -> psycopg.Cursor[Any]:
            # the statement's set_config calls ride on the stamp's row (one statement
            # less): in the outer select list, so they run after the stamp resolved the
            # table by the caller's search_path, and also when it found none (one row)
            text = cached_sql(
                conn,
                ("stamp", catalog, calls),
                lambda: sql.SQL(
                    f"SELECT s.*, {calls} FROM (SELECT) o "
                    f"LEFT JOIN ({_stamp_text(conn, catalog)}) s ON true"
                ),
            )
            return _send_prepared(conn, text, [*values, regclass])

        def accept(row: Any) -> None:
            if row is None or tuple(row[: len(last)]) != last:
                self._last.pop(regclass, None)
                raise FactsChanged(f"the stamp of {regclass} changed")

        info = self.get(last, column, metric)
        assert info is not None
        return info, Check(send, accept)

    def _stamp_row(self, conn: psycopg.Connection, regclass: str) -> Any:
        try:
            return _prepared(conn, _stamp_text(conn, self.catalog), regclass)
        except psycopg.errors.UndefinedTable:
            # the catalog went away between two searches: the stamp of a catalog-less table
            self.catalog = NO_CATALOG
            if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                raise SearchError(
                    "the vecext catalog was dropped while this connection was searching: "
                    "roll the transaction back and search again"
                ) from None
            return _prepared(conn, _stamp_text(conn, NO_CATALOG), regclass)

    def get(self, stamp: tuple[Any, ...], column: str, metric: str) -> TableInfo | None:
        """A copy of the cached info (callers may set ``caps``), or ``None``."""
        entry = self._tables.get((int(stamp[0]), column, metric))
        if entry is None or entry.stamp != stamp:
            self.misses += 1
            return None
        self.hits += 1
        self._tables.move_to_end((int(stamp[0]), column, metric))
        info = entry.info
        return replace(info, notes=list(info.notes), unusable=list(info.unusable))

    def put(self, stamp: tuple[Any, ...], info: TableInfo) -> None:
        key = (int(stamp[0]), info.column, info.metric)
        self._tables[key] = _Entry(
            stamp, replace(info, notes=list(info.notes), unusable=list(info.unusable))
        )
        self._tables.move_to_end(key)
        while len(self._tables) > MAX_TABLES:
            self._tables.popitem(last=False)

    def estimate(self, info: TableInfo, key: Any) -> float | None:
        """A cached filter estimate for ``info``'s table (``key``: the WHERE text and
        parameters), or ``None``."""
        entry = self._entry(info)
        if entry is None:
            return None
        got = entry.estimates.get(key)
        if got is not None:
            entry.estimates.move_to_end(key)
        return got

    def keep_estimate(self, info: TableInfo, key: Any, value: float) -> None:
        entry = self._entry(info)
        if entry is None:
            return
        entry.estimates[key] = float(value)
        while len(entry.estimates) > MAX_ESTIMATES:
            entry.estimates.popitem(last=False)

    def _entry(self, info: TableInfo) -> _Entry | None:
        return self._tables.get((int(info.ref.oid), info.column, info.metric))

    def clear(self) -> None:
        self._tables.clear()
        self._last.clear()


def _stamp_text(conn: psycopg.Connection, catalog: int) -> str:
    # rendered once per encoding: rendering the composed stamp took 0.05 ms per search
    return cached_sql(conn, ("stamp", catalog), lambda: STAMP_SQL[catalog])


def _send_prepared(conn: psycopg.Connection, query: str, params: list[Any]) -> psycopg.Cursor[Any]:
    """:func:`_prepared` sent in a pipeline: the cursor its row will be read from."""
    return execute_prepared(conn.cursor(), query, params)


def _prepared(conn: psycopg.Connection, query: str, regclass: str) -> Any:
    """One row of ``query`` run as a server-side prepared statement
    (:func:`~vecext.postgres.statement.execute_prepared`): planning the stamp costs more
    than running it (0.8 against 0.2 ms)."""
    return execute_prepared(conn.cursor(), query, [regclass]).fetchone()


_CACHES: weakref.WeakKeyDictionary[psycopg.Connection, InfoCache] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def cache_for(conn: psycopg.Connection) -> InfoCache:
    """The cache of ``conn`` (made on first use, dropped with the connection)."""
    with _LOCK:
        cache = _CACHES.get(conn)
        if cache is None:
            cache = _CACHES[conn] = InfoCache()
        return cache


def clear(conn: psycopg.Connection | None = None) -> None:
    """Forget what is cached for ``conn`` (every connection when ``None``)."""
    with _LOCK:
        caches = list(_CACHES.values()) if conn is None else [_CACHES.get(conn)]
    for cache in caches:
        if cache is not None:
            cache.clear()
