"""HNSW indexes in DuckDB through the VSS extension: create, list, size.

The verbs are PostgreSQL's (:mod:`vecext.postgres.indexes`): :func:`create_vector_index`,
:func:`drop_vector_index`, :func:`list_vector_indexes`; VSS builds HNSW only. (The
names of vecext 0.2, ``create_hnsw_index``, ``drop_hnsw_index``, ``hnsw_indexes`` and
``estimate_hnsw_memory``, still work and warn.)

VSS keeps the whole graph *and a copy of every vector* in memory (it builds a
usearch index inside DuckDB's buffer manager), so :func:`create_vector_index`
estimates the memory first and refuses when DuckDB's ``memory_limit`` cannot
hold it, naming the amount needed.

Persistence: VSS writes an HNSW index into a database file only with the
experimental setting ``hnsw_enable_experimental_persistence``. For a file
database we set it (the index is then serialised at every checkpoint, and VSS
does not replay index changes from the WAL: after a crash, drop and recreate the
index). In-memory databases never need it and we leave it alone.

Which queries use the index: VSS rewrites ``ORDER BY <distance>(column, constant)
LIMIT n`` into an index scan when the distance matches the index metric
(``l2`` -> ``array_distance``, ``cosine`` -> ``array_cosine_distance``, ``ip`` ->
``array_negative_inner_product``). The LIMIT is applied inside the index, *before*
any WHERE clause, so a filtered query can return fewer than ``n`` rows.
"""

from __future__ import annotations

import math
from typing import Any

import duckdb

from vecext.duckdb.filters import ident
from vecext.duckdb.index_catalog import (
    FROM_VSS,
    VSS_METRICS,
    HnswIndex,
    _deprecated,
    _split,
    hnsw_indexes,
    list_vector_indexes,
    vss_indexes,
)
from vecext.duckdb.vss import load_vss
from vecext.errors import VecextError

#: vecext metric -> the DuckDB distance function an HNSW index of that metric serves
DISTANCE_FUNCTIONS = {
    "l2": "array_distance",
    "cosine": "array_cosine_distance",
    "ip": "array_negative_inner_product",
}
#: VSS defaults (duckdb-vss README): M = 16, M0 = 2 M, ef_construction = 128, ef_search = 64
DEFAULT_M = 16
DEFAULT_EF_CONSTRUCTION = 128
DEFAULT_EF_SEARCH = 64


class VectorIndexError(VecextError):
    """An HNSW index cannot be created or dropped (VSS missing, not enough memory, ...)."""


#: The name of :class:`VectorIndexError` in vecext 0.2.
HnswIndexError = VectorIndexError


def hnsw_build_memory(n: int, d: int, *, m: int = DEFAULT_M) -> int:
    """Bytes VSS needs for an HNSW index of ``n`` vectors of dimension ``d``.

    Per node: the vector (``4 d`` bytes: VSS stores float32 copies), the level-0
    neighbour list (``M0 = 2 M`` slots of 4 bytes plus a count), the upper levels
    (a node reaches level ``l`` with probability ``M^-l``, so ``1 / (M - 1)`` upper
    lists of ``M`` slots on average) and ~14 bytes of key and level. DuckDB
    allocates in arena blocks: we add 30% and 32 MiB, which over-estimates small
    indexes and is within ~10% for 100k+ vectors of a few hundred dimensions.
    """
    if n < 0 or d <= 0 or m < 2:
        raise ValueError(f"need n >= 0, d > 0, m >= 2; got n={n}, d={d}, m={m}")
    per_node = 4 * d + 14 + 4 * (2 * m + 1) + 4 * (m + 1) / (m - 1)
    return int(math.ceil(n * per_node * 1.3)) + (32 << 20)


def estimate_hnsw_memory(n: int, d: int, m: int = DEFAULT_M) -> int:
    """Deprecated name of :func:`hnsw_build_memory`."""
    _deprecated("estimate_hnsw_memory", "hnsw_build_memory")
    return hnsw_build_memory(n, d, m=m)


def memory_limit_bytes(con: duckdb.DuckDBPyConnection) -> int | None:
    """DuckDB's ``memory_limit`` in bytes (``None`` when unlimited)."""
    row = con.execute("SELECT current_setting('memory_limit')").fetchone()
    text = str(row[0]).strip() if row else ""
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "bytes": 1}
    units.update({"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12})
    parts = text.split()
    if len(parts) == 2 and parts[1] in units:
        return int(float(parts[0]) * units[parts[1]])
    return None


def is_file_database(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return bool(row and row[0])


def create_vector_index(
    con: duckdb.DuckDBPyConnection,
    table: str,
    column: str,
    *,
    method: str = "hnsw",
    metric: str = "cosine",
    name: str | None = None,
    m: int = DEFAULT_M,
    ef_construction: int = DEFAULT_EF_CONSTRUCTION,
    check_memory: bool = True,
) -> HnswIndex:
    """Create a VSS HNSW index on ``table.column`` for ``metric`` and return it.

    Parameters
    ----------
    method
        ``"hnsw"``, the one method VSS has (PostgreSQL also has ``"ivfflat"``).
    metric
        ``"cosine"``, ``"l2"`` or ``"ip"``; the index serves only searches with
        that metric.
    name
        Index name (default ``<table>_<column>_hnsw_<metric>``).
    m, ef_construction
        HNSW graph degree and build beam (VSS defaults 16 and 128).
    check_memory
        Refuse (:class:`VectorIndexError`) when the estimate of
        :func:`hnsw_build_memory` exceeds DuckDB's ``memory_limit``.

    For a file database this sets ``hnsw_enable_experimental_persistence`` (see
    the module docstring for what that means after a crash).
    """
    from vecext.duckdb.discovery import vector_column

    if method != "hnsw":
        raise VectorIndexError(
            f"unknown index method {method!r}: DuckDB's VSS extension builds 'hnsw' only"
        )
    if metric not in VSS_METRICS:
        raise VectorIndexError(f"unknown metric {metric!r}; use one of {', '.join(VSS_METRICS)}")
    for label, value in (("m", m), ("ef_construction", ef_construction)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise VectorIndexError(f"{label} must be an integer >= 2, got {value!r}")
    status = load_vss(con)
    if not status.loaded:
        raise VectorIndexError(f"cannot create an HNSW index on {table}.{column}: {status.reason}")
    tref, col, dim = vector_column(con, table, column)
    row = con.execute(f"SELECT count(*) FROM {tref}").fetchone()
    n = int(row[0]) if row else 0
    need = hnsw_build_memory(n, dim, m=m)
    limit = memory_limit_bytes(con)
    if check_memory and limit is not None and need > limit:
        raise VectorIndexError(
            f"an HNSW index on {table}.{column} ({n} vectors x {dim} dims, M={m}) needs about "
            f"{need / 2**30:.2f} GiB, more than DuckDB's memory_limit of {limit / 2**30:.2f} GiB: "
            f"SET memory_limit = '{math.ceil(need / 2**30 * 1.2)}GiB', or search with "
            "compressed codes instead"
        )
    index_name = name or f"{_split(table)[1]}_{col}_hnsw_{metric}"
    if is_file_database(con):
        con.execute("SET hnsw_enable_experimental_persistence = true")
    con.execute(
        f"CREATE INDEX {ident(index_name)} ON {tref} USING HNSW ({ident(col)}) "
        f"WITH (metric = '{VSS_METRICS[metric]}', m = {int(m)}, "
        f"ef_construction = {int(ef_construction)})"
    )
    for ix in list_vector_indexes(con, table, col):
        if ix.name == index_name:
            return ix
    raise VectorIndexError(f"index {index_name} was created but VSS does not list it")


def create_hnsw_index(
    con: duckdb.DuckDBPyConnection,
    table: str,
    column: str,
    metric: str = "cosine",
    **options: Any,
) -> HnswIndex:
    """Deprecated name of :func:`create_vector_index`, whose ``metric`` is keyword-only
    (``options``: ``name``, ``m``, ``ef_construction``, ``check_memory``)."""
    _deprecated("create_hnsw_index", "create_vector_index")
    return create_vector_index(con, table, column, metric=metric, **options)


def drop_vector_index(
    con: duckdb.DuckDBPyConnection, table: str, name: str, *, missing_ok: bool = False
) -> bool:
    """Drop HNSW index ``name`` of ``table``; returns whether one was dropped (an error
    naming it if there is none, unless ``missing_ok``)."""
    found = [ix for ix in list_vector_indexes(con, table) if ix.name == name]
    if not found:
        if missing_ok:
            return False
        raise VectorIndexError(f"table {table} has no HNSW index named {name!r}")
    schema = found[0].schema
    con.execute(f"DROP INDEX {ident(schema)}.{ident(name)}")
    return True


def drop_hnsw_index(con: duckdb.DuckDBPyConnection, table: str, name: str) -> None:
    """Deprecated name of :func:`drop_vector_index`."""
    _deprecated("drop_hnsw_index", "drop_vector_index")
    drop_vector_index(con, table, name)


__all__ = [
    "DEFAULT_EF_CONSTRUCTION",
    "DEFAULT_EF_SEARCH",
    "DEFAULT_M",
    "DISTANCE_FUNCTIONS",
    "FROM_VSS",
    "VSS_METRICS",
    "HnswIndex",
    "HnswIndexError",
    "VectorIndexError",
    "create_hnsw_index",
    "create_vector_index",
    "drop_hnsw_index",
    "drop_vector_index",
    "estimate_hnsw_memory",
    "hnsw_build_memory",
    "hnsw_indexes",
    "is_file_database",
    "list_vector_indexes",
    "memory_limit_bytes",
    "vss_indexes",
]
