"""Timing and scoring of bench methods: one method after another, or interleaved.

Per method: ``build()`` (timed), one warm-up pass over all queries (not timed), then the
timed pass (see :mod:`vecext.tools.bench.runner` for what each result field means and
for ``--interleave``). Each result row is scored against the exact filtered top-k.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from vecext import evaluation
from vecext.search.filters import describe
from vecext.tools.bench.context import BenchContext
from vecext.tools.bench.registry import BenchError, BenchMethod
from vecext.tools.bench.report import RESULT_KEYS


def prepare(ctx: BenchContext, name: str, method: BenchMethod) -> tuple[float, float]:
    """Build and warm ``method``: (build seconds, seconds of the first search)."""
    xq, nq = ctx.dataset.xq, ctx.dataset.xq.shape[0]
    start = time.perf_counter()
    reported = method.build()
    build_s = (time.perf_counter() - start) if reported is None else float(reported)
    unknown = sorted(set(ctx.options) - ctx.used_options)
    if unknown:
        raise BenchError(f"method {name} takes no option {', '.join(unknown)}")
    with ctx.task(f"{name}: warm-up", total=nq) as adv:
        first_s = float("nan")
        for i in range(nq):
            t0 = time.perf_counter()
            method.search(xq[i])
            if i == 0:  # the first search after the build: caches cold
                first_s = time.perf_counter() - t0
            adv()
    return build_s, first_s


def run_method(
    ctx: BenchContext,
    name: str,
    method: BenchMethod,
    truth: np.ndarray,
    qrels: list[np.ndarray],
    shared: dict[str, Any],
) -> tuple[dict[str, Any], list[np.ndarray]]:
    xq, nq = ctx.dataset.xq, ctx.dataset.xq.shape[0]
    build_s, first_s = prepare(ctx, name, method)
    ids: list[np.ndarray] = []
    lat = np.empty(nq, dtype=np.float64)
    with ctx.task(f"{name}: timed pass", total=nq) as adv:
        wall = time.perf_counter()
        for i in range(nq):
            t0 = time.perf_counter()
            got = method.search(xq[i])
            lat[i] = time.perf_counter() - t0
            ids.append(got)
            adv()
        wall = time.perf_counter() - wall
    return _score(ctx, name, method, truth, qrels, shared, ids, lat, wall, build_s, first_s), ids


#: seed of the per-query method order of ``--interleave``
INTERLEAVE_SEED = 0


def run_interleaved(
    ctx: BenchContext,
    factories: list[tuple[str, Any, dict[str, str]]],
    truth: np.ndarray,
    qrels: list[np.ndarray],
    shared: dict[str, Any],
) -> list[tuple[dict[str, Any], list[np.ndarray]]]:
    """Every method built and warmed, then one timed pass over the queries that runs all
    methods on each query, in a seeded shuffled order (see the module docstring)."""
    xq, nq = ctx.dataset.xq, ctx.dataset.xq.shape[0]
    ready: list[tuple[str, BenchContext, BenchMethod, float, float]] = []
    try:
        for name, factory, opts in factories:
            mctx = dataclasses.replace(ctx, options=opts, used_options=set())
            method = factory(mctx)
            ready.append((name, mctx, method, 0.0, 0.0))
            build_s, first_s = prepare(mctx, name, method)
            ready[-1] = (name, mctx, method, build_s, first_s)
        m = len(ready)
        ids: list[list[np.ndarray]] = [[] for _ in range(m)]
        lat = np.empty((m, nq), dtype=np.float64)
        rng = np.random.default_rng(INTERLEAVE_SEED)
        with ctx.task(f"{m} methods interleaved: timed pass", total=nq) as adv:
            for i in range(nq):
                for j in rng.permutation(m):
                    t0 = time.perf_counter()
                    got = ready[j][2].search(xq[i])
                    lat[j, i] = time.perf_counter() - t0
                    ids[j].append(got)
                adv()
        return [
            (
                _score(mctx, name, method, truth, qrels, shared, ids[j], lat[j],
                       float(lat[j].sum()), build_s, first_s),
                ids[j],
            )
            for j, (name, mctx, method, build_s, first_s) in enumerate(ready)
        ]  # fmt: skip
    finally:
        for _, _, method, _, _ in ready:
            method.close()


def _score(
    ctx: BenchContext,
    name: str,
    method: BenchMethod,
    truth: np.ndarray,
    qrels: list[np.ndarray],
    shared: dict[str, Any],
    ids: list[np.ndarray],
    lat: np.ndarray,
    wall: float,
    build_s: float,
    first_s: float,
) -> dict[str, Any]:
    """The result row of one method's timed pass."""
    k, nq = ctx.k, len(ids)
    _check(name, ids, ctx)
    I = np.full((nq, k), -1, dtype=np.int64)
    for i, got in enumerate(ids):
        I[i, : got.size] = got
    counts = np.fromiter((g.size for g in ids), dtype=np.int64, count=nq)
    expected = min(k, ctx.n_matching)
    row = {
        "backend": ctx.backend,
        "method": name,
        "params": {**method.params, **shared},
        "k": k,
        "filter": describe(ctx.filter) if ctx.filter is not None else None,
        "selectivity": ctx.n_matching / ctx.n,
        "recall_at_k": evaluation.recall_at_k(I, truth, k),
        "ndcg_at_10": evaluation.ndcg_at_k(I, qrels, 10),
        "min_rows_returned": int(counts.min()) if nq else 0,
        "complete_fraction": float(np.mean(counts == expected)) if nq else float("nan"),
        "p50_ms": float(np.percentile(lat, 50) * 1e3),
        "p95_ms": float(np.percentile(lat, 95) * 1e3),
        "first_ms": first_s * 1e3,
        "qps": nq / wall if wall > 0 else float("nan"),
        "bytes_per_vector": method.bytes_per_vector,
        "storage_bytes": int(method.storage_bytes()),
        "build_s": ctx.load_s + build_s,
        "disk_bytes_per_row": _per_row(method, ctx.n),
    }
    assert tuple(row) == RESULT_KEYS
    return row


def _check(name: str, ids: list[np.ndarray], ctx: BenchContext) -> None:
    """A method must return at most k valid ids of rows that match the filter."""
    for i, got in enumerate(ids):
        if got.ndim != 1 or got.size > ctx.k:
            raise BenchError(
                f"{name} returned {got.shape} ids for query {i}; expected at most {ctx.k}"
            )
        if got.size and (got.min() < 0 or got.max() >= ctx.n):
            raise BenchError(f"{name} returned ids outside 0..{ctx.n - 1} for query {i}")
        if got.size and not ctx.filter_mask[got].all():
            raise BenchError(f"{name} returned rows that do not match the filter for query {i}")


def _per_row(method: BenchMethod, n: int) -> float | None:
    """Bytes on disk per row of what the method searches (table, code stores, indexes)."""
    disk = getattr(method, "disk_bytes", None)
    total = disk() if disk is not None else None
    return round(total / n, 1) if total is not None and n else None
