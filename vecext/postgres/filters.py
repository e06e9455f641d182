"""Compile filter predicates to PostgreSQL: quoted identifiers, bound parameters.

The compiler is :func:`vecext.search.sqlfilter.compile_filter`; this module is its
PostgreSQL dialect (:class:`PostgresDialect`, psycopg ``sql.Composable`` fragments
with ``%s`` placeholders) and the table-name helpers of the adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from vecext.catalog.names import parse_pg_table
from vecext.errors import CatalogError
from vecext.postgres.tables import resolve_table
from vecext.search import sqlfilter
from vecext.search.filters import FilterError, Predicate, Within

#: pgvector's distance operator of each metric
_OPS = {"l2": "<->", "ip": "<#>", "cosine": "<=>"}


def bound_ident(*parts: str) -> sql.Composable:
    """``sql.Identifier(*parts)`` for a statement run with parameters: psycopg reads each
    ``%`` as a placeholder, inside quoted identifiers too, so ``%`` is written ``%%``."""
    ident = sql.Identifier(*parts)
    if any("%" in p for p in parts):
        return sql.SQL(ident.as_string(None).replace("%", "%%"))
    return ident


class PostgresDialect:
    """The PostgreSQL side of :class:`vecext.search.sqlfilter.Dialect`.

    psycopg reads every ``%`` of a statement it binds parameters to as the start of a
    placeholder, inside quoted identifiers too: an identifier holding ``%`` is written
    with ``%%`` (which psycopg turns back into ``%``), so a column named ``a%sb`` stays
    a column. Run what it compiles with a parameter list (an empty one at least).
    """

    @property
    def true(self) -> sql.Composable:
        return sql.SQL("TRUE")

    def column(self, name: str, alias: str | None) -> sql.Composable:
        return bound_ident(alias, name) if alias else bound_ident(name)

    def compose(self, template: str, *parts: sql.Composable) -> sql.Composable:
        return sql.SQL(template.replace(sqlfilter.PLACEHOLDER, "%s")).format(*parts)

    def join(self, sep: str, parts: Sequence[sql.Composable]) -> sql.Composable:
        return sql.SQL(sep).join(parts)

    def any_of(
        self, column: sql.Composable, values: tuple[Any, ...]
    ) -> tuple[sql.Composable, list[Any]]:
        return self.compose("{} = ANY(?)", column), [list(values)]

    def within(self, column: sql.Composable, pred: Within) -> tuple[sql.Composable, list[Any]]:
        typ = sql.SQL("{}({})").format(
            sql.SQL("halfvec" if pred.column_type == "halfvec" else "vector"),
            sql.Literal(int(pred.dim)),
        )
        text = "[" + ",".join(repr(float(x)) for x in pred.q) + "]"
        cond = self.compose("{} {} ?::{} <= ?", column, sql.SQL(_OPS[pred.metric]), typ)
        return cond, [text, float(pred.bound)]

    def sqlalchemy(self, expr: Any) -> tuple[sql.Composable, list[Any]]:
        from sqlalchemy.dialects import postgresql

        dialect = postgresql.psycopg.dialect(paramstyle="format")  # type: ignore[attr-defined]
        compiled = expr.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        params = [compiled.params[name] for name in compiled.positiontup]
        # the SQL text is SQLAlchemy's own rendering of the expression (identifiers quoted
        # by its dialect); user values are in ``params`` only
        return sql.SQL(compiled.string), params  # type: ignore[arg-type]


#: The dialect every PostgreSQL filter is compiled with.
DIALECT = PostgresDialect()


def compile_filter(
    pred: Predicate | None, alias: str | None = None
) -> tuple[sql.Composable, list[Any]]:
    """``(WHERE-clause body, params)``; ``TRUE`` when there is no filter.

    Values are ``%s`` placeholders bound by psycopg; SQLAlchemy expressions are
    compiled by SQLAlchemy's PostgreSQL dialect with their values bound too.
    """
    return sqlfilter.compile_filter(pred, DIALECT, alias)


def table_columns(conn: psycopg.Connection, table: Any) -> dict[str, str]:
    """Column name -> type of ``table`` (named as :mod:`vecext.catalog.names` says)."""
    try:
        oid = resolve_table(conn, table).oid
    except CatalogError as exc:
        raise FilterError(str(exc)) from None
    rows = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [oid],
    ).fetchall()
    return {name: typ for name, typ in rows}


def quote_table(table: Any) -> str:
    """A ``to_regclass``-ready text for ``table`` (:mod:`vecext.catalog.names`), parts as written."""
    return parse_pg_table(table).sql


def table_identifier(table: Any) -> sql.Identifier:
    """A psycopg Identifier for ``table`` / ``schema.table`` (:mod:`vecext.catalog.names`)."""
    return sql.Identifier(*parse_pg_table(table).parts)
