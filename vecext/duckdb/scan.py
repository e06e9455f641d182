"""The candidate stage of a DuckDB two-stage search, scanned with FAISS over cached codes.

What :func:`candidates` does for one search (the SQL macro stage of
:mod:`vecext.duckdb.strategies` does the same in SQL; :func:`set_candidate_scan`
chooses, FAISS by default):

1. the column's codes from the in-process cache (:mod:`vecext.duckdb.codeset`:
   read once through Arrow, reloaded after ``refresh`` and every vecext write);
2. the rows to rank: every cached row, or under a filter the rows passing it (their
   rowids, read once per search by the planner's count or here), only those in the
   probed IVF lists when given; when they hold at most :data:`SMALL_EXACT_FLOATS`
   floats and the vector cache serves the table, they are ranked exactly instead;
3. the ``depth`` nearest by codes (:meth:`vecext.codecs.Codec.scan`: FAISS' ADC scan
   for PQ, its popcount scan for binary, numpy for the others), split over
   :func:`set_faiss_threads` threads when there are many codes;
4. they are reranked exactly together with the rows the cache cannot vouch for:
   rows written since the last refresh (above the refresh mark), rows without codes
   or without a list; from the vector cache (:mod:`vecext.duckdb.vectorset`) when the
   table has one, else in one DuckDB statement. Row ids travel as integer literals
   made here, never as text from the caller.

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
from vecext.duckdb import codeset, inmemory, vectorset
from vecext.duckdb.codecs import cached_codec
from vecext.duckdb.filters import compile_filter
from vecext.search.contracts import Candidates, SearchError, Stage

#: codes above which one scan is split over the FAISS threads
SPLIT_ABOVE = 200_000

_settings: dict[str, Any] = {
    "scan": os.environ.get("VECEXT_DUCKDB_SCAN", "faiss"),
    "threads": int(os.environ.get("VECEXT_FAISS_THREADS", "0") or 0) or min(2, os.cpu_count() or 1),
}
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0


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
    global _pool, _pool_pid
    parts = int(_settings["threads"])
    n = codes.shape[0]
    if parts <= 1 or n <= SPLIT_ABOVE:
        return codec.scan(q, codes, k)
    if _pool is None or _pool._max_workers < parts or _pool_pid != os.getpid():  # type: ignore[attr-defined]
        # a forked child inherits the pool without its threads: it makes its own
        _pool = ThreadPoolExecutor(parts, thread_name_prefix="vecext-faiss")
        _pool_pid = os.getpid()
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
    small = _small_exact(ctx, code, depth, lists, every)
    if small is not None:
        return small
    col = codeset.Column(info.ref, code.name, info.column, info.id_column, code.list_column)
    codec = cached_codec(con, code.codec, code.fingerprint)
    entry = codeset.code_set(con, col, int(codec.code_size), code.version)
    budget = ctx.req.max_scan_rows
    keyed = entry.keys is not None
    key = ctx.id if keyed else "rowid"  # the rerank finds rows by the primary key's index
    above = f"rowid > {int(entry.mark)}"  # written since the refresh (cheap: rowid only)
    matching = None  # keys of the rows passing the filter (None: every row)
    if ctx.req.pred is None:
        vs = inmemory.usable(ctx) if keyed else None
        if vs is not None and vs.mark == entry.mark and inmemory.written_since(ctx) == 0:
            live = np.zeros(0, np.int64)  # the vector cache just counted: none written since
        else:
            sql = f"SELECT {key}::BIGINT AS vx_key FROM {ctx.t} WHERE {above}"
            live = _rowids(con, sql, [])["vx_key"]
        pos = None if every else entry.in_lists(np.asarray(lists))
    else:
        body, params = compile_filter(ctx.req.pred)
        read = ctx.matching_rows(body, params) if keyed else None
        got = (
            {k: np.asarray(v) for k, v in read.items()}
            if read is not None
            else _rowids(
                con,
                f"SELECT rowid, {key}::BIGINT AS vx_key FROM {ctx.t} WHERE ({body})",
                params,
            )
        )
        new = got["rowid"] > entry.mark
        matching = np.asarray(got["vx_key"], np.int64)
        live = got["vx_key"][new]
        pos = entry.positions(got["rowid"][~new])
        if not every:
            inside = np.zeros(len(entry.rowids), dtype=bool)
            inside[pos] = True
            in_lists = entry.in_lists(np.asarray(lists))
            pos = in_lists[inside[in_lists]]
    live = np.concatenate([np.asarray(live, np.int64), entry.uncoded])
    if budget is not None:
        pos = np.arange(min(int(budget), len(entry.rowids))) if pos is None else pos[:budget]
    if pos is not None:
        pos = np.sort(pos)
    codes = entry.codes if pos is None else entry.codes[pos]
    n_read = len(entry.rowids) if pos is None else len(pos)
    best = np.zeros(0, np.int64)
    rows_of = entry.keys if entry.keys is not None else entry.rowids
    # with a primary key, the stage returns up to dmax candidates in code order (the
    # first depth reranked) and the engine's progressive deepening reranks more by key
    want = stage.dmax if keyed else depth
    best_lists = np.zeros(0, np.int64)
    if len(codes):
        _, top = _scan(codec, ctx.req.q, codes, max(depth, want))
        at = top if pos is None else pos[top]
        best = rows_of[at]
        if entry.lists is not None and not every:
            best_lists = entry.lists[at].astype(np.int64)
    stale = entry.stale
    if keyed and len(stale):
        stale = entry.keys[entry.positions(stale)]  # type: ignore[index]
    first, rest = best[:depth], best[depth:]
    extra = np.setdiff1d(np.concatenate([np.asarray(live, np.int64), stale]), first)
    if ctx.plan is not None:
        ctx.plan.steps.append(
            f"FAISS scanned {n_read} cached codes of {code.name}; {len(extra)} rows written "
            f"since the last refresh or without codes are reranked with the {len(first)} best"
        )
    if matching is not None and keyed:
        extra = extra[np.isin(extra, matching)]  # stale and uncoded rows pass the filter?
    cand = np.concatenate([first, extra]).astype(np.int64)
    if keyed:
        found, d = _exact_by_key(ctx, cand)
        done_keys = cand[found]
        ids: list[Any] = done_keys.tolist()
        dist = d[found]
        n_done = len(done_keys)
        if len(rest):
            ids += rest.tolist()  # the id column is the key: reranked on demand
            dist = np.concatenate([dist, np.full(len(rest), np.nan)])
        keys_in_order: list[Any] = ids
    else:
        got = {r[0]: (r[1], r[2]) for r in _rerank_sql(ctx, cand, key)}  # rowid -> (id, d)
        done = [x for x in cand.tolist() if x in got]
        ids = [got[x][0] for x in done]
        dist = np.array([np.nan if got[x][1] is None else got[x][1] for x in done], np.float64)
        n_done, keys_in_order = len(done), done
    # each candidate's IVF list, for the engine's widening; rows reranked regardless of
    # their list count as found in the nearest probed list
    lst = np.full(len(ids), -1, np.int64)
    if len(best_lists):
        where = dict(zip(best.tolist(), best_lists.tolist(), strict=True))
        near = int(np.asarray(lists)[0])
        lst = np.array([where.get(x, near) for x in keys_in_order], dtype=np.int64)
    return Candidates(ids, np.asarray(dist, dtype=np.float64), lst,
                      None if every else n_read, n_done)  # fmt: skip


#: rows x dimensions at or below which the stage ranks the vector cache exactly instead
#: of the codes (``VECEXT_DUCKDB_EXACT_BELOW``): 2M floats take ~0.3 ms in FAISS' kernel,
#: less than a code scan's lookup tables plus its rerank (measured: 5,000 x 384 rows,
#: exact 2.0-2.5 ms per search against 3.1-3.9 ms through the codes)
SMALL_EXACT_FLOATS = int(os.environ.get("VECEXT_DUCKDB_EXACT_BELOW", "2000000"))


def _small_exact(ctx: Any, code: Any, depth: int, lists: Any, every: bool) -> Candidates | None:
    """The stage on a table this small: every row passing the filter ranked exactly from
    the vector cache, the ``depth`` best returned reranked (``None``: not small, or the
    vector cache does not serve the table)."""
    info = ctx.info
    if vectorset.served(info) is None:
        return None
    n = int(info.caps.n_rows)
    if ctx.req.pred is not None:
        body, params = compile_filter(ctx.req.pred)
        got = ctx.matching_rows(body, params)
        n = -1 if got is None else len(got["rowid"])
    if n < 0 or n * int(info.dim) > SMALL_EXACT_FLOATS:
        return None
    # exactly ranked, the k best are the first k: 4 k rows leave the engine nothing to
    # deepen
    found = inmemory.ranked(ctx, min(depth, 4 * int(ctx.req.k)))
    if found is None:
        return None
    keys, dist, n_ranked = found
    if ctx.plan is not None:
        ctx.plan.steps.append(
            f"{n_ranked} rows x {info.dim} dimensions: ranked exactly from the vector cache "
            f"instead of by the codes of {code.name} (at most {SMALL_EXACT_FLOATS:,} floats: "
            "cheaper than a code scan and its rerank)"
        )
    # every row was ranked: each counts as found in the nearest probed list
    near = -1 if every else int(np.asarray(lists)[0])
    lst = np.full(len(keys), near, np.int64)
    return Candidates(keys.tolist(), dist, lst, None if every else n_ranked, len(keys))


def exact_of(ctx: Any, ids: list[Any]) -> np.ndarray:
    """Exact distances of the rows ``ids`` (integer primary keys), aligned with them."""
    _, d = _exact_by_key(ctx, np.asarray(ids, dtype=np.int64))
    return d


def _exact_by_key(ctx: Any, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(found, distance)`` aligned with the primary keys ``keys``: whether the row
    exists and passes the filter, and its exact distance (NaN where not found). From the
    vector cache (:mod:`vecext.duckdb.vectorset`) when the table has one, the rest in
    SQL. The caller passes only keys of rows that pass the filter, or that the SQL
    checks: cached rows are not checked against it again."""
    found = np.zeros(len(keys), dtype=bool)
    d = np.full(len(keys), np.nan, dtype=np.float64)
    if len(keys) == 0:
        return found, d
    vs = inmemory.usable(ctx)
    rest = np.arange(len(keys))
    if vs is not None:
        pos = vs.find(keys)
        here = pos >= 0
        d[here] = vectorset.distances(vs.X[pos[here]], ctx.req.q, ctx.req.metric)
        found[here] = True
        rest = np.flatnonzero(~here)
    if len(rest):  # no cache, or written since it loaded (or deleted): the table decides
        got = {r[0]: r[2] for r in _rerank_sql(ctx, keys[rest], ctx.id)}
        for i in rest.tolist():
            k = int(keys[i])
            if k in got:
                found[i] = True
                d[i] = np.nan if got[k] is None else float(got[k])
    return found, d


#: keys per IN list of the rerank (DuckDB turns longer lists into a scan)
RERANK_CHUNK = 1000


def _rerank_sql(ctx: Any, keys: np.ndarray, key: str) -> list[tuple[Any, ...]]:
    """``(key, id, exact distance)`` of the rows whose ``key`` (the primary key, else
    ``rowid``) is in ``keys`` and that pass the filter, by (distance, id), in one DuckDB
    statement. The keys are integers made here, never text from the caller. DuckDB runs ``key IN (...)`` as a semi-join on a scan
    of the key column and reads the vectors of the matching rows only; on ``rowid`` it
    reads the whole vector column (measured: 12 ms against 115 ms for 320 of 117k rows)."""
    if len(keys) == 0:
        return []
    parts, params = [], []
    for i in range(0, len(keys), RERANK_CHUNK):
        marks = ",".join(str(int(r)) for r in keys[i : i + RERANK_CHUNK])
        parts.append(
            f"SELECT {key}::BIGINT AS vx_key, {ctx.id} AS vx_id, {ctx.dist()} AS vx_dist "
            f"FROM {ctx.t} WHERE {key} IN ({marks}) AND {ctx.where}"
        )
        params += [ctx.q, *ctx.where_params]
    sql = "SELECT * FROM (" + " UNION ALL ".join(parts) + ") ORDER BY vx_dist, vx_id"
    try:
        return ctx.con.execute(sql, params).fetchall()  # type: ignore[no-any-return]
    except duckdb.CatalogException as exc:
        raise SearchError(f"{exc}: reranking {ctx.info.table}") from exc
