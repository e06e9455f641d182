"""A prepared search (vecext.search.prepared) on every backend: the rows, distances and
plan of ``search()`` for every strategy, filter and tenant; bad input refused at
``prepare_search`` or at the call, as ``search()`` refuses it."""

from __future__ import annotations

import numpy as np
import pytest

from tests.contract.conftest import Db
from vecext.search import FilterError, SearchError, prepare_search

CASES = [
    {"strategy": "auto"},
    {"strategy": "exact"},
    {"strategy": "hnsw"},
    {"strategy": "compressed", "using": "emb_pq"},
    {"strategy": "compressed", "using": "emb_bin"},
    {"strategy": "ivf"},
    {"strategy": "auto", "filter": {"cat": "b"}},
    {"strategy": "auto", "filter": {"cat": "d"}},
    {"strategy": "hnsw", "filter": {"cat": "a"}},
    {"strategy": "auto", "filter": {"cat": "f"}},  # 5 rows match: 5 returned
    {"strategy": "auto", "max_scan_rows": 50},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_same_rows_as_search(backend: Db, case) -> None:
    ps = prepare_search(backend.conn, "items", "embedding", 10, **case)
    for q in backend.data.xq[:6]:
        got = ps(q)
        want = backend.search(q, 10, **case)
        assert got.strategy == want.strategy
        np.testing.assert_array_equal(got.ids, want.ids)
        np.testing.assert_allclose(got.distances, want.distances, rtol=1e-6, atol=1e-6)
        assert got.complete == want.complete and len(got) == len(want)
        assert got.plan.params == want.plan.params
    assert ps.replans == 0


def test_bad_input(backend: Db) -> None:
    conn = backend.conn
    with pytest.raises(SearchError, match="does not exist"):
        prepare_search(conn, "no_such_table", "embedding")
    with pytest.raises(SearchError, match="no column 'nope'"):
        prepare_search(conn, "items", "nope")
    with pytest.raises(FilterError, match="'colour'"):
        prepare_search(conn, "items", "embedding", filter={"colour": "red"})
    with pytest.raises(SearchError, match="k must be positive"):
        prepare_search(conn, "items", "embedding", 0)
    with pytest.raises(SearchError, match="unknown metric"):
        prepare_search(conn, "items", "embedding", metric="hamming")
    with pytest.raises(SearchError, match="no code column or index named 'x'"):
        prepare_search(conn, "items", "embedding", using="x")
    ps = prepare_search(conn, "items", "embedding", 10)
    d = backend.data.xq.shape[1]
    with pytest.raises(SearchError, match=f"dimension|{d}"):
        ps(np.ones(d + 1, dtype=np.float32))
    bad = backend.data.xq[0].copy()
    bad[3] = np.nan
    with pytest.raises(SearchError, match="NaN|finite"):
        ps(bad)
    # the prepared search is still usable
    assert len(ps(backend.data.xq[0])) == 10
