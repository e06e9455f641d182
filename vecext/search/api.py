"""One search entry point for both backends.

``search(conn, table, column, q, k, ...)`` validates the request, asks the
backend what the table offers, plans, runs, and enforces the guarantee: a
filtered search returns ``min(k, rows matching the filter)`` rows, or says why
not (``complete=False`` with a reason, only when the caller set a scan budget).

``search(conn, table, column, q, min_relevance=T, relevance=adapter)`` is a
threshold search instead: no k, every row whose calibrated relevance reaches
``T`` (at most ``max_results``); see :mod:`vecext.search.threshold`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vecext.search import threshold
from vecext.search.contracts import METRICS, Request, SearchError, TableInfo
from vecext.search.filters import (
    Eq,
    check_columns,
    combine,
    describe,
    parse_filter,
)
from vecext.search.planner import Plan, PlannerSettings, plan
from vecext.search.registry import backend_for
from vecext.search.result import SearchResult
from vecext.search.validate import MAX_K, check_k, check_query

__all__ = ["MAX_K", "METRICS", "Request", "SearchError", "TableInfo", "explain", "search"]

def search(
    conn: Any,
    table: str,
    column: str,
    q: Any,
    k: int | None = None,
    *,
    metric: str = "cosine",
    filter: Any = None,
    strategy: str = "auto",
    recall_target: float = 0.95,
    max_scan_rows: int | None = None,
    settings: PlannerSettings | None = None,
    explain_only: bool = False,
    tenant: Any = None,
    using: str | None = None,
    min_relevance: float | None = None,
    relevance: Any = None,
    max_results: int | None = None,
) -> SearchResult:
    """Nearest neighbours of ``q`` in ``table.column`` among rows passing ``filter``.

    Parameters
    ----------
    conn
        A psycopg connection (PostgreSQL + pgvector) or a DuckDB connection.
    metric
        ``"cosine"``, ``"l2"`` or ``"ip"``.
    filter
        A dict (``{"pos": "n", "year": (2000, 2010), "tag": ["a", "b"]}``), filter
        predicates, ``COLUMN=VALUE`` strings or a SQLAlchemy expression; values
        are always bound parameters.
    strategy
        ``"auto"`` (the planner decides) or one of ``exact``, ``compressed``,
        ``ivf``, ``hnsw``.
    max_scan_rows
        A scan budget. With it, a search that cannot find k matching rows within
        the budget returns what it found with ``complete=False``; without it, the
        search falls back to exact rather than return fewer rows than match.
    tenant
        The tenant to search, required on a table with a declared tenant column
        (and refused on others); every strategy is restricted to its rows.
    using
        Force one code column or native index (by name) when the column has
        several; ``strategy`` still says how it is searched.
    k
        Rows to return (default 10). In a threshold search it is optional and acts
        as ``max_results``.
    min_relevance
        Make this a threshold search: return the rows (nearest first) whose
        calibrated relevance score under ``relevance`` is at least this (in
        ``[0, 1]``; a raw cosine for a ``fixed`` adapter). Cosine metric only.
        ``result.extra["scores"]`` holds each row's score. Exact plans return every
        passing row (``complete=True``); approximate plans return the passing rows
        among their candidates and say ``complete=False`` (see
        :mod:`vecext.search.threshold`).
    relevance
        The relevance adapter: its name in the database's catalog
        (``vecext.postgres.relevance.save_adapter``) or a fitted
        :class:`vecext.relevance.RelevanceMethod`. Its dimension must be the column's.
    max_results
        At most this many rows from a threshold search (default
        :data:`vecext.search.threshold.DEFAULT_MAX_RESULTS`, 1000); when more pass,
        the nearest ones are returned with ``complete=False`` and a reason.
    """
    if metric not in METRICS:
        raise SearchError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    cap = None
    if min_relevance is not None or relevance is not None or max_results is not None:
        cap = threshold.check_request(
            k, min_relevance, relevance, max_results, metric, max_scan_rows
        )
        k = cap
    k = check_k(10 if k is None else k)
    if not 0.0 < recall_target <= 1.0:
        raise SearchError(f"recall_target must be in (0, 1], got {recall_target}")
    backend = backend_for(conn)
    if max_scan_rows is not None and (
        isinstance(max_scan_rows, bool) or not isinstance(max_scan_rows, int) or max_scan_rows <= 0
    ):
        raise SearchError(f"max_scan_rows must be a positive integer, got {max_scan_rows!r}")
    info = backend.table_info(table, column, metric)
    qv = check_query(q, info.dim, f"{table}.{column}")
    pred = parse_filter(filter)
    check_columns(pred, info.columns, table)
    if info.tenant_column is not None:
        if tenant is None:
            raise SearchError(
                f"table {table} has tenant column {info.tenant_column!r}: pass tenant=<value>; "
                "a search never spans tenants"
            )
        # the tenant condition goes first and into every strategy, fallback included
        pred = combine(Eq(info.tenant_column, tenant), pred)
        info = backend.for_tenant(info, tenant)
    elif tenant is not None:
        raise SearchError(f"table {table} has no declared tenant column; tenant= is not allowed")
    if using is not None:
        if using not in info.alternatives:
            known = ", ".join(sorted(info.alternatives)) or "none"
            raise SearchError(
                f"{table}.{column} has no code column or index named {using!r}; known: {known}"
            )
        info.caps = info.alternatives[using]
    s = settings or PlannerSettings(recall_target=recall_target)
    est = backend.estimate_matching(info, pred) if pred is not None else float(info.caps.n_rows)
    if cap is not None:
        t_min = float(min_relevance)  # type: ignore[arg-type]
        where = f"{table}.{column}"
        method, name = threshold.resolve(backend, relevance, t_min, info.dim, where)
        th = threshold.Threshold(method, t_min, cap, name)
        return threshold.threshold_search(
            backend, info, qv, pred, est, strategy, s, th, tenant, explain_only
        )
    try:
        p = plan(info.caps, est, k, strategy=strategy, settings=s, filtered=pred is not None)
    except ValueError as exc:
        notes = info.unusable
        raise SearchError(
            f"{table}.{column}: {exc}" + "".join(f"; {n}" for n in notes)
        ) from None
    if pred is not None:
        p.steps.insert(0, f"filter: {describe(pred)}")
    p.steps += list(info.notes)  # what the backend wants explained
    req = Request(table, column, qv, k, metric, pred, max_scan_rows, tenant, s.recall_target)
    if explain_only:
        return SearchResult(
            np.empty(0, np.int64),
            np.empty(0, np.float32),
            p.strategy,
            0,
            False,
            k,
            "explain only",
            p,
        )
    ids, dist, scanned = backend.run(info, req, p)
    strategy_used = p.strategy
    complete, reason = True, ""
    if len(ids) < k and p.strategy == "ivf" and p.params.get("nprobe", 0) < info.caps.n_lists:
        # the filter left too few rows in the probed lists: probe every list (still
        # ranked by codes, then reranked) before falling back to an exact scan
        p.steps.append(
            f"ivf returned {len(ids)} rows with nprobe={p.params.get('nprobe')}: "
            f"widened to all {info.caps.n_lists} lists"
        )
        p.params["nprobe"] = info.caps.n_lists
        ids, dist, more = backend.run(info, req, p)
        scanned += more
    if len(ids) < k:
        matching = backend.count_matching(info, pred, k)
        if len(ids) < matching:
            if max_scan_rows is not None:
                complete = False
                reason = (
                    f"found {len(ids)} of {min(k, matching)} rows within the scan budget of "
                    f"{max_scan_rows} rows"
                )
                p.steps.append(reason)
            else:
                p.steps.append(
                    f"{p.strategy} returned {len(ids)} rows but {min(k, matching)} match: "
                    "fell back to an exact scan"
                )
                exact = Plan("exact", "fallback", n_rows=p.n_rows, est_matching=p.est_matching, k=k)
                ids, dist, more = backend.run(info, req, exact)
                scanned += more
                strategy_used = f"{p.strategy}+exact"
    return SearchResult(ids, dist, strategy_used, int(scanned), complete, k, reason, p)


def explain(conn: Any, table: str, column: str, q: Any, k: int | None = None, **kwargs: Any) -> str:
    """The plan ``search`` would run, and why, without running it."""
    return search(conn, table, column, q, k, explain_only=True, **kwargs).explain()
