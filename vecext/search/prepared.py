"""Prepared searches: a table's facts and a plan kept for many query vectors.

:func:`~vecext.search.search` learns what the table offers and plans before every
query, and checks the facts it kept from the last search with the table's *stamp*
(:mod:`vecext.postgres.info_cache`), which reads every catalog row and index the facts
came from. A service that runs one search for many query vectors (the same table,
column, k, filter, tenant and settings) can prepare it once::

    ps = prepare_search(conn, "docs", "embedding", k=10, filter={"lang": "en"})
    for q in queries:
        ids = ps(q).ids

Each call checks the query (dimension, finite values) and runs the kept plan through
:func:`vecext.search.engine.knn`, so the k-rows guarantee holds as in ``search()``: a
result short of the rows that match still falls back to an exact scan. The first
statement carries the backend's *guard* instead of the stamp
(:meth:`~vecext.search.contracts.SqlBackend.guard`; on PostgreSQL
:mod:`vecext.postgres.guard`): the changes that could make the kept plan's rows wrong,
or search what a tenant rule now forbids (a codec replaced, a column re-encoding, an
index created or dropped, a tenant column declared, the catalog upgraded), discard the
rows and plan again. A kept statement that fails on something the guard does not read
(a column retyped or dropped, a mirrored column gone) plans again once too, and the
error, if it stays, is raised as ``search()`` raises it.

What the guard leaves alone only makes the kept plan slower or less fitting, never its
rows wrong: new statistics (ANALYZE) for a filtered plan's estimate, an index's new
calibration. :meth:`PreparedSearch.refresh` plans again on request.

A backend without a guard (DuckDB) plans every call, as ``search()`` does. A prepared
search uses its connection as ``search()`` does: one thread at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vecext.search import engine
from vecext.search.api import check_search_args, search
from vecext.search.contracts import METRICS, FactsChanged, SearchError
from vecext.search.planner import Plan, PlannerSettings
from vecext.search.registry import backend_for
from vecext.search.result import SearchResult
from vecext.search.validate import check_query

__all__ = ["PreparedSearch", "prepare_search"]

#: the step a kept plan explains itself with
KEPT_STEP = (
    "plan kept by a prepared search: each query's first statement checks its guard (the "
    "table's vecext catalog rows and indexes), not the table stamp; refresh() after ANALYZE "
    "or a calibration"
)

#: reads of the facts and guard before a prepared search stops keeping a plan (the
#: table changed between the two reads each time)
KEEP_ATTEMPTS = 3

#: SQLSTATE classes of a kept statement's failure that a change of the table may cause
#: (undefined table or column, a type mismatch, a cached plan's result type changed):
#: the search is planned again once before the error is raised
_STALE_CLASSES = ("42", "22", "0A")


class _Stale(Exception):
    """The kept plan may no longer hold (``error``: the driver's, when a statement failed)."""

    def __init__(self, error: Exception | None) -> None:
        super().__init__("the prepared search's facts changed")
        self.error = error


@dataclass
class _Kept:
    backend: Any
    prep: engine.Prepared
    plan: Plan
    guard: Callable[[], None]


class PreparedSearch:
    """One search kept for many query vectors (see the module docstring); made by
    :func:`prepare_search`. Call it (or :meth:`search`) with a query vector."""

    def __init__(
        self, conn: Any, table: str, column: str, k: int | None = 10, *, metric: str = "cosine",
        filter: Any = None, strategy: str = "auto", recall_target: float = 0.95,
        max_scan_rows: int | None = None, settings: PlannerSettings | None = None,
        tenant: Any = None, using: str | None = None,
    ) -> None:  # fmt: skip
        if metric not in METRICS:
            raise SearchError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
        self.k = check_search_args(k, recall_target, max_scan_rows)
        self.conn, self.table, self.column = conn, table, column
        self.max_scan_rows = max_scan_rows
        self._args: dict[str, Any] = {
            "metric": metric, "filter": filter, "tenant": tenant, "using": using,
            "settings": settings, "recall_target": recall_target,
        }  # fmt: skip
        self.strategy = strategy
        #: how many times the plan was made again (the guard changed, a kept statement
        #: failed, :meth:`refresh`)
        self.replans = 0
        self._kept: _Kept | None = None
        #: the backend has a guard (else every call plans, as search() does)
        self._guarded = True
        self._keep()

    def __call__(self, q: Any) -> SearchResult:
        return self.search(q)

    def search(self, q: Any) -> SearchResult:
        """The ``k`` nearest rows of ``q`` by the kept plan (planned again when stale)."""
        if self._kept is None and self._guarded:
            self._keep()  # after a change: what is now wrong with the search raises here
        if self._kept is None:
            return self._search(q)
        try:
            return self._run(self._kept, q)
        except _Stale:
            pass
        # plan again from facts read now, and run once more (a failure is then raised)
        self.replans += 1
        self._kept = None
        self._keep()  # a search now refused (a tenant now required) raises here
        if self._kept is None:
            return self._search(q)
        try:
            return self._run(self._kept, q)
        except _Stale as stale:
            self._kept = None  # changing under us: plan every call until it settles
            if stale.error is not None:
                raise _failed(self, stale.error) from stale.error
            return self._search(q)

    def _run(self, kept: _Kept, q: Any) -> SearchResult:
        """``q`` by the kept plan; :class:`_Stale` when the guard says the facts changed
        or the statement failed as a change of the table can make it fail."""
        qv = check_query(q, kept.prep.info.dim, f"{self.table}.{self.column}", kept.prep.metric)
        plan = replace(kept.plan, params=dict(kept.plan.params), steps=list(kept.plan.steps))
        backend = kept.backend
        kept.guard()  # the check rides with this search's first statement
        try:
            result = engine.knn(replace(kept.prep, q=qv), plan, self.k, self.max_scan_rows)
        except FactsChanged:
            raise _Stale(None) from None
        except backend.driver_errors as exc:
            state = str(getattr(exc, "sqlstate", "") or "")
            if backend.facts_changed() or state[:2] in _STALE_CLASSES:
                raise _Stale(exc) from exc
            raise _failed(self, exc) from exc
        if backend.facts_changed():  # a plan that ran no statement: check now
            raise _Stale(None)
        return result

    def refresh(self) -> None:
        """Read the table's facts and plan again now."""
        self.replans += 1
        self._kept = None
        self._keep()

    def explain(self) -> str:
        """The kept plan, and why (``search()``'s explanation when nothing is kept)."""
        if self._kept is None:
            return "no plan kept: every call is planned as search() plans it"
        return self._kept.plan.explain()

    def _keep(self) -> None:
        """Read the facts and plan (what is wrong with the search fails here, as in
        ``search()``); keep them when the backend has a guard. The guard is read between
        two reads of the facts and kept when both name the same table and code stores: a
        change after it re-plans at the next call."""
        conn, table, column, metric = self.conn, self.table, self.column, self._args["metric"]
        for _ in range(KEEP_ATTEMPTS):
            backend = backend_for(conn)
            before = backend.table_info(table, column, metric)
            guard = backend.guard(before)
            probe = np.ones(before.dim, dtype=np.float32)
            prep = engine.prepare(backend, table, column, probe, **self._args)
            plan = engine.make_plan(prep, self.k, self.strategy)
            if guard is None:
                self._guarded = False
                return
            if _stores(prep.info) == _stores(before) and prep.info.ref.oid == before.ref.oid:
                plan.steps.append(KEPT_STEP)
                self._kept = _Kept(backend, prep, plan, guard)
                return
        # the table keeps changing: plan every call until the next refresh()

    def _search(self, q: Any) -> SearchResult:
        return search(
            self.conn, self.table, self.column, q, self.k, strategy=self.strategy,
            max_scan_rows=self.max_scan_rows, **self._args,
        )  # fmt: skip


def _stores(info: Any) -> set[Any]:
    return {getattr(c, "store", None) for c in info.codes.values()}


def _failed(ps: PreparedSearch, exc: Exception) -> SearchError:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return SearchError(f"search of {ps.table}.{ps.column} failed in the database: {msg}")


def prepare_search(
    conn: Any, table: str, column: str, k: int | None = 10, **kwargs: Any
) -> PreparedSearch:
    """A :class:`PreparedSearch` of ``table.column`` for ``k`` rows; ``kwargs`` are
    :func:`~vecext.search.search`'s (``metric``, ``filter``, ``strategy``,
    ``recall_target``, ``max_scan_rows``, ``settings``, ``tenant``, ``using``). Bad
    arguments, a missing table or column, a bad filter or tenant fail here, as the
    same ``search()`` would."""
    return PreparedSearch(conn, table, column, k, **kwargs)
