"""One spelling of table names for every public function, on both databases.

A table is ``name``, ``schema.name`` or (DuckDB) ``database.schema.name``. Each part
is either written as it is stored (``MyItems``, ``café``, ``it"s``, ``a\\b``) or
SQL-quoted (``"MyItems"``, ``"my schema"."it""s"``; quoting is needed only for a part
that contains a dot or starts with a double quote). A ``psycopg.sql.Identifier`` or a
tuple of parts is taken part by part, as is. vecext always quotes the parts itself
(values never reach SQL text unquoted).

An unquoted part is looked up as written first and then, as SQL would fold it, in
lower case (PostgreSQL); DuckDB matches names case-insensitively anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vecext.errors import CatalogError

#: PostgreSQL's NAMEDATALEN - 1: longer names are truncated by the server, so refused here
PG_MAX_BYTES = 63


class IdentifierError(CatalogError, ValueError):
    """A table name that vecext cannot read (names the name and what is wrong)."""


def quote_ident(part: str) -> str:
    """``part`` as a SQL identifier: double-quoted, embedded quotes doubled."""
    if not isinstance(part, str) or not part or "\x00" in part:
        raise IdentifierError(f"invalid SQL identifier {part!r}")
    return '"' + part.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableName:
    """A parsed table name: its parts as stored, and which were written unquoted."""

    parts: tuple[str, ...]
    unquoted: tuple[bool, ...]

    @property
    def name(self) -> str:
        return self.parts[-1]

    @property
    def schema(self) -> str | None:
        return self.parts[-2] if len(self.parts) >= 2 else None

    @property
    def database(self) -> str | None:
        return self.parts[-3] if len(self.parts) >= 3 else None

    @property
    def sql(self) -> str:
        """Every part quoted: a text ``to_regclass`` or DuckDB parses exactly."""
        return ".".join(quote_ident(p) for p in self.parts)

    def candidates(self) -> list[tuple[str, ...]]:
        """The parts as written, then (if different) with unquoted parts in lower case."""
        folded = tuple(
            p.lower() if u else p for p, u in zip(self.parts, self.unquoted, strict=True)
        )
        return [self.parts] if folded == self.parts else [self.parts, folded]

    def __str__(self) -> str:
        return ".".join(self.parts)


def _split(text: str) -> tuple[list[str], list[bool]]:
    parts: list[str] = []
    unquoted: list[bool] = []
    i, n = 0, len(text)
    while True:
        if i < n and text[i] == '"':
            j, buf = i + 1, []
            while True:
                k = text.find('"', j)
                if k < 0:
                    raise IdentifierError(f"table name {text!r} has an unclosed double quote")
                buf.append(text[j:k])
                if k + 1 < n and text[k + 1] == '"':
                    buf.append('"')
                    j = k + 2
                    continue
                break
            parts.append("".join(buf))
            unquoted.append(False)
            i = k + 1
            if i < n and text[i] != ".":
                raise IdentifierError(
                    f"table name {text!r}: expected '.' after the quoted part {parts[-1]!r}"
                )
        else:
            k = text.find(".", i)
            k = n if k < 0 else k
            parts.append(text[i:k])
            unquoted.append(True)
            i = k
        if i >= n:
            return parts, unquoted
        i += 1  # the dot
        if i >= n:
            raise IdentifierError(f"table name {text!r} ends with a dot")


def _identifier_parts(obj: Any) -> tuple[str, ...] | None:
    """The strings of a ``psycopg.sql.Identifier`` (duck-typed: the core imports no driver)."""
    if type(obj).__name__ == "Identifier" and type(obj).__module__.startswith("psycopg"):
        parts = getattr(obj, "_obj", None)
        if isinstance(parts, tuple) and all(isinstance(p, str) for p in parts):
            return parts
    return None


def parse_table(
    table: Any, *, max_parts: int = 2, max_bytes: int | None = None, what: str = "table"
) -> TableName:
    """Read ``table`` (text, ``psycopg.sql.Identifier`` or tuple of parts) as a :class:`TableName`.

    ``max_parts`` is 2 for PostgreSQL (``schema.name``) and 3 for DuckDB
    (``database.schema.name``); ``max_bytes`` refuses parts the server would truncate.
    """
    ident = _identifier_parts(table)
    if ident is not None:
        parts, unquoted = list(ident), [False] * len(ident)
    elif isinstance(table, Sequence) and not isinstance(table, str):
        if not all(isinstance(p, str) for p in table):
            raise IdentifierError(f"{what} name parts must be strings, got {table!r}")
        parts, unquoted = list(table), [False] * len(table)
    elif isinstance(table, str):
        if not table:
            raise IdentifierError(f"{what} name must be a non-empty string")
        parts, unquoted = _split(table)
    else:
        raise IdentifierError(
            f"{what} name must be a string, a tuple of parts or a psycopg.sql.Identifier, "
            f"got {type(table).__name__}"
        )
    if not 1 <= len(parts) <= max_parts:
        form = "name or schema.name" if max_parts == 2 else "name, schema.name or db.schema.name"
        raise IdentifierError(
            f"{what} name {table!r} has {len(parts)} parts; expected {form} "
            "(quote a part that contains a dot: '\"my.table\"')"
        )
    for p in parts:
        if not p or "\x00" in p:
            raise IdentifierError(f"{what} name {table!r} has an empty or NUL-containing part")
        if max_bytes is not None and len(p.encode("utf-8")) > max_bytes:
            raise IdentifierError(
                f"{what} name part {p!r} is {len(p.encode('utf-8'))} bytes; PostgreSQL names "
                f"are at most {max_bytes} bytes (longer ones are truncated by the server)"
            )
    return TableName(tuple(parts), tuple(unquoted))


def parse_pg_table(table: Any) -> TableName:
    """A PostgreSQL table name: ``name`` or ``schema.name``, parts of at most 63 bytes."""
    return parse_table(table, max_parts=2, max_bytes=PG_MAX_BYTES)


def parse_duckdb_table(table: Any) -> TableName:
    """A DuckDB table name: ``name``, ``schema.name`` or ``database.schema.name``."""
    return parse_table(table, max_parts=3)


__all__ = [
    "PG_MAX_BYTES",
    "IdentifierError",
    "TableName",
    "parse_duckdb_table",
    "parse_pg_table",
    "parse_table",
    "quote_ident",
]
