"""Calibrate a DuckDB compressed column's rerank depth (and IVF probes) on its own data.

``calibrate(con, table, code_column)`` samples rows as queries, streams the table
once through Arrow, and measures with :class:`vecext.search.calibrate.Calibrator`
the recall@k reached when the best ``mult * k`` candidates by code distance are
reranked exactly, for a ladder of multipliers, and, when the column has IVF
lists, the share of true neighbours in the ``nprobe`` nearest lists. The record
goes to ``vecext.compressed_columns.calibration`` (JSON text, the same document
as in PostgreSQL); the planner reads it to choose the rerank depth and nprobe
for the caller's recall target.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import numpy as np

from vecext.codecs.base import as_float32_rows
from vecext.duckdb import _arrow as ar
from vecext.duckdb._sql import quote_ident
from vecext.duckdb.columns import check_column_current
from vecext.duckdb.ivf import ivf_lists
from vecext.duckdb.strategies import cached_codec
from vecext.search.calibrate import Calibrator


def calibrate(
    con: duckdb.DuckDBPyConnection,
    table: str,
    code_column: str,
    *,
    k: int = 10,
    n_queries: int = 200,
    seed: int = 0,
    batch_size: int = 20_000,
    queries: Any = None,
    store: bool = True,
) -> dict[str, Any]:
    """Measure and (with ``store``) save the calibration of ``table.code_column``.

    Parameters
    ----------
    k
        The k the recall@k curve is measured at (the planner scales depths by the
        caller's k).
    n_queries
        Sample rows used as queries (each is left out of its own results).
    seed
        Chooses the sample (a repeatable reservoir sample).
    queries
        ``(nq, d)`` query vectors to measure with instead of sample rows (e.g. from a
        query log): real queries often sit farther from the rows than the rows sit
        from each other, and need deeper reranks and wider probes.

    Returns
    -------
    dict
        ``{"k", "n_queries", "depth": {mult: recall}, "nprobe": {nprobe: share}}``.
    """
    for label, value in (("k", k), ("n_queries", n_queries), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
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
    src, code = quote_ident(cc.source_column), quote_ident(cc.code_column)
    rows = f"SELECT rowid AS rid, {src} AS v FROM {t.sql} WHERE {src} IS NOT NULL AND {code} IS NOT NULL"
    if queries is not None:
        xq = as_float32_rows(queries, codec.d, "queries")
        qids = np.full(xq.shape[0], -1, dtype=np.int64)
    else:
        sample = con.execute(
            f"SELECT rid, v FROM ({rows}) USING SAMPLE reservoir({int(n_queries)} ROWS) "
            f"REPEATABLE ({int(seed)}) ORDER BY rid"
        ).to_arrow_table()
        if sample.num_rows == 0:
            raise ValueError(f"{t}.{cc.code_column} has no encoded rows to calibrate on")
        what = f"{t}.{cc.source_column}"
        xq, _ = ar.list_matrix(sample.column("v"), codec.d, np.float32, what)
        qids = np.asarray(sample.column("rid").to_numpy(), dtype=np.int64)
    cal = Calibrator(xq, qids, k, codec, coarse, exclude_self=queries is None, seed=seed)
    reader = con.execute(rows).to_arrow_reader(batch_size)
    for batch in reader:
        if batch.num_rows == 0:
            continue
        xb, _ = ar.list_matrix(batch.column(1), codec.d, np.float32, f"{t}.{cc.source_column}")
        cal.add(np.asarray(batch.column(0).to_numpy(), dtype=np.int64), xb)
    record = cal.result()
    if store:
        con.execute(
            "UPDATE vecext.compressed_columns SET calibration = ?, updated_at = current_timestamp "
            "WHERE id = ?",
            [json.dumps(record), cc.id],
        )
    return record
