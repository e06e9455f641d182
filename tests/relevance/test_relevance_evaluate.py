"""eval_relevance end to end on small seeded synthetic data; oracle and exact search."""

from __future__ import annotations

import numpy as np
import pytest

from vecext.relevance.evaluate import eval_relevance, exact_top_n, format_table, main, oracle_f1

SPEC = "synthetic:n=2000,d=16,nq=160,seed=2"


def test_exact_top_n_matches_numpy():
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((300, 8)).astype(np.float32)
    xq = rng.standard_normal((5, 8)).astype(np.float32)
    S, I = exact_top_n(xb, xq, 10)
    xbn = xb / np.linalg.norm(xb, axis=1, keepdims=True)
    xqn = xq / np.linalg.norm(xq, axis=1, keepdims=True)
    full = xqn @ xbn.T
    ref = np.argsort(-full, axis=1)[:, :10]
    np.testing.assert_array_equal(I, ref)
    np.testing.assert_allclose(S, np.take_along_axis(full, ref, axis=1), atol=1e-5)
    assert S.dtype == np.float32 and I.dtype == np.int64
    assert np.all(np.diff(S, axis=1) <= 0)


def test_oracle_hand_case():
    Y = np.array([[True, False, True, False], [False, False, False, False]])
    nrel = np.array([2, 1])
    o = oracle_f1(Y, nrel)
    # micro-optimal: q0 keeps its top 3 (2 hits), q1 keeps nothing -> 2*2/(3+3)
    assert o["f1"] == pytest.approx(4 / 6)
    assert o["precision"] == pytest.approx(2 / 3) and o["recall"] == pytest.approx(2 / 3)
    # per-query F1: q0 best is 2*2/(3+2) = 0.8 (or top-1: 2/3), q1 0
    assert o["mean_query_f1"] == pytest.approx(0.4)


def test_eval_relevance_split_report():
    rep = eval_relevance(SPEC, "dev", "dev", ["fixed", "platt", "cosine-adapter:lam=0.1"], top_n=30)
    assert rep["split"]["n_train"] == 80 and rep["split"]["n_test"] == 80
    assert "permutation(160)" in rep["split"]["how"]
    assert rep["n_test_queries"] == 80 and rep["top_n"] == 30
    assert 0.0 < rep["coverage"] <= 1.0
    names = [r["method"] for r in rep["results"]]
    assert names == ["fixed", "platt", "cosine-adapter:lam=0.1"]
    for r in rep["results"]:
        for key in ("threshold", "precision", "recall", "f1", "pr_auc", "avg_results_per_query"):
            assert np.isfinite(r[key])
        if r["precision"] + r["recall"] > 0:
            hm = 2 * r["precision"] * r["recall"] / (r["precision"] + r["recall"])
            assert r["f1"] == pytest.approx(hm)
        assert r["f1"] <= rep["oracle"]["f1"] + 1e-12
        assert 0.0 <= r["pr_auc"] <= rep["coverage"] + 1e-12
    fixed, platt = rep["results"][0], rep["results"][1]
    assert platt["f1"] == pytest.approx(fixed["f1"])  # a global monotone map
    assert platt["pr_auc"] == pytest.approx(fixed["pr_auc"])
    assert "dev" in format_table(rep)


def test_eval_relevance_separate_query_sets(capsys, tmp_path):
    rep = eval_relevance(SPEC, "a", "b", ["fixed"], top_n=20)
    assert rep["split"] is None
    assert rep["n_train_queries"] == rep["n_test_queries"] == 160
    out = tmp_path / "r.json"
    assert main([SPEC, "--train", "a", "--test", "b", "--methods", "fixed", "--top-n", "20",
                 "--json", str(out)]) == 0  # fmt: skip
    assert "fixed" in capsys.readouterr().out and out.is_file()
    with pytest.raises(ValueError):
        eval_relevance(SPEC, "a", "b", [])
