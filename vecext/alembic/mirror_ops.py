"""Alembic operations for filter columns mirrored into a code store (catalog 0.6.0):
``op.mirror_columns`` and its reverse ``op.unmirror_columns`` (implemented in
:mod:`vecext.alembic.mirrors`; see :mod:`vecext.postgres.mirrors`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from alembic.operations import MigrateOperation, Operations

from vecext.alembic.base import MigrationError


def check_columns(what: str, columns: str | Iterable[str] | None, *, empty: bool) -> list[str]:
    """``columns`` as a list of column names (one name alone is a list of one); a
    :class:`MigrationError` naming ``what`` for an empty list (unless ``empty``), a
    name that is not a non-empty string, or one named twice."""
    if columns is None:
        names: list[Any] = []
    elif isinstance(columns, str):
        names = [columns]
    else:
        names = list(columns)
    if not names and not empty:
        raise MigrationError(f"{what}: name at least one column")
    bad = [c for c in names if not isinstance(c, str) or not c]
    if bad:
        raise MigrationError(f"{what}: column names must be non-empty strings, got {bad[0]!r}")
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise MigrationError(f"{what}: {', '.join(twice)} named twice")
    return names


class _MirrorOp(MigrateOperation):
    """What both operations record: the compressed column and the mirrored columns."""

    name = ""

    def __init__(
        self,
        table: str,
        code_column: str,
        columns: str | Iterable[str],
        *,
        schema: str | None = None,
        batch_size: int = 10_000,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise MigrationError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.table = table
        self.code_column = code_column
        self.columns = check_columns(
            f"{self.name}({table!r}, {code_column!r})", columns, empty=False
        )
        self.schema = schema
        self.batch_size = batch_size

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return (self.name, self.schema, self.table, self.code_column, tuple(self.columns))


@Operations.register_operation("mirror_columns")
class MirrorColumnsOp(_MirrorOp):
    """Mirror filter columns of a table into the code store of one of its compressed
    columns (layout ``store``): a search filtering on them then scans the store alone."""

    name = "mirror_columns"

    @classmethod
    def mirror_columns(
        cls,
        operations: Operations,
        table: str,
        code_column: str,
        columns: str | Iterable[str],
        **kwargs: Any,
    ) -> Any:
        """Mirror ``columns`` of ``table`` into the code store of ``code_column``.

        The store gets a column and a btree per mirrored column, and its trigger writes
        their values with the codes; the rows already there are filled ``batch_size``
        at a time in committed batches, in Alembic's ``autocommit_block()`` (the
        migration's work so far is committed first). Columns mirrored already are left
        as they are, so running the upgrade again after an interruption resumes. The
        user's table is only read. Needs catalog 0.6.0. Keyword arguments:
        ``schema=``, ``batch_size=``. Returns every column the store mirrors afterwards.
        """
        return operations.invoke(cls(table, code_column, columns, **kwargs))

    def reverse(self) -> UnmirrorColumnsOp:
        return UnmirrorColumnsOp(
            self.table,
            self.code_column,
            self.columns,
            schema=self.schema,
            batch_size=self.batch_size,
        )


@Operations.register_operation("unmirror_columns")
class UnmirrorColumnsOp(_MirrorOp):
    """Stop mirroring columns into a code store: the store's columns and btrees for them
    go, and searches filtering on them join the table again."""

    name = "unmirror_columns"

    @classmethod
    def unmirror_columns(
        cls,
        operations: Operations,
        table: str,
        code_column: str,
        columns: str | Iterable[str],
        **kwargs: Any,
    ) -> Any:
        """Stop mirroring ``columns`` of ``table`` into the code store of ``code_column``
        (in the migration's transaction). Run it before dropping a mirrored column of
        the table: the store's trigger watches it. Refused for a column the store does
        not mirror. Keyword arguments: ``schema=``, ``batch_size=`` (what the reverse,
        ``mirror_columns``, fills with). Returns the columns still mirrored."""
        return operations.invoke(cls(table, code_column, columns, **kwargs))

    def reverse(self) -> MirrorColumnsOp:
        return MirrorColumnsOp(
            self.table,
            self.code_column,
            self.columns,
            schema=self.schema,
            batch_size=self.batch_size,
        )


__all__ = ["MirrorColumnsOp", "UnmirrorColumnsOp"]
