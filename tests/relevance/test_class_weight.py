"""The cosine adapter's default ``class_weight=None``: the same selection quality as
``"balanced"``, and scores that are calibrated probabilities of relevance, so that a
threshold such as ``min_relevance=0.5`` means what it says."""

from __future__ import annotations

import numpy as np
import pytest

from vecext.datasets import synthetic_embeddings, synthetic_queries
from vecext.evaluation import labels_from_qrels
from vecext.relevance import CosineAdapter, make_relevance
from vecext.relevance.evaluate import exact_top_n


@pytest.fixture(scope="module")
def split():
    data = synthetic_embeddings(3000, 16, n_clusters=100, seed=11, spread_range=(0.2, 1.0))
    out = []
    for seed in (12, 13):
        # 5 relevant documents among a query's top 100: relevant candidates are rare
        # (~5%), as in real retrieval
        qs = synthetic_queries(data, 300, seed=seed, noise=0.5, max_relevant=5)
        S, I = exact_top_n(data.xb, qs.xq, 100)
        out.append((qs.xq, S, labels_from_qrels(I, qs.qrels), np.array([len(r) for r in qs.qrels])))
    return out


def micro_f1(sel, Y, nrel):
    return 2 * (sel & Y).sum() / (sel.sum() + nrel.sum())


def test_default_is_unweighted():
    assert CosineAdapter().class_weight is None


def test_unweighted_scores_are_calibrated_and_select_as_well(split):
    (xq, S, Y, nrel), (xq_t, S_t, Y_t, nrel_t) = split
    fits = {
        cw: make_relevance("cosine-adapter", lam=1e-3, class_weight=cw).fit(xq, S, Y, nrel)
        for cw in (None, "balanced")
    }
    f1 = {cw: micro_f1(m.select(xq_t, S_t), Y_t, nrel_t) for cw, m in fits.items()}
    assert abs(f1[None] - f1["balanced"]) < 0.03 and f1[None] > 0.3
    p = {cw: m.score(xq_t, S_t) for cw, m in fits.items()}
    # calibration in the large: mean score = share of relevant candidates
    assert Y_t.mean() < 0.1 and abs(p[None].mean() - Y_t.mean()) < 0.01
    assert p["balanced"].mean() > 3 * Y_t.mean()  # balanced weights inflate every score
    # candidates scored around 0.5 are relevant about half the time
    mid = (p[None] >= 0.35) & (p[None] < 0.65)
    assert mid.sum() > 200 and 0.35 < Y_t[mid].mean() < 0.65
    # ...and the trained threshold of the unweighted model sits below 0.5, near F1/2
    assert fits[None].threshold < 0.5 < fits["balanced"].threshold
