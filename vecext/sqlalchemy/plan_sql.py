"""Render a search plan as SQLAlchemy: the statements of ``vecext.postgres.strategies``
as a ``Select`` over the user's table (see :mod:`vecext.sqlalchemy.query`). The plan
comes from the search engine with its floors applied; this module only writes SQL."""

from __future__ import annotations

import copy
import functools
from typing import Any, Protocol

import numpy as np
import sqlalchemy as sa

from vecext.errors import VecextError
from vecext.search.planner import Plan
from vecext.sqlalchemy.types import CodeTypeError, code_type, query_vector


class VectorQuery(Protocol):
    """What rendering reads of a :class:`vecext.sqlalchemy.query.VectorQuery` (named
    structurally, so that the query and its renderer do not import each other)."""

    _adapter: Any
    _col: Any
    _criteria: Any
    _entity: Any
    _k: Any
    _metric: str
    _min_relevance: Any
    _nprobes: Any
    _pg: Any
    _pk: Any
    _q: Any
    _table: Any


DISTANCE_OPS = {"l2": "<->", "ip": "<#>", "cosine": "<=>"}


class VectorQueryError(VecextError, ValueError):
    """A vector query that cannot be planned or rendered (names what is missing)."""


def distance(vq: VectorQuery, col: Any) -> sa.ColumnElement[float]:
    return col.op(DISTANCE_OPS[vq._metric], return_type=sa.Float)(query_vector(vq._q))


def distance_bound(vq: VectorQuery) -> float | None:
    if vq._min_relevance is None:
        return None
    if vq._adapter is None:
        raise VectorQueryError(
            f"min_relevance({vq._min_relevance}) needs a calibrated distance bound, and "
            "this query has no relevance adapter: pass adapter= (a fitted "
            "vecext.relevance method) to min_relevance()"
        )
    if vq._metric != "cosine":
        raise VectorQueryError("min_relevance works on cosine similarity: use .metric('cosine')")
    adapter = copy.copy(vq._adapter)
    adapter.set_threshold(vq._min_relevance)
    try:
        s_min = float(np.asarray(adapter.query_params(vq._q[None, :])["s_min"])[0])
    except (ValueError, TypeError, KeyError) as exc:
        raise VectorQueryError(
            f"relevance adapter {type(adapter).__name__} gives no distance bound for a query "
            f"alone: {exc}"
        ) from exc
    return 1.0 - s_min


@functools.lru_cache(maxsize=256)
def _store_table(name: str) -> sa.TableClause:
    return sa.table(name, sa.column("pk"), sa.column("code"), schema="vecext")


def code_store(code: Any) -> sa.TableClause:
    """The code store of a compressed column as a lightweight table ``(pk, code)`` (one
    object per store, so that a statement names it once)."""
    return _store_table(str(code.store))


def code_distance(vq: VectorQuery, info: Any) -> tuple[Any, sa.ColumnElement[Any]]:
    """(code column, its distance to the query), as ``vecext.postgres.strategies``
    computes it: a PQ lookup table from the Python codec, the encoded query's bits
    for Hamming, else ``vecext.<codec>_distance(codes, q)``."""
    from vecext.postgres.ivf import cached_codec

    code = info.codes[info.caps.code_column]
    codec = cached_codec(vq._pg(), code.codec, code.fingerprint)
    ctype = code_type(
        code.kind, codec.d_inner, codec.code_size, code.codec, bits=getattr(codec, "bits", 2)
    )
    if code.store:  # the column's code store (catalog 0.4.0): vecext."store_<id>" (pk, code)
        col = code_store(code).c.code
    else:
        col = vq._table.c[code.name] if code.name in vq._table.c else sa.column(code.name)
    codes = sa.type_coerce(col, ctype)
    try:
        if code.kind == "pq":
            lut = codec.distance_table(vq._q[None, :])[0].ravel()
            return codes, codes.pq_distance(lut)  # type: ignore[attr-defined]
        if code.kind == "binary":
            bits = codec.encode(vq._q[None, :])[0]
            # + 0: not an ordering an HNSW index over the codes can serve (the scan ranks
            # every code; a walk stops at hnsw.ef_search rows), as strategies does
            return codes, codes.hamming_distance(bits) + 0  # type: ignore[attr-defined]
        return codes, codes.distance_to(vq._q)  # type: ignore[attr-defined]
    except CodeTypeError as exc:
        raise VectorQueryError(str(exc)) from exc


def render(vq: VectorQuery, info: Any, p: Plan) -> sa.Select[Any]:
    """The plan as a Select, statement for statement like ``strategies``."""
    bound = distance_bound(vq)
    base = vq._entity if vq._entity is not None else vq._table
    where = [vq._col.isnot(None), *vq._criteria(info)]
    dist = distance(vq, vq._col)
    if p.strategy == "compressed":
        codes, code_dist = code_distance(vq, info)
        depth = int(p.params.get("rerank", 10 * vq._k))
        code = info.codes[info.caps.code_column]
        if code.store:
            store = code_store(code)
            cand_sel = sa.select(store.c.pk.label("vx_id"), code_dist.label("vx_code_distance"))
            cand_sel = cand_sel.select_from(store.join(vq._table, vq._pk == store.c.pk))
            cand_sel = cand_sel.where(*where)
        else:
            cand_sel = sa.select(vq._pk.label("vx_id"), code_dist.label("vx_code_distance"))
            cand_sel = cand_sel.where(codes.isnot(None), *where)
        cand = (
            cand_sel.order_by(sa.literal_column("vx_code_distance"))
            .limit(depth or vq._k)
            .cte("vx_candidates")
        )
        if not depth:  # rerank(False): the codes' estimated distances
            dist = cand.c.vx_code_distance
        stmt = (
            sa.select(base, dist.label("distance"))
            .join(cand, cand.c.vx_id == vq._pk)
            .order_by(dist, vq._pk)
        )
    elif p.strategy == "hnsw":
        ix = info.indexes[info.caps.hnsw_index]
        if is_code_index(ix):
            stmt = code_index_walk(vq, info, ix, p, base, dist)
        elif ix.storage == info.column_type:
            # ORDER BY the indexed distance alone, so pgvector's index orders the scan
            stmt = sa.select(base, dist.label("distance")).where(*where).order_by(dist)
        else:
            from pgvector.sqlalchemy import BIT, HALFVEC, VECTOR

            if ix.storage == "halfvec":
                t = HALFVEC(ix.dim)
                order = sa.cast(vq._col, t).op(DISTANCE_OPS[vq._metric])(
                    sa.cast(sa.bindparam(None, vq._q, type_=t), t)
                )
            else:
                q = sa.cast(sa.bindparam(None, vq._q, type_=VECTOR(ix.dim)), VECTOR(ix.dim))
                order = sa.cast(sa.func.binary_quantize(vq._col), BIT(ix.dim)).op("<~>")(
                    sa.func.binary_quantize(q)
                )
            ef = int(p.params["ef_search"])  # the engine's, floors applied
            cand = (
                sa.select(vq._pk.label("vx_id"))
                .where(*where)
                .order_by(order)
                .limit(ef)
                .subquery("vx_candidates")
            )
            stmt = (
                sa.select(base, dist.label("distance"))
                .join(cand, cand.c.vx_id == vq._pk)
                .order_by(dist, vq._pk)
            )
    else:
        # "+ 0" keeps an HNSW index on the column from ordering (and approximating)
        # the exact scan, as search() does with enable_indexscan = off
        stmt = sa.select(base, dist.label("distance")).where(*where).order_by(dist + 0, vq._pk)
    if bound is not None:
        stmt = stmt.where(dist <= bound)
    return stmt.limit(vq._k)


def is_code_index(ix: Any) -> bool:
    """An HNSW index over a compressed column's code store (not over the table)."""
    from vecext.postgres.code_index import CodeIndex

    return isinstance(ix, CodeIndex)


def code_index_walk(
    vq: VectorQuery, info: Any, ix: Any, p: Plan, base: Any, dist: Any
) -> sa.Select[Any]:
    """The walk of :func:`vecext.postgres.code_index.walk` for one-level codes: ``ef``
    candidates from the store's index (ordered by the encoded query; the table joined by
    primary key for the filter), the best ``depth`` of them reranked exactly."""
    from pgvector.sqlalchemy import BIT, HALFVEC

    from vecext.postgres import code_index as ci
    from vecext.postgres.ivf import cached_codec

    if ix.kind == "rbq":
        raise VectorQueryError(
            f"the plan walks {ix.name}, an HNSW index over rbq codes, whose candidates are "
            "re-scored in Python between two statements: run vecext.search.search(), or "
            "choose another plan (.strategy('compressed') or .using(...))"
        )
    code = info.codes[ix.code_column]
    codec = cached_codec(vq._pg(), code.codec, code.fingerprint)
    k = vq._k
    ef = min(max(int(p.params["ef_search"]), k), ci.MAX_EF)
    asked = p.params.get("rerank")
    depth = min(max(int(asked) if asked else ef, k), ef)
    p.params["rerank"] = depth
    qtype = BIT(ix.dim) if ix.storage == "bit" else HALFVEC(ix.dim)
    qarg = sa.cast(sa.bindparam(None, ci.query_arg(codec, ix, vq._q), type_=sa.Text), qtype)
    store = code_store(code)
    order = store.c.code.op(ci.OPERATORS[ix.metric], return_type=sa.Float)(qarg)
    source: Any = store
    criteria = vq._criteria(info)
    if criteria:  # the filter on the user's table, joined by primary key
        rows = sa.select(vq._pk.label("vx_id")).where(*criteria).subquery("vx_rows")
        source = store.join(rows, rows.c.vx_id == store.c.pk)
    walk = (
        sa.select(store.c.pk.label("vx_id"), order.label("vx_code_distance"))
        .select_from(source)
        .order_by(sa.literal_column("vx_code_distance"))
        .limit(ef)
        .subquery("vx_walk")
    )
    cand = (
        sa.select(walk.c.vx_id)
        .order_by(walk.c.vx_code_distance)
        .limit(depth)
        .subquery("vx_candidates")
    )
    return (
        sa.select(base, dist.label("distance"))
        .join(cand, cand.c.vx_id == vq._pk)
        .order_by(dist, vq._pk)
    )


def settings(vq: VectorQuery, p: Plan, info: Any = None) -> list[tuple[str, str]]:
    """The plan's search settings, ``(name, value)``, issued as ``SET LOCAL``."""
    out = []
    if p.strategy == "hnsw":
        out.append(("hnsw.ef_search", str(int(p.params["ef_search"]))))
        iterative = p.params.get("iterative_scan") or "off"
        if iterative not in ("off", "strict_order", "relaxed_order"):
            raise VectorQueryError(f"unknown hnsw.iterative_scan mode {iterative!r}")
        out.append(("hnsw.iterative_scan", iterative))
        if info is not None and is_code_index(info.indexes[info.caps.hnsw_index]):
            # as search() runs a walk over codes: a small store would otherwise be sorted
            # (exactly, by the code distance) instead of walked
            out.append(("enable_sort", "off"))
    if vq._nprobes is not None:
        out.append(("ivfflat.probes", str(int(vq._nprobes))))
    return out


def settings_sql(vq: VectorQuery, p: Plan, info: Any = None) -> list[str]:
    """:func:`settings` as statements (integers and fixed keywords, validated there)."""
    return [f"SET LOCAL {name} = {value}" for name, value in settings(vq, p, info)]
