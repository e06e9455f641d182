"""One compiler from filter predicates to SQL, over a small per-database dialect.

:func:`compile_filter` walks a predicate (:class:`~vecext.search.filters.Eq`,
``In``, ``Range``, ``And``, ``Within``, ``SqlExpr``) and writes the WHERE-clause
body with every value as a bound parameter. What differs between databases is
asked of a :class:`Dialect`: how an identifier is quoted, what a placeholder looks
like, how a value list is matched, the distance expression of ``Within``, and how
a SQLAlchemy expression is compiled. The compiler never sees user text as SQL:
the templates it hands the dialect are its own constant text, identifiers come
back quoted by the dialect, values go to the parameter list.

The PostgreSQL dialect (:mod:`vecext.postgres.filters`) builds
``psycopg.sql.Composable`` objects, the DuckDB one (:mod:`vecext.duckdb.filters`)
text with ``?`` placeholders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from vecext.search.filters import And, Eq, FilterError, In, Predicate, Range, SqlExpr, Within

__all__ = ["PLACEHOLDER", "Dialect", "compile_filter"]

#: The placeholder in the compiler's templates; each dialect writes its own.
PLACEHOLDER = "?"

F = TypeVar("F")


class Dialect(Protocol[F]):
    """What a database's SQL does differently for filters; ``F`` is its fragment type.

    Templates passed to :meth:`compose` are the compiler's constant SQL text: ``{}``
    stands for a fragment, :data:`PLACEHOLDER` for one bound value.
    """

    @property
    def true(self) -> F:
        """The body of a WHERE clause without a filter."""
        ...

    def column(self, name: str, alias: str | None) -> F:
        """``name`` (of table ``alias``, when given) as a quoted identifier."""
        ...

    def compose(self, template: str, *parts: F) -> F:
        """``template`` with its ``{}`` slots filled by ``parts`` and its placeholders
        written in the dialect's style."""
        ...

    def join(self, sep: str, parts: Sequence[F]) -> F:
        """``parts`` separated by the constant text ``sep``."""
        ...

    def any_of(self, column: F, values: tuple[Any, ...]) -> tuple[F, list[Any]]:
        """``column`` equal to one of ``values``, and the parameters."""
        ...

    def within(self, column: F, pred: Within) -> tuple[F, list[Any]]:
        """``distance(column, pred.q) <= pred.bound`` by ``pred.metric``, the query
        vector cast to the column's own type, and the parameters."""
        ...

    def sqlalchemy(self, expr: Any) -> tuple[F, list[Any]]:
        """A SQLAlchemy boolean expression, compiled with its values bound."""
        ...


def compile_filter(
    pred: Predicate | None, dialect: Dialect[F], alias: str | None = None
) -> tuple[F, list[Any]]:
    """``(WHERE-clause body, parameters)`` of ``pred`` in ``dialect``; the dialect's
    ``TRUE`` when there is no filter.

    ``alias`` qualifies every column of a structured predicate (``alias.column``).
    Parameters are in the order of the placeholders.
    """
    if pred is None:
        return dialect.true, []
    if isinstance(pred, And):
        parts, params = [], []
        for p in pred.parts:
            s, ps = compile_filter(p, dialect, alias)
            parts.append(dialect.compose("({})", s))
            params += ps
        return dialect.join(" AND ", parts), params
    if isinstance(pred, SqlExpr):
        return dialect.sqlalchemy(pred.expr)
    if not isinstance(pred, (Eq, In, Range, Within)):
        raise FilterError(f"cannot compile filter {pred!r}")
    col = dialect.column(pred.column, alias)
    if isinstance(pred, Eq):
        if pred.value is None:  # {"tag": None} means IS NULL (``= NULL`` matches nothing)
            return dialect.compose("{} IS NULL", col), []
        return dialect.compose(f"{{}} = {PLACEHOLDER}", col), [pred.value]
    if isinstance(pred, In):
        values = tuple(v for v in pred.values if v is not None)
        if len(values) < len(pred.values):  # [None, "a"]: IS NULL OR = ANY
            if not values:
                return dialect.compose("{} IS NULL", col), []
            s, ps = dialect.any_of(col, values)
            return dialect.compose("({} IS NULL OR {})", col, s), ps
        return dialect.any_of(col, values)
    if isinstance(pred, Within):
        return dialect.within(col, pred)
    parts, params = [], []
    if pred.lo is not None:
        parts.append(dialect.compose(f"{{}} >= {PLACEHOLDER}", col))
        params.append(pred.lo)
    if pred.hi is not None:
        op = "<=" if pred.inclusive else "<"
        parts.append(dialect.compose(f"{{}} {op} {PLACEHOLDER}", col))
        params.append(pred.hi)
    return dialect.join(" AND ", parts), params
