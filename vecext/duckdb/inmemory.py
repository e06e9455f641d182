"""Exact distances from the vector cache (:mod:`vecext.duckdb.vectorset`) for a search.

Two uses: the FAISS candidate stage reranks its candidates from the cache
(:func:`vecext.duckdb.scan._exact_by_key`), and the exact strategy scans the cached vectors
of the rows passing the filter (:func:`exact`). Rows written since the cache loaded are
read from the table in the same search, with the filter, so they are never missed.
A search with a scan budget (``max_scan_rows``) keeps DuckDB's own exact scan: its
"first N rows" are the table's scan order, which the statement defines.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vecext.duckdb import vectorset
from vecext.duckdb.filters import compile_filter
from vecext.search.filters import And, Within


def _served(ctx: Any) -> vectorset.Table | None:
    return None if ctx.req.max_scan_rows is not None else vectorset.served(ctx.info)


def usable(ctx: Any) -> vectorset.VectorSet | None:
    """The checked vector set of the search's table, or ``None`` when the table has no
    integer primary key, does not fit the cache, or the search has a scan budget.
    Checked once per search (kept in the search's memo, which the candidate stage and
    the deepening reranks share)."""
    if "vectors" not in ctx.memo:
        t = _served(ctx)
        ctx.memo["vectors"] = (None, -1) if t is None else vectorset.vector_set(ctx.con, t)
    return ctx.memo["vectors"][0]  # type: ignore[no-any-return]


def written_since(ctx: Any) -> int:
    """Rows above the vector cache's mark as this search's check counted them (-1:
    unknown)."""
    usable(ctx)
    return int(ctx.memo["vectors"][1])


def _written_since(ctx: Any, vs: vectorset.VectorSet) -> list[tuple[Any, ...]]:
    """``(key, exact distance)`` of the rows above the cache's mark that pass the filter."""
    sql = (
        f"SELECT {ctx.id}::BIGINT, {ctx.dist()} FROM {ctx.t} "
        f"WHERE rowid > {int(vs.mark)} AND {ctx.where}"
    )
    return ctx.con.execute(sql, [ctx.q, *ctx.where_params]).fetchall()  # type: ignore[no-any-return]


#: float32 slack when a distance bound is applied to the float32 pass (float64 decides)
_SLACK = 1e-4


def _split(pred: Any, column: str) -> tuple[list[Within], Any]:
    """The distance bounds on the searched column (a threshold search pushes one into the
    filter) and the rest of the filter, which DuckDB evaluates."""
    parts = list(pred.parts) if isinstance(pred, And) else [pred]
    bounds = [p for p in parts if isinstance(p, Within) and p.column.lower() == column.lower()]
    rest = [p for p in parts if not any(p is b for b in bounds)]
    return bounds, (None if not rest else rest[0] if len(rest) == 1 else And(tuple(rest)))


def exact(ctx: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(ids, float32 distances)`` of the ``k`` nearest rows passing the filter (see
    :func:`ranked`); ``None`` when the vector cache does not serve the table."""
    got = ranked(ctx, int(ctx.req.k))
    if got is None:
        return None
    keys, dist, _ = got
    return keys, dist.astype(np.float32)


def ranked(ctx: Any, k: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """``(ids, float64 distances, rows ranked)`` of the ``k`` nearest rows passing the
    filter, by (distance, id): cached rows scored in numpy, newer rows in SQL; ``None``
    when the vector cache does not serve the table. Distance bounds on the column (threshold
    searches) are applied in numpy too; DuckDB evaluates the rest of the filter,
    returning the rowids that pass. When this search already read them (the planner's
    count), they are current, and the cache needs no count of its own."""
    t = _served(ctx)
    if t is None:
        return None
    bounds: list[Within] = []
    rest = None
    if ctx.req.pred is not None:
        bounds, rest = _split(ctx.req.pred, ctx.info.column)
    got = None
    if rest is not None:
        body, params = compile_filter(rest)
        got = ctx.matching_rows(body, params)
    if got is not None:
        vs, _ = vectorset.vector_set(ctx.con, t, check=False)
        rowids = np.asarray(got["rowid"], np.int64)
        newer = bool((rowids > vs.mark).any())
    else:
        checked = usable(ctx)
        assert checked is not None
        vs = checked
        newer = written_since(ctx) != 0
        if rest is not None:
            got = ctx.con.execute(
                f"SELECT rowid FROM {ctx.t} WHERE rowid <= {int(vs.mark)} AND ({body})",
                params,
            ).fetchnumpy()
            rowids = np.asarray(got["rowid"], np.int64)
    pos = None if rest is None else vs.positions(rowids)
    for b in bounds:
        cand = np.flatnonzero(vs.alive) if pos is None else pos
        near = vectorset.fast_distances(vs, cand, np.asarray(b.q, np.float32), b.metric)
        pos = cand[near <= b.bound + _SLACK]
    chosen, d = vectorset.nearest(vs, pos, ctx.req.q, ctx.req.metric, k)
    for b in bounds:  # decided in float64
        ok = vectorset.distances(vs.X[chosen], np.asarray(b.q), b.metric) <= b.bound
        chosen, d = chosen[ok], d[ok]
    keys = vs.keys[chosen].tolist()
    dist = d.tolist()
    if newer:
        for key, x in _written_since(ctx, vs):
            keys.append(int(key))
            dist.append(np.nan if x is None else float(x))
    order = sorted(range(len(keys)), key=lambda i: (dist[i], keys[i]))[:k]
    if ctx.plan is not None:
        ctx.plan.steps.append(
            f"exact distances of {vs.n_alive if pos is None else len(pos)} rows from the "
            "vector cache (vecext.duckdb.vectorset) and of the rows written since it loaded"
        )
    return (
        np.array([keys[i] for i in order], dtype=np.int64),
        np.array([dist[i] for i in order], dtype=np.float64),
        vs.n_alive if pos is None else len(pos),
    )
