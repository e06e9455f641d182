"""The one exact top-k: distances by metric, ties by id, blocks, padding."""

from __future__ import annotations

import numpy as np
import pytest

from vecext import topk


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_exact_topk_equals_a_full_sort(metric: str) -> None:
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((700, 16)).astype(np.float32)
    xq = rng.standard_normal((9, 16)).astype(np.float32)
    D, I = topk.exact_topk(xb, xq, 12, metric, block=100)
    q64, b64 = xq.astype(np.float64), xb.astype(np.float64)
    if metric == "cosine":
        q64 /= np.linalg.norm(q64, axis=1, keepdims=True)
        b64 /= np.linalg.norm(b64, axis=1, keepdims=True)
        ref = 1 - q64 @ b64.T
    elif metric == "ip":
        ref = -(q64 @ b64.T)
    else:
        ref = ((q64[:, None, :] - b64[None, :, :]) ** 2).sum(-1)
    want = np.argsort(ref, axis=1, kind="stable")[:, :12]
    assert (want == I).all()
    assert np.allclose(D, np.take_along_axis(ref, want, axis=1), atol=1e-4)
    assert D.dtype == np.float32 and I.dtype == np.int64


def test_ties_go_to_the_lower_id_across_blocks_and_keep() -> None:
    rng = np.random.default_rng(3)
    xb = rng.integers(-2, 3, (500, 8)).astype(np.float32)  # many exact ties
    xq = rng.integers(-2, 3, (20, 8)).astype(np.float32)
    keep = rng.random(500) < 0.5
    D, I = topk.exact_topk(xb, xq, 7, "ip", keep=keep, block=64)
    cand = np.flatnonzero(keep)
    for i in range(20):
        s = xb[cand] @ xq[i]
        order = np.lexsort((cand, -s))[:7]
        assert I[i].tolist() == cand[order].tolist()
        assert np.allclose(D[i], -s[order])
    # ids of the caller's own (given in another order) decide ties, not row numbers
    ids = np.arange(500)[::-1].copy()
    _, I2 = topk.exact_topk(xb, xq, 7, "ip", keep=keep, ids=ids, block=64)
    for i in range(20):
        s = xb[cand] @ xq[i]
        order = np.lexsort((ids[cand], -s))[:7]
        assert I2[i].tolist() == ids[cand][order].tolist()


def test_padding_when_fewer_rows_compete() -> None:
    xb = np.eye(4, dtype=np.float32)
    D, I = topk.exact_topk(xb, xb[:2], 6, "l2", keep=np.array([1, 0, 1, 0], bool))
    assert (I[:, 2:] == -1).all() and np.isinf(D[:, 2:]).all()
    assert set(I[0, :2].tolist()) == {0, 2}
    acc = topk.TopK(xb[:1], 3, "cosine", object)
    acc.add(np.array(["b", "a"], dtype=object), xb[:2])
    D, I = acc.result()
    assert I[0].tolist() == ["b", "a", None]  # "b" is the query itself
    assert np.isclose(D[0, 0], 0.0) and np.isclose(D[0, 1], 1.0) and np.isinf(D[0, 2])


def test_smallest_k_is_a_stable_partial_sort() -> None:
    rng = np.random.default_rng(5)
    D = rng.integers(0, 5, (30, 200)).astype(np.float32)
    d, i = topk.smallest_k(D, 17)
    want = np.argsort(D, axis=1, kind="stable")[:, :17]
    assert (i == want).all() and (d == np.take_along_axis(D, want, axis=1)).all()


def test_merge_carries_extra_columns() -> None:
    d0, i0, e0 = np.array([[0.5]]), np.array([[9]]), np.array([[90]])
    d1, i1, e1 = np.array([[0.5, 0.1]]), np.array([[3, 4]]), np.array([[30, 40]])
    d, i, e = topk.merge_topk(d0, i0, d1, i1, 2, extra=[e0, e1])
    assert i.tolist() == [[4, 3]] and e.tolist() == [[40, 30]] and d.tolist() == [[0.1, 0.5]]
