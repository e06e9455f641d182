"""Filters for the benchmark: typed to the table's columns, evaluated in numpy, compiled to SQL.

The CLI gives ``COLUMN=VALUE`` strings; :func:`coerce` turns the values into the
column's type (``category=3`` on an integer column compares as ``3``, not
``'3'``) so that the numpy ground truth and the SQL agree. Identifiers are
quoted, values are bound parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from psycopg import sql

from vecext.search.filters import And, Eq, In, Predicate, Range, SqlExpr, check_columns, mask
from vecext.tools.bench.errors import BenchError


def _caster(typ: pa.DataType, column: str) -> Any:
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    if pa.types.is_integer(typ):
        return int
    if pa.types.is_floating(typ):
        return float
    if pa.types.is_boolean(typ):

        def to_bool(v: Any) -> bool:
            if isinstance(v, bool):
                return v
            text = str(v).strip().lower()
            if text in ("true", "t", "1", "yes"):
                return True
            if text in ("false", "f", "0", "no"):
                return False
            raise BenchError(f"filter value {v!r} is not a boolean (column {column!r})")

        return to_bool
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return str
    raise BenchError(f"column {column!r} has type {typ}, which the benchmark cannot filter on")


def coerce(pred: Predicate | None, attrs: pa.Table) -> Predicate | None:
    """``pred`` with every value converted to its column's type (checked to exist)."""
    if pred is None:
        return None
    check_columns(pred, attrs.column_names, "docs.parquet")
    if isinstance(pred, And):
        return And(tuple(coerce(p, attrs) for p in pred.parts))  # type: ignore[misc]
    if isinstance(pred, SqlExpr):
        raise BenchError("the benchmark takes COLUMN=VALUE filters, not SQLAlchemy expressions")
    cast = _caster(attrs.schema.field(pred.column).type, pred.column)

    def conv(v: Any) -> Any:
        if v is None:
            return None
        try:
            return cast(v)
        except ValueError as exc:
            raise BenchError(
                f"filter value {v!r} does not fit column {pred.column!r} "
                f"({attrs.schema.field(pred.column).type})"
            ) from exc

    if isinstance(pred, Eq):
        return Eq(pred.column, conv(pred.value))
    if isinstance(pred, In):
        return In(pred.column, tuple(conv(v) for v in pred.values))
    return Range(pred.column, conv(pred.lo), conv(pred.hi), pred.inclusive)


def filter_mask(pred: Predicate | None, attrs: pa.Table) -> np.ndarray:
    """Bool ``(n,)``: which documents match ``pred`` (all when ``None``)."""
    if pred is None:
        return np.ones(attrs.num_rows, dtype=bool)
    cols = _columns(pred)
    arrays = {}
    for c in cols:
        col = attrs.column(c)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        arr = col.to_numpy(zero_copy_only=False)
        if col.null_count:
            arr = arr.astype(object)  # None never equals a value, like SQL NULL
        arrays[c] = arr
    return np.asarray(mask(pred, arrays), dtype=bool)


def _columns(pred: Predicate) -> list[str]:
    if isinstance(pred, And):
        out: list[str] = []
        for p in pred.parts:
            out += _columns(p)
        return out
    return [pred.column]  # type: ignore[union-attr]


# --------------------------------------------------------------------------- SQL


def pg_condition(pred: Predicate) -> tuple[sql.Composable, list[Any]]:
    """A boolean SQL expression with ``%s`` placeholders and its parameters (the search's
    own compiler, :func:`vecext.postgres.filters.compile_filter`)."""
    from vecext.postgres.filters import compile_filter

    return compile_filter(pred)


def pg_where(pred: Predicate | None) -> tuple[sql.Composable, list[Any]]:
    """``WHERE ...`` (or nothing) and its parameters."""
    if pred is None:
        return sql.SQL(""), []
    cond, params = pg_condition(pred)
    return sql.SQL("WHERE ") + cond, params


def duck_ident(name: str) -> str:
    """A DuckDB quoted identifier (:func:`vecext.duckdb.filters.ident`)."""
    from vecext.duckdb.filters import ident

    return ident(name)


def duck_condition(pred: Predicate) -> tuple[str, list[Any]]:
    """A boolean DuckDB expression with ``?`` placeholders and its parameters
    (:func:`vecext.duckdb.filters.compile_filter`)."""
    from vecext.duckdb.filters import compile_filter

    return compile_filter(pred)


def duck_where(pred: Predicate | None) -> tuple[str, list[Any]]:
    if pred is None:
        return "", []
    cond, params = duck_condition(pred)
    return "WHERE " + cond, params
