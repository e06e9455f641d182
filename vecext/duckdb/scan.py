"""The candidate stage of a DuckDB two-stage search, scanned with FAISS over cached codes.

What :func:`candidates` does for one search (the SQL macro stage of
:mod:`vecext.duckdb.strategies` does the same in SQL; :func:`set_candidate_scan`
chooses, FAISS by default):

1. the column's codes from the in-process cache (:mod:`vecext.duckdb.codeset`:
   read once through Arrow, reloaded after ``refresh`` and every vecext write);
2. the rows to rank: every cached row, or under a filter the rows passing it (one
   DuckDB query of their rowids), only those in the probed IVF lists when given;
3. the ``depth`` nearest by codes (:meth:`vecext.codecs.Codec.scan`: FAISS' ADC scan
   for PQ, its popcount scan for binary, numpy for the others), split over
   :func:`set_faiss_threads` threads when there are many codes;
4. one DuckDB statement reranks them exactly together with the rows the cache
   cannot vouch for: rows written since the last refresh (above the refresh mark),
   rows without codes or without a list. Row ids travel as integer literals made
   here, never as text from the caller.

Threads: FAISS scans one query on one core; above :data:`SPLIT_ABOVE` codes the scan
is cut into ``threads`` parts run in parallel (FAISS releases the GIL). The default
is ``min(2, cores)``: set ``VECEXT_FAISS_THREADS=1`` (or call ``set_faiss_threads(1)``)
when DuckDB's own threads or other searches keep the cores busy.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb
import numpy as np

from vecext.codecs import Codec
from vecext.duckdb import codeset
from vecext.duckdb.codecs import cached_codec
from vecext.duckdb.filters import ident
from vecext.search.contracts import Candidates, SearchError, Stage

#: codes above which one scan is split over the FAISS threads
SPLIT_ABOVE = 200_000

_settings: dict[str, Any] = {
    "scan": os.environ.get("VECEXT_DUCKDB_SCAN", "faiss"),
    "threads": int(os.environ.get("VECEXT_FAISS_THREADS", "0") or 0) or min(2, os.cpu_count() or 1),
}
_pool: ThreadPoolExecutor | None = None


def set_candidate_scan(how: str) -> None:
    """``"faiss"`` (default: cached codes scanned by FAISS) or ``"sql"`` (the SQL macros
    of each codec, as vecext < 0.4 did); also ``VECEXT_DUCKDB_SCAN``."""
    if how not in ("faiss", "sql"):
        raise ValueError(f"candidate scan must be 'faiss' or 'sql', got {how!r}")
    _settings["scan"] = how


def candidate_scan() -> str:
    return str(_settings["scan"])


def set_faiss_threads(n: int) -> None:
    """Threads one FAISS candidate scan may use (see the module docstring)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    _settings["threads"] = n


def _scan(codec: Codec, q: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest codes (positions), split over threads when there are many."""
    global _pool
    parts = int(_settings["threads"])
    n = codes.shape[0]
    if parts <= 1 or n <= SPLIT_ABOVE:
        return codec.scan(q, codes, k)
    if _pool is None or _pool._max_workers < parts:  # type: ignore[attr-defined]
        _pool = ThreadPoolExecutor(parts, thread_name_prefix="vecext-faiss")
    cuts = np.linspace(0, n, parts + 1).astype(np.int64)
    starts = [int(a) for a in cuts[:-1]]
    jobs = [
        _pool.submit(codec.scan, q, codes[a : int(b)], k)
        for a, b in zip(starts, cuts[1:], strict=True)
    ]
    D = np.concatenate([j.result()[0] for j in jobs])
    Ik = np.concatenate([j.result()[1] + a for j, a in zip(jobs, starts, strict=True)])
    order = np.argsort(D, kind="stable")[:k]
    return D[order], Ik[order]


def _rowids(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in con.execute(sql, params).fetchnumpy().items()}


def candidates(ctx: Any, stage: Stage) -> Candidates:
    """The FAISS candidate stage (see the module docstring); ``ctx`` is a
    :class:`vecext.duckdb.strategies.Context`."""
    code, depth, lists = stage.code, stage.depth, stage.lists
    info, con = ctx.info, ctx.con
    every = lists is None or len(lists) >= int(code.nlist)
    col = codeset.Column(info.ref, code.name, info.column, info.id_column, code.list_column)
    codec = cached_codec(con, code.codec, code.fingerprint)
    entry = codeset.code_set(con, col, int(codec.code_size))
    c = col.code_sql
    unsure = f"rowid > {int(entry.mark)} OR {c} IS NULL"
    if code.list_column:
        unsure += f" OR {ident(code.list_column)} IS NULL"
    budget = ctx.req.max_scan_rows
    if ctx.req.pred is None:
        live = _rowids(
            con, f"SELECT rowid FROM {ctx.t} WHERE ({unsure}) AND {ctx.where}", ctx.where_params
        )["rowid"]
        pos = None if every else entry.in_lists(np.asarray(lists))
    else:
        got = _rowids(
            con,
            f"SELECT rowid, ({unsure}) AS vx_unsure FROM {ctx.t} WHERE {ctx.where}",
            ctx.where_params,
        )
        unsure_mask = got["vx_unsure"].astype(bool)
        live = got["rowid"][unsure_mask]
        pos = entry.positions(got["rowid"][~unsure_mask])
        if not every:
            inside = np.zeros(len(entry.rowids), dtype=bool)
            inside[pos] = True
            in_lists = entry.in_lists(np.asarray(lists))
            pos = in_lists[inside[in_lists]]
    if budget is not None:
        pos = np.arange(min(int(budget), len(entry.rowids))) if pos is None else pos[:budget]
    if pos is not None:
        pos = np.sort(pos)
    codes = entry.codes if pos is None else entry.codes[pos]
    n_read = len(entry.rowids) if pos is None else len(pos)
    best = np.zeros(0, np.int64)
    if len(codes):
        _, top = _scan(codec, ctx.req.q, codes, depth)
        best = entry.rowids[top if pos is None else pos[top]]
    chosen = np.unique(np.concatenate([best, live.astype(np.int64), entry.stale]))
    if ctx.plan is not None:
        ctx.plan.steps.append(
            f"FAISS scanned {n_read} cached codes of {code.name}; {len(live)} rows written "
            f"since the last refresh or without codes are reranked with the {len(best)} best"
        )
    rows = _rerank(ctx, chosen)
    ids = [r[0] for r in rows]
    dist = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=np.float64)
    return Candidates(ids, dist, np.full(len(ids), -1, np.int64), None if every else n_read,
                      len(ids))  # fmt: skip


def _rerank(ctx: Any, rowids: np.ndarray) -> list[tuple[Any, ...]]:
    """Exact distances of the rows ``rowids`` passing the filter, by (distance, id)."""
    if len(rowids) == 0:
        return []
    marks = ",".join(str(int(r)) for r in rowids)  # integers made here, not caller text
    sql = (
        f"SELECT {ctx.id} AS vx_id, {ctx.dist()} AS vx_dist FROM {ctx.t} "
        f"WHERE rowid IN ({marks}) AND {ctx.where} ORDER BY vx_dist, vx_id"
    )
    try:
        return ctx.con.execute(sql, [ctx.q, *ctx.where_params]).fetchall()  # type: ignore[no-any-return]
    except duckdb.CatalogException as exc:
        raise SearchError(f"{exc}: reranking {ctx.info.table}") from exc
