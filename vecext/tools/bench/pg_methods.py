"""PostgreSQL baselines: exact scan and pgvector's documented HNSW recipes, at their defaults.

Every query runs in its own transaction so that ``SET LOCAL`` settings apply to
it alone, as pgvector's README recommends; the measured latency includes those
round trips (it is what an application pays). Statements are not prepared, so
each query gets a plan for its own filter value, and the plan PostgreSQL picks
for the first query is recorded in ``params["plan"]``: with a very selective
filter the planner may prefer a sequential scan over the HNSW index, and that is
part of what the baseline does.

References (pgvector README, 0.8): HNSW defaults ``m = 16``, ``ef_construction =
64``, ``hnsw.ef_search = 40``; iterative scans are off by default; half-precision
indexing ``USING hnsw ((embedding::halfvec(d)) halfvec_<op>_ops)``; binary
quantization ``USING hnsw ((binary_quantize(embedding)::bit(d)) bit_hamming_ops)``
and "re-rank by the original vectors for better recall" with an inner ``LIMIT 20``
for an outer ``LIMIT 5``, i.e. 4 candidates per requested row.
"""

from __future__ import annotations

import math
import re
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
from pgvector import Vector
from psycopg import sql

from vecext.postgres import list_vector_indexes, pgvector
from vecext.tools.bench import pg_store
from vecext.tools.bench.context import BenchContext
from vecext.tools.bench.registry import BaseMethod, BenchError, register_method

#: pgvector's documented HNSW defaults.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 40
HNSW_PARAMS = {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": HNSW_EF_SEARCH}
#: The README's re-rank example fetches 20 Hamming candidates for LIMIT 5.
RERANK_CANDIDATES_PER_ROW = 4


class _PgMethod(BaseMethod):
    """Shared query loop: one transaction per query, ``SET LOCAL`` settings, then the SELECT."""

    settings = ""  # "SET LOCAL a = 1; SET LOCAL b = off" (constant text, no user input)

    def __init__(
        self, ctx: BenchContext, *, params: dict[str, Any], bytes_per_vector: float
    ) -> None:
        super().__init__(ctx, params=params, bytes_per_vector=bytes_per_vector)
        assert ctx.table is not None and ctx.conn is not None
        self.conn = ctx.conn
        self.t = sql.Identifier(ctx.table)
        self.where, self.where_params = ctx.pg_where()
        self.indexes: list[str] = []
        self.query = self._query()
        if self.settings:
            self.params["settings"] = self.settings

    @abstractmethod
    def _query(self) -> sql.Composable:
        """The search statement (parameters: the filter's, then the query vector)."""

    def _params(self, q: np.ndarray) -> list[Any]:
        return [*self.where_params, Vector(q)]

    def _explain(self) -> None:
        q = self.ctx.dataset.xq[0]
        self.params["plan"] = pg_store.plan_summary(
            self.conn, self.settings, self.query, self._params(q)
        )

    def search(self, q: np.ndarray) -> np.ndarray:
        with self.conn.transaction():
            if self.settings:
                self.conn.execute(self.settings)  # type: ignore[arg-type]
            rows = self.conn.execute(self.query, self._params(q)).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def storage_bytes(self) -> int:
        return int(self.ctx.extra["pg_vector_bytes"]) + sum(
            pg_store.index_bytes(self.conn, name) for name in self.indexes
        )

    def disk_bytes(self) -> int:
        """The table (with its vectors) and the indexes the method searches."""
        assert self.ctx.table is not None
        return pg_store.relation_bytes(self.conn, [self.ctx.table], table=True) + (
            pg_store.relation_bytes(self.conn, self.indexes)
        )

    def _index(
        self, suffix: str, using: sql.Composable, element_bytes: int, m: int = HNSW_M
    ) -> float:
        ctx = self.ctx
        assert ctx.table is not None
        name = f"{ctx.table}_{suffix}"
        build_s, reused, notices = pg_store.ensure_index(
            self.conn,
            ctx.extra["pg_dsn"],
            ctx.table,
            name,
            using,
            memory=pg_store.hnsw_build_memory(ctx.n, element_bytes, m),
            workers=max(0, min(ctx.cores - 1, 7)),
            rebuild=ctx.rebuild,
            task=ctx.task,
        )
        self.indexes.append(name)
        self.params.update(
            index=name, index_reused=reused,
            index_mb=round(pg_store.index_bytes(self.conn, name) / 1e6, 1),
        )  # fmt: skip
        if notices:
            self.params["build_notices"] = notices
        return build_s


class PgExact(_PgMethod):
    """``ORDER BY embedding <=> q LIMIT k`` with the filter in WHERE; ordered index scans
    (the only way an HNSW index is used) are disabled, bitmap scans of btrees are not."""

    settings = "SET LOCAL enable_indexscan = off"

    def __init__(self, ctx: BenchContext) -> None:
        super().__init__(ctx, params={"metric": "cosine"}, bytes_per_vector=4 * ctx.d)

    def _query(self) -> sql.Composable:
        return sql.SQL("SELECT id FROM {} {} ORDER BY embedding <=> %b LIMIT {}").format(
            self.t, self.where, self.ctx.k
        )

    def build(self) -> float | None:
        self._explain()
        # An ordered index scan is what an ANN index would do: refuse it. A bitmap scan
        # of a btree on a filter column (if the table has one) only finds the matching
        # rows and keeps the search exact.
        if re.search(r"(?<!Bitmap )Index (Only )?Scan", self.params["plan"]):
            raise BenchError(f"the exact scan would use an index: {self.params['plan']}")
        return 0.0


class _PgHnswMethod(_PgMethod):
    """A pgvector HNSW index at the documented defaults on an expression of
    ``embedding``: ``hnsw (<indexed>) WITH (m, ef_construction)``, searched with
    ``ef_search`` and no iterative scan."""

    settings = f"SET LOCAL hnsw.ef_search = {HNSW_EF_SEARCH}; SET LOCAL hnsw.iterative_scan = off"
    #: index name suffix; the indexed expression and its operator class ({d}: the
    #: dimension; constant text, no user input); the pgvector feature it needs
    suffix: ClassVar[str] = "hnsw"
    indexed: ClassVar[str] = "embedding vector_cosine_ops"
    feature: ClassVar[str | None] = None

    def __init__(
        self, ctx: BenchContext, *, bytes_per_vector: float, params: dict[str, Any] | None = None
    ) -> None:
        if self.feature:
            pgvector.require(ctx.conn, self.feature)
        # method options: name@ef=200+iterative=relaxed_order
        self.ef_search = int(ctx.option("ef", int, HNSW_EF_SEARCH))
        # @efc=N: ef_construction (the index of that name is built again when it differs)
        self.efc = int(ctx.option("efc", int, HNSW_EF_CONSTRUCTION))
        # @m=N: m (like efc: the index of that name is built again when it differs; an
        # index of its own name would leave the query to PostgreSQL's choice between two
        # indexes on the same expression, which took the other one)
        self.m = int(ctx.option("m", int, HNSW_M))
        iterative = str(ctx.option("iterative", str, "off"))
        if (
            iterative not in ("off", "relaxed_order", "strict_order")
            or self.ef_search < 1
            or self.efc < 4
            or not 2 <= self.m <= 100  # pgvector's bounds for m
        ):
            raise BenchError(
                f"bad options ef={self.ef_search}, iterative={iterative}, efc={self.efc}, "
                f"m={self.m}"
            )
        self.settings = (
            f"SET LOCAL hnsw.ef_search = {self.ef_search}; "
            f"SET LOCAL hnsw.iterative_scan = {iterative}"
        )
        params = {**HNSW_PARAMS, "ef_search": self.ef_search, **(params or {})}
        params["ef_construction"] = self.efc
        params["m"] = self.m
        if iterative != "off":
            params["iterative_scan"] = iterative
        super().__init__(ctx, params=params, bytes_per_vector=bytes_per_vector)

    def build(self) -> float | None:
        template = f"hnsw ({self.indexed}) WITH (m = {{m}}, ef_construction = {{efc}})"
        using = sql.SQL(template).format(d=self.ctx.d, m=self.m, efc=self.efc)
        # an index element: the indexed value plus 8 bytes of heap pointer and header
        s = self._index(self.suffix, using, math.ceil(self.bytes_per_vector) + 8, self.m)
        self._explain()
        # a sequential scan is the baseline's own choice (kept in params["plan"]); an
        # index scan of another index on the same expression would measure that index
        vector_indexes = {ix.name for ix in list_vector_indexes(self.conn, self.ctx.table)}
        other = [
            name
            for name in re.findall(r"Index (?:Only )?Scan \(([^)]+)\)", self.params["plan"])
            if name not in self.indexes and name in vector_indexes
        ]
        if other:
            raise BenchError(
                f"PostgreSQL plans the query with index {other[0]}, not "
                f"{self.indexes[0]} (two indexes on the same expression); drop one"
            )
        return s


class PgHnsw(_PgHnswMethod):
    """pgvector HNSW on ``vector`` with ``vector_cosine_ops`` at the documented defaults."""

    def __init__(self, ctx: BenchContext) -> None:
        super().__init__(ctx, bytes_per_vector=4 * ctx.d)

    def _query(self) -> sql.Composable:
        return sql.SQL("SELECT id FROM {} {} ORDER BY embedding <=> %b LIMIT {}").format(
            self.t, self.where, self.ctx.k
        )


class PgHalfvecHnsw(_PgHnswMethod):
    """HNSW on the expression ``embedding::halfvec(d)`` (``halfvec_cosine_ops``), defaults."""

    suffix, indexed, feature = (
        "hnsw_half",
        "(embedding::halfvec({d})) halfvec_cosine_ops",
        "halfvec",
    )

    def __init__(self, ctx: BenchContext) -> None:
        super().__init__(ctx, bytes_per_vector=2 * ctx.d)

    def _query(self) -> sql.Composable:
        d = self.ctx.d
        return sql.SQL(
            "SELECT id FROM {} {} ORDER BY embedding::halfvec({}) <=> %b::halfvec({}) LIMIT {}"
        ).format(self.t, self.where, d, d, self.ctx.k)


class PgBitRerank(_PgHnswMethod):
    """pgvector's binary-quantization recipe: Hamming HNSW candidates, re-ranked by ``<=>``."""

    suffix = "hnsw_bit"
    indexed = "(binary_quantize(embedding)::bit({d})) bit_hamming_ops"
    feature = "binary_quantize"

    def __init__(self, ctx: BenchContext) -> None:
        self.candidates = int(ctx.option("candidates", int, RERANK_CANDIDATES_PER_ROW * ctx.k))
        ef = int(ctx.option("ef", int, HNSW_EF_SEARCH))
        params: dict[str, Any] = {"candidates": self.candidates}
        if self.candidates > ef:
            params["note"] = (
                f"an HNSW scan returns at most ef_search={ef} rows, "
                f"fewer than the {self.candidates} candidates asked for"
            )
        super().__init__(ctx, bytes_per_vector=ctx.d / 8, params=params)

    def _query(self) -> sql.Composable:
        d = self.ctx.d
        return sql.SQL(
            "SELECT id FROM (SELECT id, embedding FROM {} {} "
            "ORDER BY binary_quantize(embedding)::bit({}) <~> binary_quantize(%b) LIMIT {}) c "
            "ORDER BY embedding <=> %b LIMIT {}"
        ).format(self.t, self.where, d, self.candidates, self.ctx.k)

    def _params(self, q: np.ndarray) -> list[Any]:
        v = Vector(q)
        return [*self.where_params, v, v]


register_method("exact", "postgres", PgExact)
register_method("pgvector-hnsw", "postgres", PgHnsw)
register_method("pgvector-halfvec-hnsw", "postgres", PgHalfvecHnsw)
register_method("pgvector-bit-rerank", "postgres", PgBitRerank)
