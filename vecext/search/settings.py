"""Planner settings, and the floors the search engine puts under a plan.

A calibration measures recall with rows of the table (or rows moved to a typical
k-th-neighbour distance) as queries, and real queries are harder: they come from
another distribution and sit farther from the data. The floors raise what the planner
derived from a calibration; each is priced against what the search costs anyway, so it
buys margin cheaply. They are settings, with one default per backend
(:attr:`vecext.search.contracts.Backend.planner_defaults`), so that one place decides
how many candidates a search fetches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

#: The floors' values when neither the caller nor the backend sets them (PostgreSQL's;
#: see :class:`PlannerSettings` for what each one does and why).
DEFAULT_FLOORS: dict[str, Any] = {
    "deepen": 1 / 3,
    "max_depth_mult": 128,
    "rerank_floor_mult": 32,
    "rerank_floor_max": 0,
    "rerank_cost_rows": {"pq": 12, "binary": 100},
    "hnsw_ef_floor": 128,
    "hnsw_loss_share": 0.1,
    "hnsw_calibrated_floor": True,
    "max_ef_search": 1000,
    "ivf_loss_share": 0.1,
    "ivf_filter_lists": False,
    "exact_max_rows_unfiltered": 20_000,
}


@dataclass(frozen=True)
class PlannerSettings:
    """How a search is planned, and the floors the search engine puts under the plan.

    The floor fields default to ``None``: the backend's value
    (:attr:`vecext.search.contracts.Backend.planner_defaults`), else
    :data:`DEFAULT_FLOORS`; :meth:`resolve` fills them in. They exist because a
    calibration measures recall with rows of the table (or rows moved to a typical
    k-th-neighbour distance) as queries, and real queries are harder: they come from
    another distribution and sit farther from the data. Each floor is priced against
    what the search costs anyway, so it buys margin cheaply.
    """

    #: at most this many matching rows: scan them exactly (cheap with an index on the filter)
    exact_max_rows: int = 20_000
    #: ... but without a filter, when the column has an HNSW index, at most this many
    #: (an unfiltered exact scan reads every vector: PostgreSQL, wiki-vital's 16,114 x
    #: 768 TOASTed vectors, 93 ms against 1-4 ms for pgvector's HNSW walk)
    exact_max_rows_unfiltered: int | None = None
    #: ... and when the filter runs on a code store's mirrored columns (PostgreSQL
    #: catalog 0.6.0), at most this many: above it the planner ranks the matching codes
    #: (read through the store's btrees, no join). ``None``: by the vector's width
    #: (:func:`vecext.search.planner.mirrored_exact_rows`: 2,000 for TOASTed vectors,
    #: else ``exact_max_rows``; measured in docs/bench-postgres.md)
    exact_max_rows_mirrored: int | None = None
    #: filter on a code store's mirrored columns when they hold every column the filter
    #: names (PostgreSQL catalog 0.6.0); ``False``: join the table as before (to compare)
    mirrored_filters: bool = True
    #: selectivity at or above which an ANN index is used as is, without iterating
    broad_selectivity: float = 0.5
    recall_target: float = 0.95
    #: rerank depth multipliers tried when no calibration is stored
    default_depth: int = 10
    #: progressive deepening of two-stage searches (0 turns it off): after reranking
    #: D candidates, rerank 2 D when one of the k best was found beyond the first
    #: ``deepen * D`` (and probe twice the IVF lists when one of the k best came from
    #: beyond the first ``deepen * nprobe`` lists). Calibration queries are rows of
    #: the table; real queries and filters can be harder, and this notices it per query.
    #: DuckDB turns it off: its rerank floor already covers the depth deepening would
    #: grow to, and growing beyond it would cost another code scan.
    deepen: float | None = None
    #: most candidates a two-stage search ranks by codes, as a multiple of k (the
    #: calibration ladder's largest multiplier): the reserve deepening draws from
    max_depth_mult: int | None = None
    #: a two-stage search reranks at least ``rerank_floor_mult * k`` candidates ...
    rerank_floor_mult: int | None = None
    #: ... but no more than this many (0: no cap; DuckDB 20,000) ...
    rerank_floor_max: int | None = None
    #: ... and no more than a quarter of the candidate stage's cost buys: one rerank (a
    #: primary-key lookup and an exact distance, 10-18 us in PostgreSQL) costs about as
    #: much as this many code distances of each kind (PQ lookups about 1 us per row,
    #: pgvector Hamming on bit(d) about 0.1 us). Empty: no cost bound (DuckDB, where the
    #: code scan dominates and reranking only fetches candidates by rowid).
    rerank_cost_rows: Mapping[str, int] | None = None
    #: hnsw ef_search is at least this (a walk at 128 costs a few ms, next to 120-150 ms
    #: for an exact scan of 117,659 x 384 and ~5 ms of vecext's own queries) ...
    hnsw_ef_floor: int | None = None
    #: ... and, with ``hnsw_calibrated_floor``, at least the smallest ef at which the
    #: index's calibration on perturbed rows reaches ``1 - (1 - target) * share``
    #: (a calibration on given queries, e.g. a query log, at half the allowed loss, as
    #: the planner does; wordnet-minilm, m 16: perturbed rows reach recall@10 0.95 at
    #: ef 40, where the dev queries reach 0.91)
    hnsw_loss_share: float | None = None
    hnsw_calibrated_floor: bool | None = None
    #: the largest ef_search asked of an index (pgvector's maximum)
    max_ef_search: int | None = None
    #: candidates reranked exactly after a walk through an HNSW index over codes (at
    #: most ef_search; ``None``: the depth the code column's calibration says its codes
    #: need, see :func:`vecext.postgres.code_index.walk`)
    code_index_rerank: int | None = None
    #: IVF probes cover at least ``1 - (1 - target) * ivf_loss_share`` of the true
    #: neighbours on the column's calibration curve (:func:`floor_nprobe`)
    ivf_loss_share: float | None = None
    #: under a filter, probe the nearest lists that hold as many matching rows as an
    #: unfiltered probe reads (counted per list): matching rows cluster in some lists
    #: when a filter follows the data's structure (DuckDB, where counting is cheap)
    ivf_filter_lists: bool | None = None

    def resolve(self, defaults: Mapping[str, Any] | None = None) -> PlannerSettings:
        """These settings with every unset floor taken from ``defaults`` (a backend's),
        then from :data:`DEFAULT_FLOORS`."""
        fill = {}
        for name, value in DEFAULT_FLOORS.items():
            if getattr(self, name) is None:
                fill[name] = (defaults or {}).get(name, value)
        return replace(self, **fill) if fill else self

    def floor(self, name: str) -> Any:
        """A floor's value (unset: :data:`DEFAULT_FLOORS`)."""
        value = getattr(self, name)
        return DEFAULT_FLOORS[name] if value is None else value


def rerank_floor(k: int, kind: str | None, rows: float, s: PlannerSettings) -> int:
    """The least rerank depth for ``k`` results from a candidate stage over about
    ``rows`` codes of ``kind`` (see :attr:`PlannerSettings.rerank_floor_mult`)."""
    floor = int(s.floor("rerank_floor_mult")) * k
    cap = int(s.floor("rerank_floor_max") or 0)
    if cap:
        floor = min(floor, cap)
    cost = s.floor("rerank_cost_rows")
    if cost:
        per = cost.get(kind or "pq", cost.get("pq", 1))
        floor = min(floor, int(rows // (4 * per)))
    return int(max(k, floor))
