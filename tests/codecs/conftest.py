"""Seeded synthetic data for the codec tests (no files, no network)."""

from __future__ import annotations

from collections.abc import Iterator

import faiss
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _faiss_single_thread() -> Iterator[None]:
    """One OpenMP thread: deterministic timings, and on a loaded 2-core machine
    spinning FAISS threads make training several times slower."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def clustered(n: int, d: int, nc: int = 50, seed: int = 0, offset: float = 3.0) -> np.ndarray:
    """Gaussian clusters with unequal per-dimension spread, shifted off the origin.

    The common offset makes the data *not* centred, which is what breaks sign
    binarization without a training mean.
    """
    rng = np.random.default_rng(seed)
    centroids = 2.0 * rng.standard_normal((nc, d)).astype(np.float32)
    spread = rng.uniform(0.2, 1.0, d).astype(np.float32)
    labels = rng.integers(0, nc, n)
    noise = rng.standard_normal((n, d)).astype(np.float32) * spread
    return (centroids[labels] + noise + offset).astype(np.float32)


def anisotropic(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Gaussian data whose variance decays along the dimensions (largest first), so a
    plain PQ puts most of the energy into its first sub-quantizers."""
    rng = np.random.default_rng(seed)
    std = np.exp(-np.arange(d) / (d / 6)).astype(np.float32)
    return (rng.standard_normal((n, d)).astype(np.float32) * std).astype(np.float32)


def exact_knn(xq: np.ndarray, xb: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Brute-force ids (float64), the reference for recall."""
    xq64, xb64 = xq.astype(np.float64), xb.astype(np.float64)
    if metric == "cosine":
        xq64 = xq64 / np.linalg.norm(xq64, axis=1, keepdims=True)
        xb64 = xb64 / np.linalg.norm(xb64, axis=1, keepdims=True)
    if metric == "l2":
        D = (xq64**2).sum(1)[:, None] - 2 * xq64 @ xb64.T + (xb64**2).sum(1)[None]
    else:
        D = -xq64 @ xb64.T
    return np.argsort(D, axis=1, kind="stable")[:, :k]


def recall(I: np.ndarray, gt: np.ndarray) -> float:
    """Mean fraction of the true k neighbours found in each row of I (k = gt width)."""
    return float(np.mean([len(set(a) & set(b)) / gt.shape[1] for a, b in zip(I, gt, strict=True)]))


@pytest.fixture(scope="session")
def data64() -> dict[str, np.ndarray]:
    """5000 database, 3000 training and 100 query vectors, 64-d clustered."""
    x = clustered(8100, 64, seed=0)
    return {"xb": x[:5000], "xt": x[5000:8000], "xq": x[8000:]}
