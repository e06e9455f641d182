"""Every search strategy on every backend against numpy brute force, the k-rows
guarantee, scan budgets, the planner's choices and what ``explain()`` says."""

from __future__ import annotations

import numpy as np
import pytest

from tests.contract.conftest import Db, recall
from vecext.search.planner import PlannerSettings

STRATEGIES = ["exact", "compressed", "ivf", "hnsw", "auto"]
#: rows per ``cat`` value: a 50%, b 10%, c 1%, d 0.1%, f 5 rows (fewer than k)
CAT_SIZES = {"a": 10_000, "b": 2_000, "c": 200, "d": 20, "f": 5}


def _mean_recall(db: Db, strategy: str, filt=None, k=10, nq=None, **kw):
    mask = None if filt is None else db.data.cat == filt["cat"]
    out, rows = [], []
    for q in db.data.xq[:nq]:
        r = db.search(q, k, strategy=strategy, filter=filt, **kw)
        out.append(recall(r.ids, db.data.truth(q, k, mask)))
        rows.append(len(r))
        if mask is not None:
            assert mask[r.ids].all(), "a returned row does not match the filter"
    return float(np.mean(out)), min(rows), r


def test_the_data_is_the_same(backend: Db) -> None:
    for cat, n in CAT_SIZES.items():
        assert (backend.data.cat == cat).sum() == n
    rows = backend.sql("SELECT cat, count(*) FROM items GROUP BY cat ORDER BY cat")
    assert dict(rows) == {**CAT_SIZES, "e": 20_000 - sum(CAT_SIZES.values())}


def test_calibration_is_measured_and_stored(backend: Db) -> None:
    db = backend
    cal = db.data.extra["cal_pq"]
    depth = [cal["depth"][m] for m in sorted(cal["depth"], key=int)]
    assert depth == sorted(depth) and depth[-1] > 0.95 and depth[0] < 0.9
    assert cal["nprobe"][str(db.data.extra["ivf"].nlist)] == 1.0  # every list: every neighbour
    (stored,) = db.sql(
        "SELECT calibration FROM vecext.compressed_columns "
        "WHERE table_name = 'items' AND code_column = 'emb_pq'"
    )
    assert db.json(stored[0]) == cal
    # the planner takes its rerank depth from that curve, raised to the backend's floor
    floors = PlannerSettings().resolve(db.backend_class.planner_defaults)
    mult = min(int(m) for m, r in cal["depth"].items() if r >= 0.95)
    r = db.search(db.data.xq[0], strategy="compressed")
    assert r.plan.params["rerank"] == max(10 * mult, 10 * floors.rerank_floor_mult)
    if mult < floors.rerank_floor_mult:
        assert f"rerank depth {10 * mult} (from the calibration) raised" in r.explain()
    r = db.search(
        db.data.xq[0], strategy="compressed", settings=PlannerSettings(rerank_floor_mult=1)
    )
    assert r.plan.params["rerank"] == 10 * mult


@pytest.mark.parametrize("strategy", ["exact", "compressed", "ivf", "hnsw"])
def test_recall_at_defaults(backend: Db, strategy: str) -> None:
    rec, min_rows, r = _mean_recall(backend, strategy)
    assert min_rows == 10 and r.complete
    assert r.strategy == strategy
    if strategy == "exact":
        assert rec == 1.0
    else:
        assert rec >= 0.9, f"{strategy}: recall@10 {rec:.3f}"
    # distances are exact cosine distances after the rerank, best first
    q = backend.data.xq[-1]
    x = backend.data.xb[r.ids].astype(np.float64)
    ref = 1 - (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    assert np.allclose(r.distances, ref, atol=1e-5)
    assert np.all(np.diff(r.distances) >= -1e-6)


def test_binary_codes_rank_candidates_too(backend: Db) -> None:
    rec, min_rows, r = _mean_recall(backend, "compressed", using="emb_bin")
    assert min_rows == 10 and r.plan.params["rerank"] >= 10
    assert rec >= 0.9, f"binary two-stage recall@10 {rec:.3f}"


@pytest.mark.parametrize("cat", ["a", "b", "c", "d"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_k_rows_under_filters(backend: Db, strategy: str, cat: str) -> None:
    rec, min_rows, r = _mean_recall(backend, strategy, {"cat": cat}, nq=6)
    assert min_rows == 10 and r.complete, r
    if strategy in ("exact", "auto"):
        assert rec == 1.0  # auto: at most 10k rows match, within exact_max_rows
    else:
        assert rec >= 0.85, f"{strategy} under cat={cat}: recall {rec:.3f}"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fewer_matching_rows_than_k(backend: Db, strategy: str) -> None:
    q = backend.data.xq[0]
    r = backend.search(q, strategy=strategy, filter={"cat": "f"})
    assert len(r) == 5 and r.complete and r.reason == ""
    assert set(r.ids.tolist()) == set(np.flatnonzero(backend.data.cat == "f").tolist())
    none = backend.search(q, strategy=strategy, filter={"cat": "zzz"})
    assert len(none) == 0 and none.complete


def test_ivf_widens_its_probes_for_a_selective_filter(
    backend: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DuckDB ranks a table this small exactly from its vector cache (no probes to widen)
    monkeypatch.setattr("vecext.duckdb.scan.SMALL_EXACT_FLOATS", 0)
    q = backend.data.xq[1]
    r = backend.search(q, strategy="ivf", filter={"cat": "c"})
    assert len(r) == 10 and r.strategy == "ivf"
    assert recall(r.ids, backend.data.truth(q, 10, backend.data.cat == "c")) >= 0.8
    narrow = backend.search(q, strategy="ivf")
    assert 1 <= narrow.plan.params["nprobe"] < r.plan.params["nprobe"]
    assert narrow.rows_scanned < 20_000


def test_scan_budget_reports_incomplete(backend: Db) -> None:
    q, cat = backend.data.xq[2], backend.data.cat
    r = backend.search(q, strategy="hnsw", filter={"cat": "d"}, max_scan_rows=40)
    assert len(r) < 10 and not r.complete and r.strategy == "hnsw"
    assert "scan budget of 40 rows" in r.reason and str(len(r)) in r.reason
    assert set(cat[r.ids]) <= {"d"}
    r = backend.search(q, strategy="ivf", filter={"cat": "d"}, max_scan_rows=5)
    assert len(r) < 10 and not r.complete and "scan budget of 5 rows" in r.reason
    c = backend.search(q, strategy="compressed", max_scan_rows=6)
    assert len(c) == 6 and not c.complete
    # an exact scan under a budget reads at most that many rows
    e = backend.search(q, strategy="exact", max_scan_rows=500)
    assert len(e) == 10 and e.rows_scanned == 500
    # without a budget the same searches return every row they promise
    for strategy in ("hnsw", "ivf"):
        full = backend.search(q, strategy=strategy, filter={"cat": "d"})
        assert len(full) == 10 and full.complete and full.reason == ""


def test_auto_plans_by_selectivity(backend: Db) -> None:
    q = backend.data.xq[3]
    # within the exact threshold every set here is scanned exactly ...
    every = PlannerSettings(exact_max_rows_unfiltered=20_000)
    assert backend.search(q, settings=every).strategy == "exact"
    # ... but PostgreSQL's unfiltered default walks the HNSW index above 2,000 rows (an
    # unfiltered exact scan reads every vector)
    default = backend.search(q).strategy
    assert default == ("hnsw" if backend.name == "postgres" else "exact")
    assert backend.search(q, filter={"cat": "b"}).strategy == "exact"
    s = PlannerSettings(exact_max_rows=100)
    assert backend.search(q, settings=s).strategy == "hnsw"
    mid = backend.search(q, filter={"cat": "b"}, settings=s)
    assert mid.strategy == "ivf" and mid.plan.params["nprobe"] >= 1 and "probe" in mid.plan.reason
    small = backend.search(q, filter={"cat": "d"}, settings=s)
    assert small.strategy == "exact" and "20 rows match" in small.plan.reason


def test_explain_names_strategy_and_reason(backend: Db) -> None:
    q = backend.data.xq[4]
    text = backend.explain(q, filter={"cat": "c"})
    assert "strategy: exact" in text and "why: about 200 rows match" in text
    assert "filter: cat = 'c'" in text and "selectivity 1.0000%" in text
    s = PlannerSettings(exact_max_rows=100)
    text = backend.explain(q, filter={"cat": "b"}, settings=s)
    assert "strategy: ivf" in text and "selectivity 10.0000%" in text and "cat = 'b'" in text
    text = backend.explain(q, strategy="ivf")
    assert "strategy: ivf" in text and "why: requested by the caller" in text
    assert "nprobe=" in text and "rerank=" in text
    assert "strategy: compressed" in backend.search(q, strategy="compressed").explain()


def test_results_convert(backend: Db) -> None:
    r = backend.search(backend.data.xq[5], 3, strategy="compressed")
    assert [i for i, _ in r.to_list()] == r.ids.tolist()
    assert r.to_arrow().num_rows == 3 and list(r.to_pandas().columns) == ["id", "distance"]


def test_calibration_on_given_queries(backend: Db) -> None:
    db = backend
    caps = db.backend_class(db.conn).table_info("items", "embedding", "cosine").caps
    assert caps.calibration == db.data.extra["cal_pq"]["depth"]
    kinds = {(x["selectivity"], x["kind"]) for x in caps.calibration_subsets or []}
    assert {(0.1, "random"), (0.1, "cluster")} <= kinds  # what a filter leaves, measured
    before = db.sql("SELECT code_column, calibration FROM vecext.compressed_columns")
    rec = db.api.calibrate(db.conn, "items", "emb_bin", queries=db.data.xq, store=False)
    assert rec["queries"] == "given" and rec["n_queries"] == len(db.data.xq)
    assert {(s["kind"], s["selectivity"]) for s in rec["subsets"]} == {
        ("random", 0.1),
        ("random", 0.01),
        ("cluster", 0.1),
        ("cluster", 0.01),
    }
    values = [rec["depth"][m] for m in sorted(rec["depth"], key=int)]
    assert values == sorted(values) and values[-1] > 0.9
    # store=False left the columns' own calibrations alone
    assert db.sql("SELECT code_column, calibration FROM vecext.compressed_columns") == before
    (stored,) = db.sql(
        "SELECT calibration FROM vecext.compressed_columns "
        "WHERE table_name = 'items' AND code_column = 'emb_bin'"
    )
    assert db.json(stored[0])["queries"] == "rows"


@pytest.mark.parametrize("strategy", ["exact", "compressed", "ivf", "auto"])
def test_a_new_row_is_found_at_once(backend: Db, strategy: str) -> None:
    """A row written after the codes and lists were built (no refresh, no backfill) is
    found by every strategy: the trigger coded it, or the search reads stale rows."""
    db = backend
    q = db.data.xq[3]
    new_id = 20_000 + 7
    cast, value = db.vector_param(q)
    db.sql(
        f"INSERT INTO items (id, embedding, cat, tenant) VALUES (?, {cast}, 'b', 'big')",
        [new_id, value],
    )
    try:
        r = db.search(q, strategy=strategy)
        assert r.ids[0] == new_id and r.distances[0] < 1e-5
        r = db.search(q, strategy=strategy, filter={"cat": "b"})
        assert r.ids[0] == new_id and len(r) == 10
    finally:
        db.sql("DELETE FROM items WHERE id = ?", [new_id])
