"""Scalar codecs: 8-bit per dimension with trained ranges, and float16.

``int8`` follows FAISS ``ScalarQuantizer`` ``QT_8bit`` (non-uniform ranges) exactly::

    t = (x - vmin) / vdiff            (float32; t = 0 where vdiff == 0)
    code = floor(255 * clip(t, 0, 1)) (uint8; 255 only for t == 1)
    x_hat = vmin + ((code + 0.5) / 255) * vdiff

i.e. 255 cells of width ``vdiff / 255`` reconstructed at their centres. FAISS builds
``vmin + xi * vdiff`` with a fused multiply-add; we evaluate it in float64 and round
once to float32, which gives the same bits. Ranges: ``clip = 0`` is FAISS
``RS_minmax`` (per-dimension min and max). ``clip > 0`` takes the per-dimension
order statistics ``sorted[o]`` and ``sorted[n - 1 - o]`` with ``o = int(clip * n)``,
the definition of FAISS ``RS_quantiles``; we do not call FAISS for it because its
``train_NonUniform`` (faiss 1.15) drops training row 0 (replaced by zeros) and shares
one buffer between OpenMP threads for that range statistic.

``half`` stores each value as little-endian IEEE float16 (``2 * d`` bytes); decode is
the exact float16 -> float32 conversion. Values beyond +-65504 are rejected.

Distances of both codecs are exact metric values on the decoded vectors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vecext.codecs.base import Codec
from vecext.codecs.checks import CodecError
from vecext.codecs.transforms import Matryoshka, Transform

_F16_MAX = float(np.finfo(np.float16).max)


def _decoded_distances(
    q: np.ndarray, codes: np.ndarray, decode: Any, inner_metric: str
) -> np.ndarray:
    """Exact l2 / negative-ip between float queries and decoded codes (blocked)."""
    n = codes.shape[0]
    D = np.empty((q.shape[0], n), dtype=np.float32)
    q2 = (q.astype(np.float64) ** 2).sum(axis=1)[:, None]
    bs = 1 << 15
    for j0 in range(0, n, bs):
        xb = decode(codes[j0 : j0 + bs])
        ip = q @ xb.T
        if inner_metric == "l2":
            # ||q||^2 - 2 <q, x> + ||x||^2, clamped: cancellation can go below 0
            blk = q2 - 2 * ip + (xb.astype(np.float64) ** 2).sum(axis=1)[None]
            D[:, j0 : j0 + bs] = np.maximum(blk, 0)
        else:
            D[:, j0 : j0 + bs] = -ip
    return D


class Int8Codec(Codec):
    """8-bit scalar quantization with trained per-dimension ranges (FAISS ``QT_8bit``).

    Parameters
    ----------
    clip : float
        Fraction of values clipped at each end of each dimension's range,
        ``0 <= clip < 0.5``; 0 = plain min / max.

    State arrays: ``vmin`` (d_inner,) float32 and ``vdiff`` (d_inner,) float32
    (``vmax - vmin``), the layout of FAISS' ``ScalarQuantizer.trained``.
    """

    kind = "int8"
    _param_names = ("clip",)

    def __init__(
        self,
        d: int,
        metric: str = "l2",
        clip: float = 0.0,
        pretransform: Transform | str | None = None,
    ) -> None:
        super().__init__(d, metric, pretransform)
        if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not 0 <= clip < 0.5:
            raise CodecError(f"int8: clip must be a number in [0, 0.5), got {clip!r}")
        self.clip = float(clip)
        self.vmin: np.ndarray | None = None
        self.vdiff: np.ndarray | None = None

    @property
    def code_size(self) -> int:
        return self.d_inner

    def _train(self, xt: np.ndarray) -> None:
        n = xt.shape[0]
        if self.clip == 0:
            vmin, vmax = xt.min(axis=0), xt.max(axis=0)
        else:
            o = int(self.clip * n)
            if o > n - o:
                o = n // 2
            xs = np.sort(xt, axis=0)
            vmin, vmax = xs[o], xs[n - 1 - o]
        self.vmin = np.ascontiguousarray(vmin, dtype=np.float32)
        self.vdiff = np.ascontiguousarray(vmax - vmin, dtype=np.float32)

    def _encode(self, y: np.ndarray) -> np.ndarray:
        assert self.vmin is not None and self.vdiff is not None
        t = np.zeros_like(y)
        np.divide(y - self.vmin, self.vdiff, out=t, where=self.vdiff != 0)
        np.clip(t, 0, 1, out=t)
        # float32 product, then truncation: FAISS' (int)(255 * t)
        return (np.float32(255) * t).astype(np.uint8)

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        assert self.vmin is not None and self.vdiff is not None
        t = (codes.astype(np.float32) + np.float32(0.5)) / np.float32(255)
        # one rounding of the exact vmin + t * vdiff (float32 product is exact in float64)
        x = self.vmin.astype(np.float64) + t.astype(np.float64) * self.vdiff.astype(np.float64)
        return x.astype(np.float32)

    def _distances(self, q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return _decoded_distances(q, codes, self._decode, self.inner_metric)

    def _array_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"vmin": (self.d_inner,), "vdiff": (self.d_inner,)}


class HalfCodec(Codec):
    """IEEE float16 per dimension, ``2 * d_inner`` bytes, little-endian.

    Needs no training: without a pretransform (or with Matryoshka) the codec is
    trained from construction and ``train`` only checks its input; a PCA
    pretransform still has to be trained. No state arrays.
    """

    kind = "half"
    _min_train = 0

    def __init__(
        self, d: int, metric: str = "l2", pretransform: Transform | str | None = None
    ) -> None:
        super().__init__(d, metric, pretransform)
        if self.pretransform is None or isinstance(self.pretransform, Matryoshka):
            self._trained = True

    @property
    def code_size(self) -> int:
        return 2 * self.d_inner

    def _train(self, xt: np.ndarray) -> None:
        pass

    def _encode(self, y: np.ndarray) -> np.ndarray:
        big = (np.abs(y) > _F16_MAX).any(axis=1)
        if big.any():
            raise CodecError(
                f"half: x has {int(big.sum())} row(s) with values beyond the float16 "
                f"range (+-{_F16_MAX:g})"
            )
        return y.astype("<f2").view(np.uint8).reshape(y.shape[0], self.code_size)

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        return codes.view("<f2").astype(np.float32)

    def _distances(self, q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return _decoded_distances(q, codes, self._decode, self.inner_metric)
