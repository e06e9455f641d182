"""A chainable vector query that compiles to a SQLAlchemy ``Select``.

    rows = (
        vector_search(session, Item.embedding, q)
        .where(Item.pos == "n")
        .where(Item.year >= 2000)      # where() twice = AND
        .metric("cosine")
        .limit(10)
        .all()                          # [(Item, distance), ...]
    )

The query asks the same search engine as :func:`vecext.search.api.search`
(:mod:`vecext.search.engine`) for the plan and its floors (strategy, rerank depth,
``ef_search``), and renders that plan as a
``Select`` over the user's own table: an exact ``ORDER BY distance LIMIT k``, a
two-stage compressed search (a CTE ranks matching rows by their codes, the best
``rerank`` are reranked with the exact distance), or an HNSW scan with its
settings issued as ``SET LOCAL`` on the session's connection (``all()`` and the other
runners set them back after their statements). ``to_select()``
returns that ``Select`` to compose with joins and extra columns; ``all()`` runs
it and, like ``search()``, falls back to an exact scan when an approximate plan
returned fewer than ``k`` rows although more match.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from vecext.search import engine
from vecext.search.engine import Prepared
from vecext.search.floors import hnsw_ef, raise_depth, rows_scanned
from vecext.search.planner import Plan
from vecext.sqlalchemy import plan_sql
from vecext.sqlalchemy.plan_sql import DISTANCE_OPS, VectorQueryError

BUILDER_STRATEGIES = ("auto", "exact", "compressed", "hnsw")


class VectorQuery:
    """Nearest neighbours of ``q`` in ``column`` (an ORM attribute or a Core Column).

    Every method returns a new query, so partial queries can be reused.
    """

    def __init__(self, column: Any, q: Any, bind: Any = None) -> None:
        col = column.expression if hasattr(column, "expression") else column
        if not isinstance(col, sa.Column) or col.table is None:
            raise VectorQueryError(f"{column!r} is not a table column")
        self._attr = column
        self._col: sa.Column[Any] = col
        self._table: sa.Table = col.table  # type: ignore[assignment]
        pk = list(self._table.primary_key.columns)
        if len(pk) != 1:
            raise VectorQueryError(
                f"table {self._table.name} needs a single-column primary key for vector queries"
            )
        self._pk = pk[0]
        self._entity = getattr(column, "class_", None)
        self._q = np.asarray(q, dtype=np.float32)
        self._bind = bind
        self._filters: list[Any] = []
        self._k = 10
        self._metric = "cosine"
        self._strategy = "auto"
        self._nprobes: int | None = None
        self._rerank: int | bool | None = None
        self._recall_target = 0.95
        self._min_relevance: float | None = None
        self._adapter: Any = None
        self._tenant: Any = None
        self._using: str | None = None

    # -- chainable settings -------------------------------------------------

    def _with(self, **changes: Any) -> VectorQuery:
        new = copy.copy(self)
        new._filters = list(self._filters)
        for key, value in changes.items():
            setattr(new, f"_{key}", value)
        return new

    def bind(self, session_or_conn: Any) -> VectorQuery:
        """Run against this ORM Session or SQLAlchemy Connection."""
        return self._with(bind=session_or_conn)

    def where(self, *criteria: Any) -> VectorQuery:
        """Filter rows before ranking (SQLAlchemy boolean expressions; calls AND together)."""
        new = self._with()
        new._filters.extend(criteria)
        return new

    def limit(self, k: int) -> VectorQuery:
        from vecext.search.validate import check_k

        return self._with(k=check_k(k))

    def metric(self, metric: str) -> VectorQuery:
        if metric not in DISTANCE_OPS:
            raise VectorQueryError(
                f"unknown metric {metric!r}; use one of {', '.join(DISTANCE_OPS)}"
            )
        return self._with(metric=metric)

    def strategy(self, strategy: str) -> VectorQuery:
        if strategy not in BUILDER_STRATEGIES:
            raise VectorQueryError(
                f"unknown strategy {strategy!r} for a query builder; use one of "
                f"{', '.join(BUILDER_STRATEGIES)} (IVF plans run through vecext.search.search)"
            )
        return self._with(strategy=strategy)

    def nprobes(self, n: int) -> VectorQuery:
        """IVF lists to probe (IVFFlat indexes: ``ivfflat.probes``)."""
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise VectorQueryError(f"nprobes must be a positive integer, got {n!r}")
        return self._with(nprobes=n)

    def rerank(self, depth: int | bool = True) -> VectorQuery:
        """Candidates reranked exactly: a number, ``True`` (the depth ``search()`` starts
        from: the planner's, raised to the rerank floor) or ``False`` (rank by the
        codes' estimated distances only). One statement cannot deepen progressively
        as ``search()`` does."""
        if not isinstance(depth, bool) and (not isinstance(depth, int) or depth <= 0):
            raise VectorQueryError(f"rerank takes a positive depth or a bool, got {depth!r}")
        return self._with(rerank=depth)

    def tenant(self, value: Any) -> VectorQuery:
        """The tenant to search (required on a table with a declared tenant column)."""
        return self._with(tenant=value)

    def using(self, name: str) -> VectorQuery:
        """Force one code column or native index (by name), as ``search(using=)``."""
        return self._with(using=name)

    def recall_target(self, target: float) -> VectorQuery:
        if not 0.0 < target <= 1.0:
            raise VectorQueryError(f"recall_target must be in (0, 1], got {target}")
        return self._with(recall_target=target)

    def min_relevance(self, threshold: float, adapter: Any = None) -> VectorQuery:
        """Keep only rows whose calibrated relevance is at least ``threshold``.

        ``adapter`` is a fitted relevance method (``vecext.relevance``); its
        per-query bound ``s_min`` (cosine similarity) becomes a distance bound.
        """
        if not 0.0 <= float(threshold) <= 1.0:
            raise VectorQueryError(f"min_relevance takes a threshold in [0, 1], got {threshold}")
        return self._with(min_relevance=float(threshold), adapter=adapter)

    # -- planning -----------------------------------------------------------

    def _pg(self) -> Any:
        if self._bind is None:
            raise VectorQueryError(
                "this query has no session or connection: use vector_search(session, ...) or "
                ".bind(session)"
            )
        conn = self._bind.connection() if isinstance(self._bind, Session) else self._bind
        return conn.connection.driver_connection

    def _table_name(self) -> str:
        return (
            f"{self._table.schema}.{self._table.name}" if self._table.schema else self._table.name
        )

    def plan(self) -> Plan:
        """What will run and why (the planner of ``vecext.search``)."""
        return self._plan()[1]

    def _criteria(self, info: Any) -> list[Any]:
        """The user's filters, the tenant's first (as ``search`` combines them)."""
        if info.tenant_column is None:
            return list(self._filters)
        return [self._table.c[info.tenant_column] == self._tenant, *self._filters]

    def _prepare(self) -> Prepared:
        """The search target as :func:`vecext.search.search` sees it (the search engine)."""
        from vecext.search.filters import SqlExpr
        from vecext.search.planner import PlannerSettings
        from vecext.search.registry import backend_for

        prep = engine.prepare(
            backend_for(self._pg()),
            self._table_name(),
            self._col.name,
            self._q,
            metric=self._metric,
            filter=SqlExpr(sa.and_(*self._filters)) if self._filters else None,
            tenant=self._tenant,
            using=self._using,
            settings=PlannerSettings(recall_target=self._recall_target),
            error=VectorQueryError,
            tenant_hint="call .tenant(<value>)",
        )
        self._q = prep.q
        return prep

    def _plan(self) -> tuple[Prepared, Plan]:
        """The plan ``vecext.search.search`` would run for the same request, with the
        floors it would put under it (rerank depth, ef_search)."""
        prep = self._prepare()
        p = engine.make_plan(prep, self._k, self._strategy)
        if p.strategy == "ivf":
            raise VectorQueryError(
                f"the planner chose IVF lists for {self._table_name()}.{self._col.name}; the "
                "query builder renders exact, compressed and hnsw plans: force one with "
                ".strategy(...) or run vecext.search.search()"
            )
        req = prep.request(self._k)
        if p.strategy == "compressed":
            if self._rerank is False:
                p.params["rerank"] = 0
            elif self._rerank is not None and self._rerank is not True:
                p.params["rerank"] = max(int(self._rerank), self._k)
            else:
                kind = prep.info.caps.code_kind
                raise_depth(p, self._k, kind, rows_scanned(p, req), prep.settings)
        if p.strategy == "hnsw":
            hnsw_ef(p, prep.info.caps, req, prep.settings)
        return prep, p

    def explain(self) -> str:
        """The plan, then the SQL the builder renders for it."""
        prep, p = self._plan()
        stmt = plan_sql.render(self, prep.info, p)
        from sqlalchemy.dialects import postgresql

        sql_text = str(stmt.compile(dialect=postgresql.dialect()))
        settings = "".join(f"\n{s};" for s in plan_sql.settings_sql(self, p, prep.info))
        return f"{p.explain()}\nSQL:{settings}\n{sql_text}"

    # -- rendering ------------------------------------------------------------

    def _apply_settings(self, p: Plan, info: Any = None) -> Callable[[], None]:
        """Set the plan's settings for the rest of the bound connection's transaction
        (``set_config(..., true)``, i.e. ``SET LOCAL``; one statement, which also reads
        the values they replace); returns what sets those values back (the caller's own
        ``SET LOCAL`` included; a setting that was not defined goes back to its
        default)."""
        pairs = plan_sql.settings(self, p, info)
        if not pairs:
            return lambda: None
        conn = self._bind.connection() if isinstance(self._bind, Session) else self._bind
        n = len(pairs)
        binds = {f"n{i}": name for i, (name, _) in enumerate(pairs)}
        values = {f"v{i}": value for i, (_, value) in enumerate(pairs)}
        reads = ", ".join(f"current_setting(:n{i}, true)" for i in range(n))
        writes = ", ".join(f"set_config(:n{i}, :v{i}, true)" for i in range(n))
        # the materialized CTE is read before the outer row's set_config calls run
        text = f"WITH o AS MATERIALIZED (SELECT {reads}) SELECT o.*, {writes} FROM o"
        before = conn.execute(sa.text(text), {**binds, **values}).one()[:n]

        def restore() -> None:
            # set_config(name, NULL, true) is SET LOCAL name TO DEFAULT
            old = {f"v{i}": v for i, v in enumerate(before)}
            conn.execute(sa.text(f"SELECT {writes}"), {**binds, **old})

        return restore

    def to_select(self) -> sa.Select[Any]:
        """The query as a ``Select`` of ``(entity or table columns, distance)``.

        Plans against the bound session and issues the plan's ``SET LOCAL``
        settings on its connection, so execute the ``Select`` in that transaction (they
        then hold until it ends; :meth:`all` and the other runners set them back after
        their statements).
        Joins and columns added to it apply to the ranked rows; filters that must
        restrict the search belong in :meth:`where`.
        """
        prep, p = self._plan()
        stmt = plan_sql.render(self, prep.info, p)
        self._apply_settings(p, prep.info)
        return stmt

    def _execute(self, stmt: sa.Select[Any]) -> list[Any]:
        return list(self._bind.execute(stmt).all())

    def _run(self) -> tuple[list[Any], Plan]:
        # the plan's settings hold for its statements only: the rest of the caller's
        # transaction runs with its own (enable_sort = off would change every later plan)
        prep, p = self._plan()
        restore = self._apply_settings(p, prep.info)
        try:
            rows = self._execute(plan_sql.render(self, prep.info, p))
            if len(rows) < self._k and p.strategy != "exact" and self._min_relevance is None:
                matching = prep.backend.count_matching(prep.info, prep.pred, self._k)
                if len(rows) < matching:
                    p.strategy = engine.fallback_step(p, len(rows), self._k, matching)
                    exact = engine.exact_plan(p, self._k)
                    rows = self._execute(plan_sql.render(self, prep.info, exact))
        except sa.exc.DBAPIError:
            raise  # the transaction failed: its settings go with its rollback
        except BaseException:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                restore()
            raise
        restore()
        return rows, p

    def all(self) -> list[Any]:
        """Run the query: rows of ``(entity, distance)`` (Core: table columns + distance)."""
        return self._run()[0]

    def to_list(self) -> list[dict[str, Any]]:
        """Rows as dicts: the table's columns and ``distance``."""
        out = []
        for row in self.all():
            if self._entity is not None:
                obj, distance = row
                d = {c.key: getattr(obj, c.key) for c in sa.inspect(self._entity).column_attrs}
            else:
                d = dict(row._mapping)
                distance = d.pop("distance")
            d["distance"] = float(distance)
            out.append(d)
        return out

    def to_result(self) -> Any:
        """A :class:`vecext.search.result.SearchResult` (ids, float32 distances, plan)."""
        from vecext.search.result import SearchResult

        rows, p = self._run()
        key = self._pk.key
        ids = []
        for row in rows:
            head = row[0]
            ids.append(
                getattr(head, key) if self._entity is not None else row._mapping[self._pk.name]
            )
        dist = np.asarray([row[-1] for row in rows], dtype=np.float32)
        # rows scanned as search() counts them: the matching rows a scan or a code
        # ranking reads, ef candidates for HNSW (plus the exact scan of a fallback)
        scanned = int(round(p.est_matching))
        if p.strategy.startswith("hnsw"):
            ef = int(p.params["ef_search"])
            scanned = ef + (scanned if p.strategy.endswith("+exact") else 0)
        elif p.strategy.endswith("+exact"):
            scanned *= 2
        return SearchResult(
            np.asarray(ids, dtype=np.int64), dist, p.strategy, scanned, True, self._k, "", p
        )


def vector_search(bind: Any, column: Any, q: Any) -> VectorQuery:
    """Start a :class:`VectorQuery` bound to a Session or Connection."""
    return VectorQuery(column, q, bind=bind)
