"""The SQL of each search strategy (PostgreSQL + pgvector).

Every statement runs in its own transaction (a savepoint inside the caller's),
after ``set_config(..., is_local => true)`` of the settings it needs, and is
rolled back after its rows are read, so no setting outlives the query. Values
are bound parameters (the query vector as pgvector text, a PQ lookup table as
``real[]``, IVF list ids as ``int[]``); identifiers are quoted by psycopg.

* exact: ``ORDER BY col <op> q`` over the rows passing the filter, index scans
  off (bitmap scans on filter columns stay allowed), so it is truly exact;
* compressed: one statement ranks the rows passing the filter by code distance
  and computes the exact distance of the first ``depth`` candidates only (a
  CTE); it also returns the next candidates (up to 128 k), so that progressive
  deepening (the k best include a candidate beyond the first third: rerank
  twice as many) costs primary-key lookups, not another scan;
* ivf: the same among the rows of the ``nprobe`` lists nearest to the query,
  widened x4 while the filter leaves fewer than ``depth`` rows in them, and x2
  while one of the k best comes from beyond the first third of the probed lists;
* hnsw: pgvector's index with per-query ``hnsw.ef_search``,
  ``hnsw.iterative_scan`` and ``hnsw.max_scan_tuples``; halfvec and bit indexes
  give candidates that are reranked exactly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format

from vecext.postgres.indexes import VectorIndex
from vecext.search.contracts import Request, SearchError, TableInfo
from vecext.search.planner import Plan, floor_nprobe

#: pgvector's distance operators (smaller is closer): Euclidean, negative inner
#: product, cosine distance
OPS = {"l2": "<->", "ip": "<#>", "cosine": "<=>"}
#: pgvector's largest hnsw.ef_search
MAX_EF_SEARCH = 1000

# Floors on the calibrated search parameters. A calibration measures recall with rows
# of the table (or rows moved to a typical k-th-neighbour distance) as queries, and
# real queries are harder: they come from another distribution and sit farther from
# the data (wordnet-minilm, pgvector HNSW m 16: perturbed rows reach recall@10 0.95 at
# ef_search 40, where the dev queries reach 0.91; the same gap as in DuckDB). The
# floors are priced against what the search costs anyway, so they buy margin cheaply.

#: hnsw.ef_search is at least HNSW_EF_FLOOR, and at least the smallest ef at which the
#: index's calibration on perturbed rows reaches 1 - (1 - target) * HNSW_LOSS_SHARE
#: (a calibration on given queries, e.g. a query log, is used at half the allowed loss,
#: as the planner does). Cost: pgvector's walk on 117,659 x 384 (m 16) takes about
#: 2.8 ms at ef 40, 6.6 ms at 160, 13 ms at 400 and 29 ms at 1000 (p50, 2 cores), next
#: to 120-150 ms for an exact scan and about 5 ms of vecext's own queries per search.
HNSW_EF_FLOOR = 128
HNSW_LOSS_SHARE = 0.1
#: A two-stage search reranks at least RERANK_FLOOR_MULT * k candidates, but no more
#: than a quarter of the candidate stage's cost buys: one rerank (a primary-key lookup
#: and an exact distance, 10-18 us measured) costs about as much as RERANK_COST_ROWS
#: code distances of that kind (PQ lookups about 1 us per row, pgvector Hamming on
#: bit(d) about 0.1 us), so the floor is also at most rows scanned / (4 * that).
RERANK_FLOOR_MULT = 32
RERANK_COST_ROWS = {"pq": 12, "binary": 100}
_FLOAT4_OID, _FLOAT4_ARRAY_OID = 700, 1021


@dataclass
class Context:
    conn: psycopg.Connection
    info: TableInfo
    req: Request
    plan: Plan
    where: sql.Composable
    where_params: list[Any]

    @property
    def t(self) -> sql.Composable:
        return self.info.ref.ident  # type: ignore[no-any-return]

    @property
    def id(self) -> sql.Identifier:
        return sql.Identifier(self.info.id_column)

    @property
    def col(self) -> sql.Identifier:
        return sql.Identifier(self.info.column)

    @property
    def op(self) -> sql.SQL:
        return sql.SQL(OPS[self.req.metric])

    @property
    def qcast(self) -> sql.Composable:
        # the column's own type (vector or halfvec), a type name read from pg_catalog
        return sql.SQL("%s::{}").format(sql.SQL(self.info.column_type))

    @property
    def qtext(self) -> str:
        return vector_text(self.req.q)

    def budget(self) -> sql.Composable:
        b = self.req.max_scan_rows
        return sql.SQL("") if b is None else sql.SQL(" LIMIT {}").format(sql.Literal(int(b)))


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
    conn: psycopg.Connection, settings: dict[str, str], query: sql.Composed, params: list[Any]
) -> list[tuple[Any, ...]]:
    """Run ``query`` with transaction-local ``settings``, then roll back."""
    rows: list[tuple[Any, ...]] = []
    with conn.transaction() as tx:
        if settings:
            calls = sql.SQL(", ").join(sql.SQL("set_config(%s, %s, true)") for _ in settings)
            conn.execute(
                sql.SQL("SELECT {}").format(calls),
                [x for kv in settings.items() for x in kv],
            )
        with conn.cursor() as cur:
            cur.adapters.register_dumper(Float4Array, _Float4ArrayDumper)
            # no server-side prepared plans: a generic plan cannot prove that a bound
            # tenant value implies a partial index's predicate
            rows = cur.execute(query, params, prepare=False).fetchall()
        raise psycopg.Rollback(tx)
    return rows


def _result(rows: list[tuple[Any, ...]]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array([r[0] for r in rows]) if rows else np.empty(0, np.int64)
    dist = np.array([r[1] for r in rows], dtype=np.float32)
    return ids, dist


#: Below this many matching rows a scan runs on one process: starting parallel
#: workers costs more than they save (PostgreSQL's cost model prices the PQ
#: lookup sum high enough to plan workers even for a few thousand rows).
SERIAL_MAX_ROWS = 50_000


def _serial(ctx: Context) -> dict[str, str]:
    if ctx.plan.est_matching <= SERIAL_MAX_ROWS:
        return {"max_parallel_workers_per_gather": "0"}
    return {}


def _scanned(ctx: Context) -> int:
    n = int(round(ctx.plan.est_matching))
    b = ctx.req.max_scan_rows
    return min(n, b) if b is not None else n


# ---------------------------------------------------------------------------
# exact


def exact(ctx: Context) -> tuple[np.ndarray, np.ndarray, int]:
    if ctx.req.max_scan_rows is None:
        template = sql.SQL(
            "SELECT {id}, {col} {op} {q} AS d FROM {t} WHERE {where} ORDER BY d, {id} LIMIT {k}"
        )
    else:
        template = sql.SQL(
            "SELECT id, v {op} {q} AS d FROM (SELECT {id} AS id, {col} AS v FROM {t} "
            "WHERE {where}{budget}) s ORDER BY d, id LIMIT {k}"
        )
    query = template.format(
        id=ctx.id, col=ctx.col, op=ctx.op, q=ctx.qcast, t=ctx.t, where=ctx.where,
        budget=ctx.budget(), k=sql.Literal(ctx.req.k),
    )  # fmt: skip
    params = (
        [ctx.qtext, *ctx.where_params]
        if ctx.req.max_scan_rows is None
        else [*ctx.where_params, ctx.qtext]
    )
    # no index scans: an HNSW index would make this approximate
    rows = fetch_local(ctx.conn, {"enable_indexscan": "off", **_serial(ctx)}, query, params)
    ids, dist = _result(rows)
    return ids, dist, _scanned(ctx)


# ---------------------------------------------------------------------------
# codes


def code_distance(ctx: Context, code: Any) -> tuple[sql.Composable, list[Any]]:
    """The SQL distance of ``code``'s column to the query, and its parameters."""
    from vecext.postgres.ivf import cached_codec

    codes = sql.Identifier(code.name)
    codec = cached_codec(ctx.conn, code.codec, code.fingerprint)
    if code.kind == "pq":
        # the lookup table is computed once, here, and bound as one real[] parameter:
        # vecext.<codec>_distance inlines to lut[1 + get_byte(codes, 0)] + ...
        lut = codec.distance_table(ctx.req.q[None, :])[0].ravel()  # type: ignore[attr-defined]
        fn = sql.Identifier("vecext", f"{code.codec}_distance")
        return sql.SQL("{}({}, %s)").format(fn, codes), [Float4Array(lut)]
    if code.kind == "binary":
        bits = np.unpackbits(codec.encode(ctx.req.q[None, :])[0], count=codec.d_inner)
        text = "".join("1" if b else "0" for b in bits.tolist())
        return sql.SQL("({} <~> %s::{})").format(codes, sql.SQL(code.code_type)), [text]
    fn = sql.Identifier("vecext", f"{code.codec}_distance")
    return sql.SQL("{}({}, %s::vector)").format(fn, codes), [ctx.qtext]


#: Most candidates a two-stage search ranks by codes, as a multiple of k (the
#: calibration ladder's largest multiplier).
MAX_DEPTH_MULT = 128


def _candidates(
    ctx: Context,
    code: Any,
    depth: int,
    dmax: int,
    with_lists: bool = False,
) -> tuple[sql.Composed, list[Any]]:
    """One statement: the ``dmax`` best rows by code distance among the rows passing
    the filter (and, ``with_lists``, in the lists bound as ``int[]``), best first,
    with the exact distance of the first ``depth`` of them (read for those rows
    only); with lists also each row's list id and the rows the candidate stage read."""
    dist, dparams = code_distance(ctx, code)
    codes = sql.Identifier(code.name)
    if with_lists:
        lcol = sql.Identifier(code.list_column)
        inner = sql.SQL(
            "SELECT {id} AS id, {dist} AS cd, {lcol} AS l FROM {t} "
            "WHERE {lcol} = ANY(%s::int[]) AND {codes} IS NOT NULL AND {where}{budget}"
        ).format(id=ctx.id, dist=dist, lcol=lcol, t=ctx.t, codes=codes, where=ctx.where,
                 budget=ctx.budget())  # fmt: skip
        head = sql.SQL("SELECT id, cd, l, count(*) OVER () AS n FROM ({}) r")
        out = sql.SQL("o.l, o.n")
    else:
        inner = sql.SQL(
            "SELECT {id} AS id, {dist} AS cd FROM {t} WHERE {codes} IS NOT NULL AND {where}{budget}"
        ).format(id=ctx.id, dist=dist, t=ctx.t, codes=codes, where=ctx.where, budget=ctx.budget())
        head = sql.SQL("SELECT id, cd FROM ({}) r")
        out = sql.SQL("NULL, NULL")
    query = sql.SQL(
        "WITH c AS MATERIALIZED ({head} ORDER BY cd LIMIT {dmax}), "
        "o AS (SELECT c.*, row_number() OVER (ORDER BY cd, id) AS rn FROM c) "
        "SELECT o.id, {out}, CASE WHEN o.rn <= {depth} THEN "
        "(SELECT t.{col} {op} {q} FROM {t} t WHERE t.{id} = o.id) END FROM o ORDER BY o.rn"
    ).format(
        head=head.format(inner), dmax=sql.Literal(dmax), out=out, depth=sql.Literal(depth),
        col=ctx.col, op=ctx.op, q=ctx.qcast, t=ctx.t, id=ctx.id,
    )  # fmt: skip
    return query, dparams


def _exact_of(ctx: Context, ids: list[Any]) -> dict[Any, float]:
    """Exact distances of the rows ``ids`` (primary key lookups)."""
    query = sql.SQL("SELECT {id}, {col} {op} {q} FROM {t} WHERE {id} = ANY(%s)").format(
        id=ctx.id, col=ctx.col, op=ctx.op, q=ctx.qcast, t=ctx.t
    )
    return dict(fetch_local(ctx.conn, {}, query, [ctx.qtext, ids]))


def _deepen(ctx: Context, ids: list[Any], dist: np.ndarray, depth: int) -> tuple[np.ndarray, int]:
    """Positions (in code order) of the k best after progressive reranking, and the
    number of candidates reranked. ``dist`` holds exact distances for the first
    ``depth`` candidates (NaN after) and is filled in as candidates are reranked."""
    k, frac = ctx.req.k, float(ctx.plan.params.get("deepen", 0) or 0)
    n = len(ids)
    done = min(depth, n)
    while True:
        top = np.argsort(dist[:done], kind="stable")[:k]
        if done >= n or frac <= 0 or top.size == 0 or top.max() < frac * done:
            return top, done
        wider = min(2 * done, n)
        got = _exact_of(ctx, ids[done:wider])
        dist[done:wider] = [got[i] for i in ids[done:wider]]
        ctx.plan.steps.append(
            f"one of the {k} best was candidate {int(top.max()) + 1} of {done}: reranked {wider}"
        )
        done = wider


def _dmax(ctx: Context, depth: int) -> int:
    return int(max(depth, MAX_DEPTH_MULT * ctx.req.k))


def _parse(rows: list[tuple[Any, ...]]) -> tuple[list[Any], np.ndarray, np.ndarray, int]:
    ids = [r[0] for r in rows]
    lists = np.array([r[1] if r[1] is not None else -1 for r in rows], dtype=np.int64)
    n = int(rows[0][2]) if rows and rows[0][2] is not None else 0
    dist = np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=np.float64)
    return ids, dist, lists, n


def rerank_floor_rows(k: int, kind: str, rows: float) -> int:
    """The least rerank depth for ``k`` results from a candidate stage over about
    ``rows`` codes of ``kind`` (see :data:`RERANK_FLOOR_MULT`)."""
    per = RERANK_COST_ROWS.get(kind, RERANK_COST_ROWS["pq"])
    return int(max(k, min(RERANK_FLOOR_MULT * k, rows // (4 * per))))


def _raise_depth(ctx: Context, kind: str, rows: float) -> int:
    planned = int(ctx.plan.params.get("rerank", 10 * ctx.req.k))
    floor = rerank_floor_rows(ctx.req.k, kind, rows)
    if floor <= planned:
        return planned
    ctx.plan.params["rerank"] = floor
    ctx.plan.steps.append(
        f"rerank depth {planned} (from the calibration) raised to {floor}: reranking that "
        f"many costs less than a quarter of scanning about {rows:.0f} codes, and "
        "calibrations on the table's rows are optimistic for real queries"
    )
    return floor


def compressed(ctx: Context, code: Any) -> tuple[np.ndarray, np.ndarray, int]:
    depth = _raise_depth(ctx, code.kind, _scanned(ctx))
    query, dparams = _candidates(ctx, code, depth, _dmax(ctx, depth))
    rows = fetch_local(ctx.conn, _serial(ctx), query, [*dparams, *ctx.where_params, ctx.qtext])
    ids, dist, _, _ = _parse(rows)
    top, reranked = _deepen(ctx, ids, dist, depth)
    ctx.plan.params["reranked"] = reranked
    ids_out, d = _pick(ids, dist, top)
    return ids_out, d, _scanned(ctx)


def _pick(ids: list[Any], dist: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if top.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    return np.array([ids[i] for i in top]), dist[top].astype(np.float32)


def ivf(ctx: Context, code: Any) -> tuple[np.ndarray, np.ndarray, int]:
    from vecext.postgres.ivf import cached_codec

    if code.list_column is None or code.ivf_codec is None:
        raise SearchError(f"compressed column {code.name} has no IVF lists")
    coarse = cached_codec(ctx.conn, code.ivf_codec, code.ivf_fingerprint)
    nlist = int(code.nlist)
    nprobe = floor_nprobe(ctx.plan, code.calibration, ctx.req.recall_target, nlist)
    # rows read by the probe: the lists' share of the rows passing the filter
    depth = _raise_depth(ctx, code.kind, _scanned(ctx) * nprobe / max(nlist, 1))
    frac = float(ctx.plan.params.get("deepen", 0) or 0)
    order = coarse.probe(ctx.req.q[None, :], nlist)[0]  # type: ignore[attr-defined]
    rank = np.empty(nlist, dtype=np.int64)
    rank[order] = np.arange(nlist)
    query, dparams = _candidates(ctx, code, depth, _dmax(ctx, depth), with_lists=True)
    scanned, budget = 0, ctx.req.max_scan_rows
    # small probes run on one process: starting parallel workers costs more than they save
    settings = {"max_parallel_workers_per_gather": "0"}
    while True:
        probe = "{" + ",".join(map(str, order[:nprobe].tolist())) + "}"
        rows = fetch_local(
            ctx.conn, settings, query, [*dparams, probe, *ctx.where_params, ctx.qtext]
        )
        ids, dist, lists, n = _parse(rows)
        scanned += n
        over = budget is not None and scanned >= budget
        if n < depth and nprobe < nlist and not over:
            wider = min(nlist, nprobe * 4)
            ctx.plan.steps.append(
                f"{n} rows passed the filter in the {nprobe} probed lists (< rerank depth "
                f"{depth}): widened to {wider} lists"
            )
            nprobe = wider
            continue
        top, reranked = _deepen(ctx, ids, dist, depth)
        if nprobe >= nlist or frac <= 0 or over or top.size == 0:
            break
        worst = int(rank[lists[top]].max())
        if worst < frac * nprobe:
            break
        wider = min(nlist, 2 * nprobe)
        ctx.plan.steps.append(
            f"one of the {ctx.req.k} best came from the {worst + 1}th of {nprobe} probed lists: "
            f"probed {wider}"
        )
        nprobe = wider
    ctx.plan.params.update(nprobe=nprobe, reranked=reranked)
    ids_out, d = _pick(ids, dist, top)
    return ids_out, d, scanned


# ---------------------------------------------------------------------------
# native HNSW


def ef_floor(ix: VectorIndex, recall_target: float) -> tuple[int, str]:
    """The least hnsw.ef_search for ``ix`` and why (see :data:`HNSW_EF_FLOOR`)."""
    cal = ix.comment.get("calibration")
    curve = cal.get("ef_search") if isinstance(cal, dict) else None
    if not curve:
        return HNSW_EF_FLOOR, "calibrations on the table's rows are optimistic for real queries"
    given = cal.get("queries") == "given"
    share = 0.5 if given else HNSW_LOSS_SHARE
    goal = 1.0 - (1.0 - recall_target) * share
    points = sorted((int(e), float(r)) for e, r in curve.items())
    ef = next((e for e, r in points if r >= goal), points[-1][0])
    how = "given queries" if given else "perturbed rows, which are easier than real queries"
    return max(HNSW_EF_FLOOR, ef), f"the index's calibration ({how}) reaches {goal:.1%} there"


def apply_ef_floor(
    plan: Plan, ix: VectorIndex, k: int, recall_target: float, max_scan_rows: int | None = None
) -> int:
    """The hnsw.ef_search to run ``plan`` with: the planner's, raised to :func:`ef_floor`
    (bounded by a scan budget and by pgvector's maximum); notes a raise in the plan."""
    planned = int(plan.params.get("ef_search", 40))
    ef = int(min(max(planned, k), MAX_EF_SEARCH))
    if not plan.params.get("ef_floor", True):  # calibration measures each ef as given
        return ef
    floor, why = ef_floor(ix, recall_target)
    if max_scan_rows is not None:  # the caller's budget bounds the walk, floor or not
        budget = max(k, int(max_scan_rows))
        floor = min(floor, budget)
        if ef > budget:
            plan.steps.append(f"ef_search {ef} lowered to the scan budget ({budget} rows)")
            ef = budget
            plan.params["ef_search"] = ef
    if floor > ef:
        ef = int(min(floor, MAX_EF_SEARCH))
        plan.steps.append(
            f"ef_search {planned} raised to {ef}: {why}; the walk costs a few ms, far less "
            "than an exact scan"
        )
        plan.params["ef_search"] = ef
    return ef


def hnsw(ctx: Context, ix: VectorIndex) -> tuple[np.ndarray, np.ndarray, int]:
    k = ctx.req.k
    ef = apply_ef_floor(ctx.plan, ix, k, ctx.req.recall_target, ctx.req.max_scan_rows)
    iterative = ctx.plan.params.get("iterative_scan") or "off"
    settings = {"hnsw.ef_search": str(ef), "hnsw.iterative_scan": str(iterative)}
    if ctx.req.max_scan_rows is not None:
        settings["hnsw.max_scan_tuples"] = str(int(ctx.req.max_scan_rows))
    # the index is the point of this strategy: keep PostgreSQL from sorting a scan
    # instead (which would be exact, and slow on a big table)
    settings["enable_sort"] = "off"
    base = ctx.info.column_type
    if ix.storage == base:
        query = sql.SQL(
            "SELECT {id}, {col} {op} {q} AS d FROM {t} WHERE {where} ORDER BY d LIMIT {k}"
        ).format(
            id=ctx.id, col=ctx.col, op=ctx.op, q=ctx.qcast, t=ctx.t, where=ctx.where,
            k=sql.Literal(k),
        )  # fmt: skip
        params = [ctx.qtext, *ctx.where_params]
    else:
        d = sql.Literal(ix.dim)
        if ix.storage == "halfvec":
            order = sql.SQL("({}::halfvec({})) {} %s::halfvec({})").format(ctx.col, d, ctx.op, d)
        else:
            order = sql.SQL(
                "(binary_quantize({})::bit({})) <~> binary_quantize(%s::vector)"
            ).format(ctx.col, d)
        # candidates from the index, then their exact distances
        query = sql.SQL(
            "SELECT id, d FROM (SELECT {id} AS id, {col} {op} {q} AS d FROM {t} WHERE {where} "
            "ORDER BY {order} LIMIT {cand}) c ORDER BY d, id LIMIT {k}"
        ).format(
            id=ctx.id, col=ctx.col, op=ctx.op, q=ctx.qcast, t=ctx.t, where=ctx.where,
            order=order, cand=sql.Literal(ef), k=sql.Literal(k),
        )  # fmt: skip
        params = [ctx.qtext, *ctx.where_params, ctx.qtext]
    rows = fetch_local(ctx.conn, settings, query, params)
    ids, dist = _result(rows)
    return ids, dist, ef
