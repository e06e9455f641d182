"""Every PostgreSQL search strategy against numpy brute force, and the k-rows guarantee."""

from __future__ import annotations

import numpy as np
import pytest

from tests.postgres.search_data import CAT_SIZES, SELECTIVITY, recall
from vecext.postgres import explain, search

STRATEGIES = ["exact", "compressed", "ivf", "hnsw", "auto"]


def _mean_recall(conn, data, strategy, filt=None, k=10, nq=None, **kw):
    mask = None if filt is None else data.cat == filt["cat"]
    out, rows = [], []
    for q in data.xq[:nq]:
        r = search(conn, "items", "embedding", q, k, strategy=strategy, filter=filt, **kw)
        out.append(recall(r.ids, data.truth(q, k, mask)))
        rows.append(len(r))
        if mask is not None:
            assert mask[r.ids].all(), "a returned row does not match the filter"
    return float(np.mean(out)), min(rows), r


def test_calibration_was_measured(search_env) -> None:
    cal = search_env.extra["cal_pq"]
    depth = cal["depth"]
    values = [depth[m] for m in sorted(depth, key=int)]
    assert values == sorted(values) and values[-1] > 0.95 and values[0] < 0.9
    probe = cal["nprobe"]
    assert probe[str(search_env.extra["ivf"].nlist)] == 1.0  # every list: every neighbour


@pytest.mark.parametrize("strategy", ["exact", "compressed", "ivf", "hnsw"])
def test_recall_at_defaults(sconn, search_env, strategy: str) -> None:
    rec, min_rows, r = _mean_recall(sconn, search_env, strategy)
    assert min_rows == 10 and r.complete
    assert r.strategy == strategy
    if strategy == "exact":
        assert rec == 1.0
    else:
        assert rec >= 0.9, f"{strategy}: recall@10 {rec:.3f}"
    # distances are exact cosine distances after the rerank, best first
    q = search_env.xq[-1]
    x = search_env.xb[r.ids].astype(np.float64)
    ref = 1 - (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    assert np.allclose(r.distances, ref, atol=1e-5)
    assert np.all(np.diff(r.distances) >= -1e-6)


def test_binary_codes_rank_candidates_too(sconn, search_env) -> None:
    rec, min_rows, r = _mean_recall(sconn, search_env, "compressed", using="emb_bin")
    assert min_rows == 10 and r.plan.params["rerank"] >= 10
    assert rec >= 0.9, f"binary two-stage recall@10 {rec:.3f}"


@pytest.mark.parametrize("cat", ["a", "b", "c", "d"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_k_rows_under_filters(sconn, search_env, strategy: str, cat: str) -> None:
    n_match = CAT_SIZES[cat]
    assert abs(n_match / 20_000 - SELECTIVITY[cat]) < 1e-9
    rec, min_rows, r = _mean_recall(sconn, search_env, strategy, {"cat": cat}, nq=8)
    assert min_rows == 10 and r.complete, r
    if strategy in ("exact", "auto"):
        assert rec == 1.0
    else:
        assert rec >= 0.85, f"{strategy} under cat={cat}: recall {rec:.3f}"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fewer_matching_rows_than_k(sconn, search_env, strategy: str) -> None:
    q = search_env.xq[0]
    r = search(sconn, "items", "embedding", q, 10, strategy=strategy, filter={"cat": "f"})
    assert len(r) == 5 and r.complete and r.reason == ""
    assert set(r.ids.tolist()) == set(np.flatnonzero(search_env.cat == "f").tolist())
    none = search(sconn, "items", "embedding", q, 10, strategy=strategy, filter={"cat": "zzz"})
    assert len(none) == 0 and none.complete


def test_ivf_widens_its_probes_for_a_selective_filter(sconn, search_env) -> None:
    q = search_env.xq[1]
    r = search(sconn, "items", "embedding", q, 10, strategy="ivf", filter={"cat": "c"})
    assert len(r) == 10 and r.strategy == "ivf"
    # 200 matching rows in 566 lists: only a wide probe finds rerank-depth candidates
    assert r.plan.params["nprobe"] > 100
    narrow = search(sconn, "items", "embedding", q, 10, strategy="ivf")
    assert narrow.plan.params["nprobe"] < r.plan.params["nprobe"]
    assert narrow.rows_scanned < 20_000


def test_scan_budget_reports_incomplete(sconn, search_env) -> None:
    q = search_env.xq[2]
    r = search(
        sconn, "items", "embedding", q, 10, strategy="hnsw", filter={"cat": "d"}, max_scan_rows=40
    )
    assert len(r) < 10 and not r.complete
    assert "scan budget of 40 rows" in r.reason and str(len(r)) in r.reason
    c = search(sconn, "items", "embedding", q, 10, strategy="compressed", max_scan_rows=6)
    assert len(c) == 6 and not c.complete
    # without a budget the same searches fall back rather than return fewer rows
    full = search(sconn, "items", "embedding", q, 10, strategy="hnsw", filter={"cat": "d"})
    assert len(full) == 10 and full.complete


def test_auto_plans_by_selectivity(sconn, search_env) -> None:
    q = search_env.xq[3]
    assert search(sconn, "items", "embedding", q, 10, filter={"cat": "d"}).strategy == "exact"
    broad = search(sconn, "items", "embedding", q, 10)
    assert broad.strategy == "exact"  # 20,000 rows: within the exact threshold
    from vecext.search.planner import PlannerSettings

    s = PlannerSettings(exact_max_rows=1_000)
    assert search(sconn, "items", "embedding", q, 10, settings=s).strategy == "hnsw"
    mid = search(sconn, "items", "embedding", q, 10, filter={"cat": "b"}, settings=s)
    assert mid.strategy == "ivf" and mid.plan.params["nprobe"] >= 1


def test_explain_names_strategy_and_reason(sconn, search_env) -> None:
    q = search_env.xq[4]
    text = explain(sconn, "items", "embedding", q, 10, filter={"cat": "c"})
    assert "strategy: exact" in text and "why: about 200 rows match" in text
    assert "filter: cat = 'c'" in text and "selectivity 1.0000%" in text
    text = explain(sconn, "items", "embedding", q, 10, strategy="ivf")
    assert "strategy: ivf" in text and "why: requested by the caller" in text
    assert "nprobe=" in text and "rerank=" in text
    res = search(sconn, "items", "embedding", q, 10, strategy="compressed")
    assert "strategy: compressed" in res.explain()


def test_results_convert(sconn, search_env) -> None:
    r = search(sconn, "items", "embedding", search_env.xq[5], 3, strategy="exact")
    assert [i for i, _ in r.to_list()] == r.ids.tolist()
    assert r.to_arrow().num_rows == 3 and list(r.to_pandas().columns) == ["id", "distance"]


def test_progressive_deepening_recovers_recall(sconn, search_env) -> None:
    from vecext.search.planner import PlannerSettings

    loose = PlannerSettings(recall_target=0.3)  # calibration says: rerank about k rows
    flat = PlannerSettings(recall_target=0.3, deepen=0)
    out = {}
    for name, s in (("deepen", loose), ("flat", flat)):
        recs, reranked = [], []
        for q in search_env.xq:
            r = search(sconn, "items", "embedding", q, 10, strategy="compressed",
                       using="emb_bin", settings=s)  # fmt: skip
            recs.append(recall(r.ids, search_env.truth(q, 10)))
            reranked.append(r.plan.params["reranked"])
        out[name] = (np.mean(recs), np.mean(reranked))
    start = search(sconn, "items", "embedding", search_env.xq[0], 10, strategy="compressed",
                   using="emb_bin", settings=flat).plan.params["rerank"]  # fmt: skip
    assert out["flat"][1] == start and out["deepen"][1] > start
    assert out["deepen"][0] >= 0.9 and out["deepen"][0] > out["flat"][0] + 0.05, out


def test_calibration_on_given_queries(sconn, search_env) -> None:
    from vecext.postgres import calibrate

    rec = calibrate(sconn, "items", "emb_bin", queries=search_env.xq, store=False)
    assert rec["queries"] == "given" and rec["n_queries"] == len(search_env.xq)
    assert {(s["kind"], s["selectivity"]) for s in rec["subsets"]} == {
        ("random", 0.1),
        ("random", 0.01),
        ("cluster", 0.1),
        ("cluster", 0.01),
    }
    stored = sconn.execute(
        "SELECT calibration->>'queries' FROM vecext.compressed_columns WHERE code_column = 'emb_bin'"
    ).fetchone()
    assert stored == ("rows",)  # store=False left the column's own calibration alone
