"""Discover pgvector indexes: which column, storage, metric and options each one has.

The planner asks :func:`list_vector_indexes` (or embeds :data:`INDEX_ROWS` in its
own catalog query) which indexes a search can order by: ``pg_index`` /
``pg_am`` / ``pg_opclass``, the indexed expression as ``pg_get_indexdef`` prints
it, the partial-index predicate, and a JSON comment (vecext marks tenant indexes
there).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from vecext.postgres.columns import resolve_table


@dataclass(frozen=True)
class VectorIndex:
    """A pgvector index on a table's vector column, as the planner sees it.

    ``storage`` is what the index holds (``vector``, ``halfvec`` cast or
    ``bit`` from ``binary_quantize``); ``metric`` comes from the operator class
    (``l2``, ``ip``, ``cosine``, ``l1``, ``hamming``, ``jaccard``); ``predicate``
    is the partial index's WHERE clause as PostgreSQL prints it.
    """

    name: str
    schema: str
    table: str
    column: str
    method: str
    storage: str
    metric: str
    opclass: str
    dim: int
    predicate: str | None = None
    options: dict[str, int] = field(default_factory=dict)
    valid: bool = True
    size_bytes: int = 0
    comment: dict[str, Any] = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def usable_for(self, metric: str) -> bool:
        """Can this index order a search in ``metric`` (bit: as a candidate stage)?"""
        if not self.valid:
            return False
        if self.storage == "bit":
            return self.metric == "hamming"
        return self.metric == metric


_OPC_METRIC = re.compile(r"^(vector|halfvec|bit|sparsevec)_(l2|ip|cosine|l1|hamming|jaccard)_ops$")


#: One row per single-column pgvector index of relation ``{oid}`` (a template for
#: :class:`psycopg.sql.SQL`; ``{size}``: whether to read each index's size).
INDEX_ROWS = """SELECT ic.relname AS name, am.amname AS am, opc.opcname AS opc,
                  pg_get_indexdef(i.indexrelid, 1, true) AS expr,
                  pg_get_expr(i.indpred, i.indrelid, true) AS pred,
                  i.indisvalid AND i.indisready AS valid,
                  coalesce(ic.reloptions, ARRAY[]::text[]) AS opts,
                  obj_description(ic.oid, 'pg_class') AS comment,
                  CASE WHEN {size} THEN pg_relation_size(ic.oid) ELSE 0 END AS size
           FROM pg_index i
           JOIN pg_class ic ON ic.oid = i.indexrelid
           JOIN pg_am am ON am.oid = ic.relam
           JOIN pg_opclass opc ON opc.oid = i.indclass[0]
           WHERE i.indrelid = {oid} AND am.amname IN ('hnsw', 'ivfflat') AND i.indnatts = 1"""


def list_vector_indexes(
    conn: psycopg.Connection, table: str, column: str | None = None
) -> list[VectorIndex]:
    """The pgvector (HNSW, IVFFlat) indexes on ``table`` (on ``column`` when given).

    Recognised indexed expressions: the column itself, ``column::halfvec(d)`` and
    ``binary_quantize(column)::bit(d)``; others are skipped (a search could not
    use them by ordering on its own expressions).
    """
    t = resolve_table(conn, table)
    query = sql.SQL(INDEX_ROWS + " ORDER BY ic.relname").format(
        oid=sql.Literal(t.oid), size=sql.SQL("true")
    )
    rows = conn.execute(query).fetchall()
    attrs = conn.execute(
        """SELECT attname, quote_ident(attname), atttypmod FROM pg_attribute
           WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped""",
        [t.oid],
    ).fetchall()
    return parse_index_rows(rows, attrs, t.schema, t.name, column)


#: the columns of :data:`INDEX_ROWS`, in order
INDEX_FIELDS = ("name", "am", "opc", "expr", "pred", "valid", "opts", "comment", "size")


def parse_index_rows(
    rows: list[Any], attrs: list[Any], schema: str, table: str, column: str | None
) -> list[VectorIndex]:
    """:class:`VectorIndex` objects from :data:`INDEX_ROWS` rows and the table's
    ``(attname, quote_ident(attname), atttypmod)`` rows."""
    cols = {a[0]: a[1] for a in attrs}
    dims = {a[0]: int(a[2]) for a in attrs}
    out = []
    for name, am, opc, expr, pred, valid, reloptions, comment, size in rows:
        parsed = _parse_expression(expr, cols)
        if parsed is None:
            continue
        col, storage, d = parsed
        if column is not None and col != column:
            continue
        mm = _OPC_METRIC.match(opc)
        if mm is None:
            continue
        if storage == "column":
            storage = mm.group(1)
        options = {}
        for opt in reloptions:
            key, _, value = opt.partition("=")
            if value.isdigit():
                options[key] = int(value)
        try:
            meta = json.loads(comment) if comment else {}
        except ValueError:
            meta = {}
        out.append(
            VectorIndex(
                name=name,
                schema=schema,
                table=table,
                column=col,
                method=am,
                storage=storage,
                metric=mm.group(2),
                opclass=opc,
                dim=d if d is not None else dims.get(col, -1),
                predicate=pred,
                options=options,
                valid=bool(valid),
                size_bytes=int(size),
                comment=meta if isinstance(meta, dict) else {},
            )
        )
    return out


def _parse_expression(expr: str, cols: dict[str, str]) -> tuple[str, str, int | None] | None:
    """``(column, storage, dim)`` of an indexed expression as pg_get_indexdef prints it."""
    by_quoted = {q: name for name, q in cols.items()}
    if expr in by_quoted:
        return by_quoted[expr], "column", None
    m = re.fullmatch(r"\((.+)::halfvec\((\d+)\)\)", expr)
    if m and m.group(1) in by_quoted:
        return by_quoted[m.group(1)], "halfvec", int(m.group(2))
    m = re.fullmatch(r"\(binary_quantize\((.+)\)::bit\((\d+)\)\)", expr)
    if m and m.group(1) in by_quoted:
        return by_quoted[m.group(1)], "bit", int(m.group(2))
    return None
