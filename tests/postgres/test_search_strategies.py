"""PostgreSQL's two-stage search deepens its rerank progressively (DuckDB's candidate
stage reranks its whole depth at once). Every strategy against brute force, the
k-rows guarantee, budgets, planning and calibration for every backend:
``tests/contract/test_strategies.py``."""

from __future__ import annotations

import numpy as np

from tests.postgres.search_data import recall
from vecext.postgres import search


def test_progressive_deepening_recovers_recall(sconn, search_env) -> None:
    from vecext.search.planner import PlannerSettings

    loose = PlannerSettings(recall_target=0.3)  # calibration says: rerank about k rows
    flat = PlannerSettings(recall_target=0.3, deepen=0)
    out = {}
    for name, s in (("deepen", loose), ("flat", flat)):
        recs, reranked = [], []
        for q in search_env.xq:
            r = search(sconn, "items", "embedding", q, 10, strategy="compressed",
                       using="emb_bin", settings=s)  # fmt: skip
            recs.append(recall(r.ids, search_env.truth(q, 10)))
            reranked.append(r.plan.params["reranked"])
        out[name] = (np.mean(recs), np.mean(reranked))
    start = search(sconn, "items", "embedding", search_env.xq[0], 10, strategy="compressed",
                   using="emb_bin", settings=flat).plan.params["rerank"]  # fmt: skip
    assert out["flat"][1] == start and out["deepen"][1] > start
    assert out["deepen"][0] >= 0.9 and out["deepen"][0] > out["flat"][0] + 0.05, out
