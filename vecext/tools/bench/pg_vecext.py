"""vecext's own methods on PostgreSQL for ``vecext bench``, at vecext's defaults.

* ``vecext-pq``: two-stage search on a PQ column (M = d / 8 bytes, cosine), the
  rerank depth taken from the column's calibration for recall 0.95;
* ``vecext-binary``: the same on a centred binary column (d / 8 bytes);
* ``vecext-ivfpq``: IVF lists (4 sqrt(n), FAISS k-means) over the PQ column, with
  ``(filter column, list)`` indexes; nprobe and depth from the calibration;
* ``vecext-auto``: the planner's choice among exact, codes, lists and the HNSW
  index the ``pgvector-hnsw`` baseline uses (built or reused here);
* ``vecext-exact``: the exact strategy (filter first, with bitmap scans of the
  attribute indexes; the ``exact`` baseline refuses any plan with an index).

Every method goes through :func:`vecext.postgres.search` with the run's filter,
so it returns ``min(k, rows matching)`` rows. Set-up is kept in the benchmark
table between runs: the compressed columns, lists and calibrations are found in
the catalog and reused; their build time is recorded in the code column's
comment. The attribute columns get btree indexes (what any application filtering
on them has); ``exact`` and the baselines see them too.
"""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any

import psycopg
from psycopg import sql

from vecext.postgres import (
    add_compressed_column,
    add_ivf_lists,
    calibrate,
    calibrate_index,
    drop_compressed_column,
    drop_ivf_lists,
    install,
    ivf_lists,
    list_vector_indexes,
    train_codec,
)
from vecext.postgres.catalog import installed_version
from vecext.search import PlannerSettings, SearchResult
from vecext.tools.bench import pg_store
from vecext.tools.bench.context import BenchContext
from vecext.tools.bench.pg_methods import PgHnsw
from vecext.tools.bench.pg_store import attribute_columns
from vecext.tools.bench.registry import register_method
from vecext.tools.bench.vecext_method import VecextMethod, register_fixed

PQ_SUB_BYTES = 8  # dimensions per PQ sub-quantizer: M = d / 8


def _where(conn: psycopg.Connection, table: str, column: str) -> tuple[str, str]:
    """(relation, column) holding ``table.column``: a compressed column's code store
    (``vecext."store_<id>"``, column ``code``; catalog 0.4.0), else the table's column."""
    row = conn.execute(
        "SELECT vecext.code_store(%s::regclass, %s)::text", [table, column]
    ).fetchone()
    if row is not None and row[0] is not None:
        return str(row[0]), "code"
    return sql.Identifier(table).as_string(conn), column


def _comment(conn: psycopg.Connection, table: str, column: str) -> dict[str, Any]:
    rel, col = _where(conn, table, column)
    row = conn.execute(
        "SELECT col_description(%s::regclass, a.attnum) FROM pg_attribute a "
        "WHERE a.attrelid = %s::regclass AND a.attname = %s AND NOT a.attisdropped",
        [rel, rel, col],
    ).fetchone()
    try:
        return json.loads(row[0]) if row and row[0] else {}
    except ValueError:
        return {}


def _set_comment(conn: psycopg.Connection, table: str, column: str, meta: dict[str, Any]) -> None:
    rel, col = _where(conn, table, column)
    conn.execute(
        sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
            sql.SQL(rel), sql.Identifier(col), sql.Literal(json.dumps(meta))
        )
    )


def ensure_attribute_indexes(ctx: BenchContext) -> None:
    """A btree on every attribute column of the benchmark table."""
    conn, table = ctx.conn, ctx.table
    assert table is not None
    for col, _ in attribute_columns(ctx.dataset.attrs):
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                sql.Identifier(f"{table}_{col}_btree"), sql.Identifier(table), sql.Identifier(col)
            )
        )


def ensure_mirrors(ctx: BenchContext, column: str) -> None:
    """Mirror the run's filter columns into ``column``'s code store (catalog 0.6.0; a
    no-op for columns mirrored already), as an application declares its filter columns."""
    from vecext.postgres import mirror_columns
    from vecext.postgres.mirrors import has_mirrors
    from vecext.search.filters import columns_of

    cols = sorted(columns_of(ctx.filter))
    if cols and ctx.table is not None and has_mirrors(ctx.conn):
        with ctx.task(f"mirror {', '.join(cols)} into the code store of {column}"):
            mirror_columns(ctx.conn, ctx.table, column, cols)


def ensure_codes(ctx: BenchContext, kind: str) -> tuple[str, float]:
    """The compressed column of ``kind`` (``pq``/``binary``) and its build seconds."""
    conn, table = ctx.conn, ctx.table
    assert table is not None
    if installed_version(conn) is None:
        install(conn)
    column = f"embedding_{kind}"
    codec = f"{table}_{kind}"[:48]
    row = conn.execute(
        "SELECT status FROM vecext.compressed_columns WHERE table_name = %s AND code_column = %s",
        [table, column],
    ).fetchone()
    if row is not None and row[0] == "ready" and not ctx.rebuild:
        cal = conn.execute(
            "SELECT calibration FROM vecext.compressed_columns WHERE table_name = %s "
            "AND code_column = %s",
            [table, column],
        ).fetchone()
        # made by an older vecext, or on given queries (bench/search_postgres.py
        # --calibrate-on-queries): measure again at the default, on the table's rows
        if not (cal and cal[0] and "subsets" in cal[0] and cal[0].get("queries") == "rows"):
            with ctx.task(f"calibrate {table}.{column}"):
                calibrate(conn, table, column)
        ensure_mirrors(ctx, column)
        return column, float(_comment(conn, table, column).get("build_s", 0.0))
    if row is not None:
        if ivf_lists(conn, table, column) is not None:
            drop_ivf_lists(conn, table, column)
        drop_compressed_column(conn, table, column)
    conn.execute("DELETE FROM vecext.codecs WHERE name = %s", [codec])
    params: dict[str, Any] = {"m": ctx.d // PQ_SUB_BYTES} if kind == "pq" else {}
    start = time.perf_counter()
    with ctx.task(f"train {kind} codec and encode {table}.{column}"):
        train_codec(conn, codec, table, "embedding", kind, metric="cosine", **params)
        # the codes go to a code store: the table is not rewritten, nothing to compact
        add_compressed_column(conn, table, "embedding", codec, column, progress=False)
        calibrate(conn, table, column)
    build_s = time.perf_counter() - start
    _set_comment(conn, table, column, {"build_s": round(build_s, 3)})
    ensure_mirrors(ctx, column)
    return column, build_s


def compact(ctx: BenchContext) -> None:
    """``VACUUM (FULL, ANALYZE)``: IVF lists in a column of the table (catalogs before
    0.5.0) are filled by updating every row (a new row version each), which leaves the
    heap two to three times its size; a scan reads the whole heap, so measure it
    compacted. Lists in a code store leave the table as it was."""
    assert ctx.table is not None
    ctx.conn.execute(sql.SQL("VACUUM (FULL, ANALYZE) {}").format(sql.Identifier(ctx.table)))


def ensure_lists(ctx: BenchContext, column: str) -> float:
    """IVF lists on ``column`` (and a recalibration that includes nprobe); build seconds."""
    conn, table = ctx.conn, ctx.table
    assert table is not None
    meta = _comment(conn, table, column)
    if ivf_lists(conn, table, column) is not None and "ivf_build_s" in meta:
        return float(meta["ivf_build_s"])
    start = time.perf_counter()
    with ctx.task(f"train IVF lists for {table}.{column}"):
        if ivf_lists(conn, table, column) is None:
            cols = [c for c, _ in attribute_columns(ctx.dataset.attrs)]
            made = add_ivf_lists(conn, table, "embedding", code_column=column, index_columns=cols)
            if made.store is None:  # list ids in the table (catalog before 0.5.0)
                compact(ctx)
        calibrate(conn, table, column)
    meta["ivf_build_s"] = round(time.perf_counter() - start, 3)
    _set_comment(conn, table, column, meta)
    return float(meta["ivf_build_s"])


def ensure_index_calibration(ctx: BenchContext, index: str) -> float:
    """Measure the HNSW index's recall per ef_search once (kept in its comment)."""
    assert ctx.table is not None
    found = [i for i in list_vector_indexes(ctx.conn, ctx.table, "embedding") if i.name == index]
    if not found:
        return 0.0
    cal = found[0].comment.get("calibration")
    if isinstance(cal, dict) and cal.get("queries") == "perturbed rows":  # the default
        return 0.0
    start = time.perf_counter()
    with ctx.task(f"calibrate {index} (recall per ef_search)"):
        calibrate_index(ctx.conn, ctx.table, index)
    return time.perf_counter() - start


def _column_bytes(conn: psycopg.Connection, table: str, column: str) -> int:
    rel, col = _where(conn, table, column)
    (n,) = conn.execute(
        sql.SQL("SELECT coalesce(sum(pg_column_size({})), 0)::bigint FROM {}").format(
            sql.Identifier(col), sql.SQL(rel)
        )
    ).fetchone()  # type: ignore[misc]
    return int(n)


class PgVecext(VecextMethod):
    """A vecext method on PostgreSQL: the set-up is kept in the benchmark table. The run's
    filter columns are mirrored into the code stores (catalog 0.6.0); option ``@mirror=0``
    joins the table by primary key instead (``PlannerSettings.mirrored_filters``)."""

    def __init__(self, ctx: BenchContext, strategy: str = "auto", kind: str | None = None) -> None:
        super().__init__(ctx, strategy, kind)
        if not ctx.option("mirror", int, 1):
            self.settings = PlannerSettings(mirrored_filters=False, recall_target=self.recall)
            self.params["mirror"] = 0

    def prepare(self) -> float:
        ensure_attribute_indexes(self.ctx)
        return 0.0

    def ensure_codes(self, kind: str) -> tuple[str, float]:
        return ensure_codes(self.ctx, kind)

    def ensure_lists(self, column: str) -> float:
        return ensure_lists(self.ctx, column)

    def note(self, r: SearchResult) -> None:
        self.params["last_plan"] = {"strategy": r.strategy, **r.plan.params}

    #: indexes (beyond the table) the method searches
    index_names: tuple[str, ...] = ()

    def disk_bytes(self) -> int:
        """The table (vectors and, in the in-table layout, codes) and its indexes searched."""
        return pg_store.relation_bytes(self.conn, [self.table], table=True) + (
            pg_store.relation_bytes(self.conn, list(self.index_names))
        )

    def storage_bytes(self) -> int:
        total = int(self.ctx.extra.get("pg_vector_bytes", 0))
        if self.using:
            total += _column_bytes(self.conn, self.table, self.using)
        if self.using and self.strategy == "ivf":
            lists = ivf_lists(self.conn, self.table, self.using)
            if lists is not None and lists.store is not None:
                (n,) = self.conn.execute(
                    sql.SQL("SELECT coalesce(sum(pg_column_size({})), 0)::bigint FROM {}").format(
                        sql.Identifier(lists.list_column), sql.Identifier("vecext", lists.store)
                    )
                ).fetchone()  # type: ignore[misc]
                total += int(n)
            elif lists is not None:
                total += _column_bytes(self.conn, self.table, lists.list_column)
        return total


class VecextAuto(PgVecext):
    """The planner with what vecext sets up without touching the table: binary codes in
    a code store and the HNSW index of the ``pgvector-hnsw`` baseline (same name and
    DDL, so reused). No IVF lists (as measured when their list ids were a column of the
    table; from catalog 0.5.0 they live in the code store and leave the table alone)."""

    def build(self) -> float | None:
        ensure_attribute_indexes(self.ctx)
        column, s = ensure_codes(self.ctx, "binary")
        hnsw = PgHnsw(self.ctx)
        s += hnsw.build() or 0.0
        s += ensure_index_calibration(self.ctx, f"{self.table}_hnsw")
        self.hnsw_bytes = hnsw.storage_bytes() - int(self.ctx.extra.get("pg_vector_bytes", 0))
        self.index_names = tuple(hnsw.indexes)
        self.using = None  # the planner chooses
        self.code_column = column
        return s

    def storage_bytes(self) -> int:
        return (
            int(self.ctx.extra.get("pg_vector_bytes", 0))
            + _column_bytes(self.conn, self.table, self.code_column)
            + self.hnsw_bytes
        )


# vecext's exact strategy: the filter first (bitmap scans of attribute indexes
# allowed), index scans off, every matching row's exact distance (no code column)
register_method("vecext-exact", "postgres", partial(PgVecext, strategy="exact"))
register_fixed("postgres", PgVecext)
register_method("vecext-auto", "postgres", VecextAuto)
