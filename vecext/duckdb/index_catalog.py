"""Discover the HNSW indexes of DuckDB tables: column, metric, size and calibration.

VSS lists its indexes in ``pragma_hnsw_index_info()`` (only while VSS is loaded);
``duckdb_indexes()`` adds each one's indexed expression and comment, where
:func:`vecext.duckdb.calibrate_hnsw` keeps its recall measurements. The planner and
:func:`list_vector_indexes` read them here (the PostgreSQL counterpart is
:mod:`vecext.postgres.index_catalog`).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

import duckdb

from vecext.catalog.names import parse_duckdb_table

#: vecext metric -> VSS index metric
VSS_METRICS = {"l2": "l2sq", "cosine": "cosine", "ip": "ip"}
#: VSS index metric -> vecext metric
FROM_VSS = {v: k for k, v in VSS_METRICS.items()}


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"vecext.duckdb.{old} is deprecated: use {new} (the name vecext.postgres has too)",
        DeprecationWarning,
        stacklevel=3,
    )


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

    @property
    def method(self) -> str:
        """The index method (VSS builds HNSW only), as ``VectorIndex.method`` in PostgreSQL."""
        return "hnsw"


def _split(table: object) -> tuple[str | None, str]:
    """``(schema or None, name)`` of a table name (:mod:`vecext.catalog.names`)."""
    name = parse_duckdb_table(table)
    return name.schema, name.name


def list_vector_indexes(
    con: duckdb.DuckDBPyConnection, table: str, column: str | None = None
) -> list[HnswIndex]:
    """The HNSW indexes on ``table`` (on ``column`` when given)."""
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


def hnsw_indexes(
    con: duckdb.DuckDBPyConnection, table: str, column: str | None = None
) -> list[HnswIndex]:
    """Deprecated name of :func:`list_vector_indexes`."""
    _deprecated("hnsw_indexes", "list_vector_indexes")
    return list_vector_indexes(con, table, column)


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
