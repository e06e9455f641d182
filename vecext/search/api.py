"""One search entry point for both backends.

``search(conn, table, column, q, k, ...)`` validates the request, asks the
backend what the table offers, plans, runs, and enforces the guarantee: a
filtered search returns ``min(k, rows matching the filter)`` rows, or says why
not (``complete=False`` with a reason, only when the caller set a scan budget).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from vecext.search.filters import Predicate, check_columns, describe, parse_filter
from vecext.search.planner import Capabilities, Plan, PlannerSettings, plan
from vecext.search.result import SearchResult

#: Largest k accepted: beyond this, a "search" is an export and should be a query.
MAX_K = 10_000
METRICS = ("l2", "ip", "cosine")


class SearchError(ValueError):
    """A search request that cannot run: bad k, query, metric, table or column."""


@dataclass
class TableInfo:
    """What a backend knows about a table's vector column."""

    table: str
    column: str
    dim: int
    id_column: str
    columns: dict[str, str]
    caps: Capabilities
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Request:
    table: str
    column: str
    q: np.ndarray  # float32 (d,)
    k: int
    metric: str
    pred: Predicate | None
    max_scan_rows: int | None = None
    tenant: Any = None


class Backend(Protocol):
    name: str

    def table_info(self, table: str, column: str, metric: str) -> TableInfo: ...

    def estimate_matching(self, info: TableInfo, pred: Predicate | None) -> float: ...

    def count_matching(self, info: TableInfo, pred: Predicate | None, limit: int) -> int: ...

    def run(self, info: TableInfo, req: Request, plan: Plan) -> tuple[np.ndarray, np.ndarray, int]:
        """Execute ``plan``: (ids, float32 distances, rows scanned)."""
        ...


def backend_for(conn: Any) -> Backend:
    """The backend adapter for a psycopg or DuckDB connection."""
    mod = type(conn).__module__
    if mod.startswith("psycopg"):
        from vecext.postgres.search import PostgresBackend

        return PostgresBackend(conn)
    if mod.startswith("duckdb") or mod.startswith("_duckdb"):
        from vecext.duckdb.search import DuckDBBackend

        return DuckDBBackend(conn)
    raise SearchError(
        f"unsupported connection {type(conn).__name__}: pass a psycopg or DuckDB connection"
    )


def check_query(q: Any, dim: int, column: str) -> np.ndarray:
    arr = np.asarray(q, dtype=np.float32)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise SearchError(f"the query must be one vector, got an array of shape {np.shape(q)}")
    if arr.shape[0] != dim:
        raise SearchError(
            f"the query has dimension {arr.shape[0]}, column {column} has dimension {dim}"
        )
    if not np.isfinite(arr).all():
        raise SearchError("the query vector holds NaN or infinite values")
    return arr


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise SearchError(f"k must be an integer, got {k!r}")
    if k <= 0:
        raise SearchError(f"k must be positive, got {k}")
    if k > MAX_K:
        raise SearchError(f"k = {k} is beyond the limit of {MAX_K}; page through a query instead")
    return int(k)


def search(
    conn: Any,
    table: str,
    column: str,
    q: Any,
    k: int = 10,
    *,
    metric: str = "cosine",
    filter: Any = None,
    strategy: str = "auto",
    recall_target: float = 0.95,
    max_scan_rows: int | None = None,
    settings: PlannerSettings | None = None,
    explain_only: bool = False,
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
    """
    if metric not in METRICS:
        raise SearchError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    k = check_k(k)
    if not 0.0 < recall_target <= 1.0:
        raise SearchError(f"recall_target must be in (0, 1], got {recall_target}")
    backend = backend_for(conn)
    info = backend.table_info(table, column, metric)
    qv = check_query(q, info.dim, f"{table}.{column}")
    pred = parse_filter(filter)
    check_columns(pred, info.columns, table)
    s = settings or PlannerSettings(recall_target=recall_target)
    est = backend.estimate_matching(info, pred) if pred is not None else float(info.caps.n_rows)
    p = plan(info.caps, est, k, strategy=strategy, settings=s, filtered=pred is not None)
    if pred is not None:
        p.steps.insert(0, f"filter: {describe(pred)}")
    req = Request(table, column, qv, k, metric, pred, max_scan_rows)
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


def explain(conn: Any, table: str, column: str, q: Any, k: int = 10, **kwargs: Any) -> str:
    """The plan ``search`` would run, and why, without running it."""
    return search(conn, table, column, q, k, explain_only=True, **kwargs).explain()
