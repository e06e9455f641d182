"""Compile filter predicates to DuckDB SQL: quoted identifiers, ``?`` parameters."""

from __future__ import annotations

from typing import Any

import duckdb

from vecext.search.filters import And, Eq, FilterError, In, Predicate, Range, SqlExpr, Within

#: DuckDB's array distance function of each metric
_DISTANCES = {
    "l2": "array_distance",
    "ip": "array_negative_inner_product",
    "cosine": "array_cosine_distance",
}


def ident(name: str) -> str:
    """A DuckDB identifier, double-quoted with embedded quotes doubled."""
    if "\x00" in name:
        raise FilterError("identifiers cannot contain NUL characters")
    return '"' + name.replace('"', '""') + '"'


def table_ident(table: str) -> str:
    parts = table.split(".")
    if len(parts) > 3:
        raise FilterError(f"table name {table!r} has too many dots")
    return ".".join(ident(p) for p in parts)


def compile_filter(pred: Predicate | None, alias: str | None = None) -> tuple[str, list[Any]]:
    """``(WHERE-clause body, params)`` with ``?`` placeholders; ``TRUE`` without a filter."""
    if pred is None:
        return "TRUE", []

    def col(name: str) -> str:
        return f"{ident(alias)}.{ident(name)}" if alias else ident(name)

    if isinstance(pred, And):
        parts, params = [], []
        for p in pred.parts:
            s, ps = compile_filter(p, alias)
            parts.append(f"({s})")
            params += ps
        return " AND ".join(parts), params
    if isinstance(pred, Eq):
        return f"{col(pred.column)} = ?", [pred.value]
    if isinstance(pred, In):
        marks = ", ".join("?" for _ in pred.values)
        return f"{col(pred.column)} IN ({marks})", list(pred.values)
    if isinstance(pred, Range):
        parts, params = [], []
        if pred.lo is not None:
            parts.append(f"{col(pred.column)} >= ?")
            params.append(pred.lo)
        if pred.hi is not None:
            parts.append(f"{col(pred.column)} {'<=' if pred.inclusive else '<'} ?")
            params.append(pred.hi)
        return " AND ".join(parts), params
    if isinstance(pred, Within):
        typ = f"{'DOUBLE' if pred.column_type == 'DOUBLE' else 'FLOAT'}[{int(pred.dim)}]"
        fn = _DISTANCES[pred.metric]
        return f"{fn}({col(pred.column)}, ?::{typ}) <= ?", [
            [float(x) for x in pred.q],
            float(pred.bound),
        ]
    if isinstance(pred, SqlExpr):
        return _compile_sqlalchemy(pred.expr)
    raise FilterError(f"cannot compile filter {pred!r}")


def _compile_sqlalchemy(expr: Any) -> tuple[str, list[Any]]:
    from sqlalchemy.engine import default

    dialect = default.DefaultDialect(paramstyle="qmark")
    compiled = expr.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = [compiled.params[name] for name in compiled.positiontup]
    return compiled.string, params


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """Column name -> type of ``table``; :class:`FilterError` if it does not exist."""
    parts = table.split(".")
    name = parts[-1]
    schema = parts[-2] if len(parts) >= 2 else None
    q = "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ?"
    params: list[Any] = [name]
    if schema:
        q += " AND schema_name = ?"
        params.append(schema)
    else:
        q += " AND schema_name = current_schema()"
    q += " ORDER BY column_index"
    rows = con.execute(q, params).fetchall()
    if not rows:
        raise FilterError(f"table {table!r} does not exist")
    return {c: t for c, t in rows}
