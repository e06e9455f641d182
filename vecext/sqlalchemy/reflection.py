"""Reflect code columns as their vecext types, from the catalog.

PostgreSQL stores codes as ``bytea``, ``bit(d)`` or ``halfvec(d)``, so plain
reflection returns ``BYTEA`` / ``BIT(d)`` / ``HALFVEC(d)`` (see
:mod:`vecext.sqlalchemy.types`). The catalog (``vecext.compressed_columns``)
knows which columns hold codes of which codec; :func:`code_column_reflect` uses
it::

    from sqlalchemy import event, Table
    event.listen(Table, "column_reflect", vecext.sqlalchemy.code_column_reflect)
    items = Table("items", MetaData(), autoload_with=engine)
    items.c.embedding_pq.type   # PQCodes(m=48, codec='items_pq')
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from vecext.codecs.kinds import inner_dim
from vecext.sqlalchemy.types import code_type

_QUERY = sa.text(
    "SELECT k.code_column, c.name, c.kind, c.dim, c.code_size, c.params "
    "FROM vecext.compressed_columns k JOIN vecext.codecs c ON c.name = k.codec_name "
    "WHERE k.table_schema = coalesce(:schema, current_schema()) AND k.table_name = :table"
)


def code_types(conn: sa.Connection, table: str, schema: str | None = None) -> dict[str, Any]:
    """Column name -> vecext type for the code columns of ``table`` (none without a catalog)."""
    if conn.execute(sa.text("SELECT to_regclass('vecext.compressed_columns')")).scalar() is None:
        return {}
    out: dict[str, Any] = {}
    for column, codec, kind, dim, size, params in conn.execute(
        _QUERY, {"schema": schema, "table": table}
    ):
        params = params or {}
        d_inner = inner_dim(dim, params)
        out[column] = code_type(kind, d_inner, int(size), codec, bits=params.get("bits", 2))
    return out


def code_column_reflect(inspector: Any, table: sa.Table, column_info: dict[str, Any]) -> None:
    """A ``column_reflect`` listener giving code columns their vecext type."""
    cache = inspector.info_cache.setdefault("vecext_code_types", {})
    key = (table.schema, table.name)
    if key not in cache:
        conn = inspector.bind if isinstance(inspector.bind, sa.Connection) else None
        if conn is None:
            with inspector.bind.connect() as c:
                cache[key] = code_types(c, table.name, table.schema)
        else:
            cache[key] = code_types(conn, table.name, table.schema)
    found = cache[key].get(column_info["name"])
    if found is not None:
        column_info["type"] = found
