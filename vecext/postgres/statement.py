"""How one search statement runs (PostgreSQL): its settings, search path and parameters.

:func:`fetch_local` runs a statement with transaction-local settings; on an idle
autocommit connection the settings and the statement go in one pipeline (one round
trip). The query vector travels as a binary ``real[]`` (:class:`Float4Array`) and is
cast to the column's type in the statement.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format, TransactionStatus

from vecext.postgres.tables import TableRef

__all__ = [
    "PATH_TEXT",
    "Check",
    "Float4Array",
    "SearchRef",
    "cached_sql",
    "execute_prepared",
    "fetch_local",
    "vector_text",
]

_FLOAT4_OID, _FLOAT4_ARRAY_OID = 700, 1021


@dataclass(frozen=True)
class SearchRef(TableRef):
    """A table as a search names it, and the ``search_path`` its statements run with
    (:data:`PATH_TEXT`, read with the table's facts; the table's stamp covers pgvector's
    ``pg_extension`` row, so the cached path is read again when the extension moves)."""

    search_path: str | None = None


def vector_text(x: np.ndarray) -> str:
    """pgvector text of a float32 vector, exact (9 significant digits round-trip)."""
    return "[" + ",".join(f"{v:.9g}" for v in np.asarray(x, np.float32).tolist()) + "]"


class Float4Array:
    """A float32 vector sent as a binary ``real[]`` parameter (no per-value text)."""

    __slots__ = ("data",)

    def __init__(self, values: np.ndarray) -> None:
        v = np.ascontiguousarray(values, dtype=np.float32).ravel()
        # array_send layout: ndim, has-nulls, element type (float4), then per dimension
        # (length, lower bound); then per element its byte length and big-endian value
        head = struct.pack(">iiiii", 1, 0, _FLOAT4_OID, v.size, 1)
        body = np.empty(v.size, dtype=[("len", ">i4"), ("x", ">f4")])
        body["len"], body["x"] = 4, v
        self.data = head + body.tobytes()


class _Float4ArrayDumper(Dumper):
    format = Format.BINARY
    oid = _FLOAT4_ARRAY_OID

    def dump(self, obj: Float4Array) -> bytes:
        return obj.data


@dataclass(frozen=True)
class Check:
    """A query sent ahead of a statement, in its round trip, that decides whether the
    statement's rows may be used (the table stamp of :mod:`vecext.postgres.info_cache`
    for a search planned from kept facts): ``send(conn, calls, values)`` sends it (in a
    pipeline) with the ``set_config`` calls ``calls`` (SQL text, parameters ``values``)
    in its select list, and returns its cursor; ``accept(row)`` returns when its row
    (``None`` when it failed) allows the rows and raises when not."""

    send: Callable[[psycopg.Connection, str, list[Any]], psycopg.Cursor[Any]]
    accept: Callable[[Any], None]

    def run(self, conn: psycopg.Connection) -> None:
        """The check on its own (no statement to send it with)."""
        try:
            row = self.send(conn, "NULL", []).fetchone()
        except psycopg.Error:
            row = None
            if conn.info.transaction_status == TransactionStatus.INERROR:
                raise
        self.accept(row)


def execute_prepared(
    cur: psycopg.Cursor[Any], query: sql.Composable | str, params: list[Any]
) -> psycopg.Cursor[Any]:
    """``cur.execute(query, params)`` as a server-side prepared statement (in a pipeline
    too): parsing and analysing a search statement cost 0.06-0.1 ms of its 0.5 ms on
    wiki-vital. A connection with psycopg's automatic preparation off
    (``prepare_threshold = None``) still prepares vecext's own statements, and only
    them. Statements run with ``plan_cache_mode = force_custom_plan``
    (:func:`fetch_local`), so a prepared search is still planned for its filter values
    (a partial index for ``topic = 'People'`` stays usable).

    When psycopg owes the server a ``DEALLOCATE ALL`` (it queues one when a command
    reports ``ROLLBACK``, as a savepoint's does, and sends it after the next statement),
    a statement prepared now would be dropped at once while psycopg kept its name, and
    the next search would fail ("prepared statement does not exist"): it then runs
    unprepared, at the same cost as before and with no extra round trip."""
    conn = cur.connection
    if getattr(getattr(conn, "_prepared", None), "_to_flush", None):
        return cur.execute(query, params, prepare=False)
    threshold = conn.prepare_threshold
    if threshold is None:
        conn.prepare_threshold = 1 << 30  # nothing is prepared implicitly meanwhile
    try:
        return cur.execute(query, params, prepare=True)
    finally:
        conn.prepare_threshold = threshold


#: added to every search statement's settings: a prepared statement is planned for its
#: parameters' values each time (what an unprepared one got), never a generic plan
CUSTOM_PLANS = {"plan_cache_mode": "force_custom_plan"}


def fetch_local(
    conn: psycopg.Connection,
    settings: dict[str, str],
    query: sql.Composable | str,
    params: list[Any],
    path: str | None = None,
    check: Check | None = None,
) -> list[tuple[Any, ...]]:
    """Run ``query`` with transaction-local ``settings`` and ``search_path`` (``path``, as
    :data:`PATH_TEXT` reads it; ``None``: looked up by the statement); no setting
    outlives the query. ``check``, when given, runs first and decides whether the rows
    may be used (see :class:`Check`; an error of the statement is then only raised when
    the check accepts).

    On an idle autocommit connection the check, the settings and the query go in one
    pipeline, one round trip, in the implicit transaction PostgreSQL runs them in until
    the pipeline's sync (no BEGIN and ROLLBACK to parse and run). Inside a caller's
    transaction it runs in a savepoint of its own (:func:`_fetch_in_transaction`), after
    the check on its own. The statement is prepared (:func:`execute_prepared`)."""
    settings = {**settings, **CUSTOM_PLANS}
    if not (conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE):
        if check is not None:
            check.run(conn)
        return _fetch_in_transaction(conn, settings, query, params, path)
    cur = conn.cursor()
    first = None
    try:
        cur.adapters.register_dumper(Float4Array, _Float4ArrayDumper)
        # the pipeline's exit sends the one sync (an explicit sync first cost a round trip)
        with conn.pipeline():
            if check is None:
                conn.execute(*_set_local(settings, path))
            else:  # the check's row also sets the settings
                first = check.send(conn, *_local_calls(settings, path))
            execute_prepared(cur, query, params)
        rows = cur.fetchall()
    except psycopg.Error:
        if check is not None:
            check.accept(_row_of(first))  # stale facts: plan again rather than raise
        raise
    finally:
        cur.close()
        # an error ends the implicit transaction at the sync; never leave one open
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
    if check is not None:
        check.accept(_row_of(first))
    return rows


def _row_of(cur: psycopg.Cursor[Any] | None) -> Any:
    """The one row of a pipelined check (``None`` if it failed or never ran)."""
    if cur is None:
        return None
    try:
        return cur.fetchone()
    except psycopg.Error:
        return None


#: the savepoint a search statement runs in inside a caller's transaction
SAVEPOINT = "vecext_search"


def _fetch_in_transaction(
    conn: psycopg.Connection,
    settings: dict[str, str],
    query: sql.Composable | str,
    params: list[Any],
    path: str | None,
) -> list[tuple[Any, ...]]:
    """:func:`fetch_local` inside a caller's transaction, which it leaves as it found it.

    The statement runs in a savepoint, after ``set_config(..., true)`` of its settings
    in a statement that first reads their current values; then the values read are set
    again and the savepoint is *released*, so the caller's next statements see every
    setting as before. Rolling the savepoint back would restore them by itself, but
    psycopg answers a command reporting ``ROLLBACK`` (and its own ``Transaction``
    rollback) by deallocating every prepared statement of the connection
    (``psycopg._preparing.PrepareManager._should_discard``), so the table stamp
    (:mod:`vecext.postgres.info_cache`) was planned again at every search: 0.8 ms.
    Only an error rolls the savepoint back, which leaves the caller's transaction
    usable. Two sends: the savepoint, the settings and the statement; then, once the
    old values are back (the statement is running meanwhile), their restore and the
    release. Locks the statement took are kept until the caller's transaction ends, as
    for any statement of it."""
    names = ["search_path", *settings]
    calls, values = _local_calls(settings, path)
    read = ", ".join(["current_setting(%s, true)"] * len(names))
    # the materialized CTE is read before the outer row's set_config calls run
    set_and_read = f"WITH o AS MATERIALIZED (SELECT {read}) SELECT o.*, {calls} FROM o"
    entered_ok = conn.info.transaction_status != TransactionStatus.INERROR
    made = done = False
    try:
        with conn.pipeline() as pipe, conn.cursor() as cur:
            cur.adapters.register_dumper(Float4Array, _Float4ArrayDumper)
            conn.execute("SAVEPOINT " + SAVEPOINT)
            made = True
            old_cur = conn.execute(set_and_read, [*names, *values])
            execute_prepared(cur, query, params)
            old = old_cur.fetchone()
            assert old is not None
            restore = [x for n, v in zip(names, old[: len(names)], strict=True) for x in (n, v)]
            conn.execute("SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(names)), restore)
            conn.execute("RELEASE " + SAVEPOINT)
            pipe.sync()
            done = True
            return cur.fetchall()
    except BaseException:
        if entered_ok and made and not done:
            # undo the statement and its settings; the caller's transaction goes on
            try:
                conn.execute(f"ROLLBACK TO {SAVEPOINT}")
                conn.execute(f"RELEASE {SAVEPOINT}")
            except psycopg.Error:
                pass  # the savepoint was never made: nothing of ours to undo
        raise


#: Every search statement runs with search_path = pg_catalog, <pgvector's schema>,
#: pg_temp: pgvector's types and operators resolve, and whatever the caller's
#: search_path holds (another schema first, objects of the same names) cannot change
#: what a statement means. Tables are always named with their schema. A search reads
#: the path once with the table's facts (:data:`PATH_TEXT`, kept while pgvector's
#: ``pg_extension`` row is unchanged) and binds it: looking it up in every statement
#: cost 0.12 ms per statement.
PATH_TEXT = (
    "(SELECT format('pg_catalog, %%I, pg_temp', n.nspname) "
    "FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
    "WHERE e.extname = 'vector')"
)
_PATH = f"set_config('search_path', {PATH_TEXT}, true)"
_BOUND_PATH = "set_config('search_path', %s, true)"


def _local_calls(settings: dict[str, str], path: str | None = None) -> tuple[str, list[str]]:
    # constant text (every value is bound): nothing to compose per search
    calls = [_PATH if path is None else _BOUND_PATH, *["set_config(%s, %s, true)"] * len(settings)]
    values = [x for kv in settings.items() for x in kv]
    return ", ".join(calls), values if path is None else [path, *values]


def _set_local(settings: dict[str, str], path: str | None = None) -> tuple[str, list[str]]:
    calls, values = _local_calls(settings, path)
    return "SELECT " + calls, values


#: statement texts by their key (:func:`cached_sql`); emptied when full
_SQL_CACHE: dict[tuple[Any, ...], str] = {}
_SQL_CACHE_MAX = 512


def cached_sql(conn: psycopg.Connection, key: tuple[Any, ...], build: Any) -> str:
    """The text of the statement ``build()`` composes, kept by ``key`` (which must name
    everything the text depends on) and the connection's encoding: composing and
    rendering a search statement with psycopg's ``sql`` module cost about 0.15 ms of
    Python per search, a tenth of a walk through a small index."""
    full = (conn.info.encoding, *key)
    text = _SQL_CACHE.get(full)
    if text is None:
        text = build().as_string(conn)
        if len(_SQL_CACHE) >= _SQL_CACHE_MAX:
            _SQL_CACHE.clear()
        _SQL_CACHE[full] = text
    return text
