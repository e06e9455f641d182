"""Bad input to a search gets a clear vecext error on every backend; values are bound and
identifiers checked, so injection fails safely and leaves the data intact."""

from __future__ import annotations

import numpy as np
import pytest

from tests.contract.conftest import Db
from vecext.search import MAX_K, SearchError
from vecext.search.filters import FilterError


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"filter": {"nope": 1}}, FilterError, r"filter column\(s\) 'nope' do not exist in table items.*cat"),
        ({"k": 0}, SearchError, "k must be positive, got 0"),
        ({"k": -3}, SearchError, "k must be positive, got -3"),
        ({"k": MAX_K + 1}, SearchError, f"k = {MAX_K + 1} is beyond the limit of {MAX_K}"),
        ({"k": 2.5}, SearchError, "k must be an integer"),
        ({"k": True}, SearchError, "k must be an integer"),
        ({"metric": "dot"}, SearchError, "unknown metric 'dot'; use one of l2, ip, cosine"),
        ({"strategy": "magic"}, SearchError, "unknown strategy 'magic'"),
        ({"recall_target": 1.5}, SearchError, r"recall_target must be in \(0, 1\]"),
        ({"max_scan_rows": 0}, SearchError, "max_scan_rows must be a positive integer"),
        ({"using": "nope"}, SearchError, "no code column or index named 'nope'; known: "),
        (
            {"metric": "l2", "strategy": "compressed"},
            SearchError,
            "emb_pq was trained for cosine, not l2",
        ),
    ],
)  # fmt: skip
def test_bad_arguments(backend: Db, kwargs, error, message) -> None:
    kwargs = {"k": 10, **kwargs}
    with pytest.raises(error, match=message):
        backend.search(backend.data.xq[0], **kwargs)


def test_bad_query_vectors(backend: Db) -> None:
    with pytest.raises(SearchError, match="dimension 16, column items.embedding has dimension 32"):
        backend.search(np.ones(16, np.float32))
    q = backend.data.xq[0].copy()
    q[3] = np.nan
    with pytest.raises(SearchError, match="NaN or infinite"):
        backend.search(q)
    with pytest.raises(SearchError, match="must be one vector"):
        backend.search(np.ones((2, 32), np.float32))


def test_missing_table_column_codes_and_indexes(backend: Db) -> None:
    q = backend.data.xq[0]
    search = backend.api.search
    with pytest.raises(SearchError, match="table 'nosuch' does not exist"):
        search(backend.conn, "nosuch", "embedding", q, 10)
    with pytest.raises(SearchError, match="no column 'vec'; its columns are: id, embedding, cat"):
        search(backend.conn, "items", "vec", q, 10)
    with pytest.raises(SearchError, match=r"items\.cat (is|has type) \w+: search needs a"):
        search(backend.conn, "items", "cat", q, 10)
    for strategy, need in [
        ("compressed", "needs a compressed column"),
        ("ivf", "needs IVF lists and codes"),
        ("hnsw", "needs an HNSW index"),
    ]:
        with pytest.raises(SearchError, match=f"plain.embedding: strategy '{strategy}' {need}"):
            search(backend.conn, "plain", "embedding", q, 10, strategy=strategy)
    with pytest.raises(SearchError, match="no code column or index named 'emb_pq'"):
        search(backend.conn, "plain", "embedding", q, 10, using="emb_pq")


INJECTED_VALUES = [
    "a' OR '1'='1",
    "a'; DROP TABLE items; --",
    "a\\' OR 1=1 --",
    'a" OR TRUE --',
    "\\'; DELETE FROM items; --",
]


def _intact(db: Db) -> None:
    assert db.sql("SELECT count(*) FROM items") == [(20_000,)]
    assert db.sql("SELECT count(*) FROM vecext.compressed_columns WHERE table_name = 'items'") == [
        (2,)
    ]


@pytest.mark.parametrize("value", INJECTED_VALUES)
def test_filter_values_are_bound(backend: Db, value: str) -> None:
    q, cat = backend.data.xq[0], backend.data.cat
    for strategy in ("exact", "compressed", "ivf", "hnsw", "auto"):
        r = backend.search(q, filter={"cat": value}, strategy=strategy)
        assert len(r) == 0 and r.complete
    r = backend.search(q, filter={"cat": [value, "d"]})
    assert len(r) == 10 and set(cat[r.ids]) == {"d"}
    sa = pytest.importorskip("sqlalchemy")
    r = backend.search(q, filter=sa.column("cat") == value)
    assert len(r) == 0
    items = sa.table("items", sa.column("cat"), sa.column("id"))
    r = backend.search(q, 50, filter=(items.c.cat == "d") & (items.c.id < 10_000))
    want = np.flatnonzero((cat == "d") & (np.arange(20_000) < 10_000))
    assert sorted(r.ids.tolist()) == want.tolist()
    _intact(backend)


@pytest.mark.parametrize(
    ("table", "column", "filt", "error"),
    [
        ("items; DROP TABLE items", "embedding", None, SearchError),
        ('items" WHERE TRUE; DROP TABLE items; --', "embedding", None, SearchError),
        ("public.items.x", "embedding", None, SearchError),
        ("cat\" = 'a' OR \"1", "embedding", None, SearchError),
        ("items", 'embedding" <=> NULL; DROP TABLE items; --', None, SearchError),
        ("items", "cat; DROP TABLE items; --", None, SearchError),
        ("items", "embedding", {"cat\" = 'a' OR \"x": 1}, FilterError),
        ("items", "embedding", {"cat) OR (1=1": 1}, FilterError),
        ("items", "embedding", {'cat"; DROP TABLE items; --': 1}, FilterError),
        ("items", "embedding", {"cat\x00": 1}, (FilterError, SearchError)),
    ],
)
def test_identifiers_fail_safely(backend: Db, table, column, filt, error) -> None:
    q = backend.data.xq[0]
    with pytest.raises(error):
        backend.api.search(backend.conn, table, column, q, 10, filter=filt)
    with pytest.raises(SearchError):
        backend.search(q, using="emb_pq; DROP TABLE items")
    _intact(backend)
