"""The contract between the search core and a database backend.

The core (:mod:`vecext.search`) plans and orchestrates (:mod:`vecext.search.engine`);
a backend says what a table offers (:class:`TableInfo`), counts, and executes the
primitive steps of a :class:`~vecext.search.planner.Plan` (see :class:`Backend`). The
core never imports a backend: backends register themselves
(:mod:`vecext.search.registry`) and are found by the connection they are given.

Everything that crosses the line is typed here, so that neither side reads the
other's private dictionaries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from vecext.errors import VecextError

if TYPE_CHECKING:
    from vecext.relevance.base import RelevanceMethod
    from vecext.search.filters import Predicate
    from vecext.search.planner import Capabilities, Plan
    from vecext.search.settings import PlannerSettings
    from vecext.search.sources import CodeSource, IndexSource

#: Metrics every backend supports.
METRICS = ("l2", "ip", "cosine")


class SearchError(VecextError, ValueError):
    """A search request that cannot run: bad k, query, metric, table or column."""


class FactsChanged(Exception):
    """The table facts a search was planned from were not current (a backend that
    :attr:`SqlBackend.speculate` s checks them with its first statement): the rows are
    discarded and :func:`vecext.search.search` plans again from fresh facts. Never
    reaches the caller."""


class TableRef(Protocol):
    """A table as a backend resolved it (each backend has its own class: PostgreSQL's
    carries the OID, DuckDB's the database). ``str(ref)`` is ``schema.name``."""

    @property
    def schema(self) -> str: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class CodeColumn:
    """A compressed column a search can rank candidates by (both backends)."""

    name: str
    codec: str
    kind: str
    fingerprint: str
    metric: str
    #: the backend's type of the stored codes (``bit(384)``, ``bytea``, ``UTINYINT[48]``)
    code_type: str
    code_size: int = 0
    list_column: str | None = None
    ivf_codec: str | None = None
    ivf_fingerprint: str | None = None
    nlist: int = 0
    calibration: dict[str, Any] | None = None
    #: where the codes live when not in the user's table (a side store), backend-specific
    store: Any = None
    #: the list ids (``list_column``) are a column of ``store``, not of the user's table
    lists_in_store: bool = False
    #: columns of the user's table mirrored into ``store``, ``(table column, store
    #: column)``: a filter on these only runs on the store (PostgreSQL catalog 0.6.0)
    mirrors: tuple[tuple[str, str], ...] = ()
    #: the catalog row's state a backend's code cache keys on (DuckDB: database path,
    #: row id, creation time, refresh mark), read with the rest of the table's facts
    version: Any = None


@dataclass
class TableInfo:
    """What a backend knows about one vector column of one table, for one metric."""

    table: str  # as the caller spelled it
    column: str  # the stored column name
    dim: int
    id_column: str
    columns: dict[str, str]  # every column -> its type text
    caps: Capabilities
    ref: TableRef
    metric: str
    #: the vector column's type family (``vector``/``halfvec``; ``FLOAT``/``DOUBLE``)
    column_type: str
    #: usable compressed columns by name, best first
    codes: dict[str, CodeColumn] = field(default_factory=dict)
    #: usable native indexes by name (the backend's own description of each)
    indexes: dict[str, Any] = field(default_factory=dict)
    #: every native index on the column, usable or not (tenants pick theirs from these)
    all_indexes: list[Any] = field(default_factory=list)
    #: why registered codes or indexes cannot serve this search
    unusable: list[str] = field(default_factory=list)
    #: what the backend wants shown in ``explain()``
    notes: list[str] = field(default_factory=list)
    #: a declared tenant column: every search must then name one tenant
    tenant_column: str | None = None
    #: other choices for ``search(using=...)``: code column or index name -> capabilities
    alternatives: dict[str, Capabilities] = field(default_factory=dict)
    #: what only the backend reads (DuckDB: where its vector cache finds the table)
    backend_facts: Any = None

    @property
    def code(self) -> CodeColumn | None:
        """The compressed column the current capabilities rank by."""
        name = self.caps.code_column
        return self.codes.get(name) if name else None


@dataclass
class Request:
    """One search as the core validated it."""

    table: str
    column: str
    q: np.ndarray  # float32 (d,)
    k: int
    metric: str
    pred: Predicate | None
    max_scan_rows: int | None = None
    tenant: Any = None
    #: the caller's recall target (backends that tune beyond the plan read it)
    recall_target: float = 0.95


@dataclass
class Hits:
    """What a backend returns for one plan: row ids, float32 distances (ascending), and
    the rows the plan read."""

    ids: np.ndarray
    distances: np.ndarray
    scanned: int

    def __iter__(self):  # type: ignore[no-untyped-def]
        # (ids, distances, scanned) unpacking, as backends returned before Hits existed
        return iter((self.ids, self.distances, self.scanned))


@dataclass(frozen=True)
class Stage:
    """A two-stage search's candidate stage as the engine asks for it: rank by ``code``,
    rerank the first ``depth`` exactly, return up to ``dmax`` (the reserve deepening
    draws from), only among the rows of the IVF ``lists`` when given."""

    code: CodeColumn
    depth: int
    dmax: int
    lists: np.ndarray | None = None


@dataclass
class Candidates:
    """What a backend's candidate stage returns (:meth:`Backend.candidates`).

    ``ids`` are in candidate order: best first by code distance, the order in which
    progressive deepening extends the rerank. The first ``reranked`` of them carry
    their exact distance in ``dist`` (float64, NaN after); when all are reranked the
    order is free. ``lists`` holds each row's IVF list id (-1 unknown, or no lists).
    ``rows_read`` is the rows the stage read (the rows passing the filter in the
    probed lists), or ``None`` when not counted (the engine then estimates it).
    """

    ids: list[Any]
    dist: np.ndarray
    lists: np.ndarray
    rows_read: int | None
    reranked: int


@runtime_checkable
class Backend(Protocol):
    """A database adapter as the search core uses it.

    A class implementing it registers itself with :func:`vecext.search.registry.register`
    (or the ``vecext.backends`` entry point) and is then chosen for every connection its
    :meth:`accepts` recognises.

    The search engine (:mod:`vecext.search.engine`) decides what runs: the plan, its
    floors, how many candidates, when to deepen or widen, when to fall back. A backend
    says what a table offers and executes primitive steps, each one statement over its
    SQL: :meth:`exact`, :meth:`hnsw`, :meth:`candidates`, :meth:`exact_of`, and for IVF
    :meth:`probe_order` and :meth:`list_counts`. Every step restricts itself to the
    rows with a vector that pass ``req.pred`` (and ``req.max_scan_rows`` of them, when
    set); distances are exact distances in ``req.metric`` unless said otherwise.
    """

    name: ClassVar[str]
    #: this backend's values of the floors in :class:`~vecext.search.planner.PlannerSettings`
    #: (a setting the caller leaves unset takes it)
    planner_defaults: ClassVar[Mapping[str, Any]]
    #: the driver's exception classes: a search turns them into :class:`SearchError`
    driver_errors: ClassVar[tuple[type[Exception], ...]]

    @classmethod
    def accepts(cls, conn: Any) -> bool:
        """Whether ``conn`` is a connection of this backend (without importing drivers)."""
        ...

    def table_info(self, table: str, column: str, metric: str) -> TableInfo:
        """What ``table.column`` offers a search by ``metric``; :class:`SearchError` if
        the table or column is unusable."""
        ...

    def for_tenant(self, info: TableInfo, tenant: Any) -> TableInfo:
        """The table as one tenant sees it (its own partial indexes, its row count)."""
        ...

    def estimate_matching(self, info: TableInfo, pred: Predicate | None) -> float:
        """Rows passing ``pred`` (an estimate is fine; exact when small)."""
        ...

    def count_matching(self, info: TableInfo, pred: Predicate | None, limit: int) -> int:
        """Rows passing ``pred``, counted up to ``limit``."""
        ...

    def load_adapter(self, name: str) -> RelevanceMethod:
        """A relevance adapter saved in this database's catalog."""
        ...

    # -- primitive steps ---------------------------------------------------------------

    def exact(self, info: TableInfo, req: Request, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, float32 distances)`` of the ``req.k`` nearest rows, scanned exactly
        (never through an approximate index), ordered by (distance, id)."""
        ...

    def hnsw(
        self, info: TableInfo, req: Request, plan: Plan, ef: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, float32 exact distances)`` of at most ``req.k`` rows from the native
        index ``info.caps.hnsw_index`` walked with ``ef`` candidates (``plan.params``
        may say more, e.g. pgvector's ``iterative_scan``), best first."""
        ...

    def candidates(self, info: TableInfo, req: Request, plan: Plan, stage: Stage) -> Candidates:
        """The candidate stage of a two-stage search (see :class:`Stage` and
        :class:`Candidates`)."""
        ...

    def exact_of(self, info: TableInfo, req: Request, ids: list[Any]) -> np.ndarray:
        """Exact distances of the rows ``ids`` (a rerank), aligned with ``ids``."""
        ...

    def probe_order(self, info: TableInfo, req: Request, code: CodeColumn) -> np.ndarray:
        """Every IVF list id of ``code``, nearest centroid to the query first."""
        ...

    def list_counts(self, info: TableInfo, req: Request, code: CodeColumn) -> dict[int, int]:
        """Rows passing ``req.pred`` in each IVF list of ``code`` (list id -> rows)."""
        ...

    # -- calibration (vecext.search.calibrate) -------------------------------------------

    def code_source(self, table: str, code_column: str) -> CodeSource:
        """The rows, codec and record store of a compressed column to calibrate."""
        ...

    def index_source(self, table: str, index: str, metric: str | None) -> IndexSource:
        """The search target, rows and record store of an HNSW index to calibrate
        (``metric``: the searches', ``None`` for the index's own)."""
        ...


class SqlBackend(ABC):
    """What the bundled backends share: the connection they wrap, which connections they
    take (``connection_type``, set by the subclass, which imports its driver), floors
    that default to :data:`~vecext.search.settings.DEFAULT_FLOORS`, and the primitive
    steps, each delegated to the backend's ``statements`` module (its SQL): a
    ``Context(conn, info, req, plan, where, where_params)`` class and the functions
    ``exact(ctx)``, ``hnsw(ctx, ef)``, ``candidates(ctx, stage)``, ``exact_of(ctx, ids)``,
    ``probe_order(ctx, code)`` and ``list_counts(ctx, code)``; and calibration, delegated
    to its ``calibration`` module's ``code_source(backend, table, code_column)`` and
    ``index_source(backend, table, index, metric)``. A subclass says how a filter
    becomes its WHERE clause (:meth:`where`)."""

    name: ClassVar[str]
    planner_defaults: ClassVar[Mapping[str, Any]] = {}
    #: :meth:`estimate_matching` is an estimate (not a count): the engine counts the
    #: matching rows, bounded, when the estimate is near the exact-scan threshold
    refine_estimates: ClassVar[bool] = False
    driver_errors: ClassVar[tuple[type[Exception], ...]] = ()
    connection_type: ClassVar[type]
    statements: ClassVar[Any]
    calibration: ClassVar[Any]
    #: set by :func:`vecext.search.search` for a search it can plan again: the backend
    #: may plan from the facts it kept from an earlier search and check that they are
    #: still current with the search's first statement (raising :class:`FactsChanged`
    #: when not, before anything of the statement is used)
    speculate: bool = False

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def facts_changed(self) -> bool:
        """Whether facts this search planned from without checking them have changed
        (checked now; ``False`` when there are none)."""
        return False

    def guard(self, info: TableInfo) -> Callable[[], None] | None:
        """For a prepared search (:mod:`vecext.search.prepared`), read now: a function
        that makes the next search's first statement carry the check of what the kept
        facts must never miss (which raises :class:`FactsChanged`); ``None`` when the
        backend has none (the prepared search then plans every query as
        :func:`vecext.search.search` does)."""
        return None

    @classmethod
    def accepts(cls, conn: Any) -> bool:
        return isinstance(conn, cls.connection_type)

    @abstractmethod
    def where(self, info: TableInfo, pred: Predicate | None) -> tuple[Any, list[Any]]:
        """The WHERE body every step and count uses (a vector, and ``pred``), and its
        parameters."""

    def _ctx(self, info: TableInfo, req: Request, plan: Plan | None) -> Any:
        where, params = self.where(info, req.pred)
        return self.statements.Context(self.conn, info, req, plan, where, params)

    def exact(self, info: TableInfo, req: Request, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
        return self.statements.exact(self._ctx(info, req, plan))  # type: ignore[no-any-return]

    def hnsw(
        self, info: TableInfo, req: Request, plan: Plan, ef: int
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.statements.hnsw(self._ctx(info, req, plan), ef)  # type: ignore[no-any-return]

    def candidates(self, info: TableInfo, req: Request, plan: Plan, stage: Stage) -> Candidates:
        return self.statements.candidates(self._ctx(info, req, plan), stage)  # type: ignore[no-any-return]

    def exact_of(self, info: TableInfo, req: Request, ids: list[Any]) -> np.ndarray:
        return self.statements.exact_of(self._ctx(info, req, None), ids)  # type: ignore[no-any-return]

    def probe_order(self, info: TableInfo, req: Request, code: CodeColumn) -> np.ndarray:
        return self.statements.probe_order(self._ctx(info, req, None), code)  # type: ignore[no-any-return]

    def list_counts(self, info: TableInfo, req: Request, code: CodeColumn) -> dict[int, int]:
        return self.statements.list_counts(self._ctx(info, req, None), code)  # type: ignore[no-any-return]

    def code_source(self, table: str, code_column: str) -> CodeSource:
        return self.calibration.code_source(self, table, code_column)  # type: ignore[no-any-return]

    def index_source(self, table: str, index: str, metric: str | None) -> IndexSource:
        return self.calibration.index_source(self, table, index, metric)  # type: ignore[no-any-return]


@dataclass
class Step:
    """One plan being executed: where, for what, and with which settings."""

    backend: Backend
    info: TableInfo
    req: Request
    plan: Plan
    settings: PlannerSettings
