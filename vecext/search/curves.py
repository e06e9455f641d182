"""Calibration curves and the record they are stored in.

A compressed column's calibration measures, on sample queries, the recall@k reached
when the best ``mult * k`` candidates by code distance are reranked exactly (for a
ladder of multipliers), and with IVF lists the share of true neighbours in the
``nprobe`` nearest lists. The record is JSON in the catalog (the same document in
PostgreSQL and DuckDB); :func:`planner_calibration` turns it into the planner's
:class:`~vecext.search.planner.Capabilities` fields.
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


def probe_ladder(n_lists: int) -> tuple[int, ...]:
    """nprobe values measured for IVF: powers of two and 1.5x steps up to all lists."""
    out, p = set(), 1
    while p < n_lists:
        out.update({p, min(n_lists, (3 * p) // 2)})
        p *= 2
    out.add(n_lists)
    return tuple(sorted(x for x in out if x >= 1))


def probe_curve(
    true_lists: np.ndarray, list_order: np.ndarray, ladder: tuple[int, ...] | None = None
) -> dict[str, float]:
    """Share of true neighbours whose IVF list is among the ``nprobe`` nearest lists.

    Parameters
    ----------
    true_lists
        ``(nq, k)`` list id of each exact neighbour (-1 padding allowed).
    list_order
        ``(nq, n_lists)`` every list id per query, nearest centroid first.

    With exact rerank and enough candidates, this share is the recall an IVF
    search reaches when it probes ``nprobe`` lists.
    """
    true_lists = np.asarray(true_lists)
    order = np.asarray(list_order)
    nq, n_lists = order.shape
    if true_lists.ndim != 2 or true_lists.shape[0] != nq:
        raise ValueError(f"shapes {true_lists.shape} and {order.shape} do not match")
    # rank[q, l] = position of list l in query q's probe order
    rank = np.empty_like(order)
    rank[np.arange(nq)[:, None], order] = np.arange(n_lists)[None, :]
    valid = true_lists >= 0
    ranks = np.where(valid, rank[np.arange(nq)[:, None], np.where(valid, true_lists, 0)], n_lists)
    n_true = np.maximum(valid.sum(axis=1), 1)
    out: dict[str, float] = {}
    for p in ladder or probe_ladder(n_lists):
        out[str(p)] = float(np.mean((ranks < p).sum(axis=1) / n_true))
    return out


def calibration_record(
    depth_curve: dict[str, float],
    *,
    k: int,
    n_queries: int,
    probe: dict[str, float] | None = None,
    subsets: list[dict[str, object]] | None = None,
    queries: str = "rows",
) -> dict[str, object]:
    """The JSON stored in a compressed column's ``calibration``: ``depth`` (rerank
    multiplier -> recall@k), optionally ``nprobe`` (IVF lists -> share of true
    neighbours), the same measured within row ``subsets`` (what a filter leaves),
    and how they were measured (``queries``: ``"rows"`` of the table, or ``"given"``)."""
    rec: dict[str, object] = {
        "k": int(k),
        "n_queries": int(n_queries),
        "queries": queries,
        "depth": depth_curve,
    }
    if probe is not None:
        rec["nprobe"] = probe
    if subsets:
        rec["subsets"] = subsets
    return rec


def planner_calibration(record: dict[str, object] | None) -> dict[str, object]:
    """Keyword arguments for :class:`~vecext.search.planner.Capabilities` from a stored
    calibration record (``calibration``, ``ivf_calibration``, ``calibration_subsets``)."""
    rec = record or {}
    return {
        "calibration": rec.get("depth") or None,
        "ivf_calibration": rec.get("nprobe") or None,
        "calibration_subsets": rec.get("subsets") or None,
    }
