"""Building pgvector indexes: how much memory a build needs, the settings it runs with, and
the WHERE clause of a partial index.

HNSW build memory (pgvector keeps the graph in ``maintenance_work_mem``; past it
the build goes on disk and becomes many times slower)::

    per element = value + 2 m * 16 + 200 bytes
    total       = n * per element * 1.1 + 16 MB

``value`` is the indexed datum (``vector``: 4 d + 8, ``halfvec``: 2 d + 8,
``bit``: ceil(d / 8) + 8 bytes); layer 0 keeps ``2 m`` neighbour slots of 16 bytes
(element pointer + distance); the ~200 bytes are the element header, the
expected upper-layer slots (16 m / (m - 1) bytes) and allocation overhead. The
constants were measured with pgvector 0.8.6 from its "hnsw graph no longer fits
into maintenance_work_mem after N tuples" notice (d = 32 and 384, m = 8, 16, 32:
within 3%). IVFFlat keeps its k-means sample (50 rows per list) and the centers.
"""

from __future__ import annotations

import math

import psycopg
from psycopg import sql

from vecext.errors import VecextError
from vecext.search.filters import And, Eq, In, Predicate, Range

STORAGES = ("vector", "halfvec", "bit")
#: pgvector HNSW defaults
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
#: vecext's default ef_construction for an HNSW index over bit codes (binary codes, the
#: sign plane of rbq codes): Hamming distances take few distinct values, so the build's
#: candidate lists are full of ties and a beam of 64 links a poorer graph than over
#: vectors. Measured on wordnet-minilm (docs/bench-postgres.md): over 768-bit codes at
#: 200 the walk reaches recall@10 0.955-0.957 at ef 80 where it needs ef ~200 at 64, 0.91-1.09x
#: pgvector's QPS (at its defaults) instead of 0.61-0.72x, for a build of 2.3x the time
#: (33.5 s against 14.4 s on wordnet-minilm; pgvector's over the vectors at 64: ~20 s; at
#: 1M x 768 and 64, 236 s over 1536-bit codes against 1,751 s over the vectors).
CODE_HNSW_EF_CONSTRUCTION = 200
MB = 1 << 20


class VectorIndexError(VecextError):
    """An index cannot be created or dropped as asked (column type, options, name)."""


class IndexBuildError(VectorIndexError):
    """The build would need more memory than the cap the caller gave (says how much)."""


def value_bytes(storage: str, d: int) -> int:
    """Bytes of one indexed datum (varlena header included)."""
    if storage == "vector":
        return 4 * d + 8
    if storage == "halfvec":
        return 2 * d + 8
    if storage == "bit":
        return math.ceil(d / 8) + 8
    raise VectorIndexError(f"unknown index storage {storage!r}; use one of {', '.join(STORAGES)}")


def hnsw_build_memory(n: int, d: int, *, storage: str = "vector", m: int = HNSW_M) -> int:
    """Bytes of ``maintenance_work_mem`` for an in-memory HNSW build (see the module doc)."""
    per = value_bytes(storage, d) + 2 * m * 16 + 200
    return int(n * per * 1.1) + 16 * MB


def ivfflat_build_memory(n: int, d: int, *, storage: str = "vector", lists: int = 100) -> int:
    """Bytes for an IVFFlat build: the k-means sample (50 rows per list) and the centers."""
    sample = min(n, 50 * lists)
    return int((sample + 2 * lists) * value_bytes(storage, d) * 1.1) + 16 * MB


def _current(conn: psycopg.Connection, name: str) -> int:
    """A memory setting in bytes."""
    (v,) = conn.execute(
        "SELECT setting::bigint * CASE unit WHEN 'kB' THEN 1024 WHEN 'MB' THEN 1048576 "
        "WHEN '8kB' THEN 8192 ELSE 1 END FROM pg_settings WHERE name = %s",
        [name],
    ).fetchone()  # type: ignore[misc]
    return int(v)


def raise_settings(
    conn: psycopg.Connection, settings: dict[str, str], *, local: bool
) -> dict[str, str]:
    """Apply ``settings`` (memory only ever raised); return the previous values."""
    before = {}
    for key, value in settings.items():
        (old,) = conn.execute("SELECT current_setting(%s)", [key]).fetchone()  # type: ignore[misc]
        before[key] = old
        if key == "maintenance_work_mem" and _current(conn, key) >= int(value[:-2]) * 1024:
            continue
        conn.execute("SELECT set_config(%s, %s, %s)", [key, value, local])
    return before


def run_concurrently(
    conn: psycopg.Connection, stmts: list[sql.Composed], settings: dict[str, str]
) -> None:
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise VectorIndexError(
            "CREATE INDEX CONCURRENTLY cannot run inside a transaction block: commit first"
        )
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        before = raise_settings(conn, settings, local=False)
        try:
            for s in stmts:
                conn.execute(s)
        finally:
            for key, old in before.items():
                conn.execute("SELECT set_config(%s, %s, false)", [key, old])
    finally:
        conn.autocommit = autocommit


def literal_predicate(pred: Predicate) -> sql.Composable:
    """A partial-index WHERE clause. DDL takes no bound parameters, so values are
    quoted by psycopg (:class:`psycopg.sql.Literal`), identifiers by ``Identifier``."""
    if isinstance(pred, And):
        return sql.SQL(" AND ").join(
            sql.SQL("({})").format(literal_predicate(p)) for p in pred.parts
        )
    if isinstance(pred, Eq):
        return sql.SQL("{} = {}").format(sql.Identifier(pred.column), sql.Literal(pred.value))
    if isinstance(pred, In):
        vals = sql.SQL(", ").join(sql.Literal(v) for v in pred.values)
        return sql.SQL("{} IN ({})").format(sql.Identifier(pred.column), vals)
    if isinstance(pred, Range):
        parts = []
        if pred.lo is not None:
            parts.append(
                sql.SQL("{} >= {}").format(sql.Identifier(pred.column), sql.Literal(pred.lo))
            )
        if pred.hi is not None:
            op = sql.SQL("<=" if pred.inclusive else "<")
            parts.append(
                sql.SQL("{} {} {}").format(sql.Identifier(pred.column), op, sql.Literal(pred.hi))
            )
        return sql.SQL(" AND ").join(parts)
    raise VectorIndexError("a partial index predicate must be equality, IN or range filters")
