"""PQ / OPQ against FAISS (same centroids) and brute force."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from tests.codecs.conftest import anisotropic, exact_knn, recall
from vecext.codecs import PQCodec, make_codec

FAISS_METRIC = {"l2": faiss.METRIC_L2, "ip": faiss.METRIC_INNER_PRODUCT}


@pytest.fixture(scope="module")
def pq_l2(data64: dict[str, np.ndarray]) -> PQCodec:
    c = make_codec("pq", 64, "l2", m=16, niter=10)
    return c.train(data64["xt"])


def faiss_index_pq(c: PQCodec, metric: str) -> faiss.IndexPQ:
    """IndexPQ holding the codec's centroids."""
    index = faiss.IndexPQ(c.d_inner, c.m, 8, FAISS_METRIC[metric])
    faiss.copy_array_to_vector(c.centroids.ravel(), index.pq.centroids)
    index.is_trained = True
    return index


def test_codes_equal_faiss_product_quantizer(pq_l2: PQCodec, data64) -> None:
    xb = data64["xb"]
    codes = pq_l2.encode(xb)
    assert codes.shape == (5000, 16) and codes.dtype == np.uint8
    # the same FAISS encoder configuration (transposed centroids): bit-identical
    pq = faiss.ProductQuantizer(64, 16, 8)
    faiss.copy_array_to_vector(pq_l2.centroids.ravel(), pq.centroids)
    pq.sync_transposed_centroids()
    np.testing.assert_array_equal(codes, pq.compute_codes(xb))


def test_codes_match_index_pq_up_to_float_ties(pq_l2: PQCodec, data64) -> None:
    xb = data64["xb"]
    codes = pq_l2.encode(xb)
    ref = faiss_index_pq(pq_l2, "l2").sa_encode(xb)
    diff = codes != ref
    assert diff.mean() < 1e-3
    # wherever they differ, both centroids are at the same distance up to rounding
    C, ds = pq_l2.centroids, pq_l2.dsub
    for i, j in zip(*np.nonzero(diff), strict=True):
        sub = xb[i, j * ds : (j + 1) * ds]
        da = ((sub - C[j, codes[i, j]]) ** 2).sum()
        db = ((sub - C[j, ref[i, j]]) ** 2).sum()
        assert abs(da - db) <= 1e-5 * max(da, db, 1e-6)


def test_decode_equals_faiss_reconstruction(pq_l2: PQCodec, data64) -> None:
    codes = pq_l2.encode(data64["xb"][:500])
    ref = faiss_index_pq(pq_l2, "l2").sa_decode(codes)
    np.testing.assert_array_equal(pq_l2.decode(codes), ref)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_distances_equal_index_pq_search(metric: str, data64) -> None:
    xt, xb, xq = data64["xt"], data64["xb"][:2000], data64["xq"][:20]
    c = make_codec("pq", 64, metric, m=8, niter=8).train(xt)
    codes = c.encode(xb)
    D = c.distances(xq, codes)
    assert D.shape == (20, 2000) and D.dtype == np.float32

    index = faiss_index_pq(c, "l2" if metric == "l2" else "ip")
    faiss.copy_array_to_vector(codes.ravel(), index.codes)
    index.ntotal = codes.shape[0]
    q = xq / np.linalg.norm(xq, axis=1, keepdims=True) if metric == "cosine" else xq
    Df, If = index.search(q, codes.shape[0])
    ref = np.empty_like(Df)
    np.put_along_axis(ref, If, Df, axis=1)
    if metric == "ip":
        ref = -ref
    elif metric == "cosine":
        ref = 1 - ref
    np.testing.assert_allclose(D, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_lut_identity(metric: str, data64) -> None:
    c = make_codec("pq", 64, metric, m=8, niter=5).train(data64["xt"])
    codes = c.encode(data64["xb"][:300])
    xq = data64["xq"][:7]
    lut = c.distance_table(xq)
    assert lut.shape == (7, 8, 256) and lut.dtype == np.float32
    manual = lut[:, np.arange(8)[None, :], codes].sum(axis=-1) + c.distance_offset
    np.testing.assert_allclose(c.distances(xq, codes), manual, rtol=1e-6, atol=1e-5)
    if metric == "l2":
        # l2 table = squared distance of each query subvector to each centroid
        q = xq[0, :8]
        np.testing.assert_allclose(lut[0, 0], ((c.centroids[0] - q) ** 2).sum(1), rtol=1e-5)
        # and the ADC sum is the squared distance to the decoded vector
        dec = c.decode(codes)
        ref = ((xq[:, None, :] - dec[None]) ** 2).sum(-1)
        np.testing.assert_allclose(c.distances(xq, codes), ref, rtol=1e-4)


def test_search_matches_brute_force_on_distances(pq_l2: PQCodec, data64) -> None:
    codes = pq_l2.encode(data64["xb"])
    xq = data64["xq"]
    D, I = pq_l2.search(xq, codes, 10)
    assert D.dtype == np.float32 and I.dtype == np.int64 and D.shape == I.shape == (100, 10)
    Dall = pq_l2.distances(xq, codes)
    np.testing.assert_array_equal(D, np.sort(Dall, axis=1)[:, :10])
    gt = exact_knn(xq, data64["xb"], 10, "l2")
    assert recall(I, gt) > 0.5
    # k > n pads like FAISS
    D2, I2 = pq_l2.search(xq[:2], codes[:3], 5)
    assert (I2[:, 3:] == -1).all() and np.isinf(D2[:, 3:]).all()


def test_opq_beats_plain_pq_on_anisotropic_data() -> None:
    x = anisotropic(6100, 32, seed=1)
    xt, xb, xq = x[:3000], x[3000:6000], x[6000:]
    gt = exact_knn(xq, xb, 10, "l2")
    res = {}
    for opq in (False, True):
        c = make_codec("pq", 32, "l2", m=8, opq=opq, opq_niter=10, niter=10).train(xt)
        _, I = c.search(xq, c.encode(xb), 10)
        res[opq] = recall(I, gt)
    assert res[True] > res[False] + 0.1, res

    # our rotation + centroids in a FAISS OPQ->PQ pipeline give the same codes
    lt = faiss.LinearTransform(32, 32, False)
    faiss.copy_array_to_vector(c.rotation.ravel(), lt.A)
    lt.is_trained = True
    lt.set_is_orthonormal()
    index = faiss.IndexPreTransform(lt, faiss_index_pq(c, "l2"))
    codes = c.encode(xb)
    assert (index.sa_encode(xb) == codes).mean() > 0.999
    R = c.rotation
    np.testing.assert_allclose(R @ R.T, np.eye(32), atol=1e-5)
    np.testing.assert_allclose(c.decode(codes), index.sa_decode(codes), atol=1e-5)


def test_pq_with_pca_pretransform(data64) -> None:
    c = make_codec("pq", 64, "cosine", m=8, niter=5, pretransform="pca:32").train(data64["xt"])
    assert c.d == 64 and c.d_inner == 32 and c.code_size == 8
    codes = c.encode(data64["xb"][:100])
    assert c.decode(codes).shape == (100, 64)
    assert c.distance_table(data64["xq"][:3]).shape == (3, 8, 256)
