"""One search entry point for both backends.

``search(conn, table, column, q, k, ...)`` validates the request and hands it to the
search engine (:mod:`vecext.search.engine`), which asks the backend what the table
offers, plans, runs, and enforces the guarantee: a filtered search returns
``min(k, rows matching the filter)`` rows, or says why not (``complete=False`` with a
reason, only when the caller set a scan budget).

``search(conn, table, column, q, min_relevance=T, relevance=adapter)`` is a
threshold search instead: no k, every row whose calibrated relevance reaches
``T`` (at most ``max_results``); see :mod:`vecext.search.threshold`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vecext.search import engine, threshold
from vecext.search.contracts import METRICS, FactsChanged, Request, SearchError, TableInfo
from vecext.search.planner import PlannerSettings
from vecext.search.registry import backend_for
from vecext.search.result import SearchResult
from vecext.search.validate import MAX_K, check_k

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
    k = check_search_args(k, recall_target, max_scan_rows)
    backend = backend_for(conn)
    args = (
        table, column, q, k, cap, metric, filter, strategy, recall_target, max_scan_rows,
        settings, explain_only, tenant, using, min_relevance, relevance,
    )  # fmt: skip
    try:
        # plan from the facts kept from the last search, checked with the first statement
        # (not for explain_only: no statement runs to check them)
        if not explain_only and hasattr(backend, "speculate"):
            backend.speculate = True
        try:
            return _search(backend, *args)
        except FactsChanged:
            pass
        except Exception:
            # an error before any check may come from the change itself
            changed = getattr(backend, "facts_changed", None)
            if changed is None or not changed():
                raise
        # the table changed since: plan again from facts read now
        return _search(backend_for(conn), *args)
    except backend.driver_errors as exc:
        # bad input the checks above did not catch: a vecext error, the driver's in __cause__
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SearchError(f"search of {table}.{column} failed in the database: {msg}") from exc


def check_search_args(k: Any, recall_target: float, max_scan_rows: Any) -> int:
    """``k`` (default 10) as an int, once it, ``recall_target`` and ``max_scan_rows``
    are checked (a :class:`SearchError` naming the bad one)."""
    k = check_k(10 if k is None else k)
    if not 0.0 < recall_target <= 1.0:
        raise SearchError(f"recall_target must be in (0, 1], got {recall_target}")
    if max_scan_rows is not None and (
        isinstance(max_scan_rows, bool) or not isinstance(max_scan_rows, int) or max_scan_rows <= 0
    ):
        raise SearchError(f"max_scan_rows must be a positive integer, got {max_scan_rows!r}")
    return k


def _search(
    backend: Any, table: Any, column: str, q: Any, k: int, cap: int | None, metric: str,
    filter: Any, strategy: str, recall_target: float, max_scan_rows: int | None,
    settings: PlannerSettings | None, explain_only: bool, tenant: Any, using: str | None,
    min_relevance: float | None, relevance: Any,
) -> SearchResult:  # fmt: skip
    prep = engine.prepare(
        backend, table, column, q, metric=metric, filter=filter, tenant=tenant, using=using,
        settings=settings, recall_target=recall_target,
    )  # fmt: skip
    if cap is not None:
        t_min = float(min_relevance)  # type: ignore[arg-type]
        where = f"{table}.{column}"
        method, name = threshold.resolve(backend, relevance, t_min, prep.info.dim, where)
        th = threshold.Threshold(method, t_min, cap, name)
        return threshold.threshold_search(prep, strategy, th, explain_only)
    p = engine.make_plan(prep, k, strategy)
    if explain_only:
        empty_i, empty_d = np.empty(0, np.int64), np.empty(0, np.float32)
        return SearchResult(empty_i, empty_d, p.strategy, 0, False, k, "explain only", p)
    return engine.knn(prep, p, k, max_scan_rows)


def explain(conn: Any, table: str, column: str, q: Any, k: int | None = None, **kwargs: Any) -> str:
    """The plan ``search`` would run, and why, without running it."""
    return search(conn, table, column, q, k, explain_only=True, **kwargs).explain()
