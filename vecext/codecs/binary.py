"""Binary codecs: centred sign binarization and multi-bit residual binarization.

Bit layout (both codecs): ``np.packbits(bits, axis=1, bitorder="big")``, so dimension
0 is the most significant bit of byte 0. This is the order of pgvector's ``bit``
type text form (``'1010...'`` lists dimension 0 first). Padding bits of the last
byte are 0.

``binary`` -- one bit per dimension, ``bit_j = (x_j - mean_j) > 0``. Distances are
Hamming distances (float32) for every metric: on centred data the fraction of
differing signs estimates the angle between the vectors (random-hyperplane argument),
so ranking by Hamming approximates angular / cosine ranking. Without centring, sign
codes of embeddings that share a large common component collapse (recall near 0 on
SIFT/GIST), hence the training mean.

``rbq`` -- ``bits`` residual sign levels (after Tencent's BEBR recurrent binarization)::

    r_0 = x - mean
    b_i = sign(r_i) in {-1, +1}^d           (bit 1 <=> r_i > 0)
    a_i = mean(|r_i|)                        (per vector, stored as float16)
    r_{i+1} = r_i - a_i b_i

``a_i = <r_i, b_i> / d`` minimises ``||r_i - a b_i||^2`` over ``a``, so each level
removes as much residual energy as a scaled sign vector can; the residual uses the
float16-rounded scale so that decode is exact. ``decode = mean + sum_i a_i b_i``.
Code layout: ``bits`` packed sign vectors of ``ceil(d/8)`` bytes each, then ``bits``
little-endian float16 scales.

Popcounts give inner products of sign vectors: ``<b_i, b_j> = d - 2 hamming(b_i, b_j)``.
"""

from __future__ import annotations

import faiss
import numpy as np

from vecext.codecs.base import Codec
from vecext.codecs.checks import CodecError, as_codes
from vecext.codecs.transforms import Transform

_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(x: np.ndarray) -> np.ndarray:
    """Bit count per element (uint64 / uint8 arrays)."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    # lookup table on the bytes of each element
    b = x.view(np.uint8).reshape(*x.shape, x.dtype.itemsize)
    return _POPCOUNT8[b].sum(axis=-1, dtype=np.uint8)


def _as_words(codes: np.ndarray) -> np.ndarray:
    """View packed codes as uint64 words (zero-padding to a multiple of 8 bytes)."""
    nbytes = codes.shape[1]
    pad = (-nbytes) % 8
    if pad:
        codes = np.concatenate([codes, np.zeros((codes.shape[0], pad), np.uint8)], axis=1)
    return np.ascontiguousarray(codes).view(np.uint64)


def hamming(codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """All-pairs Hamming distances between packed bit codes.

    Parameters
    ----------
    codes_a : (na, nbytes) uint8
    codes_b : (nb, nbytes) uint8

    Returns
    -------
    (na, nb) int32 number of differing bits.
    """
    codes_a = np.asarray(codes_a)
    codes_b = np.asarray(codes_b)
    if codes_a.ndim != 2 or codes_b.ndim != 2:
        raise CodecError("hamming: codes must be 2-D uint8 arrays")
    codes_a = as_codes(codes_a, codes_a.shape[1], "codes_a")
    codes_b = as_codes(codes_b, codes_a.shape[1], "codes_b")
    wa, wb = _as_words(codes_a), _as_words(codes_b)
    na, nb = wa.shape[0], wb.shape[0]
    out = np.zeros((na, nb), dtype=np.int32)
    bs = max(1, (1 << 22) // max(1, nb))  # rows of a per block: ~32 MB of uint64 temp
    for i0 in range(0, na, bs):
        blk = out[i0 : i0 + bs]
        for w in range(wa.shape[1]):
            blk += _popcount(wa[i0 : i0 + bs, w, None] ^ wb[None, :, w])
    return out


def hamming_rows(codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distance between two (n, nbytes) uint8 arrays -> (n,) int32."""
    x = _as_words(codes_a) ^ _as_words(codes_b)
    return _popcount(x).sum(axis=1, dtype=np.int32)


def _hamming_top(q: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` codes nearest to the one code ``q`` (1, nbytes): ``(D float32, I)``,
    nearest first, ties by position."""
    q = np.ascontiguousarray(q, dtype=np.uint8)
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    n, nbytes = codes.shape
    D = np.empty(n, dtype=np.int32)
    faiss.hammings(faiss.swig_ptr(q), faiss.swig_ptr(codes), 1, n, nbytes, faiss.swig_ptr(D))
    Ik = np.argpartition(D, k - 1)[:k] if k < n else np.arange(n)
    Ik = Ik[np.lexsort((Ik, D[Ik]))]
    return D[Ik].astype(np.float32), Ik.astype(np.int64)


def _pack(bits: np.ndarray) -> np.ndarray:
    return np.packbits(bits, axis=1, bitorder="big")


def _signs(packed: np.ndarray, d: int) -> np.ndarray:
    """Packed bits -> (n, d) float32 in {-1, +1}."""
    bits = np.unpackbits(packed, axis=1, count=d, bitorder="big")
    return bits.astype(np.float32) * 2 - 1


class BinaryCodec(Codec):
    """Centred sign binarization: ``ceil(d_inner / 8)`` bytes, Hamming distances.

    State arrays: ``mean`` (d_inner,) float32, the training mean subtracted before the
    sign; ``scale`` (d_inner,) float32, ``mean |x - mean|`` per dimension, used only by
    ``decode`` (``mean + scale * (2 bit - 1)``, the least-squares per-dimension level).
    """

    kind = "binary"
    _sign_code = True
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    @property
    def code_size(self) -> int:
        return (self.d_inner + 7) // 8

    @property
    def distance_offset(self) -> float:
        return 0.0  # Hamming for every metric

    def _train(self, xt: np.ndarray) -> None:
        mean = xt.mean(axis=0, dtype=np.float64)
        self.mean = mean.astype(np.float32)
        self.scale = np.abs(xt - self.mean).mean(axis=0, dtype=np.float64).astype(np.float32)

    def _encode(self, y: np.ndarray) -> np.ndarray:
        return _pack(y - self.mean > 0)

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        return self.mean + self.scale * _signs(codes, self.d_inner)

    def _distances(self, q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return hamming(self._encode(q), codes).astype(np.float32)

    def _scan(self, y: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        # every distance with FAISS' popcount kernel, then a partial sort: 1.1 ms for
        # 117,659 codes of 48 bytes and k = 320, where faiss.knn_hamming takes 9 ms
        # (its counting variant) or 30 ms (its heap)
        return _hamming_top(self._encode(y), codes, k)

    def _array_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"mean": (self.d_inner,), "scale": (self.d_inner,)}


class RBQCodec(Codec):
    """Multi-bit residual binarization: ``bits`` sign levels + per-vector float16 scales.

    ``code_size = bits * ceil(d_inner / 8) + 2 * bits``.

    :meth:`distances` is asymmetric (float query against the decoded code, computed
    from the sign bits and scales): l2 ``||q - x_hat||^2``, ip ``-<q, x_hat>``, cosine
    ``1 - <q, x_hat>``; exact for the decoded vector up to float rounding.
    :meth:`symmetric_distances` binarises the query the same way and uses popcounts
    only (BEBR's symmetric distance).

    State arrays: ``mean`` (d_inner,) float32.
    """

    kind = "rbq"
    _param_names = ("bits",)

    def __init__(
        self,
        d: int,
        metric: str = "l2",
        bits: int = 2,
        pretransform: Transform | str | None = None,
    ) -> None:
        super().__init__(d, metric, pretransform)
        if (
            isinstance(bits, bool)
            or not isinstance(bits, (int, np.integer))
            or not (1 <= bits <= 4)
        ):
            raise CodecError(f"rbq: bits must be an integer in 1..4, got {bits!r}")
        self.bits = int(bits)
        self.nbytes = (self.d_inner + 7) // 8
        self.mean: np.ndarray | None = None

    @property
    def code_size(self) -> int:
        return self.bits * self.nbytes + 2 * self.bits

    def _train(self, xt: np.ndarray) -> None:
        self.mean = xt.mean(axis=0, dtype=np.float64).astype(np.float32)

    def _encode(self, y: np.ndarray) -> np.ndarray:
        n = y.shape[0]
        r = y - self.mean
        codes = np.empty((n, self.code_size), dtype=np.uint8)
        scales = np.empty((n, self.bits), dtype="<f2")
        for i in range(self.bits):
            pos = r > 0
            # float64 -> float32 -> float16, as the SQL encoder's halfvec cast rounds
            # (pgvector converts a float8 to real, then to half): rounding float64 to
            # float16 directly differs from it in about 1 row in 4000 (issue 13 item 8)
            a = np.abs(r).mean(axis=1, dtype=np.float64).astype(np.float32).astype(np.float16)
            if not np.isfinite(a).all():
                raise CodecError(
                    f"rbq: {int((~np.isfinite(a)).sum())} row(s) have residual scales "
                    "beyond the float16 range (65504); rescale the data"
                )
            scales[:, i] = a
            # update with the rounded scale so that decode reproduces r exactly
            r = r - a.astype(np.float32)[:, None] * np.where(pos, 1.0, -1.0).astype(np.float32)
            codes[:, i * self.nbytes : (i + 1) * self.nbytes] = _pack(pos)
        codes[:, self.bits * self.nbytes :] = scales.view(np.uint8).reshape(n, 2 * self.bits)
        return codes

    def split(self, codes: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Split codes into the ``bits`` packed sign levels and (n, bits) float32 scales."""
        codes = as_codes(codes, self.code_size)
        levels = [codes[:, i * self.nbytes : (i + 1) * self.nbytes] for i in range(self.bits)]
        raw = np.ascontiguousarray(codes[:, self.bits * self.nbytes :])
        scales = raw.view("<f2").astype(np.float32)
        return levels, scales

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        assert self.mean is not None
        levels, a = self.split(codes)
        y = np.broadcast_to(self.mean, (codes.shape[0], self.d_inner)).copy()
        for i, lev in enumerate(levels):
            y += a[:, i, None] * _signs(lev, self.d_inner)
        return y

    def _self_norms2(self, levels: list[np.ndarray], a: np.ndarray) -> np.ndarray:
        """||sum_i a_i b_i||^2 per code, from popcounts between its own levels."""
        d = self.d_inner
        out = (a**2).sum(axis=1) * d
        for i in range(self.bits):
            for j in range(i + 1, self.bits):
                dot = d - 2 * hamming_rows(levels[i], levels[j])
                out += 2 * a[:, i] * a[:, j] * dot
        return out.astype(np.float32)

    def _distances(self, q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        assert self.mean is not None
        n = codes.shape[0]
        # l2: ||q - m - x_c||^2 = ||q - m||^2 - 2 <q - m, x_c> + ||x_c||^2
        # ip: -<q, m + x_c>     = -<q, m> - <q, x_c>,   with x_c = sum_i a_i b_i
        v = q - self.mean if self.inner_metric == "l2" else q
        D = np.empty((q.shape[0], n), dtype=np.float32)
        bs = 1 << 15
        for j0 in range(0, n, bs):
            levels, a = self.split(codes[j0 : j0 + bs])
            dot = np.zeros((q.shape[0], a.shape[0]), dtype=np.float32)
            for i, lev in enumerate(levels):
                dot += (v @ _signs(lev, self.d_inner).T) * a[None, :, i]
            if self.inner_metric == "l2":
                blk = (v**2).sum(1)[:, None] - 2 * dot + self._self_norms2(levels, a)[None]
                D[:, j0 : j0 + bs] = np.maximum(blk, 0)
            else:
                D[:, j0 : j0 + bs] = -(q @ self.mean)[:, None] - dot
        return D

    def symmetric_distances(self, xq: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Distances between the *binarised* query and the codes, from popcounts.

        With ``q_hat = mean + sum_i c_i bq_i`` and ``x_hat = mean + sum_j a_j b_j``:
        ``<q_hat - m, x_hat - m> = sum_ij c_i a_j (d - 2 hamming(bq_i, b_j))``.
        l2 adds the two self norms (also popcounts); ip and cosine need the per-code
        bias ``<mean, x_hat - mean>``, one float dot product per code per call (it could
        be stored next to the code). Returns (nq, n) float32.
        """
        assert self.mean is not None
        qlev, c = self.split(self.encode(xq))
        codes = as_codes(codes, self.code_size)
        levels, a = self.split(codes)
        d = self.d_inner
        G = np.zeros((c.shape[0], a.shape[0]), dtype=np.float32)
        for i in range(self.bits):
            for j in range(self.bits):
                dot = d - 2 * hamming(qlev[i], levels[j]).astype(np.float32)
                G += c[:, i, None] * a[None, :, j] * dot
        if self.inner_metric == "l2":
            D = self._self_norms2(qlev, c)[:, None] + self._self_norms2(levels, a)[None] - 2 * G
            return np.maximum(D, 0).astype(np.float32)

        def bias(lv: list[np.ndarray], s: np.ndarray) -> np.ndarray:
            return sum(s[:, i] * (_signs(lv[i], d) @ self.mean) for i in range(self.bits))

        mm = float(self.mean @ self.mean)
        D = -(mm + bias(qlev, c)[:, None] + bias(levels, a)[None] + G)
        return (D + np.float32(self.distance_offset)).astype(np.float32)

    def _array_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"mean": (self.d_inner,)}
