"""What vecext's own bench methods share on both backends.

A method is one search strategy of :func:`vecext.search.search` (``compressed``,
``ivf``, ``exact`` or the planner's ``auto``) on one kind of code column. The
backends differ in how they set the column up (trained and calibrated in place on
PostgreSQL, restored from an on-disk cache in DuckDB's fresh in-memory database)
and in how they measure storage; the search, the bytes read per row and the
registration are the same.
"""

from __future__ import annotations

from abc import abstractmethod
from functools import partial
from typing import Any

import numpy as np

from vecext.search import SearchResult, prepare_search, search
from vecext.tools.bench.context import BenchContext
from vecext.tools.bench.registry import BaseMethod, register_method

__all__ = ["FIXED_METHODS", "PreparedOption", "VecextMethod", "register_fixed"]

#: vecext's methods with a fixed strategy: name -> (strategy, code kind)
FIXED_METHODS = {
    "vecext-pq": ("compressed", "pq"),
    "vecext-binary": ("compressed", "binary"),
    "vecext-ivfpq": ("ivf", "pq"),
}


class PreparedOption:
    """A method's ``@prepared=1`` option: one :func:`~vecext.search.prepare_search` for
    every query (the plan kept, each query checked by the backend's guard instead of the
    table stamp; DuckDB plans every call), made at the first query, after ``build()``."""

    def __init__(self, ctx: BenchContext, params: dict[str, Any]) -> None:
        self.on = bool(ctx.option("prepared", int, 0))
        if self.on:
            params["prepared"] = 1
        self._ps: Any = None

    def search(self, conn: Any, table: str, k: int, q: np.ndarray, **args: Any) -> SearchResult:
        if not self.on:
            return search(conn, table, "embedding", q, k, **args)
        if self._ps is None:
            self._ps = prepare_search(conn, table, "embedding", k, **args)
        return self._ps(q)  # type: ignore[no-any-return]


class VecextMethod(BaseMethod):
    """``search(..., strategy=strategy, using=<the kind's code column>)`` with the run's
    filter; ``kind=None`` searches the float vectors only (no code column)."""

    def __init__(self, ctx: BenchContext, strategy: str = "auto", kind: str | None = None) -> None:
        self.strategy, self.kind = strategy, kind
        # codes of d / 8 bytes (PQ with 8 dimensions per byte, or one bit per dimension)
        bpv = ctx.d / 8 if kind else 4 * ctx.d
        if strategy == "ivf":
            bpv += 4  # the list id
        #: method option: name@recall=0.99
        self.recall = float(ctx.option("recall", float, 0.95))
        params: dict[str, Any] = {"strategy": strategy}
        if self.recall != 0.95:
            params["recall_target"] = self.recall
        super().__init__(ctx, params=params, bytes_per_vector=bpv)
        assert ctx.conn is not None and ctx.table is not None
        self.conn: Any = ctx.conn
        self.table: str = ctx.table
        self.using: str | None = None
        self.settings: Any = None
        self.prepared = PreparedOption(ctx, self.params)

    def build(self) -> float | None:
        seconds = self.prepare()
        if self.kind:
            self.using, s = self.ensure_codes(self.kind)
            seconds += s
        if self.strategy == "ivf":
            assert self.using is not None
            seconds += self.ensure_lists(self.using)
        return seconds

    def search(self, q: np.ndarray) -> np.ndarray:
        r = self.prepared.search(
            self.conn, self.table, self.ctx.k, q, strategy=self.strategy,
            filter=self.ctx.filter, using=self.using, recall_target=self.recall,
            settings=self.settings,
        )  # fmt: skip
        self.note(r)
        return np.asarray(r.ids, dtype=np.int64)

    def prepare(self) -> float:
        """Set-up every method of the backend needs first; seconds it took."""
        return 0.0

    @abstractmethod
    def ensure_codes(self, kind: str) -> tuple[str, float]:
        """The calibrated code column of ``kind`` and the seconds its build took."""

    @abstractmethod
    def ensure_lists(self, column: str) -> float:
        """IVF lists over ``column`` (and its calibration with nprobe); seconds."""

    @abstractmethod
    def note(self, r: SearchResult) -> None:
        """Record what the search did in ``params`` (copied into the result)."""


def register_fixed(backend: str, cls: type[VecextMethod]) -> None:
    """Register :data:`FIXED_METHODS` on ``backend``, each as ``cls`` with its strategy."""
    for name, (strategy, kind) in FIXED_METHODS.items():
        register_method(name, backend, partial(cls, strategy=strategy, kind=kind))
