"""The DuckDB vector cache (vecext.duckdb.vectorset): exact search and reranks from
process memory, checked against numpy brute force and DuckDB's own exact scan, through
writes made without vecext (inserts, updates, deletes, compacting checkpoints)."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pytest

import vecext.duckdb as vd
from vecext.duckdb import vectorset
from vecext.search import search

from .conftest import clustered

N, D = 3000, 16


def _brute(x: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int, metric: str) -> np.ndarray:
    d = vectorset.distances(x, q, metric)
    order = np.lexsort((ids, d))[:k]
    return ids[order]


def _load(con: duckdb.DuckDBPyConnection, name: str, x: np.ndarray, pk: bool = True) -> None:
    key = "id BIGINT PRIMARY KEY" if pk else "id BIGINT"
    con.execute(f"CREATE TABLE {name} ({key}, v FLOAT[{x.shape[1]}], grp VARCHAR)")
    src = pa.table(
        {
            "id": np.arange(len(x), dtype=np.int64),
            "v": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1]),
            "grp": np.where(np.arange(len(x)) % 7 == 0, "a", "b"),
        }
    )
    con.register("vx_src", src)
    con.execute(f"INSERT INTO {name} SELECT * FROM vx_src")
    con.unregister("vx_src")


@pytest.fixture()
def env(tmp_path) -> Iterator[tuple[duckdb.DuckDBPyConnection, np.ndarray]]:
    vectorset.clear()
    con = vd.connect(str(tmp_path / "v.duckdb"), vss=False)
    x = clustered(N, D, seed=11)
    _load(con, "t", x)
    yield con, x
    con.close()
    vectorset.clear()


def _cached(r) -> bool:  # type: ignore[no-untyped-def]
    return any("vector cache" in s for s in r.plan.steps)


@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_exact_from_the_cache_is_brute_force(env, metric) -> None:
    con, x = env
    ids = np.arange(N)
    grp = np.arange(N) % 7 == 0
    for qi in (3, 500, 2999):
        q = x[qi] + 0.01
        r = search(con, "t", "v", q, 10, metric=metric, strategy="exact")
        assert _cached(r)
        assert list(r.ids) == list(_brute(x, ids, q, 10, metric))
        np.testing.assert_allclose(r.distances, vectorset.distances(x[r.ids], q, metric), atol=1e-6)
        f = search(con, "t", "v", q, 10, metric=metric, strategy="exact", filter={"grp": "a"})
        assert list(f.ids) == list(_brute(x[grp], ids[grp], q, 10, metric))


def test_the_same_rows_as_duckdbs_own_exact_scan(env) -> None:
    con, x = env
    q = x[42] + 0.05
    fast = search(con, "t", "v", q, 10, metric="cosine", strategy="exact")
    vd.set_vector_cache_mb(0)  # off: DuckDB's array_cosine_distance scan
    try:
        slow = search(con, "t", "v", q, 10, metric="cosine", strategy="exact")
    finally:
        vd.set_vector_cache_mb(512)
    assert _cached(fast) and not _cached(slow)
    assert list(fast.ids) == list(slow.ids)
    np.testing.assert_allclose(fast.distances, slow.distances, atol=1e-6)


def test_writes_without_vecext_are_seen(env) -> None:
    con, x = env
    q = x[10] * 3.0
    first = search(con, "t", "v", q, 5, metric="l2", strategy="exact")
    assert _cached(first)
    # an insert and an update (a new rowid) after the cache loaded
    con.execute("INSERT INTO t VALUES (?, ?, 'a')", [10_000, q.tolist()])
    con.execute("UPDATE t SET v = ? WHERE id = 7", [(q + 1e-3).tolist()])
    r = search(con, "t", "v", q, 5, metric="l2", strategy="exact")
    assert list(r.ids[:2]) == [10_000, 7]
    assert r.distances[0] == pytest.approx(0.0, abs=1e-6)
    # a delete: the row leaves the results, the cache keeps serving the others
    con.execute("DELETE FROM t WHERE id = ?", [int(first.ids[0])])
    r2 = search(con, "t", "v", q, 5, metric="l2", strategy="exact")
    assert int(first.ids[0]) not in set(r2.ids.tolist())
    xs = x.copy()
    xs[7] = q + 1e-3
    ids = np.arange(N)
    keep = ids != int(first.ids[0])
    want = _brute(np.vstack([xs[keep], q[None]]), np.r_[ids[keep], 10_000], q, 5, "l2")
    assert list(r2.ids) == list(want)
    # the same under a filter (the matching rows read in the search decide)
    grp = np.r_[ids[keep] % 7 == 0, True]  # the inserted row is in group 'a'
    rf = search(con, "t", "v", q, 5, metric="l2", strategy="exact", filter={"grp": "a"})
    assert _cached(rf)
    both = np.vstack([xs[keep], q[None]])
    want = _brute(both[grp], np.r_[ids[keep], 10_000][grp], q, 5, "l2")
    assert list(rf.ids) == list(want)
    # NULL vectors are not rows of the search
    con.execute("UPDATE t SET v = NULL WHERE id = 10000")
    r3 = search(con, "t", "v", q, 5, metric="l2", strategy="exact")
    assert 10_000 not in set(r3.ids.tolist())


def test_many_deletes_and_a_checkpoint(tmp_path) -> None:
    """Deletes then a checkpoint (DuckDB does not compact tables that have an index, such
    as the primary key the cache requires, so rowids stay; results are checked either
    way)."""
    vectorset.clear()
    con = vd.connect(str(tmp_path / "c.duckdb"), vss=False)
    n = 150_000
    x = clustered(n, 8, seed=5)
    _load(con, "r", x)
    con.execute("CHECKPOINT")
    q = (x[149_990] * 2).astype(np.float32)
    search(con, "r", "v", q, 5, metric="l2", strategy="exact")
    con.execute("DELETE FROM r WHERE id < 100000")
    con.execute("CHECKPOINT")
    got = search(con, "r", "v", q, 5, metric="l2", strategy="exact")
    assert _cached(got)
    ids = np.arange(100_000, n)
    assert list(got.ids) == list(_brute(x[100_000:], ids, q, 5, "l2"))
    con.close()
    vectorset.clear()


def test_when_the_cache_is_not_used(env) -> None:
    con, x = env
    q = x[1]
    # a scan budget keeps DuckDB's own statement (its scan order defines "first N")
    r = search(con, "t", "v", q, 5, metric="l2", strategy="exact", max_scan_rows=100)
    assert not _cached(r)
    # no integer primary key: rows are found by rowid in SQL
    _load(con, "u", x, pk=False)
    r = search(con, "u", "v", q, 5, metric="l2", strategy="exact")
    assert not _cached(r) and list(r.ids) == list(_brute(x, np.arange(N), q, 5, "l2"))
    with pytest.raises(ValueError, match="MB >= 0"):
        vectorset.set_vector_cache_mb(-1)
