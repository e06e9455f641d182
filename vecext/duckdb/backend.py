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

from collections.abc import Mapping
from typing import Any, ClassVar

import duckdb

from vecext.duckdb import calibration, info_cache, strategies, vectorset
from vecext.duckdb._sql import TableRef
from vecext.duckdb.discovery import (
    _VECTOR_TYPES,
    _array_type,
    _columns,
    _find_column,
    _json,
    _table,
)
from vecext.duckdb.discovery import vector_column as vector_column
from vecext.duckdb.filters import compile_filter, ident
from vecext.duckdb.indexes import vss_indexes
from vecext.relevance.base import RelevanceMethod
from vecext.search.contracts import (
    CodeColumn,
    SearchError,
    SqlBackend,
    TableInfo,
)
from vecext.search.filters import Predicate
from vecext.search.planner import Capabilities
from vecext.search.registry import register
from vecext.search.tables import best_first, capabilities

#: Tables with more rows than this get a sampled estimate instead of a count.
SAMPLE_ABOVE = 5_000_000
#: Percentage of the table sampled (DuckDB ``system`` sampling: whole vectors of rows).
SAMPLE_PERCENT = 1.0


class _ScanDefaults:
    """``DuckDBBackend.planner_defaults``: the floors of the candidate stage in use
    (:func:`vecext.duckdb.scan.set_candidate_scan`), read on the class or an instance."""

    def __get__(self, obj: Any, owner: Any) -> Mapping[str, Any]:
        from vecext.duckdb.scan import candidate_scan

        faiss = candidate_scan() == "faiss"
        return owner.FAISS_SCAN_DEFAULTS if faiss else owner.SQL_SCAN_DEFAULTS  # type: ignore[no-any-return]


@register
class DuckDBBackend(SqlBackend):
    """Search adapter for a DuckDB connection (see :class:`vecext.search.contracts.Backend`)."""

    name = "duckdb"
    connection_type = duckdb.DuckDBPyConnection
    driver_errors = (duckdb.Error,)
    statements: ClassVar[Any] = strategies
    calibration: ClassVar[Any] = calibration
    conn: duckdb.DuckDBPyConnection
    #: DuckDB's floors (vecext.search.settings): in DuckDB the code scan dominates a
    #: two-stage search and reranking only fetches the candidates by rowid (1,280 of them
    #: cost a few ms next to hundreds for the scan), while the calibration, measured with
    #: the table's own rows, is optimistic for real queries and for filters that follow
    #: the data (wordnet-minilm, binary codes: 8 k candidates for 0.95 on rows, 96 k for
    #: dev queries under lexname = noun.animal); so rerank 128 k (at most 20,000) and do
    #: not deepen. Counting rows per IVF list is one cheap aggregate: filtered probes
    #: follow the matching rows. The ef_search floor is the plain 128 (a VSS walk at 128
    #: costs a few ms; wordnet-minilm rows reach recall 0.995 at ef 40, held-out dev
    #: queries 0.90 at 40, 0.96 at 100, 0.985 at 160).
    SQL_SCAN_DEFAULTS: ClassVar[Mapping[str, Any]] = {
        "deepen": 0.0,
        "rerank_floor_mult": 128,
        "rerank_floor_max": 20_000,
        "rerank_cost_rows": {},
        "hnsw_calibrated_floor": False,
        "ivf_filter_lists": True,
    }
    #: With the FAISS candidate stage (vecext.duckdb.scan, the default) the code scan
    #: costs a few ms and reranking dominates (about 10-40 us a row through the primary
    #: key's index): the floor is PostgreSQL's 32 k with progressive deepening (the stage
    #: returns up to 128 k candidates in code order, more are reranked when one of the k
    #: best sits beyond the first third). Measured on wordnet-minilm dev queries: PQ
    #: m=48 recall@10 0.999 at 32 k, binary 0.981.
    FAISS_SCAN_DEFAULTS: ClassVar[Mapping[str, Any]] = {
        "deepen": 1 / 3,
        "rerank_floor_mult": 32,
        "rerank_cost_rows": {},
        "hnsw_calibrated_floor": False,
        "ivf_filter_lists": True,
    }

    planner_defaults = _ScanDefaults()  # type: ignore[assignment]

    def load_adapter(self, name: str) -> RelevanceMethod:
        from vecext.duckdb.relevance import load_adapter

        return load_adapter(self.conn, name)

    def for_tenant(self, info: TableInfo, tenant: Any) -> TableInfo:
        """DuckDB has no partial indexes: a tenant sees the table as it is (the tenant
        condition is part of every strategy's filter)."""
        return info

    # -- what the table has ----------------------------------------------------

    def table_info(self, table: str, column: str, metric: str) -> TableInfo:
        """What ``table.column`` offers (cached per connection, :mod:`~vecext.duckdb.info_cache`)."""
        con = self.conn
        key = (repr(table), column, metric)
        hit = info_cache.get(con, key)
        if hit is not None:
            return hit
        t, catalog = _table(con, table)
        before = info_cache.stamp(con, t, catalog)
        info = self._table_info(t, catalog, table, column, metric)
        info_cache.put(con, key, t, catalog, before, info)
        return info

    def _table_info(
        self, t: TableRef, catalog: bool, table: str, column: str, metric: str
    ) -> TableInfo:
        con = self.conn
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
        records = {ix.name: ix.calibration for ix in indexes}
        unusable += [
            f"HNSW index {ix.name} is for {ix.metric}, not {metric}"
            for ix in indexes
            if ix.metric != metric
        ]
        code = codes[0] if codes else None
        hnsw = usable[0] if usable else None
        vectors = None
        if len(pk) == 1 and columns.get(pk[0], "") in _INTEGER_KEYS:
            row = con.execute(_WHERE_IS, [t.database, t.schema, t.name]).fetchone()
            if row is not None:
                vectors = vectorset.Table(row[0], t.sql, col, pk[0], dim, (row[1], row[2]))
        alternatives = {c.name: _caps(n_rows, c, hnsw, records, metric) for c in codes}
        alternatives.update({name: _caps(n_rows, code, name, records, metric) for name in usable})
        return TableInfo(
            table=table,
            column=col,
            dim=dim,
            id_column=id_col,
            columns=columns,
            caps=_caps(n_rows, code, hnsw, records, metric),
            ref=t,
            metric=metric,
            column_type=base,
            codes={c.name: c for c in codes},
            indexes={ix.name: ix for ix in indexes if ix.metric == metric},
            all_indexes=list(indexes),
            unusable=unusable,
            tenant_column=tenant,
            alternatives=alternatives,
            backend_facts=vectors,
        )

    def _catalog(
        self, t: TableRef, column: str, metric: str, columns: dict[str, str]
    ) -> tuple[list[CodeColumn], list[str], str | None]:
        """Usable code columns (best first), notes on unusable ones, the tenant column."""
        con = self.conn
        rows = con.execute(
            _CATALOG_INFO, [t.database, t.schema, t.name, t.schema, t.name, column]
        ).fetchall()
        tenant = rows[0][0] if rows else None
        have = {c.lower() for c in columns}
        out: list[CodeColumn] = []
        notes: list[str] = []
        for (_, name, codec, kind, made_fp, fp, cmetric, size, status, lcol, ivf, ivf_fp,
             ivf_params, calib, cc_id, created, position, path) in rows:  # fmt: skip
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
                    # what the code cache keys on (vecext.duckdb.codeset)
                    version=(path, cc_id, created, made_fp, position, lcol, ivf),
                )
            )  # fmt: skip
        return best_first(out), notes, (str(tenant) if tenant is not None else None)

    # -- how many rows match ------------------------------------------------------

    def where(self, info: TableInfo, pred: Predicate | None) -> tuple[str, list[Any]]:
        """The WHERE body every strategy and count uses: a vector, and the filter."""
        body, params = compile_filter(pred)
        return f"{ident(info.column)} IS NOT NULL AND ({body})", params

    def __init__(self, conn: Any) -> None:
        super().__init__(conn)
        #: what this search read once (a backend serves one search: search() makes it),
        #: reused by its steps (strategies.Context.memo)
        self._memo: dict[Any, Any] = {}

    def _ctx(self, info: TableInfo, req: Any, plan: Any) -> Any:
        ctx = super()._ctx(info, req, plan)
        ctx.memo = self._memo
        return ctx

    def estimate_matching(self, info: TableInfo, pred: Predicate | None) -> float:
        """An exact count, or a 1% sample's count scaled up on very large tables. On a
        table the vector cache serves, the count is of the matching rows read once
        (their rowids and keys), which the search's steps then reuse."""
        t: TableRef = info.ref
        facts = vectorset.served(info)
        if pred is not None and facts is not None:
            body, params = compile_filter(pred)
            got = self.conn.execute(
                f"SELECT rowid, {ident(facts.key)}::BIGINT AS vx_key FROM {t.sql} "
                f"WHERE {ident(info.column)} IS NOT NULL AND ({body})",
                params,
            ).fetchnumpy()
            self._memo[("matching", body, repr(params))] = got
            return float(len(got["rowid"]))
        where, params = self.where(info, pred)
        if info.caps.n_rows <= SAMPLE_ABOVE:
            return float(self.count_matching(info, pred, None))
        row = self.conn.execute(
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
        row = self.conn.execute(f"SELECT count(*) FROM ({inner})", params).fetchone()
        return int(row[0]) if row else 0


#: integer primary keys the vector cache finds rows by (vecext.duckdb.vectorset)
_INTEGER_KEYS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")
#: the database file and the oids of a table (the vector cache's key)
_WHERE_IS = """SELECT d.path, t.database_oid, t.table_oid FROM duckdb_tables() t
JOIN duckdb_databases() d ON d.database_name = t.database_name
WHERE t.database_name = ? AND t.schema_name = ? AND t.table_name = ?"""

#: compressed columns of one source column, and the table's tenant column on every row
#: (one row with NULLs when there are no compressed columns)
_CATALOG_INFO = """SELECT tc.tenant_column, k.code_column, k.codec_name, c.kind,
       k.codec_fingerprint, c.fingerprint, c.metric, c.code_size, k.status, k.list_column,
       k.ivf_codec_name, v.fingerprint, v.params, k.calibration, k.id, k.created_at::VARCHAR,
       k.backfill_position, (SELECT path FROM duckdb_databases() WHERE database_name = ?)
FROM (SELECT 1) one
LEFT JOIN vecext.tenant_columns tc ON tc.table_schema = ? AND tc.table_name = ?
LEFT JOIN vecext.compressed_columns k ON k.table_schema = ? AND k.table_name = ?
     AND lower(k.source_column) = lower(?)
LEFT JOIN vecext.codecs c ON c.name = k.codec_name
LEFT JOIN vecext.codecs v ON v.name = k.ivf_codec_name
ORDER BY k.id"""


def _caps(
    n_rows: int,
    code: CodeColumn | None,
    hnsw: str | None,
    records: dict[str, dict[str, Any] | None],
    metric: str,
) -> Capabilities:
    # VSS filters after its LIMIT: there is no iterative scan
    return capabilities(n_rows, code, hnsw, records.get(hnsw) if hnsw else None, metric, False)
