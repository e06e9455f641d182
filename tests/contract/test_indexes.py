"""Native HNSW indexes through the same verbs on every backend: created, listed, searched
(exact distances after the walk), refused for another metric, dropped; bad requests
get clear errors. (pgvector storages, partial and concurrent builds and build memory:
``tests/postgres/test_search_indexes.py``; VSS persistence and memory limits:
``tests/duckdb/test_search_indexes.py``.)"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import clustered
from tests.contract.conftest import Fresh, recall
from vecext.errors import VecextError
from vecext.search import SearchError

N, D = 3_000, 16


@pytest.fixture
def table(fresh: Fresh) -> tuple[Fresh, np.ndarray]:
    x = clustered(N, D, seed=5)
    fresh.load_table("t", x)
    fresh.sql("ALTER TABLE t ADD COLUMN grp VARCHAR")
    fresh.sql("UPDATE t SET grp = CASE WHEN id % 4 = 0 THEN 'q' ELSE 'r' END")
    return fresh, x


def _truth(x: np.ndarray, q: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    d = ((x.astype(np.float64) - q) ** 2).sum(1)
    if mask is not None:
        d[~mask] = np.inf
    return np.argsort(d, kind="stable")[:k]


def test_create_list_search_and_drop(table) -> None:
    db, x = table
    api = db.api
    ix = api.create_vector_index(db.conn, "t", "embedding", metric="l2", m=8, ef_construction=64)
    assert (ix.metric, ix.dim) == ("l2", D)
    assert [i.name for i in api.list_vector_indexes(db.conn, "t", "embedding")] == [ix.name]
    q = x[7] + 0.01
    # unfiltered, PostgreSQL walks an HNSW index above 2,000 rows
    # (PlannerSettings.exact_max_rows_unfiltered); DuckDB scans up to 20,000 exactly
    expected = "hnsw" if db.name == "postgres" else "exact"
    assert api.search(db.conn, "t", "embedding", q, 10, metric="l2").strategy == expected
    recs = []
    for q in x[:40:5] + 0.01:
        r = api.search(db.conn, "t", "embedding", q, 10, metric="l2", strategy="hnsw")
        assert r.strategy == "hnsw" and len(r) == 10 and r.plan.params["index"] == ix.name
        ref = np.sqrt(((x[r.ids].astype(np.float64) - q) ** 2).sum(1))
        assert np.allclose(r.distances, ref, atol=1e-4) and np.all(np.diff(r.distances) >= -1e-6)
        recs.append(recall(r.ids, _truth(x, q, 10)))
    assert np.mean(recs) >= 0.9
    # a filter: k matching rows, through the index or its fallback
    mask = np.arange(N) % 4 == 0
    r = api.search(db.conn, "t", "embedding", q, 10, metric="l2", strategy="hnsw",
                   filter={"grp": "q"})  # fmt: skip
    assert len(r) == 10 and mask[r.ids].all()
    assert recall(r.ids, _truth(x, q, 10, mask)) >= 0.8
    # the index orders by l2: a cosine search cannot use it
    with pytest.raises(SearchError, match="HNSW"):
        api.search(db.conn, "t", "embedding", q, 10, strategy="hnsw")
    assert api.drop_vector_index(db.conn, "t", ix.name)
    assert api.list_vector_indexes(db.conn, "t", "embedding") == []
    assert not api.drop_vector_index(db.conn, "t", ix.name, missing_ok=True)
    with pytest.raises(api.VectorIndexError, match=ix.name):
        api.drop_vector_index(db.conn, "t", ix.name)
    with pytest.raises(SearchError, match="needs an HNSW index"):
        api.search(db.conn, "t", "embedding", q, 10, metric="l2", strategy="hnsw")


def test_bad_index_requests(table) -> None:
    db, _ = table
    api = db.api
    with pytest.raises(api.VectorIndexError, match="unknown metric 'dot'"):
        api.create_vector_index(db.conn, "t", "embedding", metric="dot")
    with pytest.raises(api.VectorIndexError, match="m must be an integer >= 2"):
        api.create_vector_index(db.conn, "t", "embedding", m=1)
    with pytest.raises(VecextError, match="grp"):
        api.create_vector_index(db.conn, "t", "grp")
    with pytest.raises(VecextError, match="no column 'nope'"):
        api.create_vector_index(db.conn, "t", "nope")
    assert api.list_vector_indexes(db.conn, "t", "embedding") == []
