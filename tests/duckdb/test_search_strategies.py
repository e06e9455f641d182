"""Every DuckDB search strategy against numpy brute force, and the k-rows guarantee."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.duckdb.conftest import CAT_SIZES, SEARCH_N, SELECTIVITY, search_recall
from vecext.duckdb import strategies
from vecext.duckdb.backend import DuckDBBackend
from vecext.search import explain, search
from vecext.search.api import Request
from vecext.search.filters import Eq
from vecext.search.planner import Plan, PlannerSettings

STRATEGIES = ["exact", "compressed", "ivf", "hnsw", "auto"]


def _mean_recall(con, data, strategy, filt=None, k=10, queries=None, **kw):
    mask = None if filt is None else data.cat == filt["cat"]
    out, rows = [], []
    xq = data.xq if queries is None else data.xq[:queries]
    for q in xq:
        r = search(con, "items", "embedding", q, k, strategy=strategy, filter=filt, **kw)
        out.append(search_recall(r.ids, data.truth(q, k, mask)))
        rows.append(len(r))
        if mask is not None:
            assert mask[r.ids].all(), "a returned row does not match the filter"
    return float(np.mean(out)), min(rows), r


#: the floors a DuckDB search runs with
FLOORS = PlannerSettings().resolve(DuckDBBackend.planner_defaults)


def test_calibration_is_stored_in_the_catalog(search_env) -> None:
    con, data = search_env
    cal = data.extra["cal_pq"]
    depth = [cal["depth"][m] for m in sorted(cal["depth"], key=int)]
    assert depth == sorted(depth) and depth[-1] > 0.95 and depth[0] < 0.9
    assert cal["nprobe"][str(data.extra["ivf"].nlist)] == 1.0  # every list: every neighbour
    (stored,) = con.execute(
        "SELECT calibration FROM vecext.compressed_columns WHERE code_column = 'emb_pq'"
    ).fetchone()
    assert json.loads(stored) == cal
    # the planner takes its rerank depth from that curve; DuckDB raises it to its floor
    mult = min(int(m) for m, r in cal["depth"].items() if r >= 0.95)
    r = search(con, "items", "embedding", data.xq[0], 10, strategy="compressed")
    assert r.plan.params["rerank"] == max(10 * mult, 10 * FLOORS.rerank_floor_mult)
    if mult < FLOORS.rerank_floor_mult:
        assert f"rerank depth {10 * mult} (from the calibration) raised" in r.explain()
    r = search(con, "items", "embedding", data.xq[0], 10, strategy="compressed",
               settings=PlannerSettings(rerank_floor_mult=1))  # fmt: skip
    assert r.plan.params["rerank"] == 10 * mult


@pytest.mark.parametrize("strategy", ["exact", "compressed", "ivf", "hnsw"])
def test_recall_at_defaults(search_env, strategy: str) -> None:
    con, data = search_env
    rec, min_rows, r = _mean_recall(con, data, strategy)
    assert min_rows == 10 and r.complete
    assert r.strategy == strategy
    if strategy == "exact":
        assert rec == 1.0
    else:
        assert rec >= 0.9, f"{strategy}: recall@10 {rec:.3f}"
    # distances are exact cosine distances after the rerank, best first
    q = data.xq[-1]
    x = data.xb[r.ids].astype(np.float64)
    ref = 1 - (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    assert np.allclose(r.distances, ref, atol=1e-5)
    assert np.all(np.diff(r.distances) >= 0)


def test_binary_codes_rank_candidates_too(search_env) -> None:
    con, data = search_env
    rec, min_rows, r = _mean_recall(con, data, "compressed", using="emb_bin")
    assert min_rows == 10 and r.plan.params["rerank"] >= 10
    assert rec >= 0.9, f"binary two-stage recall@10 {rec:.3f}"


@pytest.mark.parametrize("cat", ["a", "b", "c", "d"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_k_rows_under_filters(search_env, strategy: str, cat: str) -> None:
    con, data = search_env
    assert CAT_SIZES[cat] / SEARCH_N == SELECTIVITY[cat]
    rec, min_rows, r = _mean_recall(con, data, strategy, {"cat": cat}, queries=6)
    assert min_rows == 10 and r.complete, r
    if strategy in ("exact", "auto"):
        assert rec == 1.0  # auto: at most 10k rows match, below exact_max_rows
    else:
        assert rec >= 0.85, f"{strategy} under cat={cat}: recall {rec:.3f}"


def test_hnsw_under_a_selective_filter_falls_back_and_says_so(search_env) -> None:
    con, data = search_env
    r = search(con, "items", "embedding", data.xq[0], 10, strategy="hnsw", filter={"cat": "d"})
    assert len(r) == 10 and r.complete
    text = r.explain()
    assert "before the filter" in text
    if r.strategy == "hnsw+exact":  # VSS found fewer than 10 of the 20 matching rows
        assert "fell back to an exact scan" in text


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fewer_matching_rows_than_k(search_env, strategy: str) -> None:
    con, data = search_env
    q = data.xq[0]
    r = search(con, "items", "embedding", q, 10, strategy=strategy, filter={"cat": "f"})
    assert len(r) == 5 and r.complete and r.reason == ""
    assert set(r.ids.tolist()) == set(np.flatnonzero(data.cat == "f").tolist())
    none = search(con, "items", "embedding", q, 10, strategy=strategy, filter={"cat": "zzz"})
    assert len(none) == 0 and none.complete


def test_planner_picks_by_selectivity(search_env) -> None:
    con, data = search_env
    s = PlannerSettings(exact_max_rows=100)
    q = data.xq[1]
    assert search(con, "items", "embedding", q, 10, settings=s).strategy == "hnsw"
    wide = search(con, "items", "embedding", q, 10, filter={"cat": "a"}, settings=s)
    assert wide.plan.strategy == "hnsw"  # 50%: broad enough for the index
    mid = search(con, "items", "embedding", q, 10, filter={"cat": "b"}, settings=s)
    assert mid.strategy == "ivf" and "probe" in mid.plan.reason
    small = search(con, "items", "embedding", q, 10, filter={"cat": "d"}, settings=s)
    assert small.strategy == "exact" and "20 rows match" in small.plan.reason
    # without a planner override every set here is small enough to scan exactly
    assert search(con, "items", "embedding", q, 10, filter={"cat": "b"}).strategy == "exact"
    text = explain(con, "items", "embedding", q, 10, filter={"cat": "b"}, settings=s)
    assert "strategy: ivf" in text and "selectivity 10.0000%" in text and "cat = 'b'" in text


def test_ivf_widens_its_probes_for_a_selective_filter(search_env) -> None:
    con, data = search_env
    r = search(con, "items", "embedding", data.xq[2], 10, strategy="ivf", filter={"cat": "c"})
    assert len(r) == 10 and r.strategy == "ivf"
    assert r.plan.params["nprobe"] > 1
    mask = data.cat == "c"
    assert search_recall(r.ids, data.truth(data.xq[2], 10, mask)) >= 0.8


def _exact_context(con, data, pred=None) -> strategies.Context:
    backend = DuckDBBackend(con)
    info = backend.table_info("items", "embedding", "cosine")
    req = Request("items", "embedding", data.xq[0], 10, "cosine", pred)
    where, params = backend.where(info, pred)
    return strategies.Context(con, info, req, Plan("exact", "test"), where, params)


def _operators(con, sql, params) -> str:
    (_, text) = con.execute("EXPLAIN " + sql, params).fetchone()
    return text


def test_exact_never_uses_the_hnsw_index(search_env) -> None:
    con, data = search_env
    for pred in (None, Eq("cat", "a")):
        sql, params = strategies.exact_statement(_exact_context(con, data, pred))
        assert "HNSW_INDEX_SCAN" not in _operators(con, sql, params)
    # ...whereas the plain top-k query is rewritten into an index scan
    plain = "SELECT id FROM items ORDER BY array_cosine_distance(embedding, ?::FLOAT[32]) LIMIT 10"
    assert "HNSW_INDEX_SCAN" in _operators(con, plain, [data.xq[0].tolist()])
    sql, params = strategies.hnsw_statement(_exact_context(con, data), 64)
    assert "HNSW_INDEX_SCAN" in _operators(con, sql, params)


def test_rows_without_codes_are_still_found(search_env) -> None:
    con, data = search_env
    q = data.xq[3]
    new_id = SEARCH_N + 7
    con.execute(
        "INSERT INTO items (id, embedding, cat, tenant) VALUES (?, ?::FLOAT[32], 'b', 'big')",
        [new_id, q.tolist()],
    )
    try:
        codes = con.execute(
            "SELECT emb_pq IS NULL, embedding_list IS NULL FROM items WHERE id = ?", [new_id]
        ).fetchone()
        assert codes == (True, True)  # no refresh yet: neither codes nor a list
        for strategy in ("compressed", "ivf"):
            r = search(con, "items", "embedding", q, 10, strategy=strategy)
            assert r.ids[0] == new_id and r.distances[0] < 1e-5
    finally:
        con.execute("DELETE FROM items WHERE id = ?", [new_id])


def test_results_convert(search_env) -> None:
    con, data = search_env
    r = search(con, "items", "embedding", data.xq[0], 5, strategy="compressed")
    assert [i for i, _ in r.to_list()] == r.ids.tolist()
    assert r.to_arrow().num_rows == 5
    assert list(r.to_pandas().columns) == ["id", "distance"]


def test_large_tables_get_a_sampled_estimate(search_env, monkeypatch) -> None:
    import sys

    con, data = search_env
    mod = sys.modules["vecext.duckdb.backend"]
    backend = DuckDBBackend(con)
    info = backend.table_info("items", "embedding", "cosine")
    assert backend.estimate_matching(info, Eq("cat", "a")) == 10_000  # a count
    monkeypatch.setattr(mod, "SAMPLE_ABOVE", 1_000)
    monkeypatch.setattr(mod, "SAMPLE_PERCENT", 50.0)
    est = backend.estimate_matching(info, Eq("cat", "a"))
    assert 5_000 <= est <= 15_000 and est == backend.estimate_matching(info, Eq("cat", "a"))
    r = search(con, "items", "embedding", data.xq[0], 10, filter={"cat": "d"})
    assert len(r) == 10 and r.complete  # estimates steer the plan, never the guarantee


def test_calibration_measures_filters_and_given_queries(search_env) -> None:
    from vecext.duckdb.calibration import calibrate

    con, data = search_env
    caps = DuckDBBackend(con).table_info("items", "embedding", "cosine").caps
    assert caps.calibration == data.extra["cal_pq"]["depth"]
    kinds = {(x["selectivity"], x["kind"]) for x in caps.calibration_subsets or []}
    assert {(0.1, "random"), (0.1, "cluster")} <= kinds  # what a filter leaves, measured
    before = con.execute("SELECT calibration FROM vecext.compressed_columns").fetchall()
    rec = calibrate(con, "items", "emb_bin", queries=data.xq, store=False)
    assert rec["queries"] == "given" and rec["n_queries"] == len(data.xq)
    values = [rec["depth"][m] for m in sorted(rec["depth"], key=int)]
    assert values == sorted(values) and values[-1] > 0.9
    assert con.execute("SELECT calibration FROM vecext.compressed_columns").fetchall() == before
