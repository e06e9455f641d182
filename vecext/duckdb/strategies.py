"""One SQL statement per search strategy (DuckDB, with VSS for HNSW).

Values are bound parameters (the query vector, a PQ lookup table, IVF list ids);
identifiers are quoted; every statement returns ``(id, exact distance)`` ordered
by ``(distance, id)``, so ties are broken the same way everywhere.

* exact: ``ORDER BY distance, id`` over the rows passing the filter. The second
  sort key keeps VSS from rewriting the query into an HNSW index scan (it only
  matches ``ORDER BY <distance>(column, constant) LIMIT n``), so it stays exact
  even when the column has an index.
* compressed: the ``depth`` best rows by code distance among the rows passing the
  filter, then the exact distance of those candidates only, joined back by
  ``rowid`` in the same statement. Rows whose codes are NULL (inserted since the
  last ``refresh``) are always candidates, so they are never missed.
* ivf: the same among the rows of the ``nprobe`` lists nearest to the query,
  widened x4 while the filter leaves fewer than ``depth`` rows in them. Rows
  without codes or a list id (inserted since the last ``refresh``) are always
  candidates too; ``refresh`` reassigns the lists of updated rows.
* hnsw: VSS's index returns the ``L`` nearest rows (``L`` = ef_search, widened by
  the planner for the filter's selectivity), the filter is applied to those, and
  they are reranked. VSS applies its LIMIT inside the index, *before* any WHERE
  clause, so a selective filter can leave fewer than k rows: the search then
  falls back to exact (:func:`vecext.search.search`).

The query-side argument of a code distance is bound once in a one-row CTE and
cross-joined: DuckDB then hands the macro a column reference. Binding a PQ
lookup table directly as a ``FLOAT[]`` parameter of the macro makes DuckDB copy
the constant list for every row (measured 25x slower on 117k rows, M = 48).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from vecext.codecs import Codec
from vecext.duckdb._arrow import bytes_to_words
from vecext.duckdb.filters import ident
from vecext.duckdb.indexes import DISTANCE_FUNCTIONS
from vecext.search.contracts import Request, SearchError, TableInfo
from vecext.search.planner import Plan, floor_nprobe

#: the most candidates asked of the VSS index (the planner's own cap on ef_search)
MAX_EF_SEARCH = 1000
#: Rerank at least RERANK_MULT * k candidates (at most RERANK_MAX). In DuckDB the code
#: scan dominates a two-stage search and reranking only fetches the candidates by rowid
#: (1,280 of them cost a few ms next to hundreds for the scan), while the calibration,
#: measured with the table's own rows as queries, is optimistic for real queries and
#: for filters that follow the data's structure (wordnet-minilm, binary codes: 8 k
#: candidates for 0.95 on rows, 96 k for dev queries under lexname = noun.animal).
RERANK_MULT = 128
RERANK_MAX = 20_000
#: ef_search is at least HNSW_EF_FLOOR. A VSS walk at ef = 128 costs a few ms, less than
#: vecext's own per-search queries, while an ef calibrated with the table's rows as
#: queries is far too small for real ones (wordnet-minilm: rows reach recall 0.995 at
#: ef = 40; held-out dev queries 0.90 at 40, 0.96 at 100, 0.985 at 160).
HNSW_EF_FLOOR = 128
_CODECS: OrderedDict[tuple[str, str], Codec] = OrderedDict()
_CACHE_SIZE = 32


@dataclass
class Context:
    con: duckdb.DuckDBPyConnection
    info: TableInfo
    req: Request
    plan: Plan
    where: str
    where_params: list[Any]

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

    def scanned(self) -> int:
        n = int(round(self.plan.est_matching))
        b = self.req.max_scan_rows
        return min(n, b) if b is not None else n


def cached_codec(con: duckdb.DuckDBPyConnection, name: str, fingerprint: str) -> Codec:
    """A catalog codec, rebuilt once per version in this process (the fingerprint is a
    hash of its arrays, so one entry can serve every database that holds that version).
    The first load also puts it into the connection's UDF cache."""
    from vecext.duckdb.codecs import load_codec

    key = (name, fingerprint)
    codec = _CODECS.get(key)
    if codec is None:
        codec = load_codec(con, name, fingerprint=fingerprint)
        _CODECS[key] = codec
        while len(_CODECS) > _CACHE_SIZE:
            _CODECS.popitem(last=False)
    else:
        _CODECS.move_to_end(key)
    return codec


def _result(rows: list[tuple[Any, ...]]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array([r[0] for r in rows]) if rows else np.empty(0, np.int64)
    dist = np.array([r[1] for r in rows], dtype=np.float32)
    return ids, dist


def _rerank(ctx: Context, candidates: str, extra: str = "") -> str:
    """Exact distances of the rows whose rowid ``candidates`` (a query) yields."""
    return (
        f"SELECT {ctx.id} AS vx_id, {ctx.dist()} AS vx_dist{extra} FROM {ctx.t} "
        f"WHERE rowid IN ({candidates}) ORDER BY vx_dist, vx_id LIMIT {int(ctx.req.k)}"
    )


def rerank_depth(ctx: Context) -> int:
    """The planner's rerank depth, raised to the DuckDB floor (see :data:`RERANK_MULT`).

    The planner's progressive deepening (``deepen``) is not used here: with the floor
    the rerank already covers the depth deepening would grow to, and growing beyond
    it would cost another code scan.
    """
    ctx.plan.params.pop("deepen", None)
    planned = int(ctx.plan.params.get("rerank", 10 * ctx.req.k))
    floor = min(RERANK_MULT * ctx.req.k, RERANK_MAX)
    if floor <= planned:
        return planned
    ctx.plan.params["rerank"] = floor
    ctx.plan.steps.append(
        f"rerank depth {planned} (from the calibration) raised to {floor}: reranking is "
        "cheap next to the code scan in DuckDB"
    )
    return floor


# ---------------------------------------------------------------------------
# exact


def exact_statement(ctx: Context) -> tuple[str, list[Any]]:
    sql = (
        f"SELECT vx_id, {ctx.dist('vx_v')} AS vx_dist FROM (SELECT {ctx.id} AS vx_id, "
        f"{ctx.v} AS vx_v FROM {ctx.t} WHERE {ctx.where}{ctx.budget}) "
        f"ORDER BY vx_dist, vx_id LIMIT {int(ctx.req.k)}"
    )
    return sql, [ctx.q, *ctx.where_params]  # in textual order of the ? marks


def exact(ctx: Context) -> tuple[np.ndarray, np.ndarray, int]:
    sql, params = exact_statement(ctx)
    ids, dist = _result(ctx.con.execute(sql, params).fetchall())
    return ids, dist, ctx.scanned()


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


def compressed_statement(ctx: Context, code: Any) -> tuple[str, list[Any]]:
    depth = int(ctx.plan.params["rerank"])
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


def compressed(ctx: Context, code: Any) -> tuple[np.ndarray, np.ndarray, int]:
    rerank_depth(ctx)
    sql, params = compressed_statement(ctx, code)
    ids, dist = _result(ctx.con.execute(sql, params).fetchall())
    return ids, dist, ctx.scanned()


def ivf_statement(ctx: Context, code: Any, lists: list[int]) -> tuple[str, list[Any]]:
    """Candidates by codes among the rows of ``lists``, reranked; each row also carries
    ``vx_n``, how many rows passed the filter in those lists."""
    if code.list_column is None:
        raise SearchError(f"compressed column {code.name} has no IVF lists")
    depth = int(ctx.plan.params["rerank"])
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


def _probe(ctx: Context, code: Any, order: np.ndarray) -> int:
    """How many of the lists in ``order`` (nearest first) to probe.

    Unfiltered: the calibrated count for a coverage of ``1 - (1 - target) *
    planner.IVF_LOSS_SHARE`` (or the planner's, if larger). Under a filter, the lists that
    hold as many matching rows as an unfiltered probe reads (counted per list, one
    cheap aggregate): matching rows cluster in some lists, so probing by centroid
    distance alone would miss the neighbours of a filter that follows the data's
    structure; when the filter keeps no more rows than that, every list.
    """
    nlist = int(code.nlist)
    nprobe = floor_nprobe(ctx.plan, code.calibration, ctx.req.recall_target, nlist)
    if ctx.req.pred is None:
        return nprobe
    reads = ctx.info.caps.n_rows * nprobe / nlist
    if ctx.req.max_scan_rows is not None:
        reads = min(reads, ctx.req.max_scan_rows)
    if ctx.plan.est_matching <= reads:  # the planner's count (an estimate on huge tables)
        ctx.plan.steps.append(
            f"the filter keeps about {ctx.plan.est_matching:.0f} rows, no more than an "
            f"unfiltered probe reads ({reads:.0f}): all {nlist} lists"
        )
        return nlist
    lst = ident(code.list_column)
    rows = ctx.con.execute(
        f"SELECT {lst}, count(*) FROM {ctx.t} WHERE {ctx.where} GROUP BY 1", ctx.where_params
    ).fetchall()
    counts = {int(r[0]): int(r[1]) for r in rows if r[0] is not None}
    total = sum(counts.values())
    if total <= reads:
        ctx.plan.steps.append(
            f"the filter keeps {total} rows, no more than an unfiltered probe reads "
            f"({reads:.0f}): all {nlist} lists"
        )
        return nlist
    covered = np.cumsum([counts.get(int(i), 0) for i in order])
    wanted = int(np.searchsorted(covered, reads)) + 1
    ctx.plan.steps.append(
        f"the filter keeps {total} rows: probed the {wanted} nearest lists holding "
        f"{int(covered[min(wanted, nlist) - 1])} of them (an unfiltered probe reads {reads:.0f})"
    )
    return int(min(wanted, nlist))


def ivf(ctx: Context, code: Any) -> tuple[np.ndarray, np.ndarray, int]:
    coarse = cached_codec(ctx.con, code.ivf_codec, code.ivf_fingerprint)
    nlist = int(code.nlist)
    depth = rerank_depth(ctx)
    order = coarse.probe(ctx.req.q[None, :], nlist)[0]  # type: ignore[attr-defined]
    nprobe = _probe(ctx, code, order)
    budget = ctx.req.max_scan_rows
    scanned = 0
    while True:
        if nprobe >= nlist:  # every list: no list condition, the plain two-stage scan
            ctx.plan.params["nprobe"] = nlist
            ids, d = _result(ctx.con.execute(*compressed_statement(ctx, code)).fetchall())
            return ids, d, scanned + ctx.scanned()
        sql, params = ivf_statement(ctx, code, [int(x) for x in order[:nprobe]])
        rows = ctx.con.execute(sql, params).fetchall()
        n = int(rows[0][2]) if rows else 0
        scanned += n
        if n >= depth or (budget is not None and scanned >= budget):
            break
        wider = min(nlist, nprobe * 4)
        ctx.plan.steps.append(
            f"{n} rows passed the filter in the {nprobe} probed lists (< rerank depth "
            f"{depth}): widened to {wider} lists"
        )
        nprobe = wider
    ctx.plan.params["nprobe"] = nprobe
    ids, d = _result(rows)
    return ids, d, scanned


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


def hnsw(ctx: Context, index: str) -> tuple[np.ndarray, np.ndarray, int]:
    k = ctx.req.k
    planned = int(ctx.plan.params.get("ef_search", 64))
    ef = max(planned, k, HNSW_EF_FLOOR)
    if ef > planned:
        ctx.plan.steps.append(
            f"ef_search {planned} raised to {ef}: the VSS walk is cheap next to the search's "
            "own queries, and calibrations on the table's rows are optimistic for real queries"
        )
    if ctx.req.pred is not None:
        # matching rows expected among the index's nearest L: L * selectivity; ask for 2k,
        # up to MAX_EF_SEARCH (beyond it the graph walk costs more than an exact scan)
        sel = max(ctx.plan.selectivity, 1e-6)
        ef = max(ef, min(math.ceil(2 * k / sel), MAX_EF_SEARCH))
    if ctx.req.max_scan_rows is not None:
        ef = max(k, min(ef, int(ctx.req.max_scan_rows)))
    ctx.plan.params["ef_search"] = ef
    if ctx.req.pred is not None:
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
    ids, dist = _result(rows)
    return ids, dist, ef
