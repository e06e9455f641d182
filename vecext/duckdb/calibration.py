"""Calibrate a compressed column or an HNSW index on its own data (DuckDB).

:func:`calibrate` and :func:`calibrate_hnsw` (:func:`calibrate_index`) are
:mod:`vecext.search.calibrate`'s, the same driver and measurements for every backend;
this module is what they ask of DuckDB: the rows (through Arrow, :class:`ArrowRows`)
and where the records go (a compressed column's in
``vecext.compressed_columns.calibration``, JSON text, the same document as in
PostgreSQL; an index's in its comment), where the planner reads them to choose the
rerank depth, nprobe and ef_search for the caller's recall target.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import duckdb
import numpy as np

from vecext.duckdb import _arrow as ar
from vecext.duckdb import info_cache
from vecext.duckdb._sql import quote_ident, quote_literal
from vecext.duckdb.columns import check_column_current
from vecext.duckdb.indexes import HnswIndexError, hnsw_indexes
from vecext.duckdb.ivf import ivf_lists
from vecext.duckdb.strategies import cached_codec
from vecext.search import calibrate as driver
from vecext.search.calibrate import EF_LADDER, calibrate, calibrate_index

__all__ = [
    "EF_LADDER",
    "ArrowRows",
    "calibrate",
    "calibrate_hnsw",
    "calibrate_index",
    "code_source",
    "index_source",
]


class ArrowRows:
    """``(key, vector)`` rows of a table that have a vector (and, when ``code`` is given,
    codes): a repeatable reservoir sample, and every row through an Arrow reader.

    ``key`` is SQL text of the key column: ``rowid`` for code calibrations (no search
    returns their rows), the id column a search returns for index calibrations.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        table_sql: str,
        key: str,
        column: str,
        dim: int,
        code: str | None = None,
    ) -> None:
        src = quote_ident(column)
        has = f"{src} IS NOT NULL" + (f" AND {quote_ident(code)} IS NOT NULL" if code else "")
        self.con, self.dim, self.what = con, dim, f"{table_sql}.{src}"
        self.rows = f"SELECT {key} AS vx_key, {src} AS vx_v FROM {table_sql} WHERE {has}"

    def _matrix(self, column: Any) -> np.ndarray:
        return ar.list_matrix(column, self.dim, np.float32, self.what)[0]

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        sample = self.con.execute(
            f"SELECT vx_key, vx_v FROM ({self.rows}) USING SAMPLE reservoir({int(n)} ROWS) "
            f"REPEATABLE ({int(seed)}) ORDER BY vx_key"
        ).to_arrow_table()
        if sample.num_rows == 0:
            return np.empty(0, np.int64), np.zeros((0, self.dim), np.float32)
        return sample.column("vx_key").to_numpy(), self._matrix(sample.column("vx_v"))

    def batches(self, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for batch in self.con.execute(self.rows).to_arrow_reader(size):
            if batch.num_rows:
                yield batch.column(0).to_numpy(zero_copy_only=False), self._matrix(batch.column(1))


def code_source(backend: Any, table: str, code_column: str) -> driver.CodeSource:
    """``table.code_column``'s rows with codes (keyed by ``rowid``), its codec and IVF
    coarse quantizer, and its record's place: ``vecext.compressed_columns.calibration``."""
    con: duckdb.DuckDBPyConnection = backend.conn
    cc = check_column_current(con, table, code_column)
    codec = cached_codec(con, cc.codec, cc.codec_fingerprint)
    t = cc.table
    lists = ivf_lists(con, f"{t.schema}.{t.name}", cc.code_column)
    coarse = None
    if lists is not None:
        row = con.execute(
            "SELECT fingerprint FROM vecext.codecs WHERE name = ?", [lists.codec_name]
        ).fetchone()
        coarse = cached_codec(con, lists.codec_name, str(row[0]))  # type: ignore[index]

    def save(record: dict[str, Any]) -> None:
        info_cache.bump()
        con.execute(
            "UPDATE vecext.compressed_columns SET calibration = ?, updated_at = current_timestamp "
            "WHERE id = ?",
            [json.dumps(record), cc.id],
        )

    rows = ArrowRows(con, t.sql, "rowid", cc.source_column, codec.d, cc.code_column)
    return driver.CodeSource(rows, codec, coarse, f"{t}.{cc.code_column}", save)


def index_source(backend: Any, table: str, index: str, metric: str | None) -> driver.IndexSource:
    """The VSS index ``index`` of ``table`` as a search target, the table's rows keyed by
    the id column a search returns, and its record's place: the index's comment."""
    con: duckdb.DuckDBPyConnection = backend.conn
    found = [ix for ix in hnsw_indexes(con, table) if ix.name == index]
    if not found:
        raise HnswIndexError(f"table {table} has no HNSW index named {index!r}")
    ix = found[0]
    where = f"{ix.schema}.{ix.table}"
    target = driver.index_target(backend, where, ix.column, index, metric or ix.metric)
    info = target.info

    def save(record: dict[str, Any]) -> None:
        meta = {"vecext": "hnsw", "calibration": record}
        info_cache.bump()
        con.execute(
            f"COMMENT ON INDEX {quote_ident(ix.schema)}.{quote_ident(ix.name)} IS "
            f"{quote_literal(json.dumps(meta, sort_keys=True))}"
        )

    table_sql = str(info.ref.sql)  # type: ignore[attr-defined]
    rows = ArrowRows(con, table_sql, quote_ident(info.id_column), info.column, info.dim)
    return driver.IndexSource(target, rows, save)


#: DuckDB's name for :func:`calibrate_index` (VSS indexes are HNSW indexes).
calibrate_hnsw = calibrate_index
