"""A compressed column's codes in process memory, for the FAISS candidate stage.

:func:`code_set` reads a code column once through Arrow (``rowid``, the codes as one
``(n, code_size)`` uint8 array, the IVF list ids) and keeps it in an in-process LRU
cache; the candidate stage (:mod:`vecext.duckdb.scan`) then ranks codes without
going through SQL.

**Which rows the cache may serve.** DuckDB has no triggers, so a vector written
without :func:`vecext.duckdb.refresh` keeps its old codes. DuckDB executes an
``UPDATE`` of a ``FLOAT[d]`` column (any list or array column) as a delete plus an
insert, so the updated row gets a new ``rowid`` above every existing one, as
inserted rows do. A complete refresh records the table's highest rowid, the
*refresh mark*, in the column's catalog row (``backfill_position``, as
``refreshed to rowid N``), in the same snapshot in which it found no stale row. So:

* rows with ``rowid <= mark`` and codes are current: they are cached and scanned;
* rows above the mark, rows without codes (and, with IVF lists, without a list)
  are always candidates: the search reranks them exactly (:func:`live_rows`);
* a column without a recorded mark (refreshed by vecext < 0.4) is checked once per
  load by hashing every vector (``hash(v)`` against the stored hash), which costs
  about an exact scan; the next refresh records a mark.

On checkpoint DuckDB may compact row groups that have deleted rows, which
renumbers rowids, so rows from above the mark could move below it; it never does so
for a table with an index (its indexes hold rowids), so a table with a primary key
keeps its rowids. For a table without one, each search compares the number of rows
with codes with the cached one; when rows went away it checks that every row at or
below the mark still has the ``rowid`` and key hash it had when cached, and if not,
distrusts the mark and reloads with the hash check.

**Invalidation.** The cache key holds the catalog row (its id, creation time,
codec version, mark, list column) and a process-wide generation that every vecext
write to a code or list column bumps (:func:`bump`), so ``refresh``, ``add_ivf_lists``
and re-adding a column reload.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecext.duckdb import _arrow as ar
from vecext.duckdb._sql import HASH_SUFFIX, TableRef, column_type, primary_key, quote_ident

#: ``backfill_position`` of a completely refreshed DuckDB column
MARK_TEXT = "refreshed to rowid {}"
_MARK = re.compile(r"^refreshed to rowid (-?\d+)$")
#: bytes of codes (and row ids) the cache keeps, over every column
CACHE_BYTES = int(float(os.environ.get("VECEXT_DUCKDB_CODE_CACHE_MB", "2048")) * 2**20)

_lock = threading.Lock()
_cache: OrderedDict[tuple[Any, ...], CodeSet] = OrderedDict()
_generation = 0
#: keys whose recorded mark turned out wrong (rowids renumbered): hash-check instead
_distrusted: set[tuple[Any, ...]] = set()


def bump() -> None:
    """A vecext write changed codes or list ids: every cached code set is reloaded."""
    global _generation
    with _lock:
        _generation += 1


def clear() -> None:
    """Forget every cached code set (tests, memory)."""
    with _lock:
        _cache.clear()
        _distrusted.clear()


def parse_mark(position: str | None) -> int | None:
    m = _MARK.match(position or "")
    return int(m.group(1)) if m else None


@dataclass
class CodeSet:
    """The cached codes of one compressed column (rows at or below ``mark``)."""

    rowids: np.ndarray  # int64, ascending
    #: the integer primary key of each row (the rerank looks rows up by it), else None
    keys: np.ndarray | None
    codes: np.ndarray  # (n, code_size) uint8, C-contiguous
    lists: np.ndarray | None  # int32 list id per row, -1 where NULL
    keyhash: np.ndarray  # uint64 hash of the id column per row (renumbering check)
    mark: int
    stale: np.ndarray  # rowids at or below the mark found stale by the hash check
    #: keys (or rowids) of rows at or below the mark without codes, or without a list
    uncoded: np.ndarray
    coded: int  # rows with codes in the table when last checked
    _csr: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def nbytes(self) -> int:
        extra = 0 if self.lists is None else self.lists.nbytes
        extra += 0 if self.keys is None else self.keys.nbytes
        return int(self.rowids.nbytes + self.codes.nbytes + self.keyhash.nbytes + extra)

    def positions(self, rowids: np.ndarray) -> np.ndarray:
        """Positions of the cached rows among ``rowids`` (the others are dropped)."""
        pos = np.searchsorted(self.rowids, rowids)
        pos = np.minimum(pos, max(len(self.rowids) - 1, 0))
        if len(self.rowids) == 0:
            return np.zeros(0, np.int64)
        return pos[self.rowids[pos] == rowids]

    def in_lists(self, lists: np.ndarray) -> np.ndarray:
        """Positions of the rows in IVF ``lists``, list by list (CSR built once)."""
        assert self.lists is not None
        if self._csr is None:
            order = np.argsort(self.lists, kind="stable")
            nl = int(self.lists.max()) + 2 if len(self.lists) else 1
            bounds = np.searchsorted(self.lists[order], np.arange(-1, nl))
            self._csr = (order, bounds)
        order, bounds = self._csr
        parts = [
            order[bounds[i + 1] : bounds[i + 2]]
            for i in (int(x) for x in lists)
            if 0 <= i < len(bounds) - 2
        ]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)


@dataclass(frozen=True)
class Column:
    """What the candidate stage needs to find a compressed column's rows."""

    t: TableRef
    code: str
    source: str
    id_column: str
    list_column: str | None

    @property
    def code_sql(self) -> str:
        return quote_ident(self.code)


def code_set(
    con: duckdb.DuckDBPyConnection, col: Column, code_size: int, version: tuple[Any, ...]
) -> CodeSet:
    """The cached code set of ``col``, loaded or reloaded when stale (see the module).
    ``version`` is the column's catalog state as the search's table facts hold it
    (:attr:`vecext.search.contracts.CodeColumn.version`: database path, catalog row id,
    creation time, codec version, refresh mark, list column, IVF codec)."""
    path, cc_id, created, fp, position, lcol, ivf = version
    base = (path, str(col.t), cc_id, created, fp, position, lcol, ivf, col.id_column)
    with _lock:
        key = (*base, _generation)
        entry = _cache.get(key)
        if entry is not None:
            _cache.move_to_end(key)
    mark = None if base in _distrusted else parse_mark(position)
    # DuckDB's indexes hold rowids, so it never compacts (renumbers) a table that has
    # one: with a primary key the cached rows stay where they are, and rows deleted
    # since are dropped by the rerank, which finds rows by key
    if entry is not None and entry.keys is None and not _still_numbered(con, col, entry):
        with _lock:
            _distrusted.add(base)
            _cache.pop(key, None)
        entry, mark = None, None
    if entry is None:
        entry = _load(con, col, code_size, mark)
        with _lock:
            _cache[key] = entry
            while len(_cache) > 1 and sum(e.nbytes for e in _cache.values()) > CACHE_BYTES:
                _cache.popitem(last=False)
    return entry


def _coded(con: duckdb.DuckDBPyConnection, col: Column) -> int:
    """Rows with codes in the whole table: all rows less those whose codes are NULL, two
    counts DuckDB answers from row counts and validity masks (0.7 ms on 117k rows; a
    ``count(code)`` or ``code IS NOT NULL`` reads every code unless the table was
    checkpointed)."""
    t, c = col.t.sql, col.code_sql
    row = con.execute(
        f"SELECT (SELECT count(*) FROM {t}) - (SELECT count(*) FROM {t} WHERE {c} IS NULL)"
    ).fetchone()
    return int(row[0] if row else 0)


def _still_numbered(con: duckdb.DuckDBPyConnection, col: Column, e: CodeSet) -> bool:
    """Whether the cached rows still sit at their rowids (see the module docstring).

    Rows are only renumbered when a checkpoint compacts row groups with deleted rows;
    a row inserted or updated since the refresh has no codes. So while the table holds
    as many coded rows as when they were last checked, no coded row went away and none
    moved; otherwise every row at or below the mark is checked against the cache."""
    coded = _coded(con, col)
    if coded == e.coded:
        return True
    if rows_in_place(con, col.t.sql, col.id_column, col.code, e.mark, e.rowids, e.keyhash) is None:
        return False
    e.coded = coded
    return True


def rows_in_place(
    con: duckdb.DuckDBPyConnection,
    table_sql: str,
    key_column: str,
    column: str,
    mark: int,
    rowids: np.ndarray,
    keyhash: np.ndarray,
) -> np.ndarray | None:
    """Positions in a cache (``rowids`` ascending, ``keyhash`` per row) of the rows at or
    below ``mark`` whose ``column`` is not NULL, read from the table now; ``None`` when
    one of them is not where the cache has it (a new rowid, or another key there: the
    rowids were renumbered). Shared by the code and the vector caches."""
    got = con.execute(
        f"SELECT rowid, hash({quote_ident(key_column)}) FROM {table_sql} "
        f"WHERE rowid <= ? AND {quote_ident(column)} IS NOT NULL ORDER BY rowid",
        [mark],
    ).fetchnumpy()
    rid = np.asarray(got["rowid"], np.int64)
    kh = np.asarray(got[next(k for k in got if k != "rowid")], np.uint64)
    if len(rowids) == 0:
        return np.zeros(0, np.int64) if len(rid) == 0 else None
    pos = np.searchsorted(rowids, rid)
    if not (pos < len(rowids)).all():
        return None
    if not (np.array_equal(rowids[pos], rid) and np.array_equal(keyhash[pos], kh)):
        return None
    return pos


def _load(con: duckdb.DuckDBPyConnection, col: Column, code_size: int, mark: int | None) -> CodeSet:
    """Read the codes (one Arrow scan); without a trusted ``mark``, hash every vector."""
    t, c = col.t, col.code_sql
    lst = f", {quote_ident(col.list_column)} AS vx_list" if col.list_column else ""
    keyed = integer_key(con, t, col.id_column)
    if keyed:
        lst += f", {quote_ident(col.id_column)}::BIGINT AS vx_key"
    keyhash = f"hash({quote_ident(col.id_column)}) AS vx_kh"
    if mark is None:
        # one snapshot: the mark is the highest rowid, the stale rows are found by hash
        src, h = quote_ident(col.source), quote_ident(col.code + HASH_SUFFIX)
        sql = (
            f"SELECT rowid AS vx_rid, {c} AS vx_code{lst}, {keyhash}, "
            f"({h} IS DISTINCT FROM hash({src})) AS vx_stale, max(rowid) OVER () AS vx_top "
            f"FROM {t.sql} WHERE {c} IS NOT NULL ORDER BY rowid"
        )
        a = con.execute(sql).to_arrow_table()
    else:
        sql = (
            f"SELECT rowid AS vx_rid, {c} AS vx_code{lst}, {keyhash} FROM {t.sql} "
            f"WHERE rowid <= ? AND {c} IS NOT NULL ORDER BY rowid"
        )
        a = con.execute(sql, [mark]).to_arrow_table()
    rowids = np.asarray(a.column("vx_rid").to_numpy(), dtype=np.int64)
    layout = _layout(a.column("vx_code").type)
    codes, _ = ar.codes_from_arrow(a.column("vx_code"), layout, code_size, f"{t}.{col.code}")
    codes = np.ascontiguousarray(codes)
    lists = None
    if col.list_column:
        la = pc.fill_null(a.column("vx_list"), -1).to_numpy()
        lists = np.ascontiguousarray(la, dtype=np.int32)
    kh = np.asarray(a.column("vx_kh").to_numpy(zero_copy_only=False), dtype=np.uint64)
    keys = np.asarray(a.column("vx_key").to_numpy(), dtype=np.int64) if keyed else None
    if mark is None:
        stale_mask = np.asarray(a.column("vx_stale").to_numpy(zero_copy_only=False), bool)
        stale = rowids[stale_mask]
        tops = a.column("vx_top")
        mark = int(tops[0].as_py()) if len(tops) else -1
    else:
        stale = np.zeros(0, np.int64)
    # rows the scan cannot rank: no codes yet (or no list); the rerank takes them all
    key = f"{quote_ident(col.id_column)}::BIGINT" if keyed else "rowid"
    missing = f"{c} IS NULL"
    if col.list_column:
        missing += f" OR {quote_ident(col.list_column)} IS NULL"
    got = con.execute(
        f"SELECT {key} AS vx_key FROM {t.sql} WHERE rowid <= ? AND ({missing}) "
        f"AND {quote_ident(col.source)} IS NOT NULL",
        [mark],
    ).fetchnumpy()
    uncoded = np.asarray(got["vx_key"], dtype=np.int64)
    return CodeSet(rowids, keys, codes, lists, kh, int(mark), stale, uncoded, _coded(con, col))


_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")


def integer_key(con: duckdb.DuckDBPyConnection, t: TableRef, column: str) -> bool:
    """Whether ``column`` is ``t``'s single-column primary key of an integer type that
    fits BIGINT (the rerank finds rows by it; see vecext.duckdb.scan._rerank_sql)."""
    if primary_key(con, t) != column:
        return False
    return column_type(con, t, column)[1] in _INTEGER_TYPES


def _layout(typ: Any) -> ar.Layout:
    if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
        return "blob"
    value = typ.value_type
    return "u8" if pa.types.is_uint8(value) else "u64"
