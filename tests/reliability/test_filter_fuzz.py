"""Hypothesis-fuzzed filters on both backends: every exact search under a random filter
(equality, IN, ranges, NULLs, ``None`` meaning IS NULL, text with quotes and unicode)
returns exactly the numpy brute-force top-k of the rows the filter keeps, and a value
of the wrong type is a FilterError, never a driver error or a wrong answer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vecext
import vecext.duckdb as vd
from tests.reliability.conftest import exact_ids, vector_text
from vecext.search.filters import FilterError

D = 8
N = 300
RNG = np.random.default_rng(21)
X = RNG.standard_normal((N, D)).astype(np.float32)
WORDS = ["a", "b", "it's", 'q"uote', "café", "%s", "a\\b", ""]
TAGS = [None if i % 7 == 0 else WORDS[i % len(WORDS)] for i in range(N)]
YEARS = [None if i % 11 == 0 else 1990 + (i * 7) % 40 for i in range(N)]
SCORES = [float(RNG.normal()) for _ in range(N)]

tag_value = st.sampled_from([*WORDS, None, "zz"])
year_value = st.integers(1985, 2035) | st.none()
bounds = st.tuples(st.integers(1985, 2035) | st.none(), st.integers(1985, 2035) | st.none())
fbounds = st.tuples(st.floats(-3, 3) | st.none(), st.floats(-3, 3) | st.none())
PER_COLUMN = {
    "tag": tag_value | st.lists(tag_value, min_size=1, max_size=3),
    "year": year_value | st.lists(year_value, min_size=1, max_size=4) | bounds,
    "score": fbounds,
}
filters = st.sets(st.sampled_from(sorted(PER_COLUMN)), min_size=1).flatmap(
    lambda keys: st.fixed_dictionaries({k: PER_COLUMN[k] for k in sorted(keys)})
)


def keep(filt: dict) -> np.ndarray:
    cols = {"tag": TAGS, "year": YEARS, "score": SCORES}
    ok = np.ones(N, bool)
    for col, value in filt.items():
        vals = cols[col]
        if isinstance(value, tuple):
            lo, hi = value
            ok &= np.array(
                [
                    v is not None and (lo is None or v >= lo) and (hi is None or v <= hi)
                    for v in vals
                ]
            )
        elif isinstance(value, list):
            ok &= np.array([v in value if v is not None else None in value for v in vals])
        else:
            ok &= np.array([v is None if value is None else v == value for v in vals])
    return np.flatnonzero(ok)


@pytest.fixture(scope="module")
def fuzz_pg(mconn):
    mconn.execute(
        f"CREATE TABLE fuzz (id int PRIMARY KEY, embedding vector({D}), tag text, year int, "
        "score double precision)"
    )
    with mconn.cursor() as cur:
        cur.executemany(
            "INSERT INTO fuzz VALUES (%s, %s::vector, %s, %s, %s)",
            [(i, vector_text(X[i]), TAGS[i], YEARS[i], SCORES[i]) for i in range(N)],
        )
    yield mconn
    mconn.execute("DROP TABLE fuzz")


@pytest.fixture(scope="module")
def fuzz_duck():
    con = vd.connect(":memory:")
    con.execute(
        f"CREATE TABLE fuzz (id INTEGER PRIMARY KEY, embedding FLOAT[{D}], tag VARCHAR, "
        "year INTEGER, score DOUBLE)"
    )
    con.executemany(
        "INSERT INTO fuzz VALUES (?, ?, ?, ?, ?)",
        [(i, X[i].tolist(), TAGS[i], YEARS[i], SCORES[i]) for i in range(N)],
    )
    yield con
    con.close()


@pytest.fixture(params=["postgres", "duckdb"])
def fconn(request, fuzz_pg, fuzz_duck):
    return fuzz_pg if request.param == "postgres" else fuzz_duck


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(filt=filters, qi=st.integers(0, N - 1), k=st.integers(1, 20))
def test_exact_search_under_any_filter(fconn, filt, qi, k):
    q = X[qi] + 0.01
    if any(isinstance(v, tuple) and v == (None, None) for v in filt.values()):
        with pytest.raises(FilterError, match="no bounds"):
            vecext.search(fconn, "fuzz", "embedding", q, k, filter=filt)
        return
    idx = keep(filt)
    r = vecext.search(fconn, "fuzz", "embedding", q, k, metric="l2", filter=filt, strategy="exact")
    want = idx[exact_ids(X[idx], q, k)] if len(idx) else np.array([], int)
    assert [int(i) for i in r.ids] == want.tolist(), filt


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    col=st.sampled_from(["year", "score", "tag"]),
    value=st.one_of(st.text(max_size=5), st.booleans(), st.integers(), st.floats(allow_nan=False)),
)
def test_wrong_typed_values_are_filter_errors(fconn, col, value):
    ok = (
        (col == "tag" and isinstance(value, str))
        or (col == "year" and not isinstance(value, (bool, str)))
        or (col == "year" and isinstance(value, str) and value.strip().lstrip("+-").isdigit())
        or (col == "score" and not isinstance(value, (bool, str)))
    )
    try:
        r = vecext.search(fconn, "fuzz", "embedding", X[0], 5, metric="l2", filter={col: value})
    except FilterError:
        assert not ok, (col, value)
        return
    if isinstance(value, str) and col != "tag":
        return  # numeric text the database casts: checked against numpy above
    assert ok, (col, value)
    idx = keep({col: value})
    assert [int(i) for i in r.ids] == idx[exact_ids(X[idx], X[0], 5)].tolist()
