"""VSS HNSW indexes in DuckDB: memory estimates and limits, persistence, scoped settings,
IVF list upkeep, search on disk after reopening. (Creating, listing, searching and
dropping through the same verbs on every backend: ``tests/contract/test_indexes.py``.)"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import vecext.duckdb as vd
from tests.duckdb.conftest import load_clustered_table, search_recall
from vecext.duckdb.backend import DuckDBBackend
from vecext.duckdb.calibration import calibrate_hnsw
from vecext.duckdb.indexes import (
    HnswIndexError,
    create_hnsw_index,
    drop_hnsw_index,
    estimate_hnsw_memory,
    hnsw_indexes,
    is_file_database,
)
from vecext.duckdb.ivf import add_ivf_lists, drop_ivf_lists, ivf_lists, refresh_lists
from vecext.search import search
from vecext.search.api import SearchError
from vecext.search.planner import PlannerSettings

N, D = 3_000, 16


@pytest.fixture
def table(duck):
    """3,000 x 16 clustered rows in memory and on disk."""
    x = load_clustered_table(duck, N, D, seed=5, centers=12, groups=("q", "r"), every=4)
    return duck, x


def _truth(x: np.ndarray, q: np.ndarray, k: int, metric: str = "l2") -> np.ndarray:
    if metric == "l2":
        d = ((x.astype(np.float64) - q) ** 2).sum(1)
    else:
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = 1 - xn @ (q / np.linalg.norm(q))
    return np.argsort(d, kind="stable")[:k]


def test_memory_estimate_grows_with_rows_dims_and_degree() -> None:
    base = estimate_hnsw_memory(100_000, 384)
    assert estimate_hnsw_memory(200_000, 384) > base > estimate_hnsw_memory(100_000, 128)
    assert estimate_hnsw_memory(100_000, 384, m=32) > base
    # vectors alone are 4 d bytes each: 100k x 384 floats = 154 MB
    assert 154e6 < base < 400e6
    with pytest.raises(ValueError, match="m >= 2"):
        estimate_hnsw_memory(10, 8, m=1)


def test_persistence_flag_and_a_scoped_ef_search(table) -> None:
    con, x = table
    ix = create_hnsw_index(con, "t", "v", "l2", m=8, ef_construction=64)  # the 0.2 name
    assert (ix.name, ix.column, ix.count) == ("t_v_hnsw_l2", "v", N) and ix.memory_bytes > 0
    # an on-disk database needs VSS's persistence flag; an in-memory one is left alone
    (flag,) = con.execute(
        "SELECT value FROM duckdb_settings() WHERE name = 'hnsw_enable_experimental_persistence'"
    ).fetchone()
    assert (str(flag).lower() == "true") == is_file_database(con)
    # the search's ef_search is scoped to the statement: the caller's setting survives
    con.execute("SET SESSION hnsw_ef_search = 77")
    q = x[7] + 0.01
    search(con, "t", "v", q, 10, metric="l2", strategy="hnsw", filter={"grp": "q"})
    (ef,) = con.execute(
        "SELECT value FROM duckdb_settings() WHERE name = 'hnsw_ef_search'"
    ).fetchone()
    assert ef == "77"
    with pytest.raises(SearchError, match="t_v_hnsw_l2 is for l2, not cosine"):
        search(con, "t", "v", q, 10, strategy="hnsw")
    drop_hnsw_index(con, "t", "t_v_hnsw_l2")
    with pytest.raises(HnswIndexError, match="no HNSW index named 't_v_hnsw_l2'"):
        drop_hnsw_index(con, "t", "t_v_hnsw_l2")


def test_create_refuses_too_little_memory(table) -> None:
    con, _ = table
    con.execute("SET memory_limit = '20MB'")
    with pytest.raises(HnswIndexError, match=r"needs about 0\.\d\d GiB, more than DuckDB's"):
        create_hnsw_index(con, "t", "v")
    assert hnsw_indexes(con, "t") == []


def test_ivf_lists_follow_inserts_and_updates(table) -> None:
    con, x = table
    vd.train_codec(con, "t_pq", "t", "v", "pq", metric="l2", m=4, niter=5)
    vd.add_compressed_column(con, "t", "v", "t_pq", "v_pq", progress=False)
    lists = add_ivf_lists(con, "t", "v", 16, niter=5)
    assert ivf_lists(con, "t", "v_pq") == lists and lists.list_column == "v_list"
    assert con.execute("SELECT count(*) FROM t WHERE v_list IS NULL").fetchone() == (0,)
    q = x[11] + 0.01
    r = search(con, "t", "v", q, 10, metric="l2", strategy="ivf")
    assert r.strategy == "ivf" and search_recall(r.ids, _truth(x, q, 10)) >= 0.9
    # a new row has no list until refresh_lists, and is found all the same
    con.execute(f"INSERT INTO t (id, v, grp) VALUES (99999, ?::FLOAT[{D}], 'q')", [q.tolist()])
    r = search(con, "t", "v", q, 10, metric="l2", strategy="ivf")
    assert r.ids[0] == 99999
    assert refresh_lists(con, "t", "v_pq") == 1
    # moving a vector makes its list stale: refresh reassigns exactly that row
    con.execute(f"UPDATE t SET v = ?::FLOAT[{D}] WHERE id = 5", [(-x[5]).tolist()])
    assert refresh_lists(con, "t", "v_pq") == 1
    assert refresh_lists(con, "t", "v_pq") == 0
    drop_ivf_lists(con, "t", "v_pq")
    assert ivf_lists(con, "t", "v_pq") is None
    assert "v_list" not in [r[0] for r in con.execute("DESCRIBE t").fetchall()]
    r = search(con, "t", "v", q, 10, metric="l2", strategy="compressed")
    assert r.ids[0] == 99999


def test_search_after_reopening_a_file_database(tmp_path) -> None:
    path = tmp_path / "reopen.duckdb"
    con = vd.connect(path)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2_000, D)).astype(np.float32)
    con.execute(f"CREATE TABLE t (id BIGINT PRIMARY KEY, v FLOAT[{D}])")
    con.register("_src", pa.table({"id": np.arange(2_000), "v": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), D)}))  # fmt: skip
    con.execute("INSERT INTO t SELECT * FROM _src")
    vd.train_codec(con, "t_bin", "t", "v", "binary", metric="cosine")
    vd.add_compressed_column(con, "t", "v", "t_bin", "v_bin", progress=False)
    create_hnsw_index(con, "t", "v", "cosine")
    con.close()
    con = vd.connect(path)
    try:
        assert [i.name for i in hnsw_indexes(con, "t")] == ["t_v_hnsw_cosine"]
        q = x[3]
        for strategy in ("hnsw", "compressed", "exact"):
            r = search(con, "t", "v", q, 10, strategy=strategy)
            assert len(r) == 10 and r.ids[0] == 3, strategy
    finally:
        con.close()


def test_hnsw_calibration_steers_ef_search(table) -> None:
    con, x = table
    ix = create_hnsw_index(con, "t", "v", "cosine", m=8, ef_construction=40)
    assert ix.calibration is None
    rec = calibrate_hnsw(con, "t", ix.name, n_queries=20, ef_ladder=(10, 40, 200))
    curve = rec["ef_search"]
    assert list(curve) == ["10", "40", "200"] and curve["200"] >= curve["10"]
    assert curve["200"] >= 0.9 and rec["queries"] == "perturbed rows"
    (stored,) = hnsw_indexes(con, "t", "v")
    assert stored.calibration == rec  # kept in the index's comment
    no_floor = PlannerSettings(recall_target=0.5, hnsw_ef_floor=0)
    r = search(con, "t", "v", x[1], 10, strategy="hnsw", settings=no_floor)
    smallest = min(int(e) for e, v in curve.items() if v >= 0.5)
    assert r.plan.params["ef_search"] == max(smallest, 40)  # the planner's floor is 40
    r = search(con, "t", "v", x[1], 10, strategy="hnsw", recall_target=0.5)
    floor = PlannerSettings().resolve(DuckDBBackend.planner_defaults).hnsw_ef_floor
    assert r.plan.params["ef_search"] == floor
    assert "raised to 128" in r.explain()
    with pytest.raises(HnswIndexError, match="no HNSW index named 'nope'"):
        calibrate_hnsw(con, "t", "nope")
