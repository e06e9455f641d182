"""DuckDB baselines: exact ``array_cosine_distance`` scan and the VSS extension's HNSW index.

The data go into an in-memory table through Arrow (``embedding FLOAT[d]``). VSS
(duckdb-vss docs) builds HNSW with ``metric = 'cosine'`` and its defaults
``ef_construction = 128``, ``ef_search = 64``, ``M = 16``, ``M0 = 2 M``; its index
is used for ``ORDER BY array_cosine_distance(embedding, q) LIMIT k`` and a WHERE
clause is applied to the rows the index returned, so a filtered query can return
fewer than ``k`` rows. The index lives in memory (VSS persists indexes only
behind an experimental flag), so it is built on every run, and dropped when the
method closes so that the exact scan never runs against it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from vecext.tools.bench.context import BenchContext
from vecext.tools.bench.registry import BaseMethod, BenchError, register_method
from vecext.tools.bench.where import duck_ident

VSS_DEFAULTS = {"ef_construction": 128, "ef_search": 64, "M": 16, "M0": 32}
_ATTR_TYPES = ("int", "uint", "float", "double", "bool", "string", "large_string")


def load_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    xb: np.ndarray,
    attrs: pa.Table,
    task: Callable[..., Any],
) -> float:
    """Create ``table (id BIGINT PRIMARY KEY, embedding FLOAT[d], <attributes>)`` from Arrow;
    return seconds."""
    n, d = xb.shape
    cols = {"id": pa.array(np.arange(n, dtype=np.int64))}
    flat = pa.array(np.ascontiguousarray(xb, dtype=np.float32).reshape(-1))
    cols["embedding"] = pa.FixedSizeListArray.from_arrays(flat, d)
    for f in attrs.schema:
        if f.name == "row":
            continue
        if f.name in cols:
            raise BenchError(f"docs.parquet has a column named {f.name!r}, which the table needs")
        typ = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        if str(typ).startswith(_ATTR_TYPES):
            cols[f.name] = attrs.column(f.name)
    src = pa.table(cols)
    select = ", ".join(
        f"embedding::FLOAT[{d}] AS embedding" if c == "embedding" else duck_ident(c)
        for c in src.column_names
    )
    with task(f"load {n:,} rows into DuckDB {table}"):
        start = time.perf_counter()
        con.register("vecext_bench_src", src)
        try:
            con.execute(
                f"CREATE OR REPLACE TABLE {duck_ident(table)} AS SELECT {select} FROM vecext_bench_src"
            )
            # an integer primary key, as an application table has: vecext's rerank finds
            # candidates through its index (without one it scans the vector column)
            con.execute(f"ALTER TABLE {duck_ident(table)} ADD PRIMARY KEY (id)")
        finally:
            con.unregister("vecext_bench_src")
        return time.perf_counter() - start


def plan_operators(con: duckdb.DuckDBPyConnection, query: str, params: list[Any]) -> str:
    """Operator names of DuckDB's physical plan, outermost first, e.g. ``... > HNSW_INDEX_SCAN``."""
    (_, text) = con.execute("EXPLAIN (FORMAT json) " + query, params).fetchone()  # type: ignore[misc]
    names: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        names.append(node["name"])
        for child in node.get("children", []):
            walk(child)

    for root in json.loads(text):
        walk(root)
    return " > ".join(n for n in names if n != "PROJECTION")


class _DuckMethod(BaseMethod):
    def __init__(
        self, ctx: BenchContext, *, params: dict[str, Any], bytes_per_vector: float
    ) -> None:
        super().__init__(ctx, params=params, bytes_per_vector=bytes_per_vector)
        assert ctx.table is not None and ctx.conn is not None
        self.con: duckdb.DuckDBPyConnection = ctx.conn
        where, self.where_params = ctx.duck_where()
        self.query = (
            f"SELECT id FROM {duck_ident(ctx.table)} {where} "
            f"ORDER BY array_cosine_distance(embedding, ?::FLOAT[{ctx.d}]) LIMIT {int(ctx.k)}"
        )

    def search(self, q: np.ndarray) -> np.ndarray:
        rows = self.con.execute(self.query, [*self.where_params, q]).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def _explain(self) -> str:
        plan = plan_operators(self.con, self.query, [*self.where_params, self.ctx.dataset.xq[0]])
        self.params["plan"] = plan
        return plan

    def _vector_bytes(self) -> int:
        # FLOAT[d] is held uncompressed: 4 d bytes per row (DuckDB reports no per-column size
        # for in-memory tables)
        return 4 * self.ctx.d * self.ctx.n


class DuckExact(_DuckMethod):
    """``ORDER BY array_cosine_distance(embedding, q) LIMIT k`` over the table, filter in WHERE."""

    def __init__(self, ctx: BenchContext) -> None:
        super().__init__(ctx, params={"metric": "cosine"}, bytes_per_vector=4 * ctx.d)

    def build(self) -> float | None:
        if "HNSW_INDEX_SCAN" in self._explain():
            raise BenchError(f"the exact scan would use an HNSW index: {self.params['plan']}")
        return 0.0

    def storage_bytes(self) -> int:
        return self._vector_bytes()


class VssHnsw(_DuckMethod):
    """DuckDB VSS ``HNSW`` index, ``metric = 'cosine'``, VSS defaults."""

    def __init__(self, ctx: BenchContext) -> None:
        params: dict[str, Any] = {"metric": "cosine", **VSS_DEFAULTS}
        if ctx.filter is not None:
            params["note"] = (
                "VSS applies the WHERE filter to the rows its HNSW scan returns; "
                "filtered queries may return fewer than k rows"
            )
        super().__init__(ctx, params=params, bytes_per_vector=4 * ctx.d)
        assert ctx.table is not None
        self.index = f"{ctx.table}_hnsw"

    def build(self) -> float | None:
        ctx = self.ctx
        assert ctx.table is not None
        with ctx.task(f"CREATE INDEX {self.index} USING HNSW (VSS)"):
            start = time.perf_counter()
            self.con.execute(f"DROP INDEX IF EXISTS {duck_ident(self.index)}")
            self.con.execute(
                f"CREATE INDEX {duck_ident(self.index)} ON {duck_ident(ctx.table)} "
                "USING HNSW (embedding) WITH (metric = 'cosine')"
            )
            build_s = time.perf_counter() - start
        self._explain()
        return build_s

    def storage_bytes(self) -> int:
        row = self.con.execute(
            "SELECT approx_memory_usage FROM pragma_hnsw_index_info() WHERE index_name = ?",
            [self.index],
        ).fetchone()
        return self._vector_bytes() + (int(row[0]) if row else 0)

    def close(self) -> None:
        self.con.execute(f"DROP INDEX IF EXISTS {duck_ident(self.index)}")


register_method("exact", "duckdb", DuckExact)
register_method("vss-hnsw", "duckdb", VssHnsw)
