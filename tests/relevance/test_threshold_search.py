"""search(..., min_relevance=T, relevance=adapter): exactly the rows whose calibrated
score passes, checked against Python scoring of every row, in PostgreSQL and DuckDB."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.relevance.sql_data import SPECS, python_scores
from vecext.relevance import RelevanceError, make_relevance
from vecext.search.api import SearchError, explain, search
from vecext.search.threshold import DEFAULT_MAX_RESULTS, k_rounds


def backend_name(db) -> str:
    return "postgres" if type(db).__module__.startswith("psycopg") else "duckdb"


def passing(rel_data, name: str, T: float, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Python reference: (rows whose score reaches T, every row's score) for query i."""
    m = copy.copy(rel_data.adapters[name])
    m.set_threshold(T)
    ref = python_scores(m, rel_data.xb, rel_data.xq[i], rel_data.S[i][:10])
    return np.flatnonzero(ref >= T), ref


def thresholds(rel_data, name: str) -> list[float]:
    return [0.3, 0.5, 0.8] if rel_data.adapters[name].calibrated else [0.75, 0.85]


@pytest.mark.parametrize("name", list(SPECS))
def test_returns_exactly_the_rows_whose_score_passes(rel_db, rel_data, name):
    n_pass = []
    for T in thresholds(rel_data, name):
        for i, q in enumerate(rel_data.xq):
            want, ref = passing(rel_data, name, T, i)
            r = search(rel_db, "docs", "embedding", q, min_relevance=T, relevance=name)
            assert r.strategy == "exact"  # 3,000 rows: the planner scans exactly
            assert sorted(r.ids.tolist()) == want.tolist(), (name, T, i)
            assert r.complete and r.reason == "" and r.k is None
            assert r.extra["exhaustive"] and r.extra["relevance"] == name
            np.testing.assert_allclose(r.extra["scores"], ref[r.ids], atol=1e-5)
            assert np.all(r.extra["scores"] >= T)
            assert np.all(np.diff(r.distances) >= 0)  # nearest first
            # the bound is the per-query s_min (not one global cut-off)
            assert r.extra["max_distance"] == pytest.approx(1 - r.extra["s_min"])
            n_pass.append(len(want))
    # a meaningful check: many rows pass, never all, and the count varies per query
    assert sum(n_pass) > 40 and max(n_pass) < len(rel_data.xb) and len(set(n_pass)) > 3


def test_threshold_search_with_a_filter(rel_db, rel_data):
    cat = np.arange(len(rel_data.xb)) % 3
    for i, q in enumerate(rel_data.xq):
        want, _ = passing(rel_data, "rel_ca", 0.3, i)
        r = search(
            rel_db, "docs", "embedding", q, min_relevance=0.3, relevance="rel_ca", filter={"cat": 1}
        )
        assert sorted(r.ids.tolist()) == want[cat[want] == 1].tolist()
        assert r.complete


def test_pushdown_is_shown_in_the_plan(rel_db, rel_data):
    text = explain(
        rel_db, "docs", "embedding", rel_data.xq[0], min_relevance=0.5, relevance="rel_ca"
    )
    assert "cosine-distance bound" in text and "at most 1000 rows" in text


def test_max_results_cuts_the_list_and_says_so(rel_db, rel_data):
    i = int(np.argmax([len(passing(rel_data, "rel_ca", 0.3, j)[0]) for j in range(6)]))
    want, ref = passing(rel_data, "rel_ca", 0.3, i)
    assert len(want) > 5
    nearest = want[np.argsort(-ref[want], kind="stable")][:5]
    for kw in ({"max_results": 5}, {"k": 5}):
        r = search(rel_db, "docs", "embedding", rel_data.xq[i], min_relevance=0.3,
                   relevance="rel_ca", **kw)  # fmt: skip
        assert sorted(r.ids.tolist()) == sorted(nearest.tolist())
        assert not r.complete and "max_results=5" in r.reason
    # the default cap: a fixed cosine threshold of -1 lets all 3,000 rows pass
    r = search(rel_db, "docs", "embedding", rel_data.xq[0], min_relevance=-1.0,
               relevance="rel_fixed")  # fmt: skip
    assert len(r) == DEFAULT_MAX_RESULTS and not r.complete


def test_no_row_can_pass(rel_db, rel_data):
    r = search(rel_db, "docs", "embedding", rel_data.xq[0], min_relevance=1.0, relevance="rel_ca")
    assert len(r) == 0 and r.complete and r.extra["s_min"] == np.inf


def test_approximate_plans_keep_only_passing_rows_and_say_they_may_miss_some(rel_db, rel_data):
    # PostgreSQL: the HNSW index; DuckDB: PQ codes reranked exactly
    strategy = "hnsw" if backend_name(rel_db) == "postgres" else "compressed"
    found = wanted = 0
    for name in ("rel_ca", "rel_feat"):
        for i, q in enumerate(rel_data.xq):
            want, ref = passing(rel_data, name, 0.5, i)
            r = search(rel_db, "docs", "embedding", q, min_relevance=0.5, relevance=name,
                       strategy=strategy)  # fmt: skip
            assert r.strategy.startswith(strategy)
            assert set(r.ids.tolist()) <= set(want.tolist())
            np.testing.assert_allclose(r.extra["scores"], ref[r.ids], atol=1e-5)
            assert not r.complete and not r.extra["exhaustive"]
            assert "approximate" in r.reason and "strategy='exact'" in r.reason
            found, wanted = found + len(r), wanted + len(want)
    assert wanted > 40 and found >= 0.9 * wanted


def test_approximate_plan_asks_for_more_while_every_candidate_passes(rel_db, rel_data):
    strategy = "hnsw" if backend_name(rel_db) == "postgres" else "compressed"
    # every row passes a fixed cosine threshold of -1: rounds of 32, 128, 512, 2000
    r = search(rel_db, "docs", "embedding", rel_data.xq[0], min_relevance=-1.0,
               relevance="rel_fixed", strategy=strategy, max_results=1999)  # fmt: skip
    assert "asked for 128" in r.explain() and "asked for 512" in r.explain()
    assert len(r) > 1000


def test_k_rounds():
    assert k_rounds(32, 2000) == [32, 128, 512, 2000]
    assert k_rounds(32, 10) == [10]


def test_bad_threshold_requests(rel_db, rel_data):
    q = rel_data.xq[0]
    for bad in (1.5, -0.1):
        with pytest.raises(RelevanceError, match=r"min_relevance=.*outside \[0, 1\]"):
            search(rel_db, "docs", "embedding", q, min_relevance=bad, relevance="rel_ca")
    with pytest.raises(SearchError, match="needs relevance="):
        search(rel_db, "docs", "embedding", q, min_relevance=0.5)
    with pytest.raises(SearchError, match="pass min_relevance"):
        search(rel_db, "docs", "embedding", q, relevance="rel_ca")
    with pytest.raises(SearchError, match="cosine"):
        search(rel_db, "docs", "embedding", q, min_relevance=0.5, relevance="rel_ca", metric="l2")
    with pytest.raises(SearchError, match="max_results"):
        search(rel_db, "docs", "embedding", q, min_relevance=0.5, relevance="rel_ca",
               max_results=0)  # fmt: skip
    with pytest.raises(SearchError, match="both cap"):
        search(rel_db, "docs", "embedding", q, min_relevance=0.5, relevance="rel_ca", k=5,
               max_results=7)  # fmt: skip
    with pytest.raises(RelevanceError, match="unknown relevance adapter 'nope'.*rel_ca"):
        search(rel_db, "docs", "embedding", q, min_relevance=0.5, relevance="nope")


def test_adapter_of_another_dimension(rel_db, rel_data):
    rng = np.random.default_rng(0)
    xq = rng.standard_normal((40, 8))
    S = -np.sort(-rng.random((40, 12)), axis=1)
    Y = np.arange(12)[None, :] < 3
    m = make_relevance("cosine-adapter", lam=0.1).fit(xq, S, np.broadcast_to(Y, S.shape))
    with pytest.raises(
        RelevanceError, match="trained on dimension 8.*docs.embedding has dimension 16"
    ):
        search(rel_db, "docs", "embedding", rel_data.xq[0], min_relevance=0.5, relevance=m)


def test_the_pushed_down_bound_is_a_cosine_distance_filter(rel_db, rel_data):
    """The predicate an exact threshold search adds to its WHERE clause, used on its own."""
    from vecext.search.registry import backend_for
    from vecext.search.threshold import bound_predicate

    backend = backend_for(rel_db)
    info = backend.table_info("docs", "embedding", "cosine")
    xb = rel_data.xb.astype(np.float64)
    for i in range(3):
        q = rel_data.xq[i]
        d = 1 - xb @ q / (np.linalg.norm(xb, axis=1) * np.linalg.norm(q))
        bound = float(np.sort(d)[10 * (i + 1)] + 1e-4)  # between two rows' distances
        pred = bound_predicate(info, q, bound)
        r = search(rel_db, "docs", "embedding", q, 200, filter=pred, strategy="exact")
        assert sorted(r.ids.tolist()) == np.flatnonzero(d <= bound).tolist()
