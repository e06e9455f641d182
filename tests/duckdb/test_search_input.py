"""Bad input to the DuckDB search: clear errors naming the problem; injection fails safely."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

import vecext.duckdb as vd
from vecext.search import MAX_K, SearchError, search
from vecext.search.filters import FilterError

EVIL_VALUES = [
    "a'; DROP TABLE items; --",
    'a" OR 1=1 --',
    "a' OR '1'='1",
    "\\'; DELETE FROM items; --",
]


def _intact(con, n: int) -> None:
    assert con.execute("SELECT count(*) FROM items").fetchone() == (n,)


def _load(con):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    src = pa.table(
        {
            "id": np.arange(300, dtype=np.int64),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 8),
            "cat": np.array(["a", "b"] * 150),
        }
    )
    con.execute("CREATE TABLE items (id BIGINT PRIMARY KEY, embedding FLOAT[8], cat VARCHAR)")
    con.register("_src", src)
    con.execute("INSERT INTO items SELECT * FROM _src")
    con.unregister("_src")
    return con, x


@pytest.fixture
def small():
    """A 300-row in-memory table, no codes or indexes."""
    con = vd.connect(":memory:", vss=False)
    yield _load(con)
    con.close()


@pytest.fixture
def small_both(duck):
    """The same table in memory and on disk (where injection must leave it intact)."""
    return _load(duck)


def test_missing_filter_column_is_named(small) -> None:
    con, x = small
    with pytest.raises(FilterError, match=r"'colour'.*do not exist in table items.*cat"):
        search(con, "items", "embedding", x[0], 5, filter={"colour": "red"})


@pytest.mark.parametrize(
    ("k", "message"),
    [
        (0, "k must be positive, got 0"),
        (-3, "k must be positive, got -3"),
        (MAX_K + 1, f"beyond the limit of {MAX_K}"),
        (2.5, "k must be an integer"),
        (True, "k must be an integer"),
    ],
)
def test_bad_k(small, k, message: str) -> None:
    con, x = small
    with pytest.raises(SearchError, match=message):
        search(con, "items", "embedding", x[0], k)


def test_wrong_dimension_and_nan(small) -> None:
    con, x = small
    with pytest.raises(SearchError, match="dimension 7, column items.embedding has dimension 8"):
        search(con, "items", "embedding", x[0, :7], 5)
    q = x[0].copy()
    q[3] = np.nan
    with pytest.raises(SearchError, match="NaN or infinite"):
        search(con, "items", "embedding", q, 5)
    with pytest.raises(SearchError, match="one vector"):
        search(con, "items", "embedding", x[:2], 5)


def test_unknown_metric_and_strategy(small) -> None:
    con, x = small
    with pytest.raises(SearchError, match="unknown metric 'hamming'.*l2, ip, cosine"):
        search(con, "items", "embedding", x[0], 5, metric="hamming")
    with pytest.raises(SearchError, match="unknown strategy 'magic'"):
        search(con, "items", "embedding", x[0], 5, strategy="magic")


def test_missing_codes_or_index_when_forced(small) -> None:
    con, x = small
    with pytest.raises(SearchError, match="'compressed' needs a compressed column"):
        search(con, "items", "embedding", x[0], 5, strategy="compressed")
    with pytest.raises(SearchError, match="'ivf' needs IVF lists and codes"):
        search(con, "items", "embedding", x[0], 5, strategy="ivf")
    with pytest.raises(SearchError, match="'hnsw' needs an HNSW index"):
        search(con, "items", "embedding", x[0], 5, strategy="hnsw")
    with pytest.raises(SearchError, match="no code column or index named 'emb_pq'"):
        search(con, "items", "embedding", x[0], 5, using="emb_pq")


def test_codes_for_another_metric_are_named(small) -> None:
    con, x = small
    vd.train_codec(con, "small_bin", "items", "embedding", "binary", metric="l2")
    vd.add_compressed_column(con, "items", "embedding", "small_bin", "emb_bin", progress=False)
    r = search(con, "items", "embedding", x[0], 5, metric="l2", strategy="compressed")
    assert len(r) == 5 and r.strategy == "compressed"
    with pytest.raises(SearchError, match="emb_bin was trained for l2, not cosine"):
        search(con, "items", "embedding", x[0], 5, strategy="compressed")


def test_missing_table_column_and_bad_types(small) -> None:
    con, x = small
    with pytest.raises(SearchError, match="table 'nope' does not exist"):
        search(con, "nope", "embedding", x[0], 5)
    with pytest.raises(SearchError, match="no column 'vec'; its columns are: id, embedding, cat"):
        search(con, "items", "vec", x[0], 5)
    with pytest.raises(SearchError, match="cat has type VARCHAR: search needs a FLOAT"):
        search(con, "items", "cat", x[0], 5)
    con.execute("CREATE TABLE lists (id INTEGER, v FLOAT[])")
    with pytest.raises(SearchError, match=r"v has type FLOAT\[\]"):
        search(con, "lists", "v", x[0], 5)
    con.execute("CREATE TABLE noid (key INTEGER, v FLOAT[8])")
    with pytest.raises(
        SearchError, match="neither a single-column primary key nor a column named id"
    ):
        search(con, "noid", "v", x[0], 5)
    with pytest.raises(SearchError, match="max_scan_rows must be a positive integer"):
        search(con, "items", "embedding", x[0], 5, max_scan_rows=0)


def test_id_column_rule(small) -> None:
    con, x = small
    # a primary key wins over a column named id; without a key, "id" (any case) serves
    con.execute("CREATE TABLE keyed (id INTEGER, k VARCHAR PRIMARY KEY, v FLOAT[8])")
    con.execute("INSERT INTO keyed SELECT id + 1000, 'r' || id, embedding FROM items")
    r = search(con, "keyed", "v", x[4], 3)
    assert r.ids[0] == "r4"
    con.execute('CREATE TABLE plain ("ID" INTEGER, v DOUBLE[8])')
    con.execute("INSERT INTO plain SELECT id, embedding::DOUBLE[8] FROM items")
    r = search(con, "plain", "v", x[4], 3, metric="l2")
    assert r.ids[0] == 4 and r.distances[0] < 1e-6


@pytest.mark.parametrize("value", EVIL_VALUES)
def test_injection_through_filter_values(small_both, value: str) -> None:
    con, x = small_both
    r = search(con, "items", "embedding", x[0], 5, filter={"cat": value})
    assert len(r) == 0 and r.complete
    r = search(con, "items", "embedding", x[0], 5, filter={"cat": ["a", value]})
    assert len(r) == 5
    _intact(con, 300)


@pytest.mark.parametrize(
    "name",
    [
        "cat\" = 'a' OR \"1",
        "cat; DROP TABLE items; --",
        'cat"; DROP TABLE items; --',
        "cat\x00",
    ],
)
def test_injection_through_identifiers(small_both, name: str) -> None:
    con, x = small_both
    with pytest.raises((FilterError, SearchError)):
        search(con, "items", "embedding", x[0], 5, filter={name: "a"})
    with pytest.raises(SearchError):
        search(con, name, "embedding", x[0], 5)
    with pytest.raises(SearchError):
        search(con, "items", name, x[0], 5)
    with pytest.raises(SearchError):
        search(con, "items; DROP TABLE items", "embedding", x[0], 5)
    _intact(con, 300)


def test_sqlalchemy_filters_are_bound(small) -> None:
    con, x = small
    items = sa.table("items", sa.column("cat"), sa.column("id"))
    r = search(con, "items", "embedding", x[0], 50, filter=(items.c.cat == "a") & (items.c.id < 40))
    assert len(r) == 20 and all(i % 2 == 0 and i < 40 for i in r.ids.tolist())
    r = search(con, "items", "embedding", x[0], 5, filter=items.c.cat == EVIL_VALUES[0])
    assert len(r) == 0
    _intact(con, 300)
