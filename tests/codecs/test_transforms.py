"""PCA, Matryoshka and expand pre-transforms, alone and composed with codecs."""

from __future__ import annotations

import numpy as np
import pytest

from vecext.codecs import PCA, CodecError, Matryoshka, make_codec
from vecext.codecs.transforms import Expand, transform_from_state


def test_pca_matches_numpy_svd(data64) -> None:
    xt = data64["xt"].astype(np.float64)
    pca = PCA(16).train(data64["xt"])
    mean = xt.mean(0)
    _, s, Vt = np.linalg.svd(xt - mean, full_matrices=False)
    np.testing.assert_allclose(pca.mean, mean, rtol=1e-5, atol=1e-5)
    # same directions up to sign, in the same order
    signs = np.sign((pca.projection * Vt[:16]).sum(1))
    np.testing.assert_allclose(pca.projection, Vt[:16] * signs[:, None], atol=1e-4)
    np.testing.assert_allclose(pca.eigenvalues, s[:16] ** 2 / len(xt), rtol=1e-4)
    x = data64["xb"][:100]
    ref = (x - mean) @ (Vt[:16] * signs[:, None]).T
    np.testing.assert_allclose(pca.apply(x), ref, rtol=1e-4, atol=1e-3)
    y = pca.apply(x)
    assert y.dtype == np.float32 and y.shape == (100, 16)
    np.testing.assert_allclose(pca.reverse(y), y @ pca.projection + pca.mean, rtol=1e-6)


def test_pca_full_rank_round_trip(data64) -> None:
    pca = PCA(64).train(data64["xt"])
    x = data64["xb"][:50]
    np.testing.assert_allclose(pca.reverse(pca.apply(x)), x, atol=1e-4)
    np.testing.assert_allclose(pca.projection @ pca.projection.T, np.eye(64), atol=1e-5)


def test_pca_center_follows_metric() -> None:
    assert make_codec("half", 32, "l2", pretransform="pca:8").pretransform.center
    assert not make_codec("half", 32, "ip", pretransform="pca:8").pretransform.center
    assert not make_codec("half", 32, "cosine", pretransform="pca:8").pretransform.center


def test_uncentred_pca_preserves_inner_products(data64) -> None:
    xt, xb, xq = data64["xt"], data64["xb"][:500], data64["xq"][:10]
    pca = PCA(32, center=False).train(xt)
    np.testing.assert_array_equal(pca.mean, 0)
    err = np.abs(pca.apply(xq) @ pca.apply(xb).T - xq @ xb.T).mean() / np.abs(xq @ xb.T).mean()
    assert err < 0.05


def test_matryoshka_prefix_and_norm() -> None:
    x = np.random.default_rng(1).standard_normal((20, 12)).astype(np.float32)
    x[3, :5] = 0
    m = Matryoshka(5).train(x)
    y = m.apply(x)
    norms = np.linalg.norm(x[:, :5], axis=1, keepdims=True)
    ref = x[:, :5] / np.where(norms > 0, norms, 1)  # zero prefix stays zero, not NaN
    np.testing.assert_allclose(y, ref, rtol=1e-6)
    back = m.reverse(y)
    assert back.shape == (20, 12)
    np.testing.assert_array_equal(back[:, 5:], 0)
    np.testing.assert_array_equal(back[:, :5], y)


def test_transform_state_round_trip(data64) -> None:
    pca = PCA(8).train(data64["xt"])
    params, arrays = pca.to_state()
    assert params == {"kind": "pca", "d_in": 64, "d_out": 8, "center": True}
    again = transform_from_state(params, arrays)
    np.testing.assert_array_equal(again.apply(data64["xq"]), pca.apply(data64["xq"]))


@pytest.mark.parametrize("spec", ["pca:16", "matryoshka:16"])
@pytest.mark.parametrize("kind", ["pq", "binary", "rbq", "int8", "half"])
def test_composition_with_every_codec(kind: str, spec: str, data64) -> None:
    extra = {"m": 4, "niter": 3} if kind == "pq" else {}
    c = make_codec(kind, 64, "cosine", pretransform=spec, **extra).train(data64["xt"])
    assert c.d == 64 and c.d_inner == 16
    codes = c.encode(data64["xb"][:300])
    assert codes.shape == (300, c.code_size)
    assert c.decode(codes).shape == (300, 64)
    D, I = c.search(data64["xq"][:5], codes, 3)
    assert D.shape == I.shape == (5, 3)


def test_half_after_pca_decodes_to_pca_reconstruction(data64) -> None:
    c = make_codec("half", 64, "l2", pretransform="pca:32").train(data64["xt"])
    assert c.is_trained
    x = data64["xb"][:100]
    pca = c.pretransform
    ref = pca.reverse(pca.apply(x).astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(c.decode(c.encode(x)), ref, rtol=1e-6, atol=1e-6)


def test_expand_keeps_the_input_and_appends_orthonormal_coordinates(data64) -> None:
    x = data64["xb"][:200]
    t = make_codec("binary", 64, "l2", pretransform="expand:160").pretransform
    assert isinstance(t, Expand)
    t.train(data64["xt"])
    y = t.apply(x)
    assert y.shape == (200, 160)
    np.testing.assert_array_equal(y[:, :64], x)
    R = t.rotation.astype(np.float64)
    # two blocks: a full rotation (64 columns) and the first 32 columns of another
    np.testing.assert_allclose(R[:, :64].T @ R[:, :64], np.eye(64), atol=1e-5)
    np.testing.assert_allclose(R[:, 64:].T @ R[:, 64:], np.eye(32), atol=1e-5)
    np.testing.assert_allclose(y[:, 64:], x.astype(np.float64) @ R, rtol=1e-4, atol=1e-4)
    # [I | R] has full row rank: the least-squares inverse undoes it
    np.testing.assert_allclose(t.reverse(y), x, rtol=1e-4, atol=1e-4)
    params, arrays = t.to_state()
    assert params == {"kind": "expand", "d_in": 64, "d_out": 160, "seed": 0}
    again = transform_from_state(params, arrays)
    np.testing.assert_array_equal(again.apply(x), y)
    np.testing.assert_array_equal(Expand(160, 64).train(data64["xt"]).rotation, t.rotation)
    assert not np.array_equal(Expand(160, 64, seed=1).train(data64["xt"]).rotation, t.rotation)


def test_expanded_binary_codes_rank_closer_to_exact(data64) -> None:
    """More hyperplanes, a Hamming ranking nearer the angular one: the exact top-10
    (numpy brute force) among the best 20 by Hamming distance, 64 against 256 bits."""
    xb, xq = data64["xb"], data64["xq"]
    norm = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    truth = np.argsort(-(norm(xq) @ norm(xb).T), axis=1)[:, :10]
    found = {}
    for spec in (None, "expand:256"):
        c = make_codec("binary", 64, "cosine", pretransform=spec).train(data64["xt"])
        _, ids = c.search(xq, c.encode(xb), 20)
        found[spec] = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth, strict=True)])
    assert found["expand:256"] >= found[None] + 0.05, found


def test_bad_transform_specs() -> None:
    with pytest.raises(CodecError, match="expand: output dimension 64 must exceed"):
        make_codec("binary", 64, pretransform="expand:64")
    with pytest.raises(CodecError, match="'expand:128' is for binary codes"):
        make_codec("pq", 64, m=4, pretransform="expand:128")
    with pytest.raises(CodecError, match="'expand:128' is for binary codes"):
        make_codec("rbq", 64, pretransform="expand:128")
    with pytest.raises(CodecError, match="seed must be a non-negative integer"):
        Expand(128, 64, seed=-1)
    with pytest.raises(CodecError, match="rotation' must be float32 of shape"):
        transform_from_state(
            {"kind": "expand", "d_in": 64, "d_out": 128}, {"rotation": np.ones((64, 32), "f4")}
        )
    with pytest.raises(CodecError, match="output dimension 128 exceeds input dimension 64"):
        make_codec("half", 64, pretransform="pca:128")
    with pytest.raises(CodecError, match="unknown pretransform 'foo'"):
        make_codec("half", 64, pretransform="foo:8")
    with pytest.raises(CodecError, match="needs an output dimension"):
        make_codec("half", 64, pretransform="pca")
    with pytest.raises(CodecError, match="needs at least 9 training vectors"):
        PCA(8).train(np.ones((5, 16), np.float32))
    with pytest.raises(CodecError, match="not trained"):
        PCA(8).apply(np.ones((5, 16), np.float32))
