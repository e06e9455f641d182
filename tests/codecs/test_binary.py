"""Centred sign binarization and multi-bit residual binarization (rbq)."""

from __future__ import annotations

from itertools import pairwise

import faiss
import numpy as np
import pytest

from tests.codecs.conftest import exact_knn, recall
from vecext.codecs import BinaryCodec, RBQCodec, hamming, make_codec
from vecext.codecs import binary as binary_mod


def rerank(xq: np.ndarray, xb: np.ndarray, cand: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Exact rerank of candidate ids (the second stage of a two-stage search)."""
    out = np.empty((xq.shape[0], k), dtype=np.int64)
    for i, ids in enumerate(cand):
        v = xb[ids]
        if metric == "l2":
            d = ((v - xq[i]) ** 2).sum(1)
        elif metric == "ip":
            d = -(v @ xq[i])
        else:
            d = -(v @ xq[i]) / np.linalg.norm(v, axis=1)
        out[i] = ids[np.argsort(d, kind="stable")[:k]]
    return out


# -- binary -------------------------------------------------------------------


def test_bit_order_dim0_is_msb_of_byte0() -> None:
    c = BinaryCodec(12)
    c.train(np.zeros((4, 12), np.float32))  # mean 0
    x = np.zeros((1, 12), np.float32)
    x[0, 0] = 1.0
    x[0, 9] = 2.0
    codes = c.encode(x)
    assert codes.shape == (1, 2)
    assert codes[0, 0] == 0b1000_0000 and codes[0, 1] == 0b0100_0000
    # pgvector's bit text form lists dimension 0 first
    text = "".join(str(b) for b in np.unpackbits(codes[0], bitorder="big")[:12])
    assert text == "100000000100"


def test_hamming_equals_faiss_index_binary_flat(data64) -> None:
    for d in (64, 100):  # 100: 13 bytes, padding bits zero on both sides
        x = np.hstack([data64["xb"], data64["xb"][:, :36]]) if d == 100 else data64["xb"]
        q = np.hstack([data64["xq"], data64["xq"][:, :36]]) if d == 100 else data64["xq"]
        c = make_codec("binary", d).train(x)
        xb, xq = c.encode(x), c.encode(q)
        index = faiss.IndexBinaryFlat(xb.shape[1] * 8)
        index.add(xb)
        Df, If = index.search(xq, 20)
        D = c.distances(q, xb)
        assert D.dtype == np.float32
        np.testing.assert_array_equal(np.take_along_axis(D, If, axis=1), Df.astype(np.float32))
        np.testing.assert_array_equal(hamming(xq, xb), D.astype(np.int32))


def test_hamming_lookup_table_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (9, 13), dtype=np.uint8)
    b = rng.integers(0, 256, (7, 13), dtype=np.uint8)
    ref = np.unpackbits(a[:, None] ^ b[None], axis=-1).sum(-1)
    np.testing.assert_array_equal(hamming(a, b), ref)
    monkeypatch.delattr(binary_mod.np, "bitwise_count", raising=False)
    np.testing.assert_array_equal(hamming(a, b), ref)


def test_centring_makes_sign_codes_useful(data64) -> None:
    # the data are offset by +3: without the mean almost every bit is 1
    xt, xb, xq = data64["xt"], data64["xb"], data64["xq"]
    c = make_codec("binary", 64).train(xt)
    codes = c.encode(xb)
    assert 0.3 < np.unpackbits(codes).mean() < 0.7
    gt = exact_knn(xq, xb, 10, "l2")
    _, cand = c.search(xq, codes, 100)
    rec = recall(rerank(xq, xb, cand, 10, "l2"), gt)
    # the same without centring: mostly ones, and the ranking degrades
    raw_b, raw_q = np.packbits(xb > 0, axis=1), np.packbits(xq > 0, axis=1)
    assert np.unpackbits(raw_b).mean() > 0.9
    cand_raw = np.argsort(hamming(raw_q, raw_b), axis=1, kind="stable")[:, :100]
    rec_raw = recall(rerank(xq, xb, cand_raw, 10, "l2"), gt)
    assert rec > 0.9 and rec > rec_raw + 0.1


# -- rbq ----------------------------------------------------------------------


def test_rbq_reconstruction_error_decreases_with_bits(data64) -> None:
    xt, xb = data64["xt"], data64["xb"][:1000]
    errs = []
    for bits in (1, 2, 3, 4):
        c = make_codec("rbq", 64, bits=bits).train(xt)
        assert c.code_size == bits * 8 + 2 * bits
        errs.append(float(((c.decode(c.encode(xb)) - xb) ** 2).sum(1).mean()))
    assert all(a > 1.3 * b for a, b in pairwise(errs)), errs


def test_rbq_one_bit_signs_equal_binary_codes(data64) -> None:
    xt, xb = data64["xt"], data64["xb"][:500]
    r = make_codec("rbq", 64, bits=1).train(xt)
    b = make_codec("binary", 64).train(xt)
    np.testing.assert_array_equal(r.encode(xb)[:, :8], b.encode(xb))


def test_rbq_code_layout(data64) -> None:
    c: RBQCodec = make_codec("rbq", 64, bits=3).train(data64["xt"])  # type: ignore[assignment]
    x = data64["xb"][:50]
    codes = c.encode(x)
    scales = codes[:, 24:].copy().view("<f2").astype(np.float32)
    y = np.broadcast_to(c.mean, x.shape).astype(np.float32)
    r = x - c.mean
    for i in range(3):
        s = np.unpackbits(codes[:, 8 * i : 8 * (i + 1)], axis=1, bitorder="big") * 2.0 - 1
        np.testing.assert_array_equal(s > 0, r > 0)
        np.testing.assert_allclose(scales[:, i], np.abs(r).mean(1), rtol=1e-3)  # float16
        y = y + scales[:, i, None] * s
        r = x - y
    np.testing.assert_allclose(c.decode(codes), y, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_rbq_asymmetric_distance_is_distance_to_decoded(metric: str, data64) -> None:
    c = make_codec("rbq", 64, metric, bits=3).train(data64["xt"])
    codes = c.encode(data64["xb"][:400])
    xq = data64["xq"][:10]
    q = xq / np.linalg.norm(xq, axis=1, keepdims=True) if metric == "cosine" else xq
    dec = c.decode(codes).astype(np.float64)
    if metric == "l2":
        ref = ((q[:, None, :] - dec[None]) ** 2).sum(-1)
    else:
        ref = -(q @ dec.T) + (1.0 if metric == "cosine" else 0.0)
    np.testing.assert_allclose(c.distances(xq, codes), ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_rbq_symmetric_popcount_equals_float(metric: str, bits: int, data64) -> None:
    c: RBQCodec = make_codec("rbq", 64, metric, bits=bits).train(data64["xt"])  # type: ignore[assignment]
    codes = c.encode(data64["xb"][:300])
    xq = data64["xq"][:10]
    qhat = c.decode(c.encode(xq)).astype(np.float64)
    xhat = c.decode(codes).astype(np.float64)
    # explicit float computation: sum_ij c_i a_j <bq_i, b_j> plus the mean terms
    if metric == "l2":
        ref = ((qhat[:, None, :] - xhat[None]) ** 2).sum(-1)
    else:
        ref = -(qhat @ xhat.T) + (1.0 if metric == "cosine" else 0.0)
    np.testing.assert_allclose(c.symmetric_distances(xq, codes), ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_rbq_recall_with_rerank_improves_with_bits(metric: str, data64) -> None:
    xt, xb, xq = data64["xt"], data64["xb"], data64["xq"]
    gt = exact_knn(xq, xb, 10, metric)
    rec = {}
    for bits in (1, 2, 4):
        c = make_codec("rbq", 64, metric, bits=bits).train(xt)
        _, cand = c.search(xq, c.encode(xb), 100)
        rec[bits] = recall(rerank(xq, xb, cand, 10, metric), gt)
    assert rec[1] < rec[2] < rec[4], rec
    assert rec[4] > 0.97, rec


def test_search_breaks_ties_by_lower_row(data64) -> None:
    c = make_codec("binary", 64).train(data64["xt"])
    codes = np.repeat(c.encode(data64["xb"][:20]), 5, axis=0)  # every code 5 times
    D, I = c.search(data64["xq"][:10], codes, 12)
    for d_row, i_row in zip(D, I, strict=True):
        for a, b, da, db in zip(i_row, i_row[1:], d_row, d_row[1:], strict=False):
            assert da < db or (da == db and a < b)
