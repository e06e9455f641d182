"""A search's filter on a code store's mirrored columns (catalog 0.6.0).

When every column a request's filter names is mirrored into the code store of the
code column a statement reads (:mod:`vecext.postgres.mirrors`), the statement filters
the store's own columns (``s.col_<attnum>``, each with a btree) instead of joining the
user's table by primary key. SQLAlchemy expressions, distance bounds and filters on
other columns keep the join. Both give the same rows: the store's trigger writes the
mirrored values in the same transaction as the table's.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from vecext.postgres.filters import PostgresDialect, bound_ident
from vecext.search import sqlfilter
from vecext.search.filters import only_columns

__all__ = ["StoreDialect", "store_where"]

#: the alias of the code store in every statement that reads one
ALIAS = "s"


class StoreDialect(PostgresDialect):
    """:class:`PostgresDialect` over a code store: a table column is its mirrored copy."""

    def __init__(self, mirrors: tuple[tuple[str, str], ...]) -> None:
        self.names = dict(mirrors)

    def column(self, name: str, alias: str | None) -> sql.Composable:
        return bound_ident(alias or ALIAS, self.names[name])


def store_where(ctx: Any, code: Any) -> tuple[sql.Composable, list[Any], str] | None:
    """``(condition on alias s, its parameters, its text)`` when the request's filter runs
    on ``code``'s store (the plan says so: :func:`vecext.search.engine.make_plan`), kept
    per search and code column on ``ctx``; else ``None``."""
    pred = ctx.req.pred
    if pred is None or not code.store or not code.mirrors:
        return None
    if ctx.plan is None or not ctx.plan.params.get("filter_on_store"):
        return None  # the plan joins (PlannerSettings.mirrored_filters=False)
    if not only_columns(pred, [a for a, _ in code.mirrors]):
        return None
    got = ctx.store_wheres.get(code.name)
    if got is None:
        cond, params = sqlfilter.compile_filter(pred, StoreDialect(code.mirrors), ALIAS)
        got = ctx.store_wheres[code.name] = (cond, params, cond.as_string(ctx.conn))
    return got[0], list(got[1]), got[2]
