"""Relevance methods: monotonicity, persistence, threshold choice, quality, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.relevance.conftest import Retrieved, make_retrieved
from vecext.evaluation import pr_curve
from vecext.relevance import (
    CosineAdapter,
    FixedThreshold,
    PlattScaling,
    RelevanceError,
    RelevanceState,
    best_f1_threshold,
    make_relevance,
    parse_method_spec,
    relevance_from_state,
)
from vecext.relevance._logistic import class_weights, fit_monotone_logistic, objective


def micro_f1(sel: np.ndarray, data: Retrieved) -> float:
    tp = int((sel & data.Y).sum())
    return 2.0 * tp / (int(sel.sum()) + int(data.n_relevant.sum()))


# --------------------------------------------------------------------------- threshold choice


def test_best_f1_threshold_hand_case():
    scores = np.array([0.9, 0.8, 0.8, 0.3])
    labels = np.array([True, False, True, False])
    thr, prf = best_f1_threshold(scores, labels, n_relevant_total=4)
    # F1 at >=0.9: 2/5; at >=0.8: 4/7 (best); at >=0.3: 4/8
    assert prf.f1 == pytest.approx(4 / 7)
    assert (prf.n_selected, prf.n_correct, prf.n_relevant) == (3, 2, 4)
    assert thr == pytest.approx(0.55)  # midpoint between 0.8 and 0.3


def test_best_f1_threshold_is_the_maximum_over_all_cuts():
    rng = np.random.default_rng(3)
    s = rng.random(200)
    y = rng.random(200) < s * 0.5
    R = int(y.sum()) + 7
    thr, prf = best_f1_threshold(s, y, R)
    precision, recall, _ = pr_curve(s, y, R)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
    assert prf.f1 == pytest.approx(f1.max())
    sel = s >= thr
    assert 2 * (sel & y).sum() / (sel.sum() + R) == pytest.approx(prf.f1)


# --------------------------------------------------------------------------- monotonicity


@pytest.mark.parametrize("features", [(), ("top1", "gap12", "mean10")])
def test_adapter_score_monotone_in_similarity(train_test, features):
    tr, te = train_test
    m = make_relevance("cosine-adapter", lam=1e-3, features=features)
    m.fit(tr.xq, tr.S, tr.Y, tr.n_relevant)
    grid = np.linspace(-1.0, 1.0, 401)
    for i in range(0, te.S.shape[0], 17):
        # the query's own candidates
        sc = m.score(te.xq[i : i + 1], te.S[i : i + 1])[0]
        assert np.all(np.diff(sc[::-1]) >= 0)  # S descending -> reversed scores ascending
        if not features:  # an arbitrary similarity grid for the same query
            g = m.score(te.xq[i : i + 1], grid[None, :])[0]
            assert np.all(np.diff(g) >= 0)
            assert np.all((g >= 0) & (g <= 1))
    a = m.query_params(te.xq, te.S)["a"]
    assert np.all(a > 0)


def test_adapter_monotone_even_with_extreme_weights(fitted_adapter, train_test):
    _, te = train_test
    m = relevance_from_state(fitted_adapter.to_state())
    rng = np.random.default_rng(0)
    m.w_a = (rng.standard_normal(m.d) * 50).astype(np.float32)
    m.w_b = (rng.standard_normal(m.d) * 50).astype(np.float32)
    grid = np.sort(rng.uniform(-1, 1, (te.S.shape[0], 64)), axis=1)
    sc = m.score(te.xq, grid)
    assert np.all(np.diff(sc, axis=1) >= 0)


# --------------------------------------------------------------------------- fit / select / state


@pytest.mark.parametrize(
    "spec",
    ["fixed", "platt", "cosine-adapter:lam=0.001", "cosine-adapter:features=top1+gap12,lam=0.01"],
)
def test_select_is_score_at_least_threshold(train_test, spec):
    tr, te = train_test
    m = make_relevance(spec).fit(tr.xq, tr.S, tr.Y, tr.n_relevant)
    sc = m.score(te.xq, te.S)
    assert sc.shape == te.S.shape and sc.dtype == np.float64
    np.testing.assert_array_equal(m.select(te.xq, te.S), sc >= m.threshold)
    if m.calibrated:
        assert 0.0 <= m.threshold <= 1.0
    # the threshold is the training-set F1 optimum
    _, prf = best_f1_threshold(m.score(tr.xq, tr.S), tr.Y, int(tr.n_relevant.sum()))
    assert micro_f1(m.select(tr.xq, tr.S), tr) == pytest.approx(prf.f1)


@pytest.mark.parametrize("spec", ["platt", "cosine-adapter:lam=0.001"])
def test_s_min_is_the_pushed_down_bound(train_test, spec):
    tr, te = train_test
    m = make_relevance(spec).fit(tr.xq, tr.S, tr.Y, tr.n_relevant)
    s_min = m.query_params(te.xq, te.S)["s_min"]
    by_bound = s_min[:, None] <= te.S
    sel = m.select(te.xq, te.S)
    # identical up to candidates within rounding distance of the bound
    near = np.abs(te.S - s_min[:, None]) < 1e-9
    np.testing.assert_array_equal(by_bound[~near], sel[~near])


def test_query_params_form(fitted_adapter, train_test):
    """score = sigmoid(a*s + b) with a, b from two inner products and scalar arithmetic."""
    _, te = train_test
    m = fitted_adapter
    st = m.to_state()
    p = st.params_dict
    q = te.xq.astype(np.float64)
    za = q @ st.arrays["w_a"].astype(np.float64) + p["c_a"]
    zb = q @ st.arrays["w_b"].astype(np.float64) + p["c_b"]
    a = np.logaddexp(0, za) / p["s_scale"]
    b = zb - a * p["s_center"]
    qp = m.query_params(te.xq)
    np.testing.assert_allclose(qp["a"], a, rtol=1e-12)
    np.testing.assert_allclose(qp["b"], b, rtol=1e-12, atol=1e-12)
    expect = 1 / (1 + np.exp(-(a[:, None] * te.S + b[:, None])))
    np.testing.assert_allclose(m.score(te.xq, te.S), expect, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "spec",
    ["fixed", "platt", "cosine-adapter:lam=0.001", "cosine-adapter:features=top1+mean10,lam=0.01"],
)
def test_state_round_trip_gives_identical_scores(train_test, spec):
    tr, te = train_test
    m = make_relevance(spec).fit(tr.xq, tr.S, tr.Y, tr.n_relevant)
    st = m.to_state()
    assert st.method == m.name and st.version >= 1
    fp = st.fingerprint()
    assert len(fp) == 16 and int(fp, 16) >= 0
    # through text and bytes, as the catalog stores it
    stored = {k: (v.dtype.str, list(v.shape), v.tobytes()) for k, v in st.arrays.items()}
    st2 = RelevanceState(
        method=st.method,
        d=st.d,
        version=st.version,
        params=json.dumps(json.loads(st.params)),
        arrays={k: np.frombuffer(b, dtype=dt).reshape(sh) for k, (dt, sh, b) in stored.items()},
    )
    assert st2.fingerprint() == fp
    m2 = relevance_from_state(st2)
    assert type(m2) is type(m) and m2.threshold == m.threshold and m2.d == m.d
    np.testing.assert_array_equal(m2.score(te.xq, te.S), m.score(te.xq, te.S))
    np.testing.assert_array_equal(m2.select(te.xq, te.S), m.select(te.xq, te.S))


def test_adapter_state_contents(fitted_adapter):
    st = fitted_adapter.to_state()
    assert st.d == 16
    assert set(st.arrays) == {"w_a", "w_b"}
    for a in st.arrays.values():
        assert a.dtype == np.float32 and a.shape == (16,)
    p = st.params_dict
    for key in ("c_a", "c_b", "s_center", "s_scale", "threshold", "features", "v_a", "v_b"):
        assert key in p
    assert p["features"] == [] and p["nonlinearity_a"] == "softplus"


def test_fingerprint_changes_with_threshold(fitted_adapter):
    m = relevance_from_state(fitted_adapter.to_state())
    fp = m.to_state().fingerprint()
    m.set_threshold(min(1.0, m.threshold + 0.01))
    assert m.to_state().fingerprint() != fp


def test_platt_selects_like_a_fixed_cosine_threshold(train_test):
    tr, te = train_test
    fixed = make_relevance("fixed").fit(None, tr.S, tr.Y, tr.n_relevant)
    platt = make_relevance("platt").fit(None, tr.S, tr.Y, tr.n_relevant)
    assert micro_f1(platt.select(None, tr.S), tr) == pytest.approx(
        micro_f1(fixed.select(None, tr.S), tr)
    )
    assert platt.A > 0


# --------------------------------------------------------------------------- quality


def test_adapter_beats_fixed_when_cutoff_varies_per_query(train_test):
    tr, te = train_test
    fixed = make_relevance("fixed").fit(tr.xq, tr.S, tr.Y, tr.n_relevant)
    adapter = make_relevance("cosine-adapter", lam_grid=(1.0, 0.1, 0.01, 0.001))
    adapter.fit(tr.xq, tr.S, tr.Y, tr.n_relevant)
    f_fixed = micro_f1(fixed.select(te.xq, te.S), te)
    f_adapter = micro_f1(adapter.select(te.xq, te.S), te)
    assert f_adapter > f_fixed + 0.10, (f_fixed, f_adapter)
    # it has learnt the cut-off: s_min tracks the true per-query cut-off
    s_min = adapter.query_params(te.xq)["s_min"]
    assert np.corrcoef(s_min, te.cut)[0, 1] > 0.9
    # lam was chosen by cross-validation on the training queries
    assert adapter.fit_info["lam"] in adapter.lam_grid
    assert 1 <= len(adapter.fit_info["cv"]) <= len(adapter.lam_grid)


def test_adapter_fit_is_deterministic(train_test):
    tr, te = train_test
    a = make_relevance("cosine-adapter", lam=1e-2).fit(tr.xq, tr.S, tr.Y, tr.n_relevant)
    b = make_relevance("cosine-adapter", lam=1e-2).fit(tr.xq, tr.S, tr.Y, tr.n_relevant)
    assert a.to_state().fingerprint() == b.to_state().fingerprint()


def test_gradient_matches_finite_differences():
    from scipy.optimize import check_grad

    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 4))
    T = np.sort(rng.standard_normal((30, 6)), axis=1)[:, ::-1].copy()
    Y = (rng.random((30, 6)) < 0.3).astype(np.float64)
    W = class_weights(Y.astype(bool), "balanced")
    lam = np.array([0.1, 0.2, 0.3, 0.4])
    for _ in range(3):
        theta = rng.standard_normal(10) * 0.5
        err = check_grad(
            lambda t: objective(t, X, T, Y, W, lam)[0],
            lambda t: objective(t, X, T, Y, W, lam)[1],
            theta,
        )
        assert err < 1e-5


def test_fit_monotone_logistic_reaches_a_stationary_point():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((50, 3))
    T = rng.standard_normal((50, 8))
    Y = rng.random((50, 8)) < 0.25
    W = class_weights(Y, None)
    theta, info = fit_monotone_logistic(X, T, Y, W, 0.01)
    assert info["converged"]
    _, g = objective(theta, X, T, Y.astype(np.float64), W, np.full(3, 0.01))
    assert np.abs(g).max() < 1e-6


# --------------------------------------------------------------------------- bad input


def test_training_without_positives_or_negatives(retrieved):
    r = retrieved
    for spec in ["fixed", "platt", "cosine-adapter"]:
        m = make_relevance(spec)
        with pytest.raises(RelevanceError, match="no positive"):
            m.fit(r.xq, r.S, np.zeros_like(r.Y))
        with pytest.raises(RelevanceError, match="no negative"):
            m.fit(r.xq, r.S, np.ones_like(r.Y))


def test_threshold_out_of_range(fitted_adapter):
    m = relevance_from_state(fitted_adapter.to_state())
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(RelevanceError):
            m.set_threshold(bad)
    p = PlattScaling()
    with pytest.raises(RelevanceError, match=r"outside \[0, 1\]"):
        p.set_threshold(2.0)
    f = FixedThreshold(threshold=1.5)  # raw cosine: any finite value is allowed
    assert f.threshold == 1.5
    st = fitted_adapter.to_state()
    params = st.params_dict
    params["threshold"] = 3.0
    with pytest.raises(RelevanceError):
        relevance_from_state(
            RelevanceState(st.method, st.d, st.version, json.dumps(params), st.arrays)
        )


def test_adapter_refuses_other_dimension(fitted_adapter, train_test):
    _, te = train_test
    xq8 = te.xq[:, :8]
    with pytest.raises(RelevanceError, match=r"dimension 8.*dimension 16"):
        fitted_adapter.score(xq8, te.S)
    with pytest.raises(RelevanceError, match="16"):
        fitted_adapter.query_params(xq8)


def test_nan_inputs(retrieved, fitted_adapter):
    r = retrieved
    S = r.S.copy()
    S[3, 5] = np.nan
    with pytest.raises(RelevanceError, match="NaN"):
        make_relevance("fixed").fit(None, S, r.Y)
    with pytest.raises(RelevanceError, match="NaN"):
        fitted_adapter.score(r.xq, S)
    xq = r.xq.copy()
    xq[0, 0] = np.nan
    with pytest.raises(RelevanceError, match="NaN"):
        make_relevance("cosine-adapter", lam=0.1).fit(xq, r.S, r.Y)
    with pytest.raises(RelevanceError, match="NaN"):
        fitted_adapter.select(xq, r.S)


def test_shape_and_usage_errors(retrieved, fitted_adapter):
    r = retrieved
    with pytest.raises(RelevanceError, match="shape"):
        make_relevance("platt").fit(None, r.S, r.Y[:, :5])
    with pytest.raises(RelevanceError, match="2-D"):
        make_relevance("platt").fit(None, r.S[0], r.Y[0])
    with pytest.raises(RelevanceError, match="queries"):
        make_relevance("cosine-adapter").fit(r.xq[:10], r.S, r.Y)
    with pytest.raises(RelevanceError, match="needs the query vectors"):
        make_relevance("cosine-adapter").fit(None, r.S, r.Y)
    with pytest.raises(RelevanceError, match="n_relevant"):
        make_relevance("fixed").fit(None, r.S, r.Y, np.zeros(r.S.shape[0]))
    with pytest.raises(RuntimeError, match="not fitted"):
        make_relevance("cosine-adapter").score(r.xq, r.S)
    with pytest.raises(RelevanceError, match="unknown relevance method"):
        make_relevance("isotonic")
    with pytest.raises(RelevanceError, match="unknown feature"):
        make_relevance("cosine-adapter", features=("top7",))
    m = make_relevance("cosine-adapter", lam=0.1, features=("top1",)).fit(r.xq, r.S, r.Y)
    with pytest.raises(RelevanceError, match="pass S"):
        m.query_params(r.xq)


def test_state_errors(fitted_adapter):
    st = fitted_adapter.to_state()
    newer = RelevanceState(st.method, st.d, st.version + 1, st.params, st.arrays)
    with pytest.raises(RelevanceError, match="newer"):
        relevance_from_state(newer)
    wrong_d = RelevanceState(st.method, 8, st.version, st.params, st.arrays)
    with pytest.raises(RelevanceError, match="d=8"):
        relevance_from_state(wrong_d)
    with pytest.raises(RelevanceError, match="unknown"):
        relevance_from_state(RelevanceState("magic", None, 1, "{}", {}))
    with pytest.raises(RelevanceError, match="not 'platt'"):
        PlattScaling.from_state(st)


def test_parse_method_spec():
    assert parse_method_spec("fixed") == ("fixed", {})
    name, params = parse_method_spec("cosine-adapter:features=top1+gap12,lam=0.01,seed=3")
    assert name == "cosine-adapter"
    assert params == {"features": ("top1", "gap12"), "lam": 0.01, "seed": 3}
    assert parse_method_spec("cosine-adapter:features=top1")[1] == {"features": ("top1",)}
    assert parse_method_spec("platt:class_weight=none")[1] == {"class_weight": None}
    with pytest.raises(RelevanceError):
        parse_method_spec("cosine-adapter:lam")
    m = make_relevance("cosine-adapter:features=top1,lam=0.5")
    assert isinstance(m, CosineAdapter) and m.features == ("top1",) and m.lam == 0.5


def test_tiny_training_set_still_fits():
    r = make_retrieved(nq=4, d=4, N=10, seed=5)
    m = make_relevance("cosine-adapter", lam_grid=(1.0, 0.1)).fit(r.xq, r.S, r.Y, r.n_relevant)
    assert 0.0 <= m.threshold <= 1.0
