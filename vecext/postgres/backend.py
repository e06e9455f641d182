"""The PostgreSQL backend of :func:`vecext.search.search` (pgvector).

:class:`PostgresBackend` tells the planner what a table offers (compressed
columns, IVF lists and calibrations from the ``vecext`` catalog, pgvector
indexes from ``pg_index``, a declared tenant column), estimates how many rows a
filter keeps (the PostgreSQL planner's own estimate, then a bounded exact count
when that is small) and executes the search engine's primitive steps, one SQL
statement each; the statements live in :mod:`vecext.postgres.strategies`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import psycopg
from psycopg import sql

from vecext.errors import CatalogError
from vecext.postgres import calibration, pgvector, strategies
from vecext.postgres.capabilities import STORAGE_ORDER, caps_of, code_of, tenant_view
from vecext.postgres.code_index import code_indexes
from vecext.postgres.columns import TableRef
from vecext.postgres.filters import compile_filter
from vecext.postgres.guard import prepared_guard
from vecext.postgres.index_catalog import INDEX_FIELDS, parse_index_rows
from vecext.postgres.info_cache import cache_for
from vecext.postgres.info_sql import BASE_INFO, CATALOG_INFO, OLD_CATALOG_INFO
from vecext.postgres.statement import SearchRef
from vecext.postgres.tables import table_candidates
from vecext.relevance.base import RelevanceMethod
from vecext.search.contracts import CodeColumn, FactsChanged, SearchError, SqlBackend, TableInfo
from vecext.search.filters import Predicate
from vecext.search.registry import register
from vecext.search.tables import best_first


@register
class PostgresBackend(SqlBackend):
    """Search adapter for a psycopg connection (see :class:`vecext.search.contracts.Backend`);
    its floors are the defaults (:data:`vecext.search.settings.DEFAULT_FLOORS`) but for
    ``exact_max_rows_unfiltered``."""

    name = "postgres"
    connection_type = psycopg.Connection
    #: estimates are the planner's: the engine counts exactly near its thresholds
    refine_estimates = True
    #: an unfiltered exact scan reads every vector (TOASTed beyond ~500 dimensions): with
    #: an HNSW index, scan exactly only tables of up to 2,000 rows
    planner_defaults: ClassVar[Mapping[str, Any]] = {"exact_max_rows_unfiltered": 2_000}
    driver_errors = (psycopg.Error,)
    statements: ClassVar[Any] = strategies
    calibration: ClassVar[Any] = calibration
    conn: psycopg.Connection

    def __init__(self, conn: psycopg.Connection) -> None:
        super().__init__(conn)
        #: compiled filters of this search (a backend serves one search)
        self._wheres: dict[tuple[int, str], tuple[Any, sql.Composable, list[Any], str]] = {}
        #: the stamp check this search still owes (facts planned from, unchecked)
        self.pending = strategies.Pending()

    def load_adapter(self, name: str) -> RelevanceMethod:
        from vecext.postgres.relevance import load_adapter

        self._verify()
        return load_adapter(self.conn, name)

    def _verify(self) -> None:
        """Check the facts this search planned from now, if no statement has yet (any
        statement but a search step's runs after this): :class:`FactsChanged` if stale."""
        check, self.pending.check = self.pending.check, None
        if check is not None:
            check.run(self.conn)

    def facts_changed(self) -> bool:
        try:
            self._verify()
        except FactsChanged:
            return True
        except psycopg.Error:
            return False
        return False

    def guard(self, info: TableInfo) -> Callable[[], None]:
        """A prepared search's check (:mod:`vecext.postgres.guard`), read now; calling the
        result has the next search's first statement send it."""
        check = prepared_guard(self.conn, info)

        def arm() -> None:
            self.pending.check = check

        return arm

    # -- what the table has ----------------------------------------------------

    def _regclass_text(self, table: Any) -> str:
        """``table`` (:mod:`vecext.catalog.names`) as the quoted text ``to_regclass`` reads:
        every part quoted by vecext, so it always parses (no syntax errors). An unquoted
        mixed-case name is tried as written, then lower-cased (one query, only then)."""
        try:
            cands = table_candidates(table)
        except CatalogError as exc:
            raise SearchError(str(exc)) from None
        if len(cands) == 1:
            return cands[0]
        row = self.conn.execute(
            "SELECT u.name FROM unnest(%s::text[]) WITH ORDINALITY AS u(name, i) "
            "WHERE to_regclass(u.name) IS NOT NULL ORDER BY u.i LIMIT 1",
            [cands],
        ).fetchone()
        return str(row[0]) if row else cands[0]

    def table_info(self, table: str, column: str, metric: str) -> TableInfo:
        """What the table offers, from this connection's cache when the table's stamp
        (:mod:`vecext.postgres.info_cache`, one query) says nothing changed since."""
        regclass = self._regclass_text(table)
        cache = cache_for(self.conn)
        conn = self.conn
        if (
            self.speculate
            and conn.autocommit
            and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        ):
            # the facts kept from the last search, checked by the stamp sent in the
            # first statement's round trip (one round trip less; 0.2 ms)
            got = cache.unchecked(regclass, column, metric)
            if got is not None:
                info, self.pending.check = got
                info.table = table
                info.notes.append(
                    "table facts and catalog rows: cached on this connection (unchanged)"
                )
                return info
        stamp = cache.stamp(self.conn, regclass)
        if stamp is None:
            raise SearchError(f"table {table!r} does not exist")
        info = cache.get(stamp, column, metric)
        if info is not None:
            info.table = table
            info.notes.append("table facts and catalog rows: cached on this connection (unchanged)")
            return info
        info = self._read_info(table, column, metric, regclass)
        cache.put(stamp, info)
        info.notes.append("table facts and catalog rows: read from the catalog")
        return info

    def _read_info(self, table: str, column: str, metric: str, regclass: str) -> TableInfo:
        conn = self.conn
        row = conn.execute(BASE_INFO, {"table": regclass}).fetchone()
        if row is None:
            raise SearchError(f"table {table!r} does not exist")
        oid, schema, relname, reltuples, attrs, pk, index_rows, pgv, path, has_catalog = row
        t = SearchRef(int(oid), schema, relname, path)
        attrs = attrs or []
        columns = {a[0]: a[1] for a in attrs}
        typmods = {a[0]: int(a[2]) for a in attrs}
        attnums = {a[0]: int(a[4]) for a in attrs}
        if column not in columns:
            raise SearchError(
                f"table {t} has no column {column!r}; its columns are: {', '.join(columns)}"
            )
        # format_type qualifies pgvector's types when their schema is not on the path
        base = columns[column].split("(")[0].rsplit(".", 1)[-1]
        if base not in ("vector", "halfvec") or typmods[column] <= 0:
            raise SearchError(
                f"column {t}.{column} is {columns[column]}: search needs a vector(d) or "
                "halfvec(d) column"
            )
        dim = typmods[column]
        if pk is None:
            raise SearchError(f"table {t} needs a single-column primary key to return row ids")
        if reltuples is None or reltuples < 0:  # never analysed: count
            (n_rows,) = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(t.ident)).fetchone()  # type: ignore[misc]
        else:
            n_rows = int(reltuples)
        codes: list[CodeColumn] = []
        unusable: list[str] = []
        tenant = None
        if has_catalog == "denied":
            raise SearchError(
                f"role {conn.info.user!r} has no USAGE on schema vecext, whose catalog says "
                "how to search this table: ask the catalog's owner to run SELECT "
                f"vecext.grant_usage('{conn.info.user}')"
            )
        if has_catalog is not None:
            keys = {
                "oid": t.oid,
                "attnum": attnums[column],
                "schema": t.schema,
                "name": t.name,
                "column": column,
            }
            # a catalog before 0.4.0 keys its rows by names and has no code stores
            crow = conn.execute(CATALOG_INFO if has_catalog == "new" else OLD_CATALOG_INFO, keys)
            code_rows, tenant = crow.fetchone()  # type: ignore[misc]
            codes, unusable = _codes(code_rows or [], metric, attnums)
        all_indexes = parse_index_rows(
            [tuple(r[f] for f in INDEX_FIELDS) for r in (index_rows or [])],
            [(a[0], a[3], a[2]) for a in attrs],
            t.schema,
            t.name,
            column,
        )
        usable = [
            ix
            for ix in all_indexes
            if ix.method == "hnsw" and ix.usable_for(metric) and ix.predicate is None
        ]
        usable.sort(key=lambda ix: (STORAGE_ORDER.get(ix.storage, 9), ix.name))
        # HNSW over codes in a code store: after the table's own indexes (they need no rerank)
        usable += [ix for ix in code_indexes(conn, codes) if ix.usable_for(metric)]
        for ix in all_indexes:
            if ix.method == "hnsw" and ix.predicate is None and not ix.usable_for(metric):
                unusable.append(f"index {ix.name} orders by {ix.metric}, not {metric}")
        iterative = (
            pgv is not None and pgvector.parse_version(pgv) >= pgvector.FEATURES["iterative_scan"]
        )
        code = codes[0] if codes else None
        hnsw = usable[0] if usable else None
        by_name = {c.name: c for c in codes}
        caps = caps_of(n_rows, code_of(hnsw, by_name, code), hnsw, iterative)
        alternatives = {c.name: caps_of(n_rows, c, hnsw, iterative) for c in codes}
        alternatives.update(
            {ix.name: caps_of(n_rows, code_of(ix, by_name, code), ix, iterative) for ix in usable}
        )
        return TableInfo(
            table=table,
            column=column,
            dim=dim,
            id_column=pk,
            columns=columns,
            caps=caps,
            ref=t,
            metric=metric,
            column_type=base,
            codes={c.name: c for c in codes},
            indexes={ix.name: ix for ix in usable},
            all_indexes=all_indexes,
            unusable=unusable,
            tenant_column=tenant,
            alternatives=alternatives,
        )

    def for_tenant(self, info: TableInfo, tenant: Any) -> TableInfo:
        """The table as one tenant sees it (:func:`vecext.postgres.capabilities.tenant_view`)."""
        return tenant_view(info, tenant, self._tenant_rows)

    def _tenant_rows(self, info: TableInfo, pred: Predicate) -> float:
        self._verify()
        where, params = compile_filter(pred)
        return self._estimate(info.ref, where, params)

    # -- how many rows match ------------------------------------------------------

    def where(self, info: TableInfo, pred: Predicate | None) -> tuple[sql.Composable, list[Any]]:
        """The WHERE body every step and count uses: a vector, and the filter."""
        cond, params, _ = self._where(info, pred)
        return cond, params

    def _where(
        self, info: TableInfo, pred: Predicate | None
    ) -> tuple[sql.Composable, list[Any], str]:
        """:meth:`where` and its text, compiled once per search (this backend serves one)
        for each filter and column."""
        key = (id(pred), info.column)
        got = self._wheres.get(key)
        if got is None or got[0] is not pred:
            where, params = compile_filter(pred)
            cond = sql.SQL("{} IS NOT NULL AND ({})").format(sql.Identifier(info.column), where)
            if len(self._wheres) >= 64:  # a backend kept for many searches (calibration)
                self._wheres.clear()
            got = self._wheres[key] = (pred, cond, params, cond.as_string(self.conn))
        return got[1], list(got[2]), got[3]

    def _ctx(self, info: TableInfo, req: Any, plan: Any) -> strategies.Context:
        where, params, text = self._where(info, req.pred)
        ctx = strategies.Context(self.conn, info, req, plan, where, params, text)
        ctx.pending = self.pending
        return ctx

    def _estimate(self, t: TableRef, where: sql.Composable, params: list[Any]) -> float:
        (doc,) = self.conn.execute(
            sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE {}").format(t.ident, where),
            params,
            prepare=False,
        ).fetchone()  # type: ignore[misc]
        doc = doc if isinstance(doc, list) else json.loads(doc)
        return float(doc[0]["Plan"]["Plan Rows"])

    def estimate_matching(self, info: TableInfo, pred: Predicate | None) -> float:
        """The PostgreSQL planner's estimate, kept per connection while the table's
        statistics are unchanged (the engine counts exactly near a threshold, see
        :attr:`refine_estimates`)."""
        t: TableRef = info.ref
        where, params, text = self._where(info, pred)
        cache = cache_for(self.conn)
        key = text + "\x00" + repr(params)
        est = cache.estimate(info, key)
        if est is not None:
            info.notes.append(f"filter estimate {est:.0f} rows: cached on this connection")
            return est
        self._verify()
        est = self._estimate(t, where, params)
        cache.keep_estimate(info, key, est)
        info.notes.append(f"filter estimate {est:.0f} rows: PostgreSQL's planner")
        return est

    def count_matching(self, info: TableInfo, pred: Predicate | None, limit: int) -> int:
        self._verify()
        t: TableRef = info.ref
        where, params = self.where(info, pred)
        (n,) = self.conn.execute(
            sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} WHERE {} LIMIT {}) s").format(
                t.ident, where, sql.Literal(int(limit))
            ),
            params,
            prepare=False,
        ).fetchone()  # type: ignore[misc]
        return int(n)


def _codes(
    rows: list[Any], metric: str, attnums: dict[str, int]
) -> tuple[list[CodeColumn], list[str]]:
    out, notes = [], []
    names = {n: a for a, n in attnums.items()}
    for (name, codec, kind, made_fp, fp, cmetric, status, lcol, ivf, ivf_fp, ivf_params,
         calib, params, dim, store, list_layout, mirrored) in rows:  # fmt: skip
        if status != "ready":
            notes.append(f"compressed column {name} is still backfilling")
            continue
        if made_fp != fp:
            notes.append(
                f"compressed column {name} holds codes of another version of codec {codec}"
            )
            continue
        if cmetric != metric:
            notes.append(f"compressed column {name} was trained for {cmetric}, not {metric}")
            continue
        pt = (params or {}).get("pretransform") or {}
        d_inner = int(pt.get("d_out", dim)) if pt else int(dim)
        ctype = {"binary": f"bit({d_inner})", "half": f"halfvec({d_inner})"}.get(kind, "bytea")
        out.append(
            CodeColumn(
                name, codec, kind, fp, cmetric, ctype,
                list_column=lcol if ivf_fp else None, ivf_codec=ivf if ivf_fp else None,
                ivf_fingerprint=ivf_fp,
                nlist=int((ivf_params or {}).get("nlist", 0)) if ivf_fp else 0,
                calibration=calib if isinstance(calib, dict) else None,
                store=store, lists_in_store=bool(ivf_fp and store and list_layout == "store"),
                # (catalog 0.6.0) by attnum: a dropped column is no longer mirrored
                mirrors=tuple(
                    (names[n], f"col_{n}") for n in (mirrored or []) if store and n in names
                ),
            )
        )  # fmt: skip
    return best_first(out), notes
