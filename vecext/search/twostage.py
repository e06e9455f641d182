"""Two-stage search: rank candidates by codes, rerank the best exactly, deepen, widen.

One loop for every backend (the backend only runs the statements, see
:meth:`vecext.search.contracts.Backend.candidates`):

* **compressed**: the rows passing the filter are ranked by code distance; the best
  ``depth`` (the plan's rerank depth raised to the floor) are reranked exactly, and the
  stage also returns the next candidates (up to ``max_depth_mult * k``) so that
  progressive deepening costs primary-key lookups, not another scan: while one of the
  k best is a candidate beyond the first ``deepen`` share of those reranked, twice as
  many are reranked;
* **ivf**: the same among the rows of the ``nprobe`` lists nearest to the query
  (``nprobe`` raised to the calibrated coverage, and under a filter, where the backend
  counts cheaply, to the lists holding enough matching rows), widened x4 while the
  filter leaves fewer than ``depth`` rows in them, and x2 while one of the k best
  comes from beyond the first ``deepen`` share of the probed lists.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vecext.search.contracts import Candidates, CodeColumn, Hits, Stage, Step
from vecext.search.floors import filtered_probe, raise_depth, rows_scanned
from vecext.search.planner import floor_nprobe

__all__ = ["best", "compressed", "deepen", "ivf"]


def best(ids: list[Any], dist: np.ndarray, done: int, k: int) -> np.ndarray:
    """Positions of the ``k`` best of the first ``done`` candidates by (exact distance,
    id), as every exact statement orders them."""
    d = dist[:done]
    try:
        order = np.lexsort((np.asarray(ids[:done]), d))
    except TypeError:  # ids numpy cannot order as one array: candidate order breaks ties
        order = np.argsort(d, kind="stable")
    return order[:k]


def deepen(step: Step, c: Candidates) -> tuple[np.ndarray, int]:
    """Positions (in candidate order) of the k best after progressive reranking, and how
    many candidates were reranked; ``c.dist`` is filled in as candidates are reranked."""
    k, plan = step.req.k, step.plan
    frac = float(plan.params.get("deepen", 0) or 0)
    ids, dist = c.ids, c.dist
    n, done = len(ids), min(c.reranked, len(ids))
    while True:
        top = best(ids, dist, done, k)
        if done >= n or frac <= 0 or top.size == 0 or top.max() < frac * done:
            return top, done
        wider = min(2 * done, n)
        dist[done:wider] = step.backend.exact_of(step.info, step.req, ids[done:wider])
        plan.steps.append(
            f"one of the {k} best was candidate {int(top.max()) + 1} of {done}: reranked {wider}"
        )
        done = wider


def _pick(c: Candidates, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if top.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    return np.array([c.ids[i] for i in top]), c.dist[top].astype(np.float32)


def _stage(step: Step, code: CodeColumn, depth: int, lists: np.ndarray | None) -> Candidates:
    # the reserve deepening draws from; without deepening the stage needs no more
    k, plan = step.req.k, step.plan
    dmax = depth
    if float(plan.params.get("deepen", 0) or 0) > 0:
        dmax = int(max(depth, int(step.settings.floor("max_depth_mult")) * k))
    return step.backend.candidates(step.info, step.req, plan, Stage(code, depth, dmax, lists))


def compressed(step: Step, code: CodeColumn) -> Hits:
    """Rank every row passing the filter by ``code``, rerank the best (see the module)."""
    req, plan = step.req, step.plan
    rows = rows_scanned(plan, req)
    depth = raise_depth(plan, req.k, code.kind, rows, step.settings)
    c = _stage(step, code, depth, None)
    top, reranked = deepen(step, c)
    plan.params["reranked"] = reranked
    ids, dist = _pick(c, top)
    return Hits(ids, dist, rows)


def ivf(step: Step, code: CodeColumn) -> Hits:
    """Probe the nearest IVF lists, rank their rows by ``code``, rerank (see the module)."""
    req, plan, s = step.req, step.plan, step.settings
    nlist = int(code.nlist)
    order = step.backend.probe_order(step.info, req, code)
    loss = float(s.floor("ivf_loss_share"))
    nprobe = floor_nprobe(plan, code.calibration, req.recall_target, nlist, loss)
    if s.floor("ivf_filter_lists") and req.pred is not None:
        nprobe = filtered_probe(step, code, order, nprobe)
    # rows read by the probe: the lists' share of the rows passing the filter
    depth = raise_depth(plan, req.k, code.kind, rows_scanned(plan, req) * nprobe / nlist, s)
    frac = float(plan.params.get("deepen", 0) or 0)
    rank = np.empty(nlist, dtype=np.int64)
    rank[order] = np.arange(nlist)
    scanned, budget = 0, req.max_scan_rows
    while True:
        c = _stage(step, code, depth, order[:nprobe])
        n = rows_scanned(plan, req) if c.rows_read is None else c.rows_read
        scanned += n
        over = budget is not None and scanned >= budget
        if n < depth and nprobe < nlist and not over:
            wider = min(nlist, nprobe * 4)
            plan.steps.append(
                f"{n} rows passed the filter in the {nprobe} probed lists (< rerank depth "
                f"{depth}): widened to {wider} lists"
            )
            nprobe = wider
            continue
        top, reranked = deepen(step, c)
        if nprobe >= nlist or frac <= 0 or over or top.size == 0:
            break
        worst = int(rank[c.lists[top]].max())
        if worst < frac * nprobe:
            break
        wider = min(nlist, 2 * nprobe)
        plan.steps.append(
            f"one of the {req.k} best came from the {worst + 1}th of {nprobe} probed lists: "
            f"probed {wider}"
        )
        nprobe = wider
    plan.params.update(nprobe=nprobe, reranked=reranked)
    ids, dist = _pick(c, top)
    return Hits(ids, dist, scanned)
