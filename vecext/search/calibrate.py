"""Choose the rerank depth of a two-stage search from measurements, not a constant.

A compressed column is calibrated once on its own data: sample rows serve as
queries; for each, the exact top-k and the candidate ranking by codes are
computed; the recall@k reached when the best ``mult * k`` candidates are
reranked is recorded for a ladder of multipliers. The planner then takes the
smallest multiplier whose measured recall reaches the caller's target
(:func:`vecext.search.planner.rerank_depth`).
"""

from __future__ import annotations

import numpy as np

#: Multipliers of k tried (candidates reranked = mult * k).
LADDER = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)


def recall_curve(
    true_ids: np.ndarray, candidate_ids: np.ndarray, k: int, ladder: tuple[int, ...] = LADDER
) -> dict[str, float]:
    """Recall@k after reranking the first ``mult * k`` candidates, for each multiplier.

    Parameters
    ----------
    true_ids
        ``(nq, k)`` exact top-k ids per sample query (-1 padding allowed).
    candidate_ids
        ``(nq, depth)`` ids ranked by code distance, best first, ``depth >= k``.
        Reranking is exact, so the top-k after rerank contains every true
        neighbour that is among the candidates: recall = |true ∩ candidates| / k.
    """
    true_ids = np.asarray(true_ids)
    cand = np.asarray(candidate_ids)
    if true_ids.ndim != 2 or cand.ndim != 2 or true_ids.shape[0] != cand.shape[0]:
        raise ValueError(f"shapes {true_ids.shape} and {cand.shape} do not match")
    out: dict[str, float] = {}
    n_true = np.maximum((true_ids >= 0).sum(axis=1), 1)
    for mult in ladder:
        depth = mult * k
        if depth > cand.shape[1] and out:
            break
        top = cand[:, : min(depth, cand.shape[1])]
        hits = np.array(
            [np.intersect1d(t[t >= 0], c[c >= 0]).size for t, c in zip(true_ids, top, strict=True)]
        )
        out[str(mult)] = float(np.mean(hits / n_true))
    return out


def max_depth(k: int, ladder: tuple[int, ...] = LADDER) -> int:
    return ladder[-1] * k
