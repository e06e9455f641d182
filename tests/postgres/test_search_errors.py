"""Bad input gets clear errors; injection through values and identifiers fails safely."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from vecext.postgres import connect, search
from vecext.search import MAX_K, SearchError
from vecext.search.filters import FilterError


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"filter": {"nope": 1}},
            FilterError,
            r"filter column\(s\) 'nope' do not exist in table items",
        ),
        ({"k": 0}, SearchError, "k must be positive, got 0"),
        ({"k": -3}, SearchError, "k must be positive, got -3"),
        ({"k": MAX_K + 1}, SearchError, f"k = {MAX_K + 1} is beyond the limit of {MAX_K}"),
        ({"k": 2.5}, SearchError, "k must be an integer"),
        ({"metric": "dot"}, SearchError, "unknown metric 'dot'; use one of l2, ip, cosine"),
        ({"strategy": "magic"}, SearchError, "unknown strategy 'magic'"),
        ({"recall_target": 1.5}, SearchError, r"recall_target must be in \(0, 1\]"),
        ({"max_scan_rows": 0}, SearchError, "max_scan_rows must be a positive integer"),
        ({"using": "nope"}, SearchError, "no code column or index named 'nope'; known: emb_bin"),
        (
            {"metric": "l2", "strategy": "compressed"},
            SearchError,
            "emb_pq was trained for cosine, not l2",
        ),
    ],
)
def test_bad_arguments(sconn, search_env, kwargs, error, message) -> None:
    kwargs = {"k": 10, **kwargs}
    with pytest.raises(error, match=message):
        search(sconn, "items", "embedding", search_env.xq[0], **kwargs)


def test_bad_query_vectors(sconn, search_env) -> None:
    with pytest.raises(SearchError, match="dimension 16, column items.embedding has dimension 32"):
        search(sconn, "items", "embedding", np.ones(16, np.float32), 10)
    q = search_env.xq[0].copy()
    q[3] = np.nan
    with pytest.raises(SearchError, match="NaN or infinite"):
        search(sconn, "items", "embedding", q, 10)
    with pytest.raises(SearchError, match="must be one vector"):
        search(sconn, "items", "embedding", np.ones((2, 32), np.float32), 10)


def test_missing_table_column_codes_and_indexes(sconn, search_env) -> None:
    q = search_env.xq[0]
    with pytest.raises(SearchError, match="table 'nosuch' does not exist"):
        search(sconn, "nosuch", "embedding", q, 10)
    with pytest.raises(SearchError, match="has no column 'vec'; its columns are: id, embedding"):
        search(sconn, "items", "vec", q, 10)
    with pytest.raises(SearchError, match="column public.items.cat is text: search needs a vector"):
        search(sconn, "items", "cat", q, 10)
    for strategy, need in [
        ("compressed", "needs a compressed column"),
        ("ivf", "needs IVF lists and codes"),
        ("hnsw", "needs an HNSW index"),
    ]:
        with pytest.raises(SearchError, match=f"plain.embedding: strategy '{strategy}' {need}"):
            search(sconn, "plain", "embedding", q, 10, strategy=strategy)


INJECTED_VALUES = [
    "a' OR '1'='1",
    "a'; DROP TABLE items; --",
    "a\\' OR 1=1 --",
    'a" OR TRUE --',
]


@pytest.mark.parametrize("value", INJECTED_VALUES)
def test_filter_values_are_bound(sconn, search_env, value: str) -> None:
    for strategy in ("exact", "compressed", "ivf", "hnsw", "auto"):
        r = search(sconn, "items", "embedding", search_env.xq[0], 10, filter={"cat": value},
                   strategy=strategy)  # fmt: skip
        assert len(r) == 0 and r.complete
    r = search(sconn, "items", "embedding", search_env.xq[0], 10, filter={"cat": [value, "d"]})
    assert len(r) == 10 and set(search_env.cat[r.ids]) == {"d"}
    sa = pytest.importorskip("sqlalchemy")
    r = search(sconn, "items", "embedding", search_env.xq[0], 10,
               filter=sa.column("cat") == value)  # fmt: skip
    assert len(r) == 0
    _intact(sconn)


@pytest.mark.parametrize(
    ("table", "column", "filt", "error"),
    [
        ("items; DROP TABLE items", "embedding", None, SearchError),
        ('items" WHERE TRUE; DROP TABLE items; --', "embedding", None, SearchError),
        ("public.items.x", "embedding", None, SearchError),
        ('"items"', "embedding", None, SearchError),
        ("items", 'embedding" <=> NULL; DROP TABLE items; --', None, SearchError),
        ("items", "embedding", {"cat\" = 'a' OR \"x": 1}, FilterError),
        ("items", "embedding", {"cat) OR (1=1": 1}, FilterError),
    ],
)
def test_identifiers_fail_safely(sconn, search_env, table, column, filt, error) -> None:
    with pytest.raises(error):
        search(sconn, table, column, search_env.xq[0], 10, filter=filt)
    with pytest.raises(SearchError):
        search(sconn, "items", "embedding", search_env.xq[0], 10, using="emb_pq; DROP TABLE items")
    _intact(sconn)


def _intact(conn: psycopg.Connection) -> None:
    (n,) = conn.execute("SELECT count(*) FROM items").fetchone()
    assert n == 20_000
    (m,) = conn.execute("SELECT count(*) FROM vecext.compressed_columns").fetchone()
    assert m >= 2


def test_settings_do_not_leak_into_the_callers_session(search_env) -> None:
    with connect(search_env.dsn) as conn:  # not autocommit
        r = search(conn, "items", "embedding", search_env.xq[0], 10, strategy="exact")
        assert len(r) == 10
        assert conn.execute("SHOW enable_indexscan").fetchone() == ("on",)
        # inside the caller's open transaction: a savepoint, rolled back after the rows
        conn.execute("CREATE TEMP TABLE mine (x int)")
        conn.execute("INSERT INTO mine VALUES (1)")
        r = search(conn, "items", "embedding", search_env.xq[0], 10, strategy="hnsw")
        assert len(r) == 10
        assert conn.execute("SHOW hnsw.ef_search").fetchone() == ("40",)
        assert conn.execute("SELECT x FROM mine").fetchall() == [(1,)]
        conn.rollback()
