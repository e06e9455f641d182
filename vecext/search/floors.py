"""The floors the search engine puts under a plan's calibrated parameters.

The planner derives the rerank depth, ``nprobe`` and ``ef_search`` from calibrations
measured with rows of the table as queries; real queries are harder (see
:mod:`vecext.search.settings`). These functions raise the plan's numbers to the
floors of the resolved :class:`~vecext.search.settings.PlannerSettings` and record
every raise in ``plan.steps``, so ``explain()`` shows what ran and why.
"""

from __future__ import annotations

import numpy as np

from vecext.search.contracts import CodeColumn, Request, Step
from vecext.search.planner import Capabilities, Plan
from vecext.search.settings import PlannerSettings, rerank_floor

__all__ = ["ef_floor", "filtered_probe", "hnsw_ef", "raise_depth", "rows_scanned"]


def rows_scanned(plan: Plan, req: Request) -> int:
    """Rows a scan of the rows passing the filter reads: the plan's estimate, bounded by
    the caller's scan budget."""
    n = int(round(plan.est_matching))
    b = req.max_scan_rows
    return min(n, b) if b is not None else n


def raise_depth(plan: Plan, k: int, kind: str | None, rows: float, s: PlannerSettings) -> int:
    """The rerank depth to run: the plan's, raised to :func:`~vecext.search.settings.rerank_floor`
    for a candidate stage over about ``rows`` codes of ``kind``."""
    planned = int(plan.params.get("rerank", 10 * k))
    floor = rerank_floor(k, kind, rows, s)
    if floor <= planned:
        return planned
    plan.params["rerank"] = floor
    why = (
        f"reranking that many costs less than a quarter of scanning about {rows:.0f} codes"
        if s.floor("rerank_cost_rows")
        else "reranking is cheap next to the code scan"
    )
    plan.steps.append(
        f"rerank depth {planned} (from the calibration) raised to {floor}: {why}, and "
        "calibrations on the table's rows are optimistic for real queries"
    )
    return floor


def ef_floor(caps: Capabilities, recall_target: float, s: PlannerSettings) -> tuple[int, str]:
    """The least ``ef_search`` for the index ``caps`` plans with, and why."""
    base = int(s.floor("hnsw_ef_floor"))
    rec = caps.hnsw_record if s.floor("hnsw_calibrated_floor") else None
    curve = rec.get("ef_search") if isinstance(rec, dict) else None
    if not curve:
        return base, "calibrations on the table's rows are optimistic for real queries"
    given = rec.get("queries") == "given"  # type: ignore[union-attr]
    share = 0.5 if given else float(s.floor("hnsw_loss_share"))
    goal = 1.0 - (1.0 - recall_target) * share
    points = sorted((int(e), float(r)) for e, r in curve.items())
    ef = next((e for e, r in points if r >= goal), points[-1][0])
    how = "given queries" if given else "perturbed rows, which are easier than real queries"
    return max(base, ef), f"the index's calibration ({how}) reaches {goal:.1%} there"


def hnsw_ef(plan: Plan, caps: Capabilities, req: Request, s: PlannerSettings) -> int:
    """The ``ef_search`` to run ``plan`` with: the planner's (at least k, at most
    ``max_ef_search``), raised to :func:`ef_floor` and bounded by a scan budget, which
    bounds the walk, floor or not. A plan with ``ef_floor: False`` (calibration, which
    measures each ef as given) runs as planned. Sets ``plan.params["ef_search"]``."""
    k, top = req.k, int(s.floor("max_ef_search"))
    planned = int(plan.params.get("ef_search", 40))
    ef = int(min(max(planned, k), top))
    if plan.params.get("ef_floor", True):
        floor, why = ef_floor(caps, req.recall_target, s)
        if req.max_scan_rows is not None:
            budget = max(k, int(req.max_scan_rows))
            floor = min(floor, budget)
            if ef > budget:
                plan.steps.append(f"ef_search {ef} lowered to the scan budget ({budget} rows)")
                ef = budget
        if floor > ef:
            ef = int(min(floor, top))
            plan.steps.append(
                f"ef_search {planned} raised to {ef}: {why}; the walk costs a few ms, far "
                "less than an exact scan"
            )
    plan.params["ef_search"] = ef
    return ef


def filtered_probe(step: Step, code: CodeColumn, order: np.ndarray, nprobe: int) -> int:
    """How many of the lists in ``order`` (nearest first) a filtered IVF search probes
    (:attr:`~vecext.search.settings.PlannerSettings.ivf_filter_lists`): the lists that
    hold as many matching rows as an unfiltered probe of ``nprobe`` lists reads
    (counted per list, one cheap aggregate); every list when the filter keeps no more
    rows than that. Matching rows cluster in some lists, so probing by centroid
    distance alone would miss the neighbours of a filter that follows the data."""
    info, req, plan = step.info, step.req, step.plan
    nlist = int(code.nlist)
    reads: float = info.caps.n_rows * nprobe / nlist
    if req.max_scan_rows is not None:
        reads = min(reads, req.max_scan_rows)
    if plan.est_matching <= reads:  # the planner's count (an estimate on huge tables)
        plan.steps.append(
            f"the filter keeps about {plan.est_matching:.0f} rows, no more than an "
            f"unfiltered probe reads ({reads:.0f}): all {nlist} lists"
        )
        return nlist
    counts = step.backend.list_counts(info, req, code)
    total = sum(counts.values())
    if total <= reads:
        plan.steps.append(
            f"the filter keeps {total} rows, no more than an unfiltered probe reads "
            f"({reads:.0f}): all {nlist} lists"
        )
        return nlist
    covered = np.cumsum([counts.get(int(i), 0) for i in order])
    wanted = int(np.searchsorted(covered, reads)) + 1
    plan.steps.append(
        f"the filter keeps {total} rows: probed the {wanted} nearest lists holding "
        f"{int(covered[min(wanted, nlist) - 1])} of them (an unfiltered probe reads {reads:.0f})"
    )
    return int(min(wanted, nlist))
