"""Columns DuckDB keeps derived from a vector column without triggers: codes, list ids.

Beside each derived column ``<col>`` vecext keeps ``<col>__vecext_hash``, DuckDB's
``hash()`` of the vector the value was computed from. A row is *stale* when that
hash differs from ``hash(<source>)`` (the vector was inserted, updated or set to
NULL since) or when it has a vector but no value. :mod:`vecext.duckdb.refresh`
(codes) and :mod:`vecext.duckdb.ivf` (list ids) recompute exactly the stale rows,
in batches of rowids: each batch is read through Arrow, computed in Python, and
written back with ``UPDATE ... FROM`` a registered Arrow table, in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa

from vecext.duckdb import codeset
from vecext.duckdb._sql import HASH_SUFFIX, TableRef, quote_ident, registered

#: rows of one batch: ``rowid`` between two bound parameters
IN_BATCH = "rowid BETWEEN ? AND ?"


def stale_sql(source: str, derived: str) -> str:
    """The condition of a row whose ``derived`` column is stale (see the module doc)."""
    src, col = quote_ident(source), quote_ident(derived)
    h = quote_ident(derived + HASH_SUFFIX)
    return f"({h} IS DISTINCT FROM hash({src}) OR ({src} IS NOT NULL AND {col} IS NULL))"


def stale_rowids(con: duckdb.DuckDBPyConnection, t: TableRef, stale: str) -> np.ndarray:
    """The rowids of the stale rows, in order."""
    ids = con.execute(f"SELECT rowid FROM {t.sql} WHERE {stale} ORDER BY rowid")
    return np.asarray(ids.fetchnumpy()["rowid"], dtype=np.int64)


def batches(rowids: np.ndarray, batch_size: int) -> Iterator[tuple[int, int]]:
    """``(lo, hi)`` rowid ranges of at most ``batch_size`` of ``rowids`` each."""
    for i0 in range(0, rowids.size, batch_size):
        yield int(rowids[i0]), int(rowids[min(i0 + batch_size, rowids.size) - 1])


def read_batch(
    con: duckdb.DuckDBPyConnection,
    t: TableRef,
    source: str,
    stale: str,
    lo: int,
    hi: int,
    key: str | None = None,
) -> pa.Table:
    """The stale rows of one batch: ``rid`` (rowid), ``v`` (the vector), ``h`` (its hash)
    and, with ``key``, ``k`` (that column, to name rows in messages)."""
    src = quote_ident(source)
    extra = f", {quote_ident(key)} AS k" if key else ""
    return con.execute(
        f"SELECT rowid AS rid, {src} AS v, hash({src}) AS h{extra} FROM {t.sql} "
        f"WHERE {IN_BATCH} AND {stale}",
        [lo, hi],
    ).to_arrow_table()


def write_batch(
    con: duckdb.DuckDBPyConnection,
    t: TableRef,
    derived: str,
    values: pa.Array,
    batch: pa.Table,
    lo: int,
    hi: int,
) -> None:
    """Store ``values`` (one per row of ``batch``) in ``derived`` with the vectors' hashes."""
    codeset.bump()  # cached codes and list ids of this process are reloaded
    update = pa.table({"rid": batch.column("rid"), "x": values, "h": batch.column("h")})
    col, h = quote_ident(derived), quote_ident(derived + HASH_SUFFIX)
    with registered(con, update) as u:
        con.execute(
            f"UPDATE {t.sql} AS tgt SET {col} = u.x, {h} = u.h FROM {u} AS u "
            f"WHERE tgt.rowid = u.rid AND tgt.{IN_BATCH}",
            [lo, hi],
        )
