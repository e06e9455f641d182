"""The DuckDB backend of :func:`vecext.search.search`.

:class:`DuckDBBackend` tells the planner what a table offers and runs each
strategy as one SQL statement (:mod:`vecext.duckdb.strategies`):

* the vector column must be ``FLOAT[d]`` or ``DOUBLE[d]``;
* the **id column** returned as row ids is the table's single-column primary key,
  or else a column named ``id`` (any case); without either the search refuses,
  naming the table's columns. It need not be unique for correctness (candidates
  are joined back by ``rowid``), but ids are only meaningful when it is;
* compressed columns, IVF lists and their calibrations come from
  ``vecext.compressed_columns`` (only ``ready`` ones, made by the codec version
  the catalog holds, for the search's metric, whose distance macro exists);
* HNSW indexes from VSS (``pragma_hnsw_index_info``), when their metric matches;
* a declared tenant column from ``vecext.tenant_columns``.

Counting is cheap in DuckDB (a columnar scan of the filter columns), so the
planner gets exact counts; above :data:`SAMPLE_ABOVE` rows a 1% system sample
estimates instead.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from vecext.duckdb._sql import TableRef
from vecext.duckdb.filters import compile_filter, ident
from vecext.duckdb.indexes import vss_indexes
from vecext.relevance.base import RelevanceMethod
from vecext.search.calibrate import planner_calibration
from vecext.search.contracts import CodeColumn, Hits, Request, SearchError, TableInfo
from vecext.search.filters import Predicate
from vecext.search.planner import Capabilities, Plan
from vecext.search.registry import register

#: Tables with more rows than this get a sampled estimate instead of a count.
SAMPLE_ABOVE = 5_000_000
#: Percentage of the table sampled (DuckDB ``system`` sampling: whole vectors of rows).
SAMPLE_PERCENT = 1.0
#: Preference among compressed columns for the default choice (lower is better).
_KIND_ORDER = {"pq": 0, "rbq": 1, "int8": 2, "binary": 3, "half": 4}
_VECTOR_TYPES = ("FLOAT", "DOUBLE")


def vector_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> tuple[str, str, int]:
    """``(quoted table, stored column name, dimension)`` of a ``FLOAT[d]``/``DOUBLE[d]``
    column, or a :class:`SearchError` naming what is wrong."""
    t, _ = _table(con, table)
    columns, _, _, _ = _columns(con, t)
    name, typ = _find_column(t, columns, column)
    base, dim = _array_type(typ)
    if base not in _VECTOR_TYPES or dim is None:
        raise SearchError(
            f"column {t}.{name} has type {typ}: a vector column must be FLOAT[d] or DOUBLE[d] "
            "(a fixed-size array)"
        )
    return t.sql, name, dim


def _table(con: duckdb.DuckDBPyConnection, table: str) -> tuple[TableRef, bool]:
    """``table`` (``name`` or ``schema.name``, case-insensitive as in SQL), and whether the
    database has the vecext catalog, in one query (failing queries would abort a caller's
    open transaction, so nothing is probed by trial)."""
    if not isinstance(table, str) or not table or "\x00" in table:
        raise SearchError(f"invalid table name {table!r}")
    schema, _, name = table.rpartition(".")
    rows = con.execute(
        "SELECT database_name, schema_name, table_name, "
        "lower(table_name) = lower(?) AND lower(schema_name) = lower(coalesce(?, "
        "current_schema())) AS wanted FROM duckdb_tables() "
        "WHERE database_name = current_database() AND (wanted "
        "OR (schema_name = 'vecext' AND table_name = 'tenant_columns'))",
        [name, schema or None],
    ).fetchall()
    catalog = any(r[1] == "vecext" and r[2] == "tenant_columns" for r in rows)
    found = [r for r in rows if r[3]]
    if not found:
        raise SearchError(f"table {table!r} does not exist")
    return TableRef(str(found[0][0]), str(found[0][1]), str(found[0][2])), catalog


def _columns(
    con: duckdb.DuckDBPyConnection, t: TableRef, count: bool = False
) -> tuple[dict[str, str], list[str], int, bool]:
    """Column name -> type, the primary key's columns and, with ``count``, the row count
    and whether the table has an HNSW index, in one query."""
    extra = (
        f"(SELECT count(*) FROM {t.sql}), (SELECT count(*) > 0 FROM duckdb_indexes() "
        "WHERE database_name = ? AND schema_name = ? AND table_name = ? "
        "AND sql ILIKE '%USING HNSW%')"
        if count
        else "0, false"
    )
    params = [t.database, t.schema, t.name] if count else []
    rows = con.execute(
        f"SELECT name, type, pk, {extra} FROM pragma_table_info(?)", [*params, t.sql]
    ).fetchall()
    columns = {str(r[0]): str(r[1]) for r in rows}
    pk = [str(r[0]) for r in rows if r[2]]
    return columns, pk, int(rows[0][3]) if rows else 0, bool(rows and rows[0][4])


def _find_column(t: TableRef, columns: dict[str, str], column: str) -> tuple[str, str]:
    if not isinstance(column, str) or not column:
        raise SearchError(f"invalid column name {column!r}")
    for name, typ in columns.items():
        if name.lower() == column.lower():  # DuckDB identifiers are case-insensitive
            return name, typ
    raise SearchError(f"table {t} has no column {column!r}; its columns are: {', '.join(columns)}")


def _array_type(typ: str) -> tuple[str, int | None]:
    if typ.endswith("]") and "[" in typ:
        base, _, dim = typ[:-1].rpartition("[")
        return base, int(dim) if dim.isdigit() else None
    return typ, None


def _json(text: Any) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text) if isinstance(text, str) else dict(text)
    except (ValueError, TypeError):
        return None
    return value if isinstance(value, dict) else None


@register
class DuckDBBackend:
    """Search adapter for a DuckDB connection (see :class:`vecext.search.contracts.Backend`)."""

    name = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    @classmethod
    def accepts(cls, conn: Any) -> bool:
        return isinstance(conn, duckdb.DuckDBPyConnection)

    def load_adapter(self, name: str) -> RelevanceMethod:
        from vecext.duckdb.relevance import load_adapter

        return load_adapter(self.con, name)

    def for_tenant(self, info: TableInfo, tenant: Any) -> TableInfo:
        """DuckDB has no partial indexes: a tenant sees the table as it is (the tenant
        condition is part of every strategy's filter)."""
        return info

    # -- what the table has ----------------------------------------------------

    def table_info(self, table: str, column: str, metric: str) -> TableInfo:
        con = self.con
        t, catalog = _table(con, table)
        columns, pk, n_rows, has_hnsw = _columns(con, t, count=True)
        col, typ = _find_column(t, columns, column)
        base, dim = _array_type(typ)
        if base not in _VECTOR_TYPES or dim is None:
            raise SearchError(
                f"column {t}.{col} has type {typ}: search needs a FLOAT[d] or DOUBLE[d] column"
            )
        id_col = pk[0] if len(pk) == 1 else next((c for c in columns if c.lower() == "id"), None)
        if id_col is None:
            raise SearchError(
                f"table {t} has neither a single-column primary key nor a column named id to "
                f"return as row ids; its columns are: {', '.join(columns)}"
            )
        codes, unusable, tenant = (
            self._catalog(t, col, metric, columns) if catalog else ([], [], None)
        )
        indexes = vss_indexes(con, t.schema, t.name, col) if has_hnsw else []
        usable = sorted(ix.name for ix in indexes if ix.metric == metric)
        hnsw_cal = {ix.name: _ef_curve(ix.calibration, metric) for ix in indexes}
        unusable += [
            f"HNSW index {ix.name} is for {ix.metric}, not {metric}"
            for ix in indexes
            if ix.metric != metric
        ]
        code = codes[0] if codes else None
        hnsw = usable[0] if usable else None
        alternatives = {c.name: _caps(n_rows, c, hnsw, hnsw_cal) for c in codes}
        alternatives.update({name: _caps(n_rows, code, name, hnsw_cal) for name in usable})
        return TableInfo(
            table=table,
            column=col,
            dim=dim,
            id_column=id_col,
            columns=columns,
            caps=_caps(n_rows, code, hnsw, hnsw_cal),
            ref=t,
            metric=metric,
            column_type=base,
            codes={c.name: c for c in codes},
            indexes={ix.name: ix for ix in indexes if ix.metric == metric},
            all_indexes=list(indexes),
            unusable=unusable,
            tenant_column=tenant,
            alternatives=alternatives,
        )

    def _catalog(
        self, t: TableRef, column: str, metric: str, columns: dict[str, str]
    ) -> tuple[list[CodeColumn], list[str], str | None]:
        """Usable code columns (best first), notes on unusable ones, the tenant column."""
        con = self.con
        rows = con.execute(_CATALOG_INFO, [t.schema, t.name, t.schema, t.name, column]).fetchall()
        tenant = rows[0][0] if rows else None
        have = {c.lower() for c in columns}
        out: list[CodeColumn] = []
        notes: list[str] = []
        for (_, name, codec, kind, made_fp, fp, cmetric, size, status, lcol, ivf, ivf_fp,
             ivf_params, calib) in rows:  # fmt: skip
            if name is None:  # the row that only carries the tenant column
                continue
            why = None
            if status != "ready":
                why = "is still backfilling: call vecext.duckdb.refresh()"
            elif made_fp != fp:
                why = f"holds codes of another version of codec {codec}"
            elif cmetric != metric:
                why = f"was trained for {cmetric}, not {metric}"
            elif name.lower() not in have:
                why = "is registered but missing from the table"
            if why:
                notes.append(f"compressed column {name} {why}")
                continue
            ivf_ok = bool(lcol and ivf_fp and lcol.lower() in have)
            out.append(
                CodeColumn(
                    name, codec, kind, fp, cmetric, columns.get(name, ""), int(size),
                    list_column=lcol if ivf_ok else None, ivf_codec=ivf if ivf_ok else None,
                    ivf_fingerprint=ivf_fp if ivf_ok else None,
                    nlist=int((_json(ivf_params) or {}).get("nlist", 0)) if ivf_ok else 0,
                    calibration=_json(calib),
                )
            )  # fmt: skip
        out.sort(key=lambda c: (c.list_column is None, _KIND_ORDER.get(c.kind, 9)))
        return out, notes, (str(tenant) if tenant is not None else None)

    # -- how many rows match ------------------------------------------------------

    def where(self, info: TableInfo, pred: Predicate | None) -> tuple[str, list[Any]]:
        """The WHERE body every strategy and count uses: a vector, and the filter."""
        body, params = compile_filter(pred)
        return f"{ident(info.column)} IS NOT NULL AND ({body})", params

    def estimate_matching(self, info: TableInfo, pred: Predicate | None) -> float:
        """An exact count, or a 1% sample's count scaled up on very large tables."""
        t: TableRef = info.ref
        where, params = self.where(info, pred)
        if info.caps.n_rows <= SAMPLE_ABOVE:
            return float(self.count_matching(info, pred, None))
        row = self.con.execute(
            f"SELECT count(*) FROM {t.sql} TABLESAMPLE {SAMPLE_PERCENT}% (system, 1) WHERE {where}",
            params,
        ).fetchone()
        return float(row[0] if row else 0) * 100.0 / SAMPLE_PERCENT

    def count_matching(self, info: TableInfo, pred: Predicate | None, limit: int | None) -> int:
        t: TableRef = info.ref
        where, params = self.where(info, pred)
        inner = f"SELECT 1 FROM {t.sql} WHERE {where}"
        if limit is not None:
            inner += f" LIMIT {int(limit)}"
        row = self.con.execute(f"SELECT count(*) FROM ({inner})", params).fetchone()
        return int(row[0]) if row else 0

    # -- running a plan ------------------------------------------------------------

    def run(self, info: TableInfo, req: Request, plan: Plan) -> Hits:
        from vecext.duckdb import strategies

        where, params = self.where(info, req.pred)
        ctx = strategies.Context(self.con, info, req, plan, where, params)
        if plan.strategy == "exact":
            return Hits(*strategies.exact(ctx))
        if plan.strategy == "hnsw":
            return Hits(*strategies.hnsw(ctx, str(info.caps.hnsw_index)))
        code = info.code
        if code is None:
            raise SearchError(f"{info.table}.{info.column} has no usable compressed column")
        try:
            if plan.strategy == "compressed":
                return Hits(*strategies.compressed(ctx, code))
            if plan.strategy == "ivf":
                return Hits(*strategies.ivf(ctx, code))
        except duckdb.CatalogException as exc:  # e.g. the codec's macros are missing
            raise SearchError(
                f"{exc}: searching {info.table}.{code.name} needs vecext's functions in this "
                "connection; open it with vecext.duckdb.connect() or call vecext.duckdb.attach()"
            ) from exc
        raise SearchError(f"unknown strategy {plan.strategy!r}")


#: compressed columns of one source column, and the table's tenant column on every row
#: (one row with NULLs when there are no compressed columns)
_CATALOG_INFO = """SELECT tc.tenant_column, k.code_column, k.codec_name, c.kind,
       k.codec_fingerprint, c.fingerprint, c.metric, c.code_size, k.status, k.list_column,
       k.ivf_codec_name, v.fingerprint, v.params, k.calibration
FROM (SELECT 1) one
LEFT JOIN vecext.tenant_columns tc ON tc.table_schema = ? AND tc.table_name = ?
LEFT JOIN vecext.compressed_columns k ON k.table_schema = ? AND k.table_name = ?
     AND lower(k.source_column) = lower(?)
LEFT JOIN vecext.codecs c ON c.name = k.codec_name
LEFT JOIN vecext.codecs v ON v.name = k.ivf_codec_name
ORDER BY k.id"""


def _ef_curve(record: dict[str, Any] | None, metric: str) -> dict[str, Any] | None:
    if isinstance(record, dict) and record.get("metric") == metric:
        return record.get("ef_search") or None
    return None


def _caps(
    n_rows: int,
    code: CodeColumn | None,
    hnsw: str | None,
    hnsw_cal: dict[str, dict[str, Any] | None] | None = None,
) -> Capabilities:
    cal = planner_calibration(code.calibration if code is not None else None)
    return Capabilities(
        n_rows=n_rows,
        code_column=code.name if code else None,
        code_kind=code.kind if code else None,
        list_column=code.list_column if code else None,
        n_lists=code.nlist if code else 0,
        hnsw_index=hnsw,
        iterative_scan=False,  # VSS filters after its LIMIT: there is no iterative scan
        hnsw_calibration=(hnsw_cal or {}).get(hnsw) if hnsw else None,
        **cal,  # type: ignore[arg-type]
    )
