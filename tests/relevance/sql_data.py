"""Seeded data for the database tests of relevance adapters: clustered synthetic
documents, training queries whose relevant documents are their topic's (a per-query
cut-off), adapters fitted on them, and held-out queries to search with."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vecext.datasets import synthetic_embeddings, synthetic_queries
from vecext.evaluation import labels_from_qrels
from vecext.relevance import RelevanceMethod, make_relevance
from vecext.relevance.evaluate import exact_top_n

D = 16
N_DOCS = 3000
#: adapter catalog name -> method spec (fixed penalties: no cross-validation, fast)
SPECS = {
    "rel_ca": "cosine-adapter:lam=0.001",
    "rel_feat": "cosine-adapter:lam=0.001,features=mean10+top1+gap12+gap1_10+std10",
    "rel_platt": "platt",
    "rel_fixed": "fixed",
}


@dataclass
class RelData:
    xb: np.ndarray  # (N_DOCS, D) float32, unit rows
    category: np.ndarray  # (N_DOCS,) int32
    xq: np.ndarray  # held-out queries (float32, unit)
    S: np.ndarray  # their exact top-50 similarities (nq, 50)
    adapters: dict[str, RelevanceMethod] = field(default_factory=dict)


def make_rel_data() -> RelData:
    data = synthetic_embeddings(N_DOCS, D, n_clusters=100, seed=5, spread_range=(0.2, 1.0))
    xb = data.xb.astype(np.float32)
    train = synthetic_queries(data, 300, seed=6, noise=0.3)
    S, I = exact_top_n(xb, train.xq, 50)
    Y = labels_from_qrels(I, train.qrels)
    nrel = np.array([len(r) for r in train.qrels])
    adapters = {
        name: make_relevance(spec).fit(train.xq, S, Y, nrel) for name, spec in SPECS.items()
    }
    test = synthetic_queries(data, 6, seed=7, noise=0.3)
    St, _ = exact_top_n(xb, test.xq, 50)
    return RelData(
        xb, np.asarray(data.category, np.int32), test.xq.astype(np.float32), St, adapters
    )


def python_scores(
    m: RelevanceMethod, xb: np.ndarray, q: np.ndarray, S_top: np.ndarray
) -> np.ndarray:
    """The Python reference: the score of every document for query ``q`` (float64 cosine;
    distribution features from the query's exact top candidates ``S_top``)."""
    s = xb.astype(np.float64) @ q.astype(np.float64)
    s /= np.linalg.norm(xb.astype(np.float64), axis=1) * np.linalg.norm(q.astype(np.float64))
    qp = m.query_params(q[None, :].astype(np.float64), S_top[None, :])
    if "a" not in qp:
        return s
    from scipy.special import expit

    return expit(qp["a"][0] * s + qp["b"][0])


def doc_adapter(x: np.ndarray) -> RelevanceMethod:
    """``doc_rel`` of the SQL reference fixture (vecext/sqlapi.py): a cosine adapter with
    the feature ``mean10``, fitted on the first 80 rows as queries, each with its 20
    nearest other rows as candidates, of which the ``1 + i % 4`` nearest are relevant."""
    S, _ = exact_top_n(x, x[:80], 21)
    S = S[:, 1:]  # not the row itself
    Y = np.arange(20)[None, :] < (1 + np.arange(80) % 4)[:, None]
    return make_relevance("cosine-adapter:lam=0.01,features=mean10").fit(x[:80], S, Y)
