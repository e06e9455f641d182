"""vecext.codecs.kernels against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from vecext.codecs.kernels import inner_products


@pytest.mark.parametrize("n,d", [(0, 8), (1, 3), (1000, 384), (77, 768)])
def test_inner_products_equal_numpy(n: int, d: int) -> None:
    rng = np.random.default_rng(n + d)
    X = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal(d).astype(np.float32)
    got = inner_products(X, q)
    assert got.shape == (n,) and got.dtype == np.float32
    want = X.astype(np.float64) @ q.astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_shapes_must_match() -> None:
    with pytest.raises(ValueError, match="do not match"):
        inner_products(np.zeros((3, 4), np.float32), np.zeros(5, np.float32))
