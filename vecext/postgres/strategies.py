"""The SQL of each search step (PostgreSQL + pgvector).

The search engine (:mod:`vecext.search.engine`) decides what runs; these are the
statements :class:`~vecext.postgres.backend.PostgresBackend` executes for it. Every
statement runs in a transaction of its own (a savepoint inside the caller's), after
``set_config(..., is_local => true)`` of the settings it needs, so no setting
outlives the query (:func:`vecext.postgres.statement.fetch_local`). Values are bound
parameters (the query vector and a PQ lookup table as binary ``real[]``, IVF
list ids as ``int[]``); identifiers are quoted by psycopg.

* exact: ``ORDER BY col <op> q`` over the rows passing the filter, index scans
  off (bitmap scans on filter columns stay allowed), so it is truly exact;
* candidates: one statement ranks the rows passing the filter (in the probed IVF
  lists, when given) by code distance and computes the exact distance of the first
  ``depth`` candidates only (a CTE); it also returns the next candidates (up to
  ``dmax``), so that progressive deepening costs primary-key lookups
  (:func:`exact_of`), not another scan;
* hnsw: pgvector's index with per-query ``hnsw.ef_search``,
  ``hnsw.iterative_scan`` and ``hnsw.max_scan_tuples``; halfvec and bit indexes
  give candidates that are reranked exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from vecext.postgres import code_index
from vecext.postgres.code_index import CodeIndex
from vecext.postgres.filters import bound_ident
from vecext.postgres.index_catalog import VectorIndex
from vecext.postgres.ivf import cached_codec
from vecext.postgres.statement import Check, Float4Array, cached_sql, fetch_local
from vecext.postgres.store_filter import store_where
from vecext.search.contracts import Candidates, Request, Stage, TableInfo
from vecext.search.planner import Plan

#: pgvector's distance operators (smaller is closer): Euclidean, negative inner
#: product, cosine distance
OPS = {"l2": "<->", "ip": "<#>", "cosine": "<=>"}


class Pending:
    """The stamp check a search still owes (:attr:`PostgresBackend.speculate`): sent with
    its first statement, then gone."""

    __slots__ = ("check",)

    def __init__(self) -> None:
        self.check: Check | None = None


@dataclass
class Context:
    conn: psycopg.Connection
    info: TableInfo
    req: Request
    plan: Plan | None
    where: sql.Composable
    where_params: list[Any]
    #: the WHERE body as text (rendered once): statement texts are kept by it
    where_text: str | None = field(default=None, repr=False)
    #: the backend's check of unchecked facts, sent with the first statement
    pending: Pending | None = field(default=None, repr=False)
    #: the filter compiled on each code store's mirrored columns (:mod:`.store_filter`)
    store_wheres: dict[str, Any] = field(default_factory=dict, repr=False)

    def key(self, *parts: Any) -> tuple[Any, ...]:
        """A :func:`~vecext.postgres.statement.cached_sql` key naming everything a
        statement over this table, column, metric and filter depends on, and ``parts``."""
        if self.where_text is None:
            self.where_text = self.where.as_string(self.conn)
        info = self.info
        return (
            *parts, info.ref.schema, info.ref.name, info.id_column, info.column,
            info.column_type, self.req.metric, self.where_text, self.req.max_scan_rows,
        )  # fmt: skip

    # every statement here binds parameters, so names holding % are written %%
    # (:class:`vecext.postgres.filters.PostgresDialect`)
    @property
    def t(self) -> sql.Composable:
        return bound_ident(self.info.ref.schema, self.info.ref.name)

    @property
    def id(self) -> sql.Composable:
        return bound_ident(self.info.id_column)

    @property
    def col(self) -> sql.Composable:
        return bound_ident(self.info.column)

    @property
    def op(self) -> sql.SQL:
        return sql.SQL(OPS[self.req.metric])

    @property
    def qcast(self) -> sql.Composable:
        # the column's own type (vector or halfvec), a type name read from pg_catalog
        return sql.SQL("%s::{}").format(sql.SQL(self.info.column_type))

    @property
    def qtext(self) -> Float4Array:
        # the query as a binary real[] (cast to the column's type in the statement):
        # formatting 768 floats as text took 0.24 ms of a 2.5 ms search
        return Float4Array(self.req.q)

    def fetch(
        self, settings: dict[str, str], query: sql.Composable | str, params: list[Any]
    ) -> list[tuple[Any, ...]]:
        """:func:`fetch_local` with the search path read with the table's facts (and, for
        the first statement of a search planned from unchecked facts, their check)."""
        pending = self.pending
        check = pending.check if pending is not None else None
        rows = fetch_local(self.conn, settings, query, params, self.path, check)
        if check is not None:
            pending.check = None  # type: ignore[union-attr]
        return rows

    @property
    def path(self) -> str | None:
        return getattr(self.info.ref, "search_path", None)

    def budget(self) -> sql.Composable:
        b = self.req.max_scan_rows
        return sql.SQL("") if b is None else sql.SQL(" LIMIT {}").format(sql.Literal(int(b)))


def _result(rows: list[tuple[Any, ...]]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array([r[0] for r in rows]) if rows else np.empty(0, np.int64)
    dist = np.array([r[1] for r in rows], dtype=np.float32)
    return ids, dist


#: Below this many matching rows a scan runs on one process: starting parallel
#: workers costs more than they save (PostgreSQL's cost model prices the PQ
#: lookup sum high enough to plan workers even for a few thousand rows).
SERIAL_MAX_ROWS = 50_000


def _serial(ctx: Context) -> dict[str, str]:
    if ctx.plan is not None and ctx.plan.est_matching <= SERIAL_MAX_ROWS:
        return {"max_parallel_workers_per_gather": "0"}
    return {}


# ---------------------------------------------------------------------------
# exact


def exact(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    def build() -> sql.Composable:
        if ctx.req.max_scan_rows is None:
            template = sql.SQL(
                "SELECT {id}, {col} {op} {q} AS d FROM {t} WHERE {where} ORDER BY d, {id} LIMIT {k}"
            )
        else:
            template = sql.SQL(
                "SELECT id, v {op} {q} AS d FROM (SELECT {id} AS id, {col} AS v FROM {t} "
                "WHERE {where}{budget}) s ORDER BY d, id LIMIT {k}"
            )
        return template.format(
            id=ctx.id, col=ctx.col, op=ctx.op, q=ctx.qcast, t=ctx.t, where=ctx.where,
            budget=ctx.budget(), k=sql.Literal(ctx.req.k),
        )  # fmt: skip

    # the text is kept per table, filter shape and k: composing it cost ~0.05 ms a search
    query = cached_sql(ctx.conn, ctx.key("exact", ctx.req.k), build)
    params = (
        [ctx.qtext, *ctx.where_params]
        if ctx.req.max_scan_rows is None
        else [*ctx.where_params, ctx.qtext]
    )
    # no index scans: an HNSW index would make this approximate
    rows = ctx.fetch({"enable_indexscan": "off", **_serial(ctx)}, query, params)
    return _result(rows)


# ---------------------------------------------------------------------------
# codes


def code_ref(code: Any) -> sql.Composable:
    """Where ``code``'s codes are read in a candidate query: ``s.code`` of its code store
    (catalog 0.4.0), else its column of the user's table (layout ``table``)."""
    return sql.SQL("s.code") if code.store else sql.Identifier(code.name)


def code_distance(ctx: Context, code: Any) -> tuple[sql.Composable, list[Any]]:
    """The SQL distance of ``code``'s column to the query, and its parameters."""
    codes = code_ref(code)
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
        # "+ 0": an ordering a bit_hamming_ops index on the store cannot serve, so that
        # PostgreSQL ranks every code (an index walk stops at hnsw.ef_search rows: 40)
        return sql.SQL("(({} <~> %s::{}) + 0)").format(codes, sql.SQL(code.code_type)), [text]
    fn = sql.Identifier("vecext", f"{code.codec}_distance")
    return sql.SQL("{}({}, %s::vector)").format(fn, codes), [ctx.qtext]


def candidates(ctx: Context, stage: Stage) -> Candidates:
    """The ``dmax`` best rows by code distance among the rows passing the filter (and in
    ``lists``, when given), best first, with the exact distance of the first ``depth``
    of them (read for those rows only); with lists also each row's list id and the rows
    the candidate stage read. One statement."""
    code, depth, dmax, lists = stage.code, stage.depth, stage.dmax, stage.lists
    dist, dparams = code_distance(ctx, code)
    in_store = bool(code.store and code.lists_in_store)
    probe: list[Any] = []
    if lists is not None:
        lcol = sql.Identifier(str(code.list_column))
        # the table's list column (lists made before catalog 0.5.0, layout 'table')
        lsel, lwhere = (
            (sql.SQL(""), sql.SQL(""))
            if in_store
            else (
                sql.SQL(", {} AS l").format(lcol),
                sql.SQL("{} = ANY(%s::int[]) AND ").format(lcol),
            )
        )
        head = sql.SQL("SELECT id, cd, l, count(*) OVER () AS n FROM ({}) r")
        out = sql.SQL("o.l, o.n")
        probe = ["{" + ",".join(map(str, np.asarray(lists).tolist())) + "}"]
        # small probes run on one process: starting parallel workers costs more than they save
        settings = {"max_parallel_workers_per_gather": "0"}
    else:
        lsel, lwhere = sql.SQL(""), sql.SQL("")
        head = sql.SQL("SELECT id, cd FROM ({}) r")
        out = sql.SQL("NULL, NULL")
        settings = _serial(ctx)
    mirrored = store_where(ctx, code) if lists is None or in_store else None
    if code.store and (lists is None or in_store) and (mirrored or ctx.req.pred is None):
        # the narrow store alone (its list index finds probed rows): no filter, or the
        # filter on the store's mirrored columns (catalog 0.6.0), no join
        store = sql.Identifier("vecext", code.store)
        cond, sparams = (mirrored[0], mirrored[1]) if mirrored else (sql.SQL("TRUE"), [])
        lin = sql.SQL("s.{} = ANY(%s::int[]) AND ").format(lcol) if lists is not None else None
        inner = sql.SQL(
            "SELECT s.pk AS id, {dist} AS cd{l} FROM {store} s WHERE {lin}({cond}){budget}"
        ).format(
            dist=dist, l=sql.SQL(", s.{} AS l").format(lcol) if lists is not None else sql.SQL(""),
            store=store, lin=lin if lin is not None else sql.SQL(""), cond=cond,
            budget=ctx.budget(),
        )  # fmt: skip
        inner_params = [*probe, *sparams]
    elif code.store and in_store and lists is not None:
        # the lists in the store (catalog 0.5.0), the filter on the user's table, joined
        # by primary key
        inner = sql.SQL(
            "SELECT s.pk AS id, {dist} AS cd, s.{l} AS l FROM {store} s JOIN (SELECT {id} "
            "AS vx_id FROM {t} WHERE {where}) t ON t.vx_id = s.pk "
            "WHERE s.{l} = ANY(%s::int[]){budget}"
        ).format(
            dist=dist, l=lcol, store=sql.Identifier("vecext", code.store), id=ctx.id, t=ctx.t,
            where=ctx.where, budget=ctx.budget(),
        )  # fmt: skip
        inner_params = [*ctx.where_params, *probe]
    elif code.store:
        # the filter (and lists) on the user's table, in a subquery of its own so that its
        # column names cannot meet the store's
        inner = sql.SQL(
            "SELECT s.pk AS id, {dist} AS cd{lout} FROM {store} s JOIN (SELECT {id} AS vx_id"
            "{lsel} FROM {t} WHERE {lwhere}{where}) t ON t.vx_id = s.pk{budget}"
        ).format(
            dist=dist, lout=sql.SQL(", t.l") if lists is not None else sql.SQL(""),
            store=sql.Identifier("vecext", code.store), id=ctx.id, lsel=lsel, t=ctx.t,
            lwhere=lwhere, where=ctx.where, budget=ctx.budget(),
        )  # fmt: skip
        inner_params = [*probe, *ctx.where_params]
    else:
        inner_params = [*probe, *ctx.where_params]
        inner = sql.SQL(
            "SELECT {id} AS id, {dist} AS cd{lsel} FROM {t} "
            "WHERE {lwhere}{codes} IS NOT NULL AND {where}{budget}"
        ).format(
            id=ctx.id, dist=dist, lsel=lsel, t=ctx.t, lwhere=lwhere, codes=code_ref(code),
            where=ctx.where, budget=ctx.budget(),
        )  # fmt: skip
    query = sql.SQL(
        "WITH c AS MATERIALIZED ({head} ORDER BY cd LIMIT {dmax}), "
        "o AS (SELECT c.*, row_number() OVER (ORDER BY cd, id) AS rn FROM c) "
        "SELECT o.id, {out}, CASE WHEN o.rn <= {depth} THEN "
        "(SELECT t.{col} {op} {q} FROM {t} t WHERE t.{id} = o.id) END FROM o ORDER BY o.rn"
    ).format(
        head=head.format(inner), dmax=sql.Literal(int(dmax)), out=out, depth=sql.Literal(depth),
        col=ctx.col, op=ctx.op, q=ctx.qcast, t=ctx.t, id=ctx.id,
    )  # fmt: skip
    rows = ctx.fetch(settings, query, [*dparams, *inner_params, ctx.qtext])
    ids = [r[0] for r in rows]
    lids = np.array([r[1] if r[1] is not None else -1 for r in rows], dtype=np.int64)
    n = int(rows[0][2]) if rows and rows[0][2] is not None else (0 if lists is not None else None)
    dist_out = np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=np.float64)
    return Candidates(ids, dist_out, lids, n, min(depth, len(ids)))


def exact_of(ctx: Context, ids: list[Any]) -> np.ndarray:
    """Exact distances of the rows ``ids`` (primary key lookups), aligned with ``ids``."""
    query = sql.SQL("SELECT {id}, {col} {op} {q} FROM {t} WHERE {id} = ANY(%s)").format(
        id=ctx.id, col=ctx.col, op=ctx.op, q=ctx.qcast, t=ctx.t
    )
    got = dict(ctx.fetch({}, query, [ctx.qtext, list(ids)]))
    return np.array([got[i] for i in ids], dtype=np.float64)


def probe_order(ctx: Context, code: Any) -> np.ndarray:
    """Every IVF list of ``code``, nearest centroid to the query first (FAISS)."""
    coarse = cached_codec(ctx.conn, str(code.ivf_codec), str(code.ivf_fingerprint))
    return coarse.probe(ctx.req.q[None, :], int(code.nlist))[0]  # type: ignore[attr-defined, no-any-return]


def list_counts(ctx: Context, code: Any) -> dict[int, int]:
    """Rows passing the filter in each IVF list of ``code`` (one aggregate; lists in a
    code store are joined to the rows passing the filter by primary key)."""
    lcol = sql.Identifier(str(code.list_column))
    mirrored = store_where(ctx, code) if code.store and code.lists_in_store else None
    if mirrored is not None:  # the filter on the store's mirrored columns: no join
        query = sql.SQL("SELECT s.{}, count(*) FROM {} s WHERE {} GROUP BY 1").format(
            lcol, sql.Identifier("vecext", code.store), mirrored[0]
        )
        return {int(r[0]): int(r[1]) for r in ctx.fetch({}, query, mirrored[1]) if r[0] is not None}
    if code.store and code.lists_in_store:
        query = sql.SQL(
            "SELECT s.{l}, count(*) FROM {store} s JOIN (SELECT {id} AS vx_id FROM {t} "
            "WHERE {where}) t ON t.vx_id = s.pk GROUP BY 1"
        ).format(
            l=lcol, store=sql.Identifier("vecext", code.store), id=ctx.id, t=ctx.t,
            where=ctx.where,
        )  # fmt: skip
    else:
        query = sql.SQL("SELECT {}, count(*) FROM {} WHERE {} GROUP BY 1").format(
            lcol, ctx.t, ctx.where
        )
    rows = ctx.fetch({}, query, ctx.where_params)
    return {int(r[0]): int(r[1]) for r in rows if r[0] is not None}


# ---------------------------------------------------------------------------
# native HNSW


def hnsw(ctx: Context, ef: int) -> tuple[np.ndarray, np.ndarray]:
    """Walk the plan's index with ``ef`` candidates (rerank them exactly when the index
    holds halfvec or bits)."""
    ix: VectorIndex = ctx.info.indexes[str(ctx.info.caps.hnsw_index)]
    if isinstance(ix, CodeIndex):  # HNSW over a code store: walk, re-score, rerank
        return code_index.walk(ctx, ix, ef, ctx.fetch)
    k = ctx.req.k
    iterative = (ctx.plan.params if ctx.plan else {}).get("iterative_scan") or "off"
    settings = {"hnsw.ef_search": str(ef), "hnsw.iterative_scan": str(iterative)}
    if ctx.req.max_scan_rows is not None:
        settings["hnsw.max_scan_tuples"] = str(int(ctx.req.max_scan_rows))
    # the index is the point of this strategy: keep PostgreSQL from sorting a scan
    # instead (which would be exact, and slow on a big table)
    settings["enable_sort"] = "off"
    base = ctx.info.column_type

    def build() -> sql.Composable:
        if ix.storage == base:
            return sql.SQL(
                "SELECT {id}, {col} {op} {q} AS d FROM {t} WHERE {where} ORDER BY d LIMIT {k}"
            ).format(
                id=ctx.id, col=ctx.col, op=ctx.op, q=ctx.qcast, t=ctx.t, where=ctx.where,
                k=sql.Literal(k),
            )  # fmt: skip
        d = sql.Literal(ix.dim)
        if ix.storage == "halfvec":
            order = sql.SQL("({}::halfvec({})) {} %s::halfvec({})").format(ctx.col, d, ctx.op, d)
        else:
            order = sql.SQL(
                "(binary_quantize({})::bit({})) <~> binary_quantize(%s::vector)"
            ).format(ctx.col, d)
        # candidates from the index, then their exact distances
        return sql.SQL(
            "SELECT id, d FROM (SELECT {id} AS id, {col} {op} {q} AS d FROM {t} WHERE {where} "
            "ORDER BY {order} LIMIT {cand}) c ORDER BY d, id LIMIT {k}"
        ).format(
            id=ctx.id, col=ctx.col, op=ctx.op, q=ctx.qcast, t=ctx.t, where=ctx.where,
            order=order, cand=sql.Literal(ef), k=sql.Literal(k),
        )  # fmt: skip

    query = cached_sql(ctx.conn, ctx.key("hnsw", ix.storage, ix.dim, ef, k), build)
    if ix.storage == base:
        params = [ctx.qtext, *ctx.where_params]
    else:
        params = [ctx.qtext, *ctx.where_params, ctx.qtext]
    return _result(ctx.fetch(settings, query, params))
