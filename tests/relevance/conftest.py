"""Seeded synthetic retrieval results with a known, query-dependent relevance cut-off."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest


@dataclass
class Retrieved:
    xq: np.ndarray  # (nq, d) float32 unit queries
    S: np.ndarray  # (nq, N) float32 similarities, each row descending
    Y: np.ndarray  # (nq, N) bool labels
    n_relevant: np.ndarray  # (nq,) int64, >= Y.sum(1) (some relevant never retrieved)
    cut: np.ndarray  # (nq,) the true per-query cosine cut-off

    def take(self, rows: np.ndarray) -> Retrieved:
        return Retrieved(
            self.xq[rows], self.S[rows], self.Y[rows], self.n_relevant[rows], self.cut[rows]
        )


def make_retrieved(nq: int = 400, d: int = 16, N: int = 40, seed: int = 0) -> Retrieved:
    """Relevant documents score above a cut-off that is linear in the query vector
    (``0.55 + 0.25 * u.q``), irrelevant ones below it (with a little overlap): a single
    global cosine threshold cannot follow it, a query-dependent one can."""
    rng = np.random.default_rng(seed)
    xq = rng.standard_normal((nq, d))
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    cut = 0.55 + 0.25 * (xq @ u)
    n_pos = rng.integers(1, 8, nq)
    S = np.empty((nq, N))
    Y = np.zeros((nq, N), dtype=bool)
    for i in range(nq):
        pos = cut[i] + np.abs(rng.normal(0.0, 0.06, n_pos[i])) - 0.01
        neg = cut[i] - np.abs(rng.normal(0.0, 0.12, N - n_pos[i])) + 0.01
        s = np.r_[pos, neg]
        y = np.r_[np.ones(n_pos[i], bool), np.zeros(N - n_pos[i], bool)]
        order = np.argsort(-s, kind="stable")
        S[i], Y[i] = s[order], y[order]
    n_relevant = Y.sum(axis=1) + rng.integers(0, 2, nq)
    return Retrieved(
        xq.astype(np.float32), S.astype(np.float32), Y, n_relevant.astype(np.int64), cut
    )


@pytest.fixture(scope="session")
def retrieved() -> Retrieved:
    return make_retrieved()


@pytest.fixture(scope="session")
def train_test(retrieved: Retrieved) -> tuple[Retrieved, Retrieved]:
    half = retrieved.S.shape[0] // 2
    idx = np.arange(retrieved.S.shape[0])
    return retrieved.take(idx[:half]), retrieved.take(idx[half:])


@pytest.fixture(scope="session")
def fitted_adapter(train_test):
    from vecext.relevance import make_relevance

    tr, _ = train_test
    return make_relevance("cosine-adapter", lam=1e-3).fit(tr.xq, tr.S, tr.Y, tr.n_relevant)
