"""The search engine: where every search is decided, for every backend and every entry point.

``search()`` (:mod:`vecext.search.api`), threshold search
(:mod:`vecext.search.threshold`) and the SQLAlchemy builder
(:mod:`vecext.sqlalchemy.query`) all go through here:

1. :func:`prepare` - the table as the backend sees it, the query checked against the
   column, the filter parsed and checked, the tenant ANDed in first, ``using=``, the
   settings resolved with the backend's floors, the matching rows estimated;
2. :func:`make_plan` - the planner's strategy and parameters, with the filter and the
   backend's notes in its steps;
3. :func:`execute` - one plan: exact scan, native HNSW (``ef_search`` floored,
   :func:`~vecext.search.floors.hnsw_ef`) or a two-stage search over codes
   (:mod:`vecext.search.twostage`: rerank floor, progressive deepening, IVF widening);
4. :func:`knn` - the k-rows guarantee: an IVF plan short of rows probes every list, then
   a plan still short of the rows that match falls back to an exact scan (or, with a
   scan budget, says ``complete=False`` and why).

The backend only executes the primitive steps (:class:`~vecext.search.contracts.Backend`).
Every decision is recorded in the plan's steps, so ``explain()`` tells what ran.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vecext.search import twostage
from vecext.search.contracts import Backend, Hits, Request, SearchError, Step, TableInfo
from vecext.search.filters import (
    Eq,
    Predicate,
    check_columns,
    combine,
    describe,
    only_columns,
    parse_filter,
)
from vecext.search.filtertypes import check_values
from vecext.search.floors import hnsw_ef, rows_scanned
from vecext.search.planner import Plan, plan
from vecext.search.result import SearchResult
from vecext.search.settings import PlannerSettings
from vecext.search.validate import check_query

__all__ = ["Prepared", "execute", "fallback_step", "knn", "make_plan", "prepare", "refine_estimate"]


@dataclass
class Prepared:
    """One search target, validated: what the table offers, the query, the filter (the
    tenant's condition first), the resolved settings and the estimated matching rows."""

    backend: Backend
    info: TableInfo
    q: np.ndarray
    metric: str
    pred: Predicate | None
    settings: PlannerSettings
    est: float
    tenant: Any = None

    def request(
        self, k: int, pred: Predicate | None = None, max_scan_rows: int | None = None
    ) -> Request:
        """A :class:`Request` for ``k`` rows (``pred`` instead of the search's filter)."""
        info, s = self.info, self.settings
        where = self.pred if pred is None else pred
        return Request(
            info.table, info.column, self.q, k, self.metric, where, max_scan_rows, self.tenant,
            s.recall_target,
        )  # fmt: skip


def prepare(
    backend: Backend,
    table: str,
    column: str,
    q: Any,
    *,
    metric: str,
    filter: Any = None,
    tenant: Any = None,
    using: str | None = None,
    settings: PlannerSettings | None = None,
    recall_target: float = 0.95,
    error: type[Exception] = SearchError,
    tenant_hint: str = "pass tenant=<value>",
) -> Prepared:
    """Everything a search needs before planning (step 1 of the module docstring).

    ``error`` is the exception raised for a bad tenant or ``using`` (the builder's own);
    ``tenant_hint`` says how to name a tenant in the caller's API.
    """
    info = backend.table_info(table, column, metric)
    qv = check_query(q, info.dim, f"{table}.{column}", metric)
    pred = parse_filter(filter)
    check_columns(pred, info.columns, table)
    check_values(pred, info.columns, table)
    if info.tenant_column is not None:
        if tenant is None:
            raise error(
                f"table {table} has tenant column {info.tenant_column!r}: {tenant_hint}; "
                "a search never spans tenants"
            )
        # the tenant condition goes first and into every strategy, fallback included
        pred = combine(Eq(info.tenant_column, tenant), pred)
        info = backend.for_tenant(info, tenant)
    elif tenant is not None:
        raise error(f"table {table} has no declared tenant column; tenant= is not allowed")
    if using is not None:
        if using not in info.alternatives:
            known = ", ".join(sorted(info.alternatives)) or "none"
            raise error(
                f"{table}.{column} has no code column or index named {using!r}; known: {known}"
            )
        info.caps = info.alternatives[using]
    s = settings or PlannerSettings(recall_target=recall_target)
    s = s.resolve(getattr(backend, "planner_defaults", None))
    est = float(info.caps.n_rows)
    if pred is not None:
        est = backend.estimate_matching(info, pred)
        if getattr(backend, "refine_estimates", False):
            est = refine_estimate(backend, info, pred, est, s)
    return Prepared(backend, info, qv, metric, pred, s, est, tenant)


#: An estimate within this factor of the exact-scan threshold is checked by a count.
REFINE_FACTOR = 2.0


def refine_estimate(
    backend: Backend, info: TableInfo, pred: Predicate, est: float, s: PlannerSettings
) -> float:
    """``est`` counted exactly (up to the threshold) when it is near the planner's
    exact-scan threshold, where it decides the plan; recorded in ``info.notes``. Far
    from it the estimate stands: a plan that finds fewer rows than match still falls
    back to an exact scan (:func:`knn`), and an exact scan is exact at any size."""
    limit = int(s.exact_max_rows)
    if not limit / REFINE_FACTOR < est <= limit * REFINE_FACTOR:
        return est
    n = backend.count_matching(info, pred, limit + 1)
    if n <= limit:
        info.notes.append(f"counted {n} matching rows (estimate near the exact-scan threshold)")
        return float(n)
    info.notes.append(f"counted more than {limit} matching rows (estimate {est:.0f})")
    return max(est, float(n))


def make_plan(prep: Prepared, k: int, strategy: str = "auto") -> Plan:
    """The planner's plan for ``k`` rows (a :class:`SearchError` naming why a forced
    strategy is unavailable), its steps opened by the filter and the backend's notes."""
    info = prep.info
    in_store = store_filter_note(info, prep.pred) if prep.settings.mirrored_filters else None
    caps = info.caps
    if in_store:
        width = info.dim * (2 if info.column_type == "halfvec" else 4)
        caps = replace(caps, filter_in_store=True, vector_bytes=width)
    try:
        p = plan(
            caps, prep.est, k, strategy=strategy, settings=prep.settings,
            filtered=prep.pred is not None,
        )  # fmt: skip
    except ValueError as exc:
        notes = "".join(f"; {n}" for n in info.unusable)
        raise SearchError(f"{info.table}.{info.column}: {exc}{notes}") from None
    if prep.pred is not None:
        p.steps.insert(0, f"filter: {describe(prep.pred)}")
        walk = getattr(info.indexes.get(str(p.params.get("index"))), "store", None)
        if in_store and (p.strategy in ("compressed", "ivf") or walk is not None):
            p.steps.insert(1, in_store)
            p.params["filter_on_store"] = True  # the statements read it
    p.steps += list(info.notes)  # what the backend wants explained
    return p


def store_filter_note(info: TableInfo, pred: Predicate | None) -> str | None:
    """What ``explain()`` says when the filter runs on the code store of the plan's code
    column (its mirrored columns), else ``None``."""
    code = info.codes.get(info.caps.code_column or "") if info.caps.code_column else None
    if code is None or not code.mirrors or not only_columns(pred, [a for a, _ in code.mirrors]):
        return None
    return (
        f"filter runs on code store {code.store} of {code.name} (mirrored columns, btrees): "
        "no join to the table"
    )


def execute(prep: Prepared, req: Request, p: Plan) -> Hits:
    """Run one plan (step 3 of the module docstring): at most ``req.k`` rows, best first."""
    backend, info, s = prep.backend, prep.info, prep.settings
    if p.strategy == "exact":
        ids, dist = backend.exact(info, req, p)
        return Hits(ids, dist, rows_scanned(p, req))
    if p.strategy == "hnsw":
        ef = hnsw_ef(p, info.caps, req, s)
        ids, dist = backend.hnsw(info, req, p, ef)
        return Hits(ids, dist, ef)
    if p.strategy in ("compressed", "ivf"):
        code = info.code
        if code is None:
            raise SearchError(f"{info.table}.{info.column} has no usable compressed column")
        step = Step(backend, info, req, p, s)
        if p.strategy == "compressed":
            return twostage.compressed(step, code)
        if code.list_column is None or code.ivf_codec is None:
            raise SearchError(f"compressed column {code.name} has no IVF lists")
        return twostage.ivf(step, code)
    raise SearchError(f"unknown strategy {p.strategy!r}")


def exact_plan(p: Plan, k: int) -> Plan:
    """The exact scan a plan falls back to."""
    return Plan("exact", "fallback", n_rows=p.n_rows, est_matching=p.est_matching, k=k)


def fallback_step(p: Plan, got: int, k: int, matching: int) -> str:
    """Record in ``p`` that ``got`` rows of ``min(k, matching)`` came back and an exact
    scan replaces them; returns the strategy name to report."""
    p.steps.append(
        f"{p.strategy} returned {got} rows but {min(k, matching)} match: fell back to an exact scan"
    )
    return f"{p.strategy}+exact"


def knn(prep: Prepared, p: Plan, k: int, max_scan_rows: int | None = None) -> SearchResult:
    """The k nearest rows by plan ``p``, with the guarantee (step 4 of the module docstring)."""
    backend, info = prep.backend, prep.info
    req = prep.request(k, max_scan_rows=max_scan_rows)
    ids, dist, scanned = execute(prep, req, p)
    used, complete, reason = p.strategy, True, ""
    if len(ids) < k and p.strategy == "ivf" and p.params.get("nprobe", 0) < info.caps.n_lists:
        # the filter left too few rows in the probed lists: probe every list (still
        # ranked by codes, then reranked) before falling back to an exact scan
        p.steps.append(
            f"ivf returned {len(ids)} rows with nprobe={p.params.get('nprobe')}: "
            f"widened to all {info.caps.n_lists} lists"
        )
        p.params["nprobe"] = info.caps.n_lists
        ids, dist, more = execute(prep, req, p)
        scanned += more
    if len(ids) < k:
        matching = backend.count_matching(info, prep.pred, k)
        if len(ids) < matching:
            if max_scan_rows is not None:
                complete = False
                reason = (
                    f"found {len(ids)} of {min(k, matching)} rows within the scan budget of "
                    f"{max_scan_rows} rows"
                )
                p.steps.append(reason)
            else:
                used = fallback_step(p, len(ids), k, matching)
                ids, dist, more = execute(prep, req, exact_plan(p, k))
                scanned += more
    return SearchResult(ids, dist, used, int(scanned), complete, k, reason, p)
