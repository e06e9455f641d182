"""How one search statement runs (PostgreSQL): its settings, search path and parameters.

:func:`fetch_local` runs a statement with transaction-local settings; on an idle
autocommit connection the settings and the statement go in one pipeline (one round
trip). The query vector travels as a binary ``real[]`` (:class:`Float4Array`) and is
cast to the column's type in the statement.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format, TransactionStatus

from vecext.postgres.tables import TableRef

__all__ = ["PATH_TEXT", "Float4Array", "SearchRef", "cached_sql", "fetch_local", "vector_text"]

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


def fetch_local(
    conn: psycopg.Connection,
    settings: dict[str, str],
    query: sql.Composable | str,
    params: list[Any],
    path: str | None = None,
) -> list[tuple[Any, ...]]:
    """Run ``query`` with transaction-local ``settings`` and ``search_path`` (``path``, as
    :data:`PATH_TEXT` reads it; ``None``: looked up by the statement), in a transaction
    of its own that ends with the query.

    On an idle autocommit connection the settings and the query go in one pipeline, one
    round trip, in the implicit transaction PostgreSQL runs them in until the pipeline's
    sync (no BEGIN and ROLLBACK to parse and run). Inside a caller's transaction it runs
    in a savepoint, rolled back after the rows are read."""
    if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
        try:
            with conn.pipeline() as pipe, conn.cursor() as cur:
                cur.adapters.register_dumper(Float4Array, _Float4ArrayDumper)
                conn.execute(*_set_local(settings, path))
                cur.execute(query, params, prepare=False)
                pipe.sync()
                return cur.fetchall()
        finally:
            # an error ends the implicit transaction at the sync; never leave one open
            if conn.info.transaction_status != TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
    rows: list[tuple[Any, ...]] = []
    with conn.transaction() as tx:
        conn.execute(*_set_local(settings, path))
        with conn.cursor() as cur:
            cur.adapters.register_dumper(Float4Array, _Float4ArrayDumper)
            # no server-side prepared plans: a generic plan cannot prove that a bound
            # tenant value implies a partial index's predicate
            rows = cur.execute(query, params, prepare=False).fetchall()
        raise psycopg.Rollback(tx)
    return rows


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


def _set_local(settings: dict[str, str], path: str | None = None) -> tuple[str, list[str]]:
    # constant text (every value is bound): nothing to compose per search
    calls = [_PATH if path is None else _BOUND_PATH, *["set_config(%s, %s, true)"] * len(settings)]
    values = [x for kv in settings.items() for x in kv]
    return "SELECT " + ", ".join(calls), values if path is None else [path, *values]


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
