"""int8 against FAISS ScalarQuantizer QT_8bit, float16 round trips."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from vecext.codecs import CodecError, HalfCodec, Int8Codec, make_codec


def faiss_sq(c: Int8Codec) -> faiss.ScalarQuantizer:
    """A FAISS QT_8bit quantizer holding the codec's ranges."""
    sq = faiss.ScalarQuantizer(c.d_inner, faiss.ScalarQuantizer.QT_8bit)
    faiss.copy_array_to_vector(np.concatenate([c.vmin, c.vdiff]), sq.trained)
    return sq


def test_int8_minmax_training_equals_faiss(data64) -> None:
    xt = data64["xt"]
    c: Int8Codec = make_codec("int8", 64).train(xt)  # type: ignore[assignment]
    sq = faiss.ScalarQuantizer(64, faiss.ScalarQuantizer.QT_8bit)
    sq.train(xt)
    np.testing.assert_array_equal(
        np.concatenate([c.vmin, c.vdiff]), faiss.vector_to_array(sq.trained)
    )


@pytest.mark.parametrize("clip", [0.0, 0.01])
def test_int8_codes_and_decode_equal_faiss(clip: float, data64) -> None:
    c: Int8Codec = make_codec("int8", 64, clip=clip).train(data64["xt"])  # type: ignore[assignment]
    # database vectors go outside the training range: exercises the clipping
    x = np.vstack([data64["xb"], 3 * data64["xb"][:100] - 5])
    sq = faiss_sq(c)
    codes = c.encode(x)
    np.testing.assert_array_equal(codes, sq.compute_codes(x))
    dec, ref = c.decode(codes), sq.decode(codes)
    # FAISS reconstructs with a fused multiply-add; we reproduce it in float64
    np.testing.assert_allclose(dec, ref, rtol=1e-6, atol=1e-6)
    assert (dec == ref).mean() > 0.99


def test_int8_quantile_ranges(data64) -> None:
    xt = data64["xt"]
    c: Int8Codec = make_codec("int8", 64, clip=0.01).train(xt)  # type: ignore[assignment]
    xs = np.sort(xt, axis=0)
    o = int(0.01 * len(xt))
    np.testing.assert_array_equal(c.vmin, xs[o])
    np.testing.assert_array_equal(c.vdiff, xs[len(xt) - 1 - o] - xs[o])


def test_int8_constant_dimension() -> None:
    x = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    x[:, 2] = 7.0
    c = make_codec("int8", 4).train(x)
    codes = c.encode(x)
    assert (codes[:, 2] == 0).all()
    np.testing.assert_array_equal(c.decode(codes)[:, 2], 7.0)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_int8_distances_equal_faiss_index(metric: str, data64) -> None:
    c: Int8Codec = make_codec("int8", 64, metric).train(data64["xt"])  # type: ignore[assignment]
    xb, xq = data64["xb"][:1000], data64["xq"][:10]
    codes = c.encode(xb)
    fm = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    index = faiss.IndexScalarQuantizer(64, faiss.ScalarQuantizer.QT_8bit, fm)
    faiss.copy_array_to_vector(np.concatenate([c.vmin, c.vdiff]), index.sq.trained)
    index.is_trained = True
    index.add(xb)
    Df, If = index.search(xq, 1000)
    ref = np.empty_like(Df)
    np.put_along_axis(ref, If, Df, axis=1)
    if metric == "ip":
        ref = -ref
    np.testing.assert_allclose(c.distances(xq, codes), ref, rtol=1e-4, atol=1e-3)


def test_int8_cosine_on_decoded(data64) -> None:
    c = make_codec("int8", 64, "cosine").train(data64["xt"])
    codes = c.encode(data64["xb"][:100])
    xq = data64["xq"][:5]
    q = xq / np.linalg.norm(xq, axis=1, keepdims=True)
    np.testing.assert_allclose(
        c.distances(xq, codes), 1 - q @ c.decode(codes).T, rtol=1e-5, atol=1e-5
    )


def test_half_round_trip_and_layout(data64) -> None:
    c = make_codec("half", 64)
    assert c.is_trained and c.min_train == 0 and c.code_size == 128
    x = data64["xb"][:200]
    codes = c.encode(x)
    assert codes.dtype == np.uint8 and codes.shape == (200, 128)
    assert codes[0, :2].tobytes() == np.array([x[0, 0]], dtype="<f2").tobytes()
    np.testing.assert_array_equal(c.decode(codes), x.astype(np.float16).astype(np.float32))
    xq = data64["xq"][:4]
    dec = x.astype(np.float16).astype(np.float64)
    ref = ((xq[:, None, :] - dec[None]) ** 2).sum(-1)
    np.testing.assert_allclose(c.distances(xq, codes), ref, rtol=1e-5)
    assert c.train(x) is c  # no-op apart from checks


def test_half_rejects_out_of_range() -> None:
    c = HalfCodec(3)
    with pytest.raises(CodecError, match="1 row.*float16"):
        c.encode(np.array([[1.0, 2.0, 1e6], [0, 0, 0]], np.float32))
