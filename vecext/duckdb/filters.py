"""Compile filter predicates to DuckDB SQL: quoted identifiers, ``?`` parameters.

The compiler is :func:`vecext.search.sqlfilter.compile_filter`; this module is its
DuckDB dialect (:class:`DuckDBDialect`, SQL text) and the adapter's identifier quoting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from vecext.duckdb._sql import resolve_table
from vecext.errors import CatalogError
from vecext.search import sqlfilter
from vecext.search.filters import FilterError, Predicate, Within

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


class DuckDBDialect:
    """The DuckDB side of :class:`vecext.search.sqlfilter.Dialect`: SQL text with ``?``
    placeholders (DuckDB's parser keeps a ``?`` inside a quoted identifier a name)."""

    @property
    def true(self) -> str:
        return "TRUE"

    def column(self, name: str, alias: str | None) -> str:
        return f"{ident(alias)}.{ident(name)}" if alias else ident(name)

    def compose(self, template: str, *parts: str) -> str:
        # the template is the compiler's own text; the parts are substituted, not parsed
        return template.format(*parts)

    def join(self, sep: str, parts: Sequence[str]) -> str:
        return sep.join(parts)

    def any_of(self, column: str, values: tuple[Any, ...]) -> tuple[str, list[Any]]:
        marks = ", ".join("?" for _ in values)
        return f"{column} IN ({marks})", list(values)

    def within(self, column: str, pred: Within) -> tuple[str, list[Any]]:
        typ = f"{'DOUBLE' if pred.column_type == 'DOUBLE' else 'FLOAT'}[{int(pred.dim)}]"
        fn = _DISTANCES[pred.metric]
        return f"{fn}({column}, ?::{typ}) <= ?", [[float(x) for x in pred.q], float(pred.bound)]

    def sqlalchemy(self, expr: Any) -> tuple[str, list[Any]]:
        from sqlalchemy.engine import default

        dialect = default.DefaultDialect(paramstyle="qmark")
        compiled = expr.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        params = [compiled.params[name] for name in compiled.positiontup]
        return compiled.string, params


#: The dialect every DuckDB filter is compiled with.
DIALECT = DuckDBDialect()


def compile_filter(pred: Predicate | None, alias: str | None = None) -> tuple[str, list[Any]]:
    """``(WHERE-clause body, params)`` with ``?`` placeholders; ``TRUE`` without a filter."""
    return sqlfilter.compile_filter(pred, DIALECT, alias)


def table_columns(con: duckdb.DuckDBPyConnection, table: Any) -> dict[str, str]:
    """Column name -> type of ``table`` (:mod:`vecext.catalog.names`); :class:`FilterError`
    if it does not exist."""
    try:
        t = resolve_table(con, table)
    except CatalogError as exc:
        raise FilterError(str(exc)) from None
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = ? "
        "AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [t.database, t.schema, t.name],
    ).fetchall()
    return {c: t for c, t in rows}
