"""The search engine against an in-memory backend: floors, deepening, IVF widening and
fallback are decided once, in the core, whatever the backend."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from vecext.search import engine
from vecext.search.contracts import Candidates, CodeColumn, Request, Stage, TableInfo
from vecext.search.filters import Eq, Predicate, mask
from vecext.search.floors import hnsw_ef
from vecext.search.planner import Capabilities, Plan, PlannerSettings
from vecext.search.tables import capabilities
from vecext.topk import exact_topk

N, D, NLIST = 3000, 8, 16


class Ref:
    schema, name = "main", "t"


class MemoryBackend:
    """Every primitive step in numpy: codes are the exact distance plus noise, so the
    candidate order is good but not exact; IVF lists are ``id % NLIST``."""

    name = "memory"
    planner_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, lists: bool = True, noise: float = 0.3, hnsw: bool = False) -> None:
        rng = np.random.default_rng(0)
        self.xb = rng.standard_normal((N, D)).astype(np.float32)
        self.cat = np.where(np.arange(N) % 10 == 0, "rare", "common")
        self.noise = rng.standard_normal(N) * noise
        self.calls: list[str] = []
        self.code = CodeColumn(
            "v_pq", "c", "pq", "fp", "l2", "bytea", list_column="v_list" if lists else None,
            ivf_codec="ivf" if lists else None, nlist=NLIST if lists else 0,
        )  # fmt: skip
        self.index = "ix" if hnsw else None
        self.drop_lists: set[int] = set()

    def table_info(self, table: str, column: str, metric: str) -> TableInfo:
        caps = capabilities(N, self.code, self.index, None, metric, False)
        return TableInfo(
            table, column, D, "id", {"id": "int", "v": "vec", "cat": "text"}, caps, Ref(),
            metric, "vector", codes={"v_pq": self.code},
            alternatives={"v_pq": caps, **({"ix": caps} if self.index else {})},
        )  # fmt: skip

    def for_tenant(self, info: TableInfo, tenant: Any) -> TableInfo:
        return info

    def _rows(self, pred: Predicate | None) -> np.ndarray:
        return np.flatnonzero(mask(pred, {"cat": self.cat}))

    def estimate_matching(self, info: TableInfo, pred: Predicate | None) -> float:
        return float(self._rows(pred).size)

    def count_matching(self, info: TableInfo, pred: Predicate | None, limit: int) -> int:
        return int(min(self._rows(pred).size, limit))

    def _dist(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return ((self.xb[rows] - q) ** 2).sum(1).astype(np.float64)

    def exact(self, info: TableInfo, req: Request, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append("exact")
        rows = self._rows(req.pred)
        d, i = exact_topk(self.xb[rows], req.q[None, :], req.k, "l2", ids=rows)
        keep = i[0] >= 0
        return i[0][keep], d[0][keep]

    def hnsw(self, info: TableInfo, req: Request, plan: Plan, ef: int) -> Any:
        self.calls.append(f"hnsw:{ef}")
        return self.exact(info, req, plan)

    def candidates(self, info: TableInfo, req: Request, plan: Plan, stage: Stage) -> Candidates:
        self.calls.append(f"candidates:{stage.depth}:{stage.dmax}")
        rows = self._rows(req.pred)
        n_read = None
        if stage.lists is not None:
            allowed = set(int(x) for x in stage.lists) - self.drop_lists
            rows = rows[np.isin(rows % NLIST, list(allowed))]
            n_read = int(rows.size)
        exact = self._dist(req.q, rows)
        order = np.lexsort((rows, exact + self.noise[rows]))[: stage.dmax]
        rows = rows[order]
        dist = np.full(rows.size, np.nan)
        dist[: stage.depth] = exact[order][: stage.depth]
        return Candidates(rows.tolist(), dist, rows % NLIST, n_read, min(stage.depth, rows.size))

    def exact_of(self, info: TableInfo, req: Request, ids: list[Any]) -> np.ndarray:
        self.calls.append(f"exact_of:{len(ids)}")
        return self._dist(req.q, np.asarray(ids, dtype=np.int64))

    def probe_order(self, info: TableInfo, req: Request, code: CodeColumn) -> np.ndarray:
        return np.roll(np.arange(NLIST), int(abs(req.q[0]) * 7) % NLIST)

    def list_counts(self, info: TableInfo, req: Request, code: CodeColumn) -> dict[int, int]:
        rows = self._rows(req.pred)
        lists, counts = np.unique(rows % NLIST, return_counts=True)
        return {int(x): int(c) for x, c in zip(lists, counts, strict=True)}


def _prepare(backend: MemoryBackend, q: np.ndarray, **kw: Any) -> engine.Prepared:
    return engine.prepare(backend, "t", "v", q, metric="l2", **kw)


def _truth(backend: MemoryBackend, q: np.ndarray, k: int, pred=None) -> list[int]:
    rows = backend._rows(pred)
    return exact_topk(backend.xb[rows], q[None, :], k, "l2", ids=rows)[1][0].tolist()


def test_settings_take_the_backends_floors_unless_the_caller_set_them() -> None:
    backend = MemoryBackend()
    backend.planner_defaults = {"rerank_floor_mult": 7, "deepen": 0.0}
    q = backend.xb[0]
    s = _prepare(backend, q).settings
    assert s.rerank_floor_mult == 7 and s.deepen == 0.0 and s.hnsw_ef_floor == 128
    mine = PlannerSettings(rerank_floor_mult=3, recall_target=0.9)
    s = _prepare(backend, q, settings=mine).settings
    assert s.rerank_floor_mult == 3 and s.deepen == 0.0 and s.recall_target == 0.9


def test_two_stage_deepens_until_the_k_best_are_early_candidates() -> None:
    backend = MemoryBackend(lists=False, noise=1.5)  # codes that rank poorly
    q = backend.xb[5] + 0.1
    settings = PlannerSettings(exact_max_rows=10, rerank_floor_mult=1, recall_target=0.3)
    prep = _prepare(backend, q, settings=settings)
    p = engine.make_plan(prep, 10, "compressed")
    r = engine.knn(prep, p, 10)
    assert r.ids.tolist() == _truth(backend, q, 10)
    assert any(c.startswith("exact_of") for c in backend.calls)
    assert p.params["reranked"] > p.params["rerank"] and "reranked" in r.explain()
    # without deepening the engine asks for no reserve and reranks what it planned
    backend.calls.clear()
    prep = _prepare(backend, q, settings=PlannerSettings(exact_max_rows=10, deepen=0))
    p = engine.make_plan(prep, 10, "compressed")
    engine.knn(prep, p, 10)
    depth = p.params["rerank"]
    assert backend.calls == [f"candidates:{depth}:{depth}"] and p.params["reranked"] == depth


def test_ivf_widens_then_falls_back_to_exact() -> None:
    backend = MemoryBackend(noise=0.0)
    q = backend.xb[7]
    prep = _prepare(backend, q, filter={"cat": "rare"}, settings=PlannerSettings(exact_max_rows=10))
    p = engine.make_plan(prep, 10, "ivf")
    r = engine.knn(prep, p, 10)
    assert r.ids.tolist() == _truth(backend, q, 10, Eq("cat", "rare"))
    assert r.strategy == "ivf" and r.complete
    # the lists hold none of the rows (an index out of date): widen, then scan exactly
    backend.drop_lists = set(range(NLIST))
    common = {"cat": "common"}
    prep = _prepare(backend, q, filter=common, settings=PlannerSettings(exact_max_rows=10))
    p = engine.make_plan(prep, 10, "ivf")
    assert p.params["nprobe"] < NLIST
    r = engine.knn(prep, p, 10)
    assert r.strategy == "ivf+exact" and r.ids.tolist() == _truth(
        backend, q, 10, Eq("cat", "common")
    )
    text = r.explain()
    assert f"widened to {NLIST} lists" in text and "fell back to an exact scan" in text
    # with a scan budget the search says what it found instead of falling back
    prep = _prepare(backend, q, filter={"cat": "rare"}, settings=PlannerSettings(exact_max_rows=10))
    r = engine.knn(prep, engine.make_plan(prep, 10, "ivf"), 10, max_scan_rows=50)
    assert not r.complete and "scan budget" in r.reason and len(r) == 0


def test_filtered_probe_counts_matching_rows_per_list() -> None:
    backend = MemoryBackend(noise=0.0)
    backend.planner_defaults = {"ivf_filter_lists": True}
    q = backend.xb[3]
    s = PlannerSettings(exact_max_rows=10)
    prep = _prepare(backend, q, filter={"cat": "rare"}, settings=s)
    p = engine.make_plan(prep, 10, "ivf")
    engine.knn(prep, p, 10)
    assert any("the filter keeps" in step for step in p.steps)


def test_hnsw_ef_floor_budget_and_calibration() -> None:
    caps = Capabilities(n_rows=N, hnsw_index="ix", hnsw_record={
        "metric": "l2", "queries": "perturbed rows", "ef_search": {"40": 0.9, "300": 0.996}})  # fmt: skip
    s = PlannerSettings().resolve()
    req = Request("t", "v", np.zeros(D, np.float32), 10, "l2", None)
    p = Plan("hnsw", "test", {"ef_search": 50})
    assert hnsw_ef(p, caps, req, s) == 300 and "raised to 300" in p.explain()
    p = Plan("hnsw", "test", {"ef_search": 50})
    assert hnsw_ef(p, caps, req, PlannerSettings(hnsw_calibrated_floor=False).resolve()) == 128
    budget = Request("t", "v", req.q, 10, "l2", None, max_scan_rows=60)
    p = Plan("hnsw", "test", {"ef_search": 500})
    assert hnsw_ef(p, caps, budget, s) == 60 and "lowered to the scan budget" in p.explain()
    p = Plan("hnsw", "test", {"ef_search": 64, "ef_floor": False})
    assert hnsw_ef(p, caps, req, s) == 64 and p.steps == []


def test_a_forced_strategy_the_table_lacks_is_named() -> None:
    backend = MemoryBackend(lists=False)
    prep = _prepare(backend, backend.xb[0])
    with pytest.raises(ValueError, match="needs an HNSW index"):
        engine.make_plan(prep, 10, "hnsw")
