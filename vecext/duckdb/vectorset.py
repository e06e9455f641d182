"""A table's float vectors in process memory: exact distances without a DuckDB statement.

DuckDB computes ``array_cosine_distance`` and friends row by row; a rerank of 320
candidates through the primary key's index costs about 6 ms on 117k rows (18 us a row)
and an exact scan of 5,000 rows about 4 ms, where numpy needs a few microseconds per
candidate and 0.2 ms for the scan. So, for tables whose vectors fit
:data:`CACHE_BYTES` (``VECEXT_DUCKDB_VECTOR_CACHE_MB``, default 512 MB; 0 turns it
off) and that have an integer primary key, the search keeps the vectors in this
process: the FAISS candidate stage reranks from them, and the exact strategy scans
them. Larger tables rerank in SQL as before. Memory: 4 bytes per dimension and row (a
117,659 x 384 table takes 180 MB; 1M x 768 does not fit the default).

**Which rows the cache may serve** (the same reasoning as :mod:`vecext.duckdb.codeset`).
DuckDB writes an updated ``FLOAT[d]`` value as a delete plus an insert, so a changed
vector always gets a new ``rowid`` above every rowid that existed before. The cache
records the highest rowid when it loaded (its *mark*): rows above it are read from the
table by every search (one statement with the filter, usually empty), rows at or
below it are current unless deleted. Each search checks that the table still holds
as many rows at or below the mark as when last checked (one statement: the row count
and the rows above the mark, 0.6 ms on 117k rows); when not, it reads the rowids at or
below the mark once, marks the missing rows dead, and reloads if any row moved (a
checkpoint that compacted row groups renumbers rowids). After more than
:data:`RELOAD_ABOVE` writes (or a tenth of the table) it reloads.

Scans use FAISS' single-threaded inner-product kernel, candidates are scored again in
float64 (DuckDB's functions accumulate in float32: distances agree to about 1e-6).

Renumbering needs a compacting checkpoint, which DuckDB does not run on tables with an
index, and the cache only serves tables with an integer primary key; the check is
there for storage versions that would.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from vecext.codecs.kernels import inner_products
from vecext.duckdb._sql import quote_ident
from vecext.duckdb.codeset import rows_in_place

#: bytes of float vectors the cache keeps, over every table
CACHE_BYTES = int(float(os.environ.get("VECEXT_DUCKDB_VECTOR_CACHE_MB", "512")) * 2**20)

_lock = threading.Lock()
_cache: OrderedDict[tuple[Any, ...], VectorSet] = OrderedDict()


def set_vector_cache_mb(mb: float) -> None:
    """The memory the vector cache may hold (see the module); 0 turns it off."""
    global CACHE_BYTES
    if isinstance(mb, bool) or not isinstance(mb, (int, float)) or mb < 0:
        raise ValueError(f"the vector cache size must be a number of MB >= 0, got {mb!r}")
    CACHE_BYTES = int(float(mb) * 2**20)
    clear()


def clear() -> None:
    """Forget every cached table (tests, memory)."""
    with _lock:
        _cache.clear()


@dataclass
class VectorSet:
    """The cached vectors of one table column (rows at or below ``mark``)."""

    rowids: np.ndarray  # int64, ascending
    keys: np.ndarray  # int64 primary key per row
    X: np.ndarray  # (n, d) float32, C-contiguous
    keyhash: np.ndarray  # uint64 hash of the key per row (renumbering check)
    sq: np.ndarray  # float32 squared norm per row (the scan's l2 and cosine terms)
    alive: np.ndarray  # bool: not deleted since loaded
    mark: int
    n_alive: int
    #: rows at or below the mark (with a vector or not) when last checked
    n_below: int = 0
    _by_key: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def nbytes(self) -> int:
        return int(
            self.X.nbytes + self.rowids.nbytes + self.keys.nbytes + self.keyhash.nbytes
            + self.sq.nbytes
        )  # fmt: skip

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Positions of the alive rows with primary key ``keys``, -1 where none."""
        if self._by_key is None:
            order = np.argsort(self.keys, kind="stable")
            self._by_key = (order, self.keys[order])
        order, sorted_keys = self._by_key
        keys = np.asarray(keys, np.int64)
        if len(sorted_keys) == 0:
            return np.full(len(keys), -1, np.int64)
        at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
        pos = np.where(sorted_keys[at] == keys, order[at], -1)
        ok = pos >= 0
        ok[ok] = self.alive[pos[ok]]
        return np.where(ok, pos, -1)

    def positions(self, rowids: np.ndarray) -> np.ndarray:
        """Positions of the alive cached rows among ``rowids`` (others dropped)."""
        if len(self.rowids) == 0:
            return np.zeros(0, np.int64)
        pos = np.minimum(np.searchsorted(self.rowids, rowids), len(self.rowids) - 1)
        pos = pos[self.rowids[pos] == rowids]
        return pos[self.alive[pos]]


def distances(X: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    """DuckDB's ``array_distance`` / ``array_cosine_distance`` /
    ``array_negative_inner_product`` of each row of ``X`` to ``q``, in float64."""
    X64 = np.asarray(X, np.float64)
    q64 = np.asarray(q, np.float64)
    if metric == "l2":
        diff = X64 - q64
        return np.sqrt(np.einsum("ij,ij->i", diff, diff))
    dot = np.einsum("ij,j->i", X64, q64)  # not BLAS: see vecext.codecs.kernels
    if metric == "ip":
        return -dot
    norms = np.sqrt(np.einsum("ij,ij->i", X64, X64)) * float(np.sqrt(q64 @ q64))
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - dot / norms


def fast_distances(vs: VectorSet, pos: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    """float32 distances of the cached rows ``pos`` to ``q`` (one FAISS pass; to choose
    rows, which :func:`distances` then scores in float64)."""
    whole = len(pos) == len(vs.rowids)
    X = vs.X if whole else vs.X[pos]
    sq = vs.sq if whole else vs.sq[pos]
    q = np.asarray(q, np.float32)
    dot = inner_products(X, q)
    qq = float(q @ q)
    if metric == "l2":
        return np.sqrt(np.maximum(sq - 2.0 * dot + qq, 0.0))
    if metric == "ip":
        return -dot
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - dot / (np.sqrt(sq) * np.float32(np.sqrt(qq)))


def nearest(vs: VectorSet, pos: np.ndarray | None, q: np.ndarray, metric: str, k: int):  # type: ignore[no-untyped-def]
    """``(positions, float64 distances)`` of the ``k`` nearest cached rows among ``pos``
    (every alive row when ``None``): a float32 pass picks ``4 k + 64`` rows, which are
    then scored in float64 (so the order matches an exact float64 computation)."""
    if pos is None:
        pos = np.flatnonzero(vs.alive)
    if len(pos) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    score = fast_distances(vs, pos, q, metric)
    score = np.where(np.isnan(score), np.inf, score)
    keep = min(len(score), 4 * k + 64)
    top = np.argpartition(score, keep - 1)[:keep] if keep < len(score) else np.arange(len(score))
    chosen = pos[top]
    d = distances(vs.X[chosen], q, metric)
    return chosen, d


@dataclass(frozen=True)
class Table:
    """What the cache needs to find a table's vectors."""

    path: Any  # the database file (None in memory)
    table_sql: str
    column: str
    key: str  # the integer primary key column
    dim: int
    oid: Any  # the table's oid (a re-created table loads again)

    @property
    def cache_key(self) -> tuple[Any, ...]:
        return (self.path, self.table_sql, self.column, self.key, self.dim, self.oid)


def fits(n_rows: int, dim: int) -> bool:
    return CACHE_BYTES > 0 and n_rows * dim * 4 <= CACHE_BYTES


def served(info: Any) -> Table | None:
    """Where the cache finds the table of ``info`` (a search's table facts), or ``None``
    when the table has no integer primary key or its vectors do not fit the cache."""
    t = info.backend_facts
    if isinstance(t, Table) and fits(int(info.caps.n_rows), int(info.dim)):
        return t
    return None


def vector_set(
    con: duckdb.DuckDBPyConnection, t: Table, check: bool = True
) -> tuple[VectorSet, int]:
    """The vector set of ``t``, loaded when missing (see the module), and how many rows
    its check found above the mark (0 after a load; -1 when not checked). ``check=False``
    skips the per-search count: for a caller that knows the current rowids of every row
    it will use (a filter's matching rows read in this search), since a row's vector
    never changes under its rowid. The count is returned, not kept on the shared set:
    another thread's search may check it meanwhile."""
    key = t.cache_key
    with _lock:
        entry = _cache.get(key)
        if entry is not None:
            _cache.move_to_end(key)
    above = -1
    if entry is not None and check:
        got = _still_valid(con, t, entry)
        if got is None:
            entry = None
        else:
            above = got
    if entry is None:
        entry = _load(con, t)
        above = 0
        with _lock:
            _cache[key] = entry
            while len(_cache) > 1 and sum(e.nbytes for e in _cache.values()) > CACHE_BYTES:
                _cache.popitem(last=False)
    return entry, above


def _counts(con: duckdb.DuckDBPyConnection, t: Table, mark: int) -> tuple[int, int]:
    """Rows at or below ``mark`` and above it (any vector, NULL included), in one
    statement DuckDB answers without reading vectors (0.6 ms on 117k rows): the row
    count, and a rowid range pushed down. A row at or below the mark cannot be inserted
    (rowids only grow: the table has an index, see the module) nor change its vector (an
    update moves it above the mark), so a lower count below the mark means deletes."""
    row = con.execute(
        f"SELECT (SELECT count(*) FROM {t.table_sql}), "
        f"(SELECT count(*) FROM {t.table_sql} WHERE rowid > ?)",
        [mark],
    ).fetchone()
    n, above = (int(x) for x in row) if row else (0, 0)
    return n - above, above


#: rows written since the load above which the cache reloads (every search reads them
#: from the table until then)
RELOAD_ABOVE = 2_000


def _still_valid(con: duckdb.DuckDBPyConnection, t: Table, e: VectorSet) -> int | None:
    """The rows above the mark when the cached rows still sit at their rowids (deleted
    ones are marked dead), else ``None``: reload. ``None`` also when many rows were
    written since the load: a reload is cheaper than reading them in every search."""
    below, above = _counts(con, t, e.mark)
    if above > max(RELOAD_ABOVE, len(e.rowids) // 10):
        return None
    if below == e.n_below:
        return above
    pos = rows_in_place(con, t.table_sql, t.key, t.column, e.mark, e.rowids, e.keyhash)
    if pos is None:
        return None  # renumbered: reload
    alive = np.zeros(len(e.rowids), dtype=bool)
    alive[pos] = True
    e.alive, e.n_alive, e.n_below = alive, int(alive.sum()), below
    return above


def _load(con: duckdb.DuckDBPyConnection, t: Table) -> VectorSet:
    """One Arrow scan of ``(rowid, key, hash(key), vector)`` of every row (one snapshot;
    no ORDER BY or window, which would make DuckDB materialise and sort the vectors:
    the rows are put in rowid order here when the scan did not already deliver them
    so). The mark and the row count below it are of every row, NULL vectors too."""
    v, k = quote_ident(t.column), quote_ident(t.key)
    a = con.execute(
        f"SELECT rowid AS vx_rid, {k}::BIGINT AS vx_key, hash({k}) AS vx_kh, "
        f"{v}::FLOAT[{int(t.dim)}] AS vx_v FROM {t.table_sql}"
    ).to_arrow_table()
    n_all = a.num_rows
    rowids = np.asarray(a.column("vx_rid").to_numpy(), np.int64)
    mark = int(rowids.max()) if n_all else -1
    vec = a.column("vx_v")
    vec = vec.combine_chunks() if isinstance(vec, pa.ChunkedArray) else vec
    keep = None
    if vec.null_count:
        keep = np.asarray(vec.is_valid().to_numpy(zero_copy_only=False), bool)
        vec = vec.filter(pa.array(keep))
    n = len(vec)
    flat = vec.flatten().to_numpy(zero_copy_only=False)
    X = np.asarray(flat, np.float32).reshape(n, int(t.dim))
    keys = np.asarray(a.column("vx_key").to_numpy(), np.int64)
    kh = np.asarray(a.column("vx_kh").to_numpy(zero_copy_only=False), np.uint64)
    if keep is not None:
        rowids, keys, kh = rowids[keep], keys[keep], kh[keep]
    if n > 1 and not bool((np.diff(rowids) > 0).all()):
        order = np.argsort(rowids, kind="stable")
        rowids, keys, kh, X = rowids[order], keys[order], kh[order], X[order]
    X = np.ascontiguousarray(X)
    sq = np.einsum("ij,ij->i", X, X)
    return VectorSet(rowids, keys, X, kh, sq, np.ones(n, dtype=bool), mark, n, n_all)
