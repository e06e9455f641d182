"""Compile filter predicates to PostgreSQL: quoted identifiers, bound parameters."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg import sql

from vecext.search.filters import And, Eq, FilterError, In, Predicate, Range, SqlExpr, Within

#: pgvector's distance operator of each metric
_OPS = {"l2": "<->", "ip": "<#>", "cosine": "<=>"}


def compile_filter(
    pred: Predicate | None, alias: str | None = None
) -> tuple[sql.Composable, list[Any]]:
    """``(WHERE-clause body, params)``; ``TRUE`` when there is no filter.

    Values are ``%s`` placeholders bound by psycopg; SQLAlchemy expressions are
    compiled by SQLAlchemy's PostgreSQL dialect with their values bound too.
    """
    if pred is None:
        return sql.SQL("TRUE"), []

    def col(name: str) -> sql.Composable:
        return sql.Identifier(alias, name) if alias else sql.Identifier(name)

    if isinstance(pred, And):
        parts, params = [], []
        for p in pred.parts:
            s, ps = compile_filter(p, alias)
            parts.append(sql.SQL("({})").format(s))
            params += ps
        return sql.SQL(" AND ").join(parts), params
    if isinstance(pred, Eq):
        return sql.SQL("{} = %s").format(col(pred.column)), [pred.value]
    if isinstance(pred, In):
        return sql.SQL("{} = ANY(%s)").format(col(pred.column)), [list(pred.values)]
    if isinstance(pred, Range):
        parts, params = [], []
        if pred.lo is not None:
            parts.append(sql.SQL("{} >= %s").format(col(pred.column)))
            params.append(pred.lo)
        if pred.hi is not None:
            op = sql.SQL("<=") if pred.inclusive else sql.SQL("<")
            parts.append(sql.SQL("{} {} %s").format(col(pred.column), op))
            params.append(pred.hi)
        return sql.SQL(" AND ").join(parts), params
    if isinstance(pred, Within):
        typ = sql.SQL("{}({})").format(
            sql.SQL("halfvec" if pred.column_type == "halfvec" else "vector"),
            sql.Literal(int(pred.dim)),
        )
        text = "[" + ",".join(repr(float(x)) for x in pred.q) + "]"
        return sql.SQL("{} {} %s::{} <= %s").format(
            col(pred.column), sql.SQL(_OPS[pred.metric]), typ
        ), [text, float(pred.bound)]
    if isinstance(pred, SqlExpr):
        return _compile_sqlalchemy(pred.expr)
    raise FilterError(f"cannot compile filter {pred!r}")


def _compile_sqlalchemy(expr: Any) -> tuple[sql.Composable, list[Any]]:
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.psycopg.dialect(paramstyle="format")  # type: ignore[attr-defined]
    compiled = expr.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = [compiled.params[name] for name in compiled.positiontup]
    # the SQL text is SQLAlchemy's own rendering of the expression (identifiers quoted
    # by its dialect); user values are in ``params`` only
    return sql.SQL(compiled.string), params  # type: ignore[arg-type]


def table_columns(conn: psycopg.Connection, table: str) -> dict[str, str]:
    """Column name -> type of ``table`` (``schema.table`` or a name on the search path)."""
    row = conn.execute("SELECT to_regclass(%s)::oid", [quote_table(table)]).fetchone()
    if row is None or row[0] is None:
        raise FilterError(f"table {table!r} does not exist")
    rows = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [row[0]],
    ).fetchall()
    return {name: typ for name, typ in rows}


def quote_table(table: str) -> str:
    """A ``to_regclass``-ready text for a possibly schema-qualified table name.

    ``"app.items"`` means schema app, table items; a name with a dot inside it must
    be passed already quoted (``'"my.table"'``).
    """
    if table.startswith('"'):
        return table
    parts = table.split(".")
    if len(parts) > 2:
        raise FilterError(f"table name {table!r} has too many dots")
    return ".".join(
        json.dumps(p) for p in parts
    )  # JSON string quoting == SQL identifier quoting for "


def table_identifier(table: str) -> sql.Composable:
    """A psycopg Identifier for ``table`` / ``schema.table``."""
    if table.startswith('"'):
        raise FilterError("pass quoted table names unquoted, e.g. 'schema.table'")
    parts = table.split(".")
    if len(parts) > 2:
        raise FilterError(f"table name {table!r} has too many dots")
    return sql.Identifier(*parts)
