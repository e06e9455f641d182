"""Threshold search: the rows whose calibrated relevance reaches ``min_relevance``.

``search(conn, table, column, q, min_relevance=T, relevance=adapter)`` needs no k.
A relevance method's score is monotone in the cosine similarity ``s`` for a fixed
query, so ``score >= T`` is ``s >= s_min(q)`` and the threshold becomes a cosine
distance bound ``column <=> q <= 1 - s_min(q)``:

* **exact** plans push the bound into the scan's ``WHERE`` clause (next to the
  filter) and return every row that passes, nearest first, at most ``max_results``;
* **approximate** plans (compressed codes, IVF lists, HNSW) fetch candidates,
  rerank them exactly and apply the bound at the rerank stage; while every
  reranked candidate passes, the search asks for 4x more (up to ``max_results``).
  Rows that pass but that the index or the codes never proposed are missed, so
  such results say ``complete=False`` (``extra["exhaustive"]`` is false) and why.
  An approximate plan that returns fewer rows than match the filter, all passing,
  falls back to the exact scan, as a k search does.

Adapters with distribution features (``features=mean10`` ...) need the query's top
candidates first: the search fetches the nearest :data:`FEATURE_DEPTH` rows (with
the same filter and tenant), computes the features from their similarities, then
bounds the search as above.

The returned rows are decided in Python from the exact distances the database
returns: ``score(q, 1 - distance) >= T`` with the adapter's own arithmetic; the
pushed-down bound is widened by :data:`BOUND_SLACK` so that float32 rounding in the
database cannot drop a row that passes. Each row's score is in ``extra["scores"]``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.special import expit

from vecext.relevance.base import RelevanceError, RelevanceMethod
from vecext.search import engine
from vecext.search.contracts import Backend, SearchError, TableInfo
from vecext.search.filters import Predicate, Within, combine
from vecext.search.planner import Plan, plan
from vecext.search.result import SearchResult
from vecext.search.validate import MAX_K, check_k

#: Rows a threshold search returns at most when neither ``max_results`` nor ``k`` is given.
DEFAULT_MAX_RESULTS = 1000
#: Candidates whose similarities give the distribution features (they use the top 10).
FEATURE_DEPTH = 10
#: Rows asked of an approximate plan in its first round.
FIRST_ROUND = 32
#: Widening of the pushed-down distance bound (the database computes in float32).
BOUND_SLACK = 1e-5


@dataclass
class Threshold:
    """A threshold request: the method (a private copy whose threshold is ``min_relevance``),
    the cap on returned rows, and the adapter's name for reports."""

    method: RelevanceMethod
    min_relevance: float
    max_results: int
    name: str


def check_request(
    k: Any, min_relevance: Any, relevance: Any, max_results: Any, metric: str, max_scan_rows: Any
) -> int:
    """Validate the threshold arguments of ``search``; returns the row cap."""
    if min_relevance is None:
        what = "relevance=" if relevance is not None else "max_results="
        raise SearchError(
            f"{what} belongs to a threshold search: pass min_relevance=<threshold> "
            "(and relevance=<adapter>), or use k for the k nearest rows"
        )
    if relevance is None:
        raise SearchError(
            "min_relevance= needs relevance=: a relevance adapter's catalog name or a fitted "
            "vecext.relevance method"
        )
    if isinstance(min_relevance, bool) or not isinstance(min_relevance, (int, float, np.number)):
        raise SearchError(f"min_relevance must be a number, got {min_relevance!r}")
    if metric != "cosine":
        raise SearchError(
            f"min_relevance works on cosine similarity, not metric {metric!r}: use metric='cosine'"
        )
    if max_scan_rows is not None:
        raise SearchError(
            "max_scan_rows cannot bound a threshold search (it would drop passing rows at "
            "random); cap the rows returned with max_results instead"
        )
    if k is not None and max_results is not None and k != max_results:
        raise SearchError(
            f"k={k} and max_results={max_results} both cap a threshold search: pass one"
        )
    cap = max_results if max_results is not None else k
    if cap is None:
        return DEFAULT_MAX_RESULTS
    try:
        return check_k(cap)
    except SearchError:
        raise SearchError(f"max_results must be an integer in 1..{MAX_K}, got {cap!r}") from None


def resolve(
    backend: Backend, relevance: Any, min_relevance: float, dim: int, where: str
) -> tuple[RelevanceMethod, str]:
    """The method to apply (loaded from the catalog when ``relevance`` is a name),
    as a private copy whose threshold is ``min_relevance``, and its name."""
    if isinstance(relevance, str):
        method = backend.load_adapter(relevance)
        name = relevance
    elif isinstance(relevance, RelevanceMethod):
        method = relevance
        name = relevance.name
    else:
        raise SearchError(
            "relevance must be an adapter's catalog name or a fitted vecext.relevance method, "
            f"got {type(relevance).__name__}"
        )
    if method.d is not None and method.d != dim:
        raise RelevanceError(
            f"relevance adapter {name!r} was trained on dimension {method.d}, "
            f"{where} has dimension {dim}"
        )
    method = copy.copy(method)
    try:
        method.set_threshold(float(min_relevance))
    except RelevanceError as exc:
        raise RelevanceError(f"min_relevance={min_relevance}: {exc}") from None
    return method, name


def bound_predicate(info: TableInfo, q: np.ndarray, bound: float) -> Predicate:
    """``cosine distance(column, q) <= bound`` as a filter predicate."""
    return Within(
        info.column,
        tuple(float(x) for x in np.asarray(q, np.float32)),
        float(bound),
        info.column_type,
        info.dim,
        "cosine",
    )


def threshold_search(
    prep: engine.Prepared, strategy: str, th: Threshold, explain_only: bool
) -> SearchResult:
    """Run a threshold search (see the module docstring) on a prepared target."""
    info, q, pred = prep.info, prep.q, prep.pred
    m, T, cap = th.method, th.min_relevance, th.max_results
    features = tuple(getattr(m, "features", ()) or ())
    first = min(cap + 1, max(FIRST_ROUND, FEATURE_DEPTH if features else 0))
    if strategy == "auto":
        # every passing row is promised: scan exactly up to exact_max_rows with or without
        # a filter (k-NN's preference for an HNSW walk on unfiltered tables does not apply)
        s = prep.settings
        s = replace(s, exact_max_rows_unfiltered=max(int(s.exact_max_rows), 0))
        prep = replace(prep, settings=s)
    p = engine.make_plan(prep, first, strategy)
    if p.strategy == "exact":
        p.k = cap  # one bounded scan returns up to the cap
    p.steps.append(
        f"threshold: relevance {th.name!r} ({m.name}) >= {T:g} as the cosine-distance bound "
        f"1 - s_min(q)"
        + (
            f", s_min from features {list(features)} of the nearest {FEATURE_DEPTH} rows"
            if features
            else ""
        )
        + f"; at most {cap} rows"
    )

    def run(plan: Plan, k: int, where: Predicate | None) -> Any:
        return engine.execute(prep, prep.request(k, where), plan)

    def result(
        ids: Any, dist: Any, used: str, n: int, complete: bool, why: str, extra: dict[str, Any]
    ) -> SearchResult:
        return SearchResult(ids, dist, used, int(n), complete, None, why, p, extra)

    extra: dict[str, Any] = {"min_relevance": T, "relevance": th.name, "max_results": cap}
    empty_i, empty_d = np.empty(0, np.int64), np.empty(0, np.float32)
    if explain_only:
        return result(empty_i, empty_d, p.strategy, 0, False, "explain only", extra)

    scanned = 0
    S_top = None
    if features:  # the query's own candidates first: their similarities give the features
        p = _replan(p, prep, FEATURE_DEPTH)
        ids, dist, scanned = run(p, FEATURE_DEPTH, None)
        if len(ids) == 0:
            extra.update(scores=np.empty(0), exhaustive=True)
            return result(empty_i, empty_d, p.strategy, scanned, True, "", extra)
        S_top = (1.0 - dist.astype(np.float64))[None, :]
    qp = m.query_params(q[None, :].astype(np.float64), S_top)
    s_min = float(qp["s_min"][0])
    a = float(qp["a"][0]) if "a" in qp else None
    b = float(qp["b"][0]) if "b" in qp else None
    if math.isnan(s_min):
        raise RelevanceError(f"relevance {th.name!r} gives no similarity bound for this query")
    bound = 1.0 - s_min  # cosine distance; +inf when every row passes
    extra.update(s_min=s_min, max_distance=bound)
    if features:
        extra["features"] = {f: float(qp[f"feature_{f}"][0]) for f in features}
    p.steps.append(f"s_min = {s_min:.6g}: rows with cosine distance <= {bound:.6g}")
    if bound < -BOUND_SLACK:
        p.steps.append("s_min > 1: no row can reach the threshold")
        extra.update(scores=np.empty(0), exhaustive=True)
        return result(empty_i, empty_d, p.strategy, scanned, True, "", extra)

    limit = min(bound + BOUND_SLACK, 2.0 + BOUND_SLACK)  # cosine distance is at most 2
    used = p.strategy
    if p.strategy == "exact":
        where = combine(pred, bound_predicate(info, q, limit))
        ids, dist, n = run(p, cap + 1, where)
        scanned += n
        exhaustive = True
    else:
        for k_try in k_rounds(first, cap + 1):
            p = _replan(p, prep, k_try)
            ids, dist, n = run(p, k_try, None)
            scanned += n
            all_pass = bool(len(ids) == 0 or dist[-1] <= limit)
            if not all_pass or len(ids) < k_try or k_try >= cap + 1:
                break
            p.steps.append(
                f"all {k_try} reranked candidates pass the bound: asked for "
                f"{min(cap + 1, 4 * k_try)}"
            )
        exhaustive = False
        short = len(ids) < k_try and all_pass
        if short and prep.backend.count_matching(info, pred, k_try) > len(ids):
            # the index found fewer rows than match the filter: scan exactly
            p.steps.append(
                f"{p.strategy} returned {len(ids)} rows, all passing, but more match the "
                "filter: fell back to an exact scan with the bound"
            )
            where = combine(pred, bound_predicate(info, q, limit))
            ids, dist, more = run(engine.exact_plan(p, cap), cap + 1, where)
            scanned += more
            used, exhaustive = f"{p.strategy}+exact", True

    s = 1.0 - np.asarray(dist, dtype=np.float64)
    scores = s if a is None else expit(a * s + b)
    keep = scores >= T
    ids, dist, scores = np.asarray(ids)[keep], np.asarray(dist)[keep], scores[keep]
    complete, reason = exhaustive, ""
    if len(ids) > cap:
        ids, dist, scores = ids[:cap], dist[:cap], scores[:cap]
        complete = False
        reason = (
            f"max_results={cap} cut the list: more rows reach relevance {T:g} "
            "(raise max_results to see them)"
        )
    elif not exhaustive:
        reason = (
            f"approximate ({used}): rows that pass the threshold but that the "
            f"{'index' if used.startswith('hnsw') else 'codes'} did not propose are missing; "
            "strategy='exact' returns them all"
        )
    if reason:
        p.steps.append(reason)
    extra.update(scores=scores, exhaustive=exhaustive)
    return result(ids, dist, used, scanned, complete, reason, extra)


def k_rounds(first: int, limit: int) -> list[int]:
    """Rows asked of an approximate plan, round by round: ``first``, then 4x more each
    round, up to ``limit``."""
    out = [min(first, limit)]
    while out[-1] < limit:
        out.append(min(limit, 4 * out[-1]))
    return out


def _replan(p: Plan, prep: engine.Prepared, k: int) -> Plan:
    """``p``'s strategy planned for ``k`` rows (rerank depth, ef_search, nprobe follow k)."""
    if p.strategy == "exact":
        return p
    q = plan(
        prep.info.caps, prep.est, k, strategy=p.strategy, settings=prep.settings,
        filtered=prep.pred is not None,
    )  # fmt: skip
    p.params, p.k = q.params, k
    return p
