"""Structured filter predicates, compiled to SQL with bound parameters.

A filter is given as a mapping (``{"pos": "n", "lexname": ["a", "b"],
"year": (2000, 2010)}``: equality, IN, inclusive range; ``{"tag": None}`` means
``tag IS NULL`` and ``None`` in a list adds ``OR tag IS NULL``), as predicate objects
(:class:`Eq`, :class:`In`, :class:`Range`, :class:`And`), as ``COLUMN=VALUE``
strings (the CLI), or as a SQLAlchemy boolean expression. Whatever the form,
column names become quoted identifiers checked against the table, and values
become bound parameters: user text is never formatted into SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from vecext.errors import VecextError


class FilterError(VecextError, ValueError):
    """A filter names a column that does not exist, or has an unusable value."""


@dataclass(frozen=True)
class Eq:
    column: str
    value: Any


@dataclass(frozen=True)
class In:
    column: str
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if len(self.values) == 0:
            raise FilterError(f"IN filter on {self.column!r} has no values")


@dataclass(frozen=True)
class Range:
    """``lo <= column <= hi`` (either bound may be ``None``); ``inclusive=False`` makes hi exclusive."""

    column: str
    lo: Any = None
    hi: Any = None
    inclusive: bool = True

    def __post_init__(self) -> None:
        if self.lo is None and self.hi is None:
            raise FilterError(f"range filter on {self.column!r} has no bounds")


@dataclass(frozen=True)
class And:
    parts: tuple[Predicate, ...]


@dataclass(frozen=True)
class Within:
    """``distance(column, q) <= bound`` by ``metric``: a relevance threshold pushed into a
    scan. ``column_type`` is the column's type family (``vector``/``halfvec`` in
    PostgreSQL, ``FLOAT``/``DOUBLE`` in DuckDB) and ``dim`` its dimension, so that the
    bound query vector is cast to the column's own type."""

    column: str
    q: tuple[float, ...]
    bound: float
    column_type: str
    dim: int
    metric: str = "cosine"


@dataclass(frozen=True)
class SqlExpr:
    """A SQLAlchemy boolean expression (compiled by the backend with bound parameters)."""

    expr: Any


Predicate = Union[Eq, In, Range, And, Within, SqlExpr]


def parse_filter(spec: Any) -> Predicate | None:
    """Normalise any accepted filter form to a :data:`Predicate` (``None``: no filter)."""
    if spec is None:
        return None
    if isinstance(spec, (Eq, In, Range, And, Within, SqlExpr)):
        return spec
    if isinstance(spec, Mapping):
        return _and([_from_item(str(k), v) for k, v in spec.items()])
    if isinstance(spec, str):
        return parse_cli_filters([spec])
    if _is_sqlalchemy(spec):
        return SqlExpr(spec)
    if isinstance(spec, Iterable):
        return _and([parse_filter(s) for s in spec])  # type: ignore[misc]
    raise FilterError(
        f"unsupported filter {spec!r}: use a dict, predicates or a SQLAlchemy expression"
    )


def _is_sqlalchemy(obj: Any) -> bool:
    try:
        from sqlalchemy.sql.elements import ColumnElement
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, ColumnElement)


def _from_item(column: str, value: Any) -> Predicate:
    if isinstance(value, tuple) and len(value) == 2:
        return Range(column, value[0], value[1])
    if isinstance(value, (list, set, frozenset)):
        return In(column, tuple(value))
    return Eq(column, value)


def _and(parts: Sequence[Predicate | None]) -> Predicate | None:
    flat: list[Predicate] = []
    for p in parts:
        if p is None:
            continue
        flat.extend(p.parts if isinstance(p, And) else [p])
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def combine(*filters: Any) -> Predicate | None:
    """AND several filters together (``where()`` called twice ANDs)."""
    return _and([parse_filter(f) for f in filters])


def parse_cli_filters(items: Sequence[str]) -> Predicate | None:
    """``["pos=n", "lexname=noun.animal"]`` -> equality predicates (values stay strings).

    ``COLUMN=A|B`` means IN; ``COLUMN=LO..HI`` an inclusive range of numbers.
    """
    preds: list[Predicate] = []
    for item in items:
        if "=" not in item:
            raise FilterError(f"filter {item!r} must look like COLUMN=VALUE")
        column, value = item.split("=", 1)
        column = column.strip()
        if not column:
            raise FilterError(f"filter {item!r} names no column")
        if "|" in value:
            preds.append(In(column, tuple(value.split("|"))))
        elif ".." in value and all(_is_number(p) for p in value.split("..", 1)):
            lo, hi = value.split("..", 1)
            preds.append(Range(column, _number(lo), _number(hi)))
        else:
            preds.append(Eq(column, value))
    return _and(preds)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number(text: str) -> int | float:
    f = float(text)
    return int(f) if f.is_integer() and "." not in text else f


def columns_of(pred: Predicate | None) -> set[str]:
    """Column names a structured predicate refers to (SQLAlchemy ones: their column keys)."""
    if pred is None:
        return set()
    if isinstance(pred, And):
        out: set[str] = set()
        for p in pred.parts:
            out |= columns_of(p)
        return out
    if isinstance(pred, SqlExpr):
        from sqlalchemy.sql import visitors

        return {
            c.name
            for c in visitors.iterate(pred.expr)
            if getattr(c, "__visit_name__", "") == "column"
        }
    return {pred.column}


def only_columns(pred: Predicate | None, available: Iterable[str]) -> bool:
    """Whether ``pred`` is a structured filter (no SQLAlchemy expression, no distance
    bound) on columns of ``available`` only: what a code store that mirrors those
    columns can evaluate without the user's table."""
    if pred is None:
        return False
    have = set(available)

    def ok(p: Predicate) -> bool:
        if isinstance(p, And):
            return all(ok(q) for q in p.parts)
        return isinstance(p, (Eq, In, Range)) and p.column in have

    return ok(pred)


def check_columns(pred: Predicate | None, available: Iterable[str], table: str) -> None:
    """Raise :class:`FilterError` naming any filter column the table does not have."""
    have = set(available)
    missing = sorted(columns_of(pred) - have)
    if missing:
        raise FilterError(
            f"filter column(s) {', '.join(map(repr, missing))} do not exist in table {table}; "
            f"its columns are: {', '.join(sorted(have))}"
        )


def matches(pred: Predicate | None, row: Mapping[str, Any]) -> bool:
    """Evaluate a structured predicate on one row in Python (for ground truth in tests/bench)."""
    if pred is None:
        return True
    if isinstance(pred, And):
        return all(matches(p, row) for p in pred.parts)
    if isinstance(pred, Eq):
        if pred.value is None:
            return row[pred.column] is None
        return bool(row[pred.column] == pred.value)
    if isinstance(pred, In):
        return row[pred.column] in pred.values
    if isinstance(pred, Range):
        v = row[pred.column]
        if pred.lo is not None and v < pred.lo:
            return False
        if pred.hi is not None:
            return bool(v <= pred.hi) if pred.inclusive else bool(v < pred.hi)
        return True
    raise FilterError(f"{describe(pred)} cannot be evaluated in Python")


def mask(pred: Predicate | None, columns: Mapping[str, Any]) -> Any:
    """Vectorised :func:`matches` over numpy/pyarrow columns: a bool numpy array."""
    import numpy as np

    if pred is None:
        n = len(next(iter(columns.values())))
        return np.ones(n, dtype=bool)
    if isinstance(pred, And):
        out = mask(pred.parts[0], columns)
        for p in pred.parts[1:]:
            out &= mask(p, columns)
        return out
    if isinstance(pred, (SqlExpr, Within)):
        raise FilterError(f"{describe(pred)} cannot be evaluated from attribute columns")
    col = np.asarray(columns[pred.column])
    if isinstance(pred, Eq):
        return col == pred.value
    if isinstance(pred, In):
        return np.isin(
            col, np.asarray(pred.values, dtype=col.dtype if col.dtype.kind != "O" else object)
        )
    out = np.ones(col.shape[0], dtype=bool)
    if pred.lo is not None:
        out &= col >= pred.lo
    if pred.hi is not None:
        out &= (col <= pred.hi) if pred.inclusive else (col < pred.hi)
    return out


def describe(pred: Predicate | None) -> str:
    """Human-readable form for explain() and benchmark output (values shown with repr)."""
    if pred is None:
        return "none"
    if isinstance(pred, And):
        return " AND ".join(describe(p) for p in pred.parts)
    if isinstance(pred, Eq):
        return f"{pred.column} IS NULL" if pred.value is None else f"{pred.column} = {pred.value!r}"
    if isinstance(pred, In):
        return f"{pred.column} IN ({', '.join(map(repr, pred.values))})"
    if isinstance(pred, Range):
        lo = "" if pred.lo is None else f"{pred.lo!r} <= "
        hi = "" if pred.hi is None else (" <= " if pred.inclusive else " < ") + repr(pred.hi)
        return f"{lo}{pred.column}{hi}"
    if isinstance(pred, Within):
        return f"{pred.metric} distance({pred.column}, q) <= {pred.bound:.6g}"
    return str(pred.expr)
