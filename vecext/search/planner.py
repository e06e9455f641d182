"""Choose a search strategy from the filter's selectivity and what the table has.

The planner is pure: backends give it counts and estimates, it returns a
:class:`Plan` that says what will run and why. The rule of thumb follows the
filtered-ANN literature (no single index wins at every selectivity, arXiv
2507.21989): scan exactly when few rows match, widen or iterate an ANN search at
middling selectivity, and use plain ANN when the filter is broad.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from vecext.search.settings import DEFAULT_FLOORS, PlannerSettings, rerank_floor

__all__ = [
    "DEFAULT_FLOORS",
    "STRATEGIES",
    "Capabilities",
    "Plan",
    "PlannerSettings",
    "calibration_curves",
    "floor_nprobe",
    "plan",
    "probe_count",
    "rerank_depth",
    "rerank_floor",
]

#: Strategies a backend may offer.
STRATEGIES = ("exact", "compressed", "ivf", "hnsw")


@dataclass(frozen=True)
class Capabilities:
    """What a table offers a search on one vector column."""

    n_rows: int
    code_column: str | None = None  # compressed codes (two-stage search)
    code_kind: str | None = None
    list_column: str | None = None  # IVF list ids
    n_lists: int = 0
    hnsw_index: str | None = None  # a native HNSW index usable for this metric
    iterative_scan: bool = False  # pgvector >= 0.8
    calibration: dict[str, Any] | None = None  # depth multiplier -> measured recall
    #: nprobe -> fraction of the true top-k whose IVF list is among the nprobe nearest
    ivf_calibration: dict[str, Any] | None = None
    #: the same curves measured within row subsets (``selectivity``, ``kind``,
    #: ``depth``, ``nprobe``): what a filter of that selectivity leaves
    calibration_subsets: list[dict[str, Any]] | None = None
    #: hnsw.ef_search -> recall@k measured on the HNSW index
    hnsw_calibration: dict[str, Any] | None = None
    #: the HNSW index's whole calibration record (``ef_search`` curve, ``queries``:
    #: how it was measured), which the search engine's ef_search floor reads
    hnsw_record: dict[str, Any] | None = None
    #: the search's filter runs on the code store's own (mirrored) columns, with their
    #: btrees: the code scan reads only the matching codes, no join to the table
    filter_in_store: bool = False
    #: bytes of one stored vector (what an exact scan reads per matching row)
    vector_bytes: int = 0


@dataclass
class Plan:
    strategy: str
    reason: str
    params: dict[str, Any] = field(default_factory=dict)
    n_rows: int = 0
    est_matching: float = 0.0
    k: int = 0
    steps: list[str] = field(default_factory=list)

    @property
    def selectivity(self) -> float:
        return self.est_matching / self.n_rows if self.n_rows else 0.0

    def explain(self) -> str:
        lines = [
            f"strategy: {self.strategy}",
            f"why: {self.reason}",
            f"rows: {self.n_rows}, estimated matching: {self.est_matching:.0f} "
            f"(selectivity {self.selectivity:.4%}), k: {self.k}",
        ]
        if self.params:
            lines.append("params: " + ", ".join(f"{k}={v}" for k, v in sorted(self.params.items())))
        lines += [f"then: {s}" for s in self.steps]
        return "\n".join(lines)


def rerank_depth(
    k: int, calibration: dict[str, Any] | None, recall_target: float, default: int
) -> int:
    """Candidates to rerank so that recall@k reaches ``recall_target``.

    ``calibration`` maps a depth multiplier (candidates / k, as a string key) to the
    recall@k measured with that many candidates on sample queries from the table
    itself; we take the smallest multiplier that reaches the target (the largest
    measured one otherwise). Without a calibration, ``default * k``.
    """
    if calibration:
        curve = sorted((float(m), float(r)) for m, r in calibration.items())
        for mult, rec in curve:
            if rec >= recall_target:
                return max(k, math.ceil(mult * k))
        return max(k, math.ceil(curve[-1][0] * k))
    return max(k, default * k)


def probe_count(coverage: dict[str, Any], target: float, n_lists: int) -> int:
    """The fewest IVF lists to probe so that the measured share of true neighbours in
    them reaches ``target`` (all lists when no measured count does)."""
    for nprobe, frac in sorted((int(p), float(f)) for p, f in coverage.items()):
        if frac >= target:
            return max(1, nprobe)
    return max(1, n_lists)


#: IVF probes must cover this share of the allowed recall loss at most: coverage >=
#: 1 - (1 - target) * IVF_LOSS_SHARE on the column's calibration curve. Real queries
#: sit farther from the centroids than the table's rows (wordnet-minilm: 128 lists held
#: 98% of the true neighbours of sample rows but 90% of those of dev queries; 384
#: lists: 99.5% and 97%). The default of :attr:`PlannerSettings.ivf_loss_share`.
IVF_LOSS_SHARE = DEFAULT_FLOORS["ivf_loss_share"]


def floor_nprobe(
    plan: Plan,
    calibration: dict[str, Any] | None,
    recall_target: float,
    n_lists: int,
    loss_share: float = IVF_LOSS_SHARE,
) -> int:
    """``plan``'s nprobe (within 1..n_lists), raised to the calibrated count of lists that
    holds ``1 - (1 - recall_target) * loss_share`` of the true neighbours; a raise is
    recorded in ``plan.steps``."""
    nprobe = int(min(max(1, int(plan.params.get("nprobe", 1))), n_lists))
    coverage = (calibration or {}).get("nprobe")
    if coverage:
        target = 1.0 - (1.0 - recall_target) * loss_share
        calibrated = probe_count(coverage, target, n_lists)
        if calibrated > nprobe:
            plan.steps.append(
                f"nprobe {nprobe} raised to {calibrated}: the calibrated lists hold "
                f"{target:.1%} of the true neighbours"
            )
            nprobe = calibrated
    return nprobe


def calibration_curves(
    caps: Capabilities, sel: float, filtered: bool
) -> tuple[list[dict[str, Any] | None], list[dict[str, Any]]]:
    """The depth and probe curves that apply at selectivity ``sel``.

    Unfiltered: the whole-table curves. Filtered: those too, and the curves
    measured in the subsets of the largest measured selectivity not above ``sel``
    (the smallest one when ``sel`` is below all): a filter leaves true neighbours
    farther from the query, which need deeper reranks and wider probes. Callers
    take the most demanding of the curves.
    """
    depth: list[dict[str, Any] | None] = [caps.calibration]
    probe = [caps.ivf_calibration] if caps.ivf_calibration else []
    subsets = caps.calibration_subsets or []
    if filtered and subsets:
        levels = sorted({float(x["selectivity"]) for x in subsets})
        below = [v for v in levels if v <= sel]
        level = max(below) if below else levels[0]
        for x in subsets:
            if float(x["selectivity"]) == level:
                depth.append(x.get("depth"))
                if x.get("nprobe"):
                    probe.append(x["nprobe"])
    return depth, probe


def plan(
    caps: Capabilities,
    est_matching: float,
    k: int,
    *,
    strategy: str = "auto",
    settings: PlannerSettings | None = None,
    filtered: bool = False,
) -> Plan:
    """Pick the strategy for one query.

    Parameters
    ----------
    caps
        What the table has.
    est_matching
        Estimated rows that pass the filter (``caps.n_rows`` without a filter).
    strategy
        ``"auto"`` or a strategy the caller forces (checked against ``caps``).
    """
    s = (settings or PlannerSettings()).resolve()
    n = max(caps.n_rows, 0)
    est = float(min(max(est_matching, 0.0), n))
    sel = est / n if n else 0.0
    base = {"n_rows": n, "est_matching": est, "k": k}
    depth_curves, _ = calibration_curves(caps, sel, filtered)
    depth = max(rerank_depth(k, c, s.recall_target, s.default_depth) for c in depth_curves)

    if strategy != "auto":
        _check_available(strategy, caps)
        return Plan(
            strategy,
            "requested by the caller",
            _params(strategy, caps, depth, est, sel, s, k, filtered),
            **base,
        )

    limit = int(s.exact_max_rows)
    if not filtered and caps.hnsw_index:
        limit = min(limit, int(s.floor("exact_max_rows_unfiltered")))
    mirrored = filtered and caps.filter_in_store and caps.code_column is not None
    if mirrored:
        # the filter runs on the code store's mirrored columns: the code scan reads only
        # the matching codes (btree), no join, and reranks a few hundred rows by key
        limit = min(limit, mirrored_exact_rows(caps, s))
    if est <= limit:
        why = (
            f"about {est:.0f} rows match (<= {limit}): an exact scan of them is cheap "
            "and has recall 1"
        )
        return Plan("exact", why, {}, **base)
    if mirrored and est <= s.exact_max_rows and sel < s.broad_selectivity:
        why = (
            f"about {est:.0f} rows match (> {limit}), the filter on the code store's "
            "mirrored columns: rank the matching codes, rerank the best exactly"
        )
        return Plan(
            "compressed", why, _params("compressed", caps, depth, est, sel, s, k, filtered), **base
        )
    if caps.hnsw_index and (not filtered or sel >= s.broad_selectivity):
        short = hnsw_short_of(caps, s)
        if short is not None and caps.code_column:
            why = f"{short}: rank all rows by codes instead, rerank the best exactly"
            return Plan(
                "compressed", why, _params("compressed", caps, depth, est, sel, s, k, filtered),
                **base,
            )  # fmt: skip
        why = (
            "broad filter: the native HNSW index finds k matching rows"
            if filtered
            else "no filter: native HNSW index"
        )
        if short is not None:
            why += f" ({short}, and there are no codes to rank instead)"
        return Plan("hnsw", why, _params("hnsw", caps, depth, est, sel, s, k, filtered), **base)
    if caps.list_column and caps.code_column:
        why = "IVF lists + codes: probe the nearest lists (widened for the filter), rank by codes, rerank"
        return Plan("ivf", why, _params("ivf", caps, depth, est, sel, s, k, filtered), **base)
    if caps.hnsw_index and caps.iterative_scan:
        why = f"selectivity {sel:.2%}: HNSW with iterative scan until k rows pass the filter"
        return Plan("hnsw", why, _params("hnsw", caps, depth, est, sel, s, k, filtered), **base)
    if caps.code_column:
        why = "compressed codes: rank all matching rows by codes, rerank the best exactly"
        return Plan(
            "compressed", why, _params("compressed", caps, depth, est, sel, s, k, filtered), **base
        )
    return Plan("exact", "no index or codes for this column: exact scan", {}, **base)


def hnsw_short_of(caps: Capabilities, s: PlannerSettings) -> str | None:
    """Why the HNSW index cannot reach the recall target, or ``None``: its calibration,
    measured up to the largest ``ef_search`` a search may use, stays below the target
    everywhere (a denser graph is needed; a larger ``ef`` is not allowed). An index
    calibrated only below that ``ef`` is given the benefit of the doubt."""
    cal = caps.hnsw_calibration
    if not cal:
        return None
    top = int(s.floor("max_ef_search"))
    curve = sorted((int(e), float(r)) for e, r in cal.items())
    if curve[-1][0] < top:
        return None
    best = max(r for e, r in curve if e <= top) if curve[0][0] <= top else 0.0
    if best >= s.recall_target:
        return None
    return (
        f"the HNSW index's calibration reaches recall {best:.3f} at most (ef_search <= "
        f"{top}), below the target {s.recall_target:g}"
    )


#: Beyond this many bytes a PostgreSQL row is TOASTed (TOAST_TUPLE_THRESHOLD, ~2 KB): an
#: exact scan then detoasts every matching vector
TOAST_BYTES = 2032
#: ... and ranking the matching codes of a filter on mirrored columns, then reranking by
#: key, beats that scan from about this many matching rows (wiki-vital, 768-d: topic =
#: People, 2,557 rows, 8.4 ms against 10.7 ms exact at recall@10 0.989; Mathematics, 373
#: rows, exact 3.0 ms against 8.7 ms). Narrower vectors are read in place and the exact
#: scan stayed as fast up to ``exact_max_rows`` (wordnet-minilm, 384-d: pos = 'r', 3,621
#: rows, exact 2.6 ms against 10.0 ms; pos = 'v', 13,767 rows, 38.5 against 38.0 ms,
#: recall 1 against 0.988; docs/bench-postgres.md)
WIDE_MIRRORED_EXACT_ROWS = 2_000


def mirrored_exact_rows(caps: Capabilities, s: PlannerSettings) -> int:
    """The most matching rows a filter on a code store's mirrored columns scans exactly:
    ``exact_max_rows_mirrored`` when set, else by the vector's width (see
    :data:`WIDE_MIRRORED_EXACT_ROWS`)."""
    if s.exact_max_rows_mirrored is not None:
        return int(s.exact_max_rows_mirrored)
    if caps.vector_bytes > TOAST_BYTES:
        return min(WIDE_MIRRORED_EXACT_ROWS, int(s.exact_max_rows))
    return int(s.exact_max_rows)


def _check_available(strategy: str, caps: Capabilities) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)} or 'auto'")
    missing = {
        "compressed": caps.code_column is None and "a compressed column",
        "ivf": (caps.list_column is None or caps.code_column is None) and "IVF lists and codes",
        "hnsw": caps.hnsw_index is None and "an HNSW index",
    }.get(strategy)
    if missing:
        raise ValueError(f"strategy {strategy!r} needs {missing} on this column, and it has none")


def _params(
    strategy: str,
    caps: Capabilities,
    depth: int,
    est: float,
    sel: float,
    s: PlannerSettings,
    k: int = 10,
    filtered: bool = False,
) -> dict[str, Any]:
    deepen = {"deepen": round(float(s.floor("deepen")), 4)} if s.floor("deepen") > 0 else {}
    if strategy == "compressed":
        return {"rerank": depth, "codes": caps.code_column, **deepen}
    if strategy == "ivf":
        # probe enough lists that the matching rows in them cover the rerank depth
        # several times over: matching rows are spread over lists roughly evenly
        per_list = max(est / max(caps.n_lists, 1), 1e-9)
        base_probe = max(1, math.ceil(math.sqrt(max(caps.n_lists, 1))))
        depth_curves, probe_curves = calibration_curves(caps, sel, filtered)
        if probe_curves:
            # two stages lose neighbours independently: give each half the allowed loss
            # (recall >= 1 - miss_lists - miss_codes), from the column's own measurements
            stage = 1.0 - (1.0 - s.recall_target) / 2
            for c in depth_curves:
                depth = max(depth, rerank_depth(k, c, stage, s.default_depth))
            base_probe = max(probe_count(c, stage, caps.n_lists) for c in probe_curves)
        nprobe = math.ceil(4 * depth / per_list)
        return {
            "rerank": depth,
            "nprobe": int(min(max(nprobe, base_probe), max(caps.n_lists, 1))),
            "codes": caps.code_column,
            **deepen,
        }
    if strategy == "hnsw":
        # expected matches among ef candidates = ef * selectivity; aim for 2*depth
        ef = math.ceil(2 * depth / max(sel, 1e-6)) if sel < 1 else 2 * depth
        if caps.hnsw_calibration:
            # the index's own measured recall: unfiltered, the smallest ef that reaches
            # the target; filtered, at least that
            # (aimed at half the allowed loss: real queries are harder than the
            # calibration's, see vecext.search.calibrate.perturbed_queries)
            goal = 1.0 - (1.0 - s.recall_target) / 2
            curve = sorted((int(e), float(r)) for e, r in caps.hnsw_calibration.items())
            measured = next((e for e, r in curve if r >= goal), curve[-1][0])
            ef = measured if not filtered else max(ef, measured)
        ef = int(min(max(ef, 40), int(s.floor("max_ef_search"))))
        out: dict[str, Any] = {"ef_search": ef, "index": caps.hnsw_index}
        if caps.iterative_scan and sel < s.broad_selectivity:
            out["iterative_scan"] = "strict_order"
        if s.code_index_rerank:
            out["rerank"] = int(s.code_index_rerank)  # read by a walk over codes only
        return out
    return {}
