"""DuckDB-only search input: unsized lists, the id column rule, codes for another metric,
injection against a file database. (Bad arguments, query vectors, missing tables,
bound values and checked identifiers on every backend: ``tests/contract/test_errors.py``.)"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import vecext.duckdb as vd
from vecext.search import SearchError, search
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
def small_file(tmp_path):
    """The same table in a file database, where injection must leave it intact too (in
    memory: tests/contract/test_errors.py)."""
    con = vd.connect(str(tmp_path / "small.duckdb"), vss=False)
    yield _load(con)
    con.close()


def test_codes_for_another_metric_are_named(small) -> None:
    con, x = small
    vd.train_codec(con, "small_bin", "items", "embedding", "binary", metric="l2")
    vd.add_compressed_column(con, "items", "embedding", "small_bin", "emb_bin", progress=False)
    r = search(con, "items", "embedding", x[0], 5, metric="l2", strategy="compressed")
    assert len(r) == 5 and r.strategy == "compressed"
    with pytest.raises(SearchError, match="emb_bin was trained for l2, not cosine"):
        search(con, "items", "embedding", x[0], 5, strategy="compressed")


def test_bad_column_types(small) -> None:
    con, x = small
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
def test_injection_through_filter_values(small_file, value: str) -> None:
    con, x = small_file
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
def test_injection_through_identifiers(small_file, name: str) -> None:
    con, x = small_file
    with pytest.raises((FilterError, SearchError)):
        search(con, "items", "embedding", x[0], 5, filter={name: "a"})
    with pytest.raises(SearchError):
        search(con, name, "embedding", x[0], 5)
    with pytest.raises(SearchError):
        search(con, "items", name, x[0], 5)
    with pytest.raises(SearchError):
        search(con, "items; DROP TABLE items", "embedding", x[0], 5)
    _intact(con, 300)
