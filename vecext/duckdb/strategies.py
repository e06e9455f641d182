"""The SQL of each search step (DuckDB, with VSS for HNSW).

The search engine (:mod:`vecext.search.engine`) decides what runs; these are the
statements :class:`~vecext.duckdb.backend.DuckDBBackend` executes for it. Values are
bound parameters (the query vector, a PQ lookup table, IVF list ids); identifiers are
quoted; every statement returns ``(id, exact distance)`` ordered by
``(distance, id)``, so ties are broken the same way everywhere.

* exact: ``ORDER BY distance, id`` over the rows passing the filter. The second
  sort key keeps VSS from rewriting the query into an HNSW index scan (it only
  matches ``ORDER BY <distance>(column, constant) LIMIT n``), so it stays exact
  even when the column has an index.
* candidates: the ``depth`` best rows by code distance among the rows passing the
  filter (in the probed IVF lists, when given), with the exact distance of each,
  joined back by ``rowid`` in the same statement. Rows whose codes (or list id) are
  NULL (inserted since the last ``refresh``) are always candidates, so they are
  never missed; ``refresh`` reassigns the lists of updated rows. With lists, each row
  also carries how many rows passed the filter in those lists.
* hnsw: VSS's index returns the ``ef`` nearest rows, the filter is applied to those,
  and they are reranked. VSS applies its LIMIT inside the index, *before* any WHERE
  clause, so a selective filter can leave fewer than k rows: the search then
  falls back to exact (:func:`vecext.search.engine.knn`).

The query-side argument of a code distance is bound once in a one-row CTE and
cross-joined: DuckDB then hands the macro a column reference. Binding a PQ
lookup table directly as a ``FLOAT[]`` parameter of the macro makes DuckDB copy
the constant list for every row (measured 25x slower on 117k rows, M = 48).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from vecext.codecs import Codec
from vecext.duckdb import inmemory, scan
from vecext.duckdb._arrow import bytes_to_words
from vecext.duckdb.filters import ident
from vecext.duckdb.indexes import DISTANCE_FUNCTIONS
from vecext.search.codec_cache import CodecCache
from vecext.search.contracts import Candidates, Request, SearchError, Stage, TableInfo
from vecext.search.planner import Plan

_CODECS = CodecCache(32)


@dataclass
class Context:
    con: duckdb.DuckDBPyConnection
    info: TableInfo
    req: Request
    plan: Plan | None
    where: str
    where_params: list[Any]
    #: what one search read once and its steps reuse (DuckDBBackend keeps it for the
    #: search): ``("matching", filter SQL, parameters)`` -> the ``{"rowid", "vx_key"}``
    #: arrays of the rows passing it (the planner's count reads them);
    #: ``"vectors"`` -> the vector cache and its check (vecext.duckdb.inmemory)
    memo: dict[Any, Any] = field(default_factory=dict)

    def matching_rows(self, body: str, params: list[Any]) -> dict[str, Any] | None:
        """The rowids and integer keys of the rows passing the filter ``body``, when this
        search has read them already (see :attr:`memo`)."""
        return self.memo.get(("matching", body, repr(params)))  # type: ignore[no-any-return]

    @property
    def t(self) -> str:
        return str(self.info.ref.sql)

    @property
    def id(self) -> str:
        return ident(self.info.id_column)

    @property
    def v(self) -> str:
        return ident(self.info.column)

    @property
    def qcast(self) -> str:
        return f"?::{self.info.column_type}[{self.info.dim}]"

    @property
    def q(self) -> list[float]:
        return [float(x) for x in self.req.q]

    def dist(self, column: str | None = None) -> str:
        fn = DISTANCE_FUNCTIONS[self.req.metric]
        return f"{fn}({column or self.v}, {self.qcast})"

    @property
    def budget(self) -> str:
        b = self.req.max_scan_rows
        return "" if b is None else f" LIMIT {int(b)}"


def cached_codec(con: duckdb.DuckDBPyConnection, name: str, fingerprint: str) -> Codec:
    """A catalog codec, rebuilt once per version in this process (the fingerprint is a
    hash of its arrays, so one entry can serve every database that holds that version).
    The first load also puts it into the connection's UDF cache."""
    from vecext.duckdb.codecs import load_codec

    return _CODECS.get((name, fingerprint), lambda: load_codec(con, name, fingerprint=fingerprint))


def _result(rows: list[tuple[Any, ...]]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array([r[0] for r in rows]) if rows else np.empty(0, np.int64)
    dist = np.array([r[1] for r in rows], dtype=np.float32)
    return ids, dist


def _rerank(ctx: Context, candidates: str, extra: str = "") -> str:
    """Exact distances of the rows whose rowid ``candidates`` (a query) yields."""
    return (
        f"SELECT {ctx.id} AS vx_id, {ctx.dist()} AS vx_dist{extra} FROM {ctx.t} "
        f"WHERE rowid IN ({candidates}) ORDER BY vx_dist, vx_id"
    )


# ---------------------------------------------------------------------------
# exact


def exact_statement(ctx: Context) -> tuple[str, list[Any]]:
    sql = (
        f"SELECT vx_id, {ctx.dist('vx_v')} AS vx_dist FROM (SELECT {ctx.id} AS vx_id, "
        f"{ctx.v} AS vx_v FROM {ctx.t} WHERE {ctx.where}{ctx.budget}) "
        f"ORDER BY vx_dist, vx_id LIMIT {int(ctx.req.k)}"
    )
    return sql, [ctx.q, *ctx.where_params]  # in textual order of the ? marks


def exact(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    got = inmemory.exact(ctx)
    if got is not None:
        return got
    sql, params = exact_statement(ctx)
    return _result(ctx.con.execute(sql, params).fetchall())


# ---------------------------------------------------------------------------
# codes


def code_argument(ctx: Context, code: Any) -> tuple[str, list[Any]]:
    """SQL for the query side of ``vecext.<codec>_distance`` and its parameters."""
    codec = cached_codec(ctx.con, code.codec, code.fingerprint)
    if code.kind == "pq":
        # the lookup table, computed once here with FAISS: M x 256 floats
        lut = codec.distance_table(ctx.req.q[None, :])[0].ravel()  # type: ignore[attr-defined]
        return "?::FLOAT[]", [[float(x) for x in lut]]
    if code.kind == "binary":
        # the query's own code in the column's layout (big-endian UBIGINT words)
        words = bytes_to_words(codec.encode(ctx.req.q[None, :]))[0]
        return "?::UBIGINT[]", [[int(w) for w in words]]
    # half, int8, rbq: the UDF behind vecext.<codec>_distance takes the float query
    return "?::FLOAT[]", [ctx.q]


def _code_distance(code: Any, codes: str, arg: str) -> str:
    return f"vecext.{ident(code.codec + '_distance')}({codes}, {arg})"


def compressed_statement(ctx: Context, code: Any, depth: int) -> tuple[str, list[Any]]:
    """The ``depth`` best candidates by codes and the rows without codes, reranked."""
    arg, aparams = code_argument(ctx, code)
    c = ident(code.name)
    cand = (
        f"(SELECT f.vx_rid FROM (SELECT rowid AS vx_rid, {c} AS vx_code FROM {ctx.t} "
        f"WHERE {c} IS NOT NULL AND {ctx.where}{ctx.budget}) f, vx_q "
        f"ORDER BY {_code_distance(code, 'f.vx_code', 'vx_q.vx_arg')} LIMIT {depth}) "
        f"UNION ALL (SELECT rowid FROM {ctx.t} WHERE {c} IS NULL AND {ctx.where})"
    )
    sql = f"WITH vx_q AS (SELECT {arg} AS vx_arg) " + _rerank(ctx, cand)
    # in textual order of the ? marks: the CTE, the rerank's query, the candidates
    return sql, [*aparams, ctx.q, *ctx.where_params, *ctx.where_params]


def ivf_statement(ctx: Context, code: Any, lists: list[int], depth: int) -> tuple[str, list[Any]]:
    """Candidates by codes among the rows of ``lists``, reranked; each row also carries
    ``vx_n``, how many rows passed the filter in those lists."""
    if code.list_column is None:
        raise SearchError(f"compressed column {code.name} has no IVF lists")
    arg, aparams = code_argument(ctx, code)
    c, lst = ident(code.name), ident(code.list_column)
    sql = (
        f"WITH vx_q AS (SELECT {arg} AS vx_arg), "
        f"vx_f AS MATERIALIZED (SELECT rowid AS vx_rid, {c} AS vx_code FROM {ctx.t} "
        f"WHERE list_contains(?::INTEGER[], {lst}) AND {c} IS NOT NULL "
        f"AND {ctx.where}{ctx.budget}), "
        f"vx_c AS ((SELECT f.vx_rid FROM vx_f f, vx_q "
        f"ORDER BY {_code_distance(code, 'f.vx_code', 'vx_q.vx_arg')} LIMIT {depth}) "
        # rows not encoded or assigned since the last refresh are always candidates
        f"UNION ALL (SELECT rowid FROM {ctx.t} WHERE ({c} IS NULL OR {lst} IS NULL) "
        f"AND {ctx.where})) "
        + _rerank(ctx, "SELECT vx_rid FROM vx_c", extra=", (SELECT count(*) FROM vx_f) AS vx_n")
    )
    return sql, [*aparams, lists, *ctx.where_params, *ctx.where_params, ctx.q]


def candidates(ctx: Context, stage: Stage) -> Candidates:
    """The candidate stage: the ``depth`` best by codes and every candidate reranked in
    the same statement (a rowid join is cheap next to the code scan, so ``dmax`` beyond
    ``depth`` would only cost), the rows by (exact distance, id); all lists (or none)
    scan without a list condition, and the rows read are then not counted."""
    if scan.candidate_scan() == "faiss":
        return scan.candidates(ctx, stage)
    code, depth, lists = stage.code, stage.depth, stage.lists
    every = lists is None or len(lists) >= int(code.nlist)
    if every:
        sql, params = compressed_statement(ctx, code, depth)
    else:
        sql, params = ivf_statement(ctx, code, [int(x) for x in lists], depth)  # type: ignore[union-attr]
    try:
        rows = ctx.con.execute(sql, params).fetchall()
    except duckdb.CatalogException as exc:  # e.g. the codec's macros are missing
        raise SearchError(
            f"{exc}: searching {ctx.info.table}.{code.name} needs vecext's functions in this "
            "connection; open it with vecext.duckdb.connect() or call vecext.duckdb.attach()"
        ) from exc
    ids = [r[0] for r in rows]
    dist = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=np.float64)
    n = None if every else (int(rows[0][2]) if rows else 0)
    return Candidates(ids, dist, np.full(len(ids), -1, np.int64), n, len(ids))


def _integers(ids: list[Any]) -> bool:
    """Whether every id is an integer (an integer primary key's values), without a
    Python-level loop over thousands of them."""
    return len(ids) == 0 or np.asarray(ids).dtype.kind in "iu"


def exact_of(ctx: Context, ids: list[Any]) -> np.ndarray:
    """Exact distances of the rows ``ids``, aligned with ``ids``."""
    if scan.candidate_scan() == "faiss" and _integers(ids):
        return scan.exact_of(ctx, ids)
    marks = ", ".join("?" for _ in ids)
    rows = ctx.con.execute(
        f"SELECT {ctx.id}, {ctx.dist()} FROM {ctx.t} WHERE {ctx.id} IN ({marks}) AND {ctx.where}",
        [ctx.q, *ids, *ctx.where_params],
    ).fetchall()
    got = dict(rows)
    return np.array([got.get(i, np.nan) for i in ids], dtype=np.float64)


def probe_order(ctx: Context, code: Any) -> np.ndarray:
    """Every IVF list of ``code``, nearest centroid to the query first (FAISS)."""
    coarse = cached_codec(ctx.con, str(code.ivf_codec), str(code.ivf_fingerprint))
    return coarse.probe(ctx.req.q[None, :], int(code.nlist))[0]  # type: ignore[attr-defined, no-any-return]


def list_counts(ctx: Context, code: Any) -> dict[int, int]:
    """Rows passing the filter in each IVF list of ``code`` (one aggregate)."""
    lst = ident(str(code.list_column))
    rows = ctx.con.execute(
        f"SELECT {lst}, count(*) FROM {ctx.t} WHERE {ctx.where} GROUP BY 1", ctx.where_params
    ).fetchall()
    return {int(r[0]): int(r[1]) for r in rows if r[0] is not None}


# ---------------------------------------------------------------------------
# native HNSW (VSS)


def hnsw_statement(ctx: Context, limit: int, select: str | None = None) -> tuple[str, list[Any]]:
    """The VSS index's ``limit`` nearest rows, filtered and reranked; ``select`` replaces
    the id column (calibration asks for ``rowid``)."""
    # the inner query is exactly the shape VSS rewrites into an index scan
    cand = f"SELECT rowid FROM {ctx.t} ORDER BY {ctx.dist()} LIMIT {int(limit)}"
    sql = (
        f"SELECT {select or ctx.id} AS vx_id, {ctx.dist()} AS vx_dist FROM {ctx.t} "
        f"WHERE rowid IN ({cand}) AND {ctx.where} ORDER BY vx_dist, vx_id LIMIT {int(ctx.req.k)}"
    )
    return sql, [ctx.q, ctx.q, *ctx.where_params]


def hnsw(ctx: Context, ef: int) -> tuple[np.ndarray, np.ndarray]:
    """VSS's ``ef`` nearest rows, filtered and reranked (``hnsw_ef_search`` set to ``ef``
    for this statement)."""
    index = str(ctx.info.caps.hnsw_index)
    if ctx.req.pred is not None and ctx.plan is not None:
        ctx.plan.steps.append(
            f"VSS index {index} returns the {ef} nearest rows (its LIMIT applies inside the "
            "index, before the filter); the filter keeps those that match"
        )
    sql, params = hnsw_statement(ctx, ef)
    con = ctx.con
    # the setting is scoped to this connection (SESSION) and restored afterwards;
    # current_setting() fails for an extension setting never set: read duckdb_settings()
    row = con.execute(
        "SELECT value, scope FROM duckdb_settings() WHERE name = 'hnsw_ef_search'"
    ).fetchone()
    before = row[0] if row and row[1] == "LOCAL" and row[0] not in (None, "", "NULL") else None
    con.execute(f"SET SESSION hnsw_ef_search = {int(ef)}")
    try:
        rows = con.execute(sql, params).fetchall()
    finally:
        if before is None:
            con.execute("RESET SESSION hnsw_ef_search")
        else:
            con.execute(f"SET SESSION hnsw_ef_search = {int(before)}")
    return _result(rows)
