"""The record of one SQL function in vecext's SQL reference (:mod:`vecext.sqlapi`)."""

from __future__ import annotations

from dataclasses import dataclass

PG = "postgres"
DUCK = "duckdb"
BOTH = (PG, DUCK)


@dataclass(frozen=True)
class SqlFunction:
    name: str  # "vecext.encode" or "vecext.{codec}_distance"
    signature: str  # arguments and result, in PostgreSQL types (DuckDB equivalents in notes)
    backends: tuple[str, ...]
    summary: str
    example: str  # runnable SQL on every backend listed
    notes: str = ""
    #: for an old name kept as an alias: the call to use instead
    deprecated: str = ""

    @property
    def per_codec(self) -> bool:
        return "{codec}" in self.name


Q16 = "(SELECT embedding FROM doc_items WHERE id = 1)"
