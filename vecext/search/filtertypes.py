"""Filter values checked against the column's type before any SQL runs.

A value the database would refuse (``"abc"`` for an integer column, ``5`` for a text
column, ``"maybe"`` for a boolean) becomes a :class:`~vecext.search.filters.FilterError`
naming the column, its type and the value, instead of a driver error from inside the
statement. Types are read the way both databases print them (``format_type`` in
PostgreSQL, ``data_type`` in DuckDB); a type vecext does not know is not checked.
"""

from __future__ import annotations

import datetime as dt
import decimal
import numbers
import re
from collections.abc import Mapping
from typing import Any

from vecext.search.filters import And, Eq, FilterError, In, Predicate, Range, _is_number

_FAMILIES = (
    ("bool", re.compile(r"^(boolean|bool)$")),
    (
        "int",
        re.compile(
            r"^(smallint|integer|int|int[248]|bigint|tinyint|hugeint|utinyint|usmallint|"
            r"uinteger|ubigint|uhugeint|serial|bigserial)$"
        ),
    ),
    (
        "number",
        re.compile(r"^(real|double precision|double|float[48]?|numeric|decimal)(\(.*\))?$"),
    ),
    (
        "text",
        re.compile(r"^(text|varchar|string|character varying|character|char|bpchar)(\(.*\))?$"),
    ),
    ("time", re.compile(r"^(date|timestamp|time)\b")),
)


def family(type_text: str) -> str | None:
    """``bool``, ``int``, ``number``, ``text``, ``time`` or ``None`` (not checked)."""
    t = type_text.strip().lower()
    for name, pattern in _FAMILIES:
        if pattern.match(t):
            return name
    return None


def _int_text(v: str) -> bool:
    try:
        int(v.strip())
    except ValueError:
        return False
    return True


def _ok(fam: str, v: Any) -> bool:
    if v is None:
        return True
    if fam == "bool":
        return isinstance(v, bool) or (
            isinstance(v, str) and v.strip().lower() in ("true", "false", "t", "f", "1", "0")
        )
    if fam == "int":
        if isinstance(v, bool):
            return False
        if isinstance(v, (numbers.Real, decimal.Decimal)):
            return True  # SQL compares an integer column with any number
        # a string is cast to the column's type: it must spell an integer
        return isinstance(v, str) and _int_text(v)
    if fam == "number":
        if isinstance(v, bool):
            return False
        return isinstance(v, (numbers.Real, decimal.Decimal)) or (
            isinstance(v, str) and _is_number(v)
        )
    if fam == "text":
        return isinstance(v, str)
    if fam == "time":
        return isinstance(v, (str, dt.date, dt.datetime, dt.time))
    return True


def check_values(pred: Predicate | None, columns: Mapping[str, str], table: str) -> None:
    """Raise :class:`FilterError` when a value of ``pred`` cannot be compared with its column."""
    if pred is None:
        return
    if isinstance(pred, And):
        for p in pred.parts:
            check_values(p, columns, table)
        return
    if not isinstance(pred, (Eq, In, Range)) or pred.column not in columns:
        return
    typ = columns[pred.column]
    fam = family(typ)
    if fam is None:
        return
    if isinstance(pred, Eq):
        values: tuple[Any, ...] = (pred.value,)
    elif isinstance(pred, In):
        values = pred.values
    else:
        values = (pred.lo, pred.hi)
    for v in values:
        if not _ok(fam, v):
            raise FilterError(
                f"filter value {v!r} ({type(v).__name__}) does not fit column "
                f"{table}.{pred.column} of type {typ}: "
                + {
                    "bool": "pass True/False",
                    "int": "pass an integer",
                    "number": "pass a number",
                    "text": "pass a string (str)",
                    "time": "pass a date/datetime or an ISO string",
                }[fam]
            )
