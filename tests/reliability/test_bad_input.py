"""Issue 13 item 9, both backends: ``{"tag": None}`` means IS NULL, filter values are
checked against the column type, a zero query under cosine is refused, driver errors
from bad input come back as vecext errors, and FAISS encodes in a forked child."""

from __future__ import annotations

import multiprocessing as mp
import queue
import uuid

import numpy as np
import pytest

import vecext
import vecext.duckdb as vd
from tests.reliability.conftest import exact_ids, vector_text
from vecext.codecs import make_codec
from vecext.search.filters import FilterError
from vecext.search.filtertypes import family

D = 8
RNG = np.random.default_rng(11)
X = RNG.standard_normal((200, D)).astype(np.float32)
TAGS = [None if i % 5 == 0 else ("a" if i % 2 else "b") for i in range(len(X))]
YEARS = [1990 + i % 30 for i in range(len(X))]
Q = RNG.standard_normal(D).astype(np.float32)


@pytest.fixture(scope="module")
def pg_items(mconn):
    mconn.execute(
        f"CREATE TABLE bad_items (id int PRIMARY KEY, embedding vector({D}), tag text, "
        "year int, uid uuid)"
    )
    with mconn.cursor() as cur:
        cur.executemany(
            "INSERT INTO bad_items VALUES (%s, %s::vector, %s, %s, %s)",
            [(i, vector_text(x), TAGS[i], YEARS[i], uuid.uuid4()) for i, x in enumerate(X)],
        )
    yield mconn
    mconn.execute("DROP TABLE bad_items")


@pytest.fixture(scope="module")
def duck_items():
    con = vd.connect(":memory:")
    con.execute(
        f"CREATE TABLE bad_items (id INTEGER PRIMARY KEY, embedding FLOAT[{D}], tag VARCHAR, "
        "year INTEGER, uid UUID)"
    )
    con.executemany(
        "INSERT INTO bad_items VALUES (?, ?, ?, ?, uuid())",
        [(i, x.tolist(), TAGS[i], YEARS[i]) for i, x in enumerate(X)],
    )
    yield con
    con.close()


@pytest.fixture(params=["postgres", "duckdb"])
def conn(request, pg_items, duck_items):
    return pg_items if request.param == "postgres" else duck_items


def _subset(keep):
    idx = np.array([i for i in range(len(X)) if keep(i)])
    return idx


def test_none_means_is_null(conn):
    idx = _subset(lambda i: TAGS[i] is None)
    r = vecext.search(conn, "bad_items", "embedding", Q, 10, metric="l2", filter={"tag": None})
    assert list(r.ids) == list(idx[exact_ids(X[idx], Q, 10)])
    assert "tag IS NULL" in r.explain()
    idx = _subset(lambda i: TAGS[i] in (None, "a"))
    r = vecext.search(
        conn, "bad_items", "embedding", Q, 10, metric="l2", filter={"tag": [None, "a"]}
    )
    assert list(r.ids) == list(idx[exact_ids(X[idx], Q, 10)])


@pytest.mark.parametrize(
    ("filt", "match"),
    [
        ({"year": "nineteen"}, r"'nineteen'.*year of type (integer|INTEGER).*integer"),
        ({"year": ["1990", "x"]}, r"'x'"),
        ({"year": (1990, "z")}, r"'z'"),
        ({"year": True}, r"True"),
        ({"tag": 5}, r"5 \(int\).*tag of type (text|VARCHAR).*string"),
    ],
)
def test_filter_value_of_the_wrong_type(conn, filt, match):
    with pytest.raises(FilterError, match=match):
        vecext.search(conn, "bad_items", "embedding", Q, 5, filter=filt)
    # the connection searches on (PostgreSQL once lost its prepared stamp statement here)
    assert len(vecext.search(conn, "bad_items", "embedding", Q, 5)) == 5


def test_filter_values_of_the_right_type_still_work(conn):
    idx = _subset(lambda i: 2000 <= YEARS[i] <= 2005)
    for filt in ({"year": (2000, 2005)}, {"year": ("2000", "2005")}, {"year": (1999.5, 2005.5)}):
        r = vecext.search(conn, "bad_items", "embedding", Q, 5, metric="l2", filter=filt)
        assert list(r.ids) == list(idx[exact_ids(X[idx], Q, 5)]), filt


def test_zero_query_under_cosine_is_refused(conn):
    with pytest.raises(vecext.VecextError, match="all zeros"):
        vecext.search(conn, "bad_items", "embedding", np.zeros(D), 5, metric="cosine")
    # l2 and ip have an answer for the zero vector
    r = vecext.search(conn, "bad_items", "embedding", np.zeros(D), 5, metric="l2")
    assert list(r.ids) == list(exact_ids(X, np.zeros(D, np.float32), 5))


def test_driver_errors_become_vecext_errors(conn):
    """A value vecext does not type-check (a uuid column) fails in the database: the
    caller gets a SearchError (a VecextError) naming the table, the driver's in __cause__."""
    with pytest.raises(vecext.VecextError, match=r"bad_items\.embedding.*(uuid|UUID)") as info:
        vecext.search(conn, "bad_items", "embedding", Q, 5, filter={"uid": "not-a-uuid"})
    assert type(info.value.__cause__).__module__.split(".")[0] in ("psycopg", "duckdb", "_duckdb")
    # the connection still works afterwards
    assert len(vecext.search(conn, "bad_items", "embedding", Q, 5)) == 5


def test_type_families():
    assert family("integer") == family("BIGINT") == "int"
    assert family("double precision") == family("DECIMAL(18,3)") == family("numeric(10,2)")
    assert family("character varying(20)") == family("VARCHAR") == "text"
    assert family("timestamp with time zone") == family("DATE") == "time"
    assert family("uuid") is None and family("jsonb") is None


# ---------------------------------------------------------------------------
# fork safety


def _encode_in_child(codec, x, out):
    out.put(codec.encode(x).tobytes())


@pytest.mark.parametrize("kind", ["pq", "binary"])
def test_encode_in_a_forked_child_after_the_parent_used_faiss(kind):
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)  # the parent runs OpenMP parallel regions with a pool
    try:
        x = RNG.standard_normal((8_000, 32)).astype(np.float32)
        codec = make_codec(kind, 32, "l2", **({"m": 4} if kind == "pq" else {})).train(x[:2000])
        want = codec.encode(x)  # the parent has used FAISS's threads
        ctx = mp.get_context("fork")
        out = ctx.Queue()
        p = ctx.Process(target=_encode_in_child, args=(codec, x, out))
        p.start()
        try:  # read before join: a child blocks on exit until its queued data is read
            got = out.get(timeout=30)
        except queue.Empty:
            got = None
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join()
        assert got is not None, "codec.encode hung in a forked child"
        assert got == want.tobytes()
    finally:
        faiss.omp_set_num_threads(before)
