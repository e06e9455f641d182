"""The IVF coarse quantizer against FAISS: assignment, probing, state, errors."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from tests.codecs.conftest import clustered
from vecext.codecs import CodecError, codec_from_state, make_codec
from vecext.codecs.ivf import IVFCodec, default_nlist


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_lists_are_the_faiss_nearest_centroid(metric: str) -> None:
    x = clustered(3000, 32, seed=3)
    c = IVFCodec(32, metric, nlist=32, niter=8).train(x[:2500])
    xb = x[2500:]
    ids = c.list_ids(c.encode(xb))
    assert np.array_equal(ids, c.assign(xb))
    xx = xb / np.linalg.norm(xb, axis=1, keepdims=True) if metric == "cosine" else xb
    index = faiss.IndexFlatL2(32) if metric == "l2" else faiss.IndexFlatIP(32)
    index.add(c.centroids)
    _, I = index.search(xx, 1)
    assert (I[:, 0] == ids).mean() > 0.999  # float ties aside
    if metric == "cosine":  # spherical k-means: unit centroids
        assert np.allclose(np.linalg.norm(c.centroids, axis=1), 1, atol=1e-5)


def test_codes_are_little_endian_int32_and_decode_to_centroids() -> None:
    x = clustered(1000, 16, seed=1)
    c = IVFCodec(16, "l2", nlist=8, niter=5).train(x)
    codes = c.encode(x[:10])
    assert codes.dtype == np.uint8 and codes.shape == (10, 4)
    ids = codes.view("<i4").ravel()
    assert np.array_equal(ids, c.assign(x[:10]))
    assert np.array_equal(c.decode(codes), c.centroids[ids])
    D = c.distances(x[:3], codes)
    ref = ((x[:3, None, :] - c.centroids[ids][None]) ** 2).sum(-1)
    assert np.allclose(D, ref, rtol=1e-4, atol=1e-3)


def test_probe_orders_lists_by_centroid_distance() -> None:
    x = clustered(2000, 16, seed=2)
    c = IVFCodec(16, "cosine", nlist=20, niter=5).train(x)
    order = c.probe(x[:5], 20)
    D = c.centroid_distances(x[:5])
    assert np.all(np.diff(np.take_along_axis(D, order, axis=1), axis=1) >= 0)
    assert np.array_equal(order[:, 0], c.assign(x[:5]))
    assert c.probe(x[:5], 100).shape == (5, 20)  # capped at nlist


def test_state_round_trip_and_registry() -> None:
    x = clustered(1000, 16, seed=4)
    c = make_codec("ivf", 16, "ip", nlist=10, niter=4).train(x)
    again = codec_from_state(c.to_state())
    assert isinstance(again, IVFCodec) and again.fingerprint == c.fingerprint
    assert np.array_equal(again.encode(x), c.encode(x))


def test_errors_name_the_problem() -> None:
    with pytest.raises(CodecError, match="nlist must be a positive integer"):
        IVFCodec(8, "l2", nlist=0)
    with pytest.raises(CodecError, match="at least 50 training vectors"):
        IVFCodec(8, "l2", nlist=50).train(np.ones((10, 8), np.float32))
    c = IVFCodec(8, "l2", nlist=4, niter=2).train(clustered(100, 8))
    with pytest.raises(CodecError, match="list ids must be in"):
        c.decode(np.array([[9, 0, 0, 0]], np.uint8))
    with pytest.raises(CodecError, match="nprobe must be a positive integer"):
        c.probe(np.ones((1, 8), np.float32), 0)
    assert default_nlist(20_000) == 566 and default_nlist(0) == 1
