"""HNSW indexes in DuckDB through the VSS extension: create, list, size.

VSS keeps the whole graph *and a copy of every vector* in memory (it builds a
usearch index inside DuckDB's buffer manager), so :func:`create_hnsw_index`
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

import json
import math
from dataclasses import dataclass
from typing import Any

import duckdb

from vecext.duckdb.filters import ident
from vecext.duckdb.vss import load_vss
from vecext.errors import VecextError

#: vecext metric -> VSS index metric
VSS_METRICS = {"l2": "l2sq", "cosine": "cosine", "ip": "ip"}
#: VSS index metric -> vecext metric
FROM_VSS = {v: k for k, v in VSS_METRICS.items()}
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


class HnswIndexError(VecextError):
    """An HNSW index cannot be created or dropped (VSS missing, not enough memory, ...)."""


@dataclass(frozen=True)
class HnswIndex:
    """An HNSW index on one vector column."""

    name: str
    schema: str
    table: str
    column: str
    metric: str  # vecext metric: l2, cosine, ip
    dim: int
    count: int
    memory_bytes: int  # VSS's own figure (arena blocks: coarse)
    #: recall@k per ef_search measured by :func:`vecext.duckdb.calibrate_hnsw` (its
    #: record, kept in the index's comment), or None
    calibration: dict[str, Any] | None = None


def estimate_hnsw_memory(n: int, d: int, m: int = DEFAULT_M) -> int:
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


def _split(table: str) -> tuple[str | None, str]:
    parts = table.split(".")
    return (parts[-2] if len(parts) >= 2 else None), parts[-1]


def hnsw_indexes(
    con: duckdb.DuckDBPyConnection, table: str, column: str | None = None
) -> list[HnswIndex]:
    """HNSW indexes on ``table`` (optionally only those on ``column``)."""
    schema, name = _split(table)
    # duckdb_indexes() always exists; VSS's pragma only when VSS is loaded, which it
    # is whenever an HNSW index exists (a failing probe would abort a transaction)
    found = con.execute(
        "SELECT count(*) FROM duckdb_indexes() WHERE database_name = current_database() "
        "AND lower(table_name) = lower(?) AND lower(schema_name) = lower(coalesce(?, "
        "current_schema())) AND sql ILIKE '%USING HNSW%'",
        [name, schema],
    ).fetchone()
    if not found or not found[0]:
        return []
    return vss_indexes(con, schema, name, column)


def vss_indexes(
    con: duckdb.DuckDBPyConnection, schema: str | None, table: str, column: str | None = None
) -> list[HnswIndex]:
    """The rows of VSS's ``pragma_hnsw_index_info()`` for one table (VSS must be loaded)."""
    rows = con.execute(
        "SELECT h.index_name, h.schema_name, h.table_name, i.expressions, h.metric, "
        "h.dimensions, h.count, h.approx_memory_usage, i.comment "
        "FROM pragma_hnsw_index_info() h JOIN duckdb_indexes() i "
        "ON i.database_name = h.catalog_name AND i.schema_name = h.schema_name "
        "AND i.index_name = h.index_name "
        "WHERE h.catalog_name = current_database() AND lower(h.table_name) = lower(?) "
        "AND lower(h.schema_name) = lower(coalesce(?, current_schema()))",
        [table, schema],
    ).fetchall()
    out = []
    for iname, ischema, tname, exprs, metric, dim, count, mem, comment in rows:
        col = _expression_column(exprs)
        if col is None or (column is not None and col.lower() != column.lower()):
            continue
        out.append(
            HnswIndex(
                iname,
                ischema,
                tname,
                col,
                FROM_VSS.get(metric, metric),
                int(dim),
                int(count),
                int(mem),
                _calibration(comment),
            )
        )
    return out


def _calibration(comment: Any) -> dict[str, Any] | None:
    try:
        meta = json.loads(comment) if comment else None
    except ValueError:
        return None
    cal = meta.get("calibration") if isinstance(meta, dict) else None
    return cal if isinstance(cal, dict) else None


def _expression_column(exprs: str) -> str | None:
    # duckdb_indexes().expressions is the text "[col]" (or "['col']" / '["col"]')
    text = str(exprs).strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    inner = text[1:-1].strip()
    if "," in inner or "(" in inner:  # an expression index, not a plain column
        return None
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        inner = inner[1:-1].replace(inner[0] * 2, inner[0])
    return inner or None


def create_hnsw_index(
    con: duckdb.DuckDBPyConnection,
    table: str,
    column: str,
    metric: str = "cosine",
    *,
    name: str | None = None,
    m: int = DEFAULT_M,
    ef_construction: int = DEFAULT_EF_CONSTRUCTION,
    check_memory: bool = True,
) -> HnswIndex:
    """Create a VSS HNSW index on ``table.column`` for ``metric`` and return it.

    Parameters
    ----------
    metric
        ``"cosine"``, ``"l2"`` or ``"ip"``; the index serves only searches with
        that metric.
    name
        Index name (default ``<table>_<column>_hnsw_<metric>``).
    m, ef_construction
        HNSW graph degree and build beam (VSS defaults 16 and 128).
    check_memory
        Refuse (:class:`HnswIndexError`) when the estimate of
        :func:`estimate_hnsw_memory` exceeds DuckDB's ``memory_limit``.

    For a file database this sets ``hnsw_enable_experimental_persistence`` (see
    the module docstring for what that means after a crash).
    """
    from vecext.duckdb.discovery import vector_column

    if metric not in VSS_METRICS:
        raise HnswIndexError(f"unknown metric {metric!r}; use one of {', '.join(VSS_METRICS)}")
    for label, value in (("m", m), ("ef_construction", ef_construction)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise HnswIndexError(f"{label} must be an integer >= 2, got {value!r}")
    status = load_vss(con)
    if not status.loaded:
        raise HnswIndexError(f"cannot create an HNSW index on {table}.{column}: {status.reason}")
    tref, col, dim = vector_column(con, table, column)
    row = con.execute(f"SELECT count(*) FROM {tref}").fetchone()
    n = int(row[0]) if row else 0
    need = estimate_hnsw_memory(n, dim, m)
    limit = memory_limit_bytes(con)
    if check_memory and limit is not None and need > limit:
        raise HnswIndexError(
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
    for ix in hnsw_indexes(con, table, col):
        if ix.name == index_name:
            return ix
    raise HnswIndexError(f"index {index_name} was created but VSS does not list it")


def drop_hnsw_index(con: duckdb.DuckDBPyConnection, table: str, name: str) -> None:
    """Drop an HNSW index of ``table`` by name (an error naming it if there is none)."""
    found = [ix for ix in hnsw_indexes(con, table) if ix.name == name]
    if not found:
        raise HnswIndexError(f"table {table} has no HNSW index named {name!r}")
    schema = found[0].schema
    con.execute(f"DROP INDEX {ident(schema)}.{ident(name)}")
