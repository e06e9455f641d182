import numpy as np

from vecext.search.calibrate import recall_curve
from vecext.search.planner import rerank_depth


def test_recall_curve_counts_true_neighbours_among_candidates():
    true = np.array([[1, 2], [5, 6]])
    cand = np.array([[9, 1, 8, 2, 7, 7, 7, 7], [5, 0, 0, 0, 0, 0, 0, 6]])
    curve = recall_curve(true, cand, k=2, ladder=(1, 2, 4))
    assert curve == {"1": 0.5, "2": 0.75, "4": 1.0}
    assert rerank_depth(2, curve, 0.7, 10) == 4


def test_recall_curve_against_brute_force_codes():
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((2000, 16)).astype(np.float32)
    xq = rng.standard_normal((30, 16)).astype(np.float32)
    noisy = xb + 0.3 * rng.standard_normal(xb.shape).astype(np.float32)  # a lossy "code"
    true = np.argsort(((xq[:, None] - xb[None]) ** 2).sum(-1), axis=1)[:, :10]
    cand = np.argsort(((xq[:, None] - noisy[None]) ** 2).sum(-1), axis=1)[:, :1280]
    curve = recall_curve(true, cand, k=10)
    values = list(curve.values())
    assert values == sorted(values)  # more candidates never lose a neighbour
    assert values[-1] > 0.99 and values[0] < 0.9
