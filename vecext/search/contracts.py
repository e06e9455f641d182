"""The contract between the search core and a database backend.

The core (:mod:`vecext.search`) plans and orchestrates; a backend says what a
table offers (:class:`TableInfo`), counts, and runs one :class:`~vecext.search.planner.Plan`
at a time. The core never imports a backend: backends register themselves
(:mod:`vecext.search.registry`) and are found by the connection they are given.

Everything that crosses the line is typed here, so that neither side reads the
other's private dictionaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from vecext.errors import VecextError

if TYPE_CHECKING:
    from vecext.relevance.base import RelevanceMethod
    from vecext.search.filters import Predicate
    from vecext.search.planner import Capabilities, Plan

#: Metrics every backend supports.
METRICS = ("l2", "ip", "cosine")


class SearchError(VecextError, ValueError):
    """A search request that cannot run: bad k, query, metric, table or column."""


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


@runtime_checkable
class Backend(Protocol):
    """A database adapter as the search core uses it.

    A class implementing it registers itself with :func:`vecext.search.registry.register`
    (or the ``vecext.backends`` entry point) and is then chosen for every connection its
    :meth:`accepts` recognises.
    """

    name: ClassVar[str]

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

    def run(self, info: TableInfo, req: Request, plan: Plan) -> Hits:
        """Execute ``plan``: ids and exact distances of at most ``req.k`` rows, best first."""
        ...

    def load_adapter(self, name: str) -> RelevanceMethod:
        """A relevance adapter saved in this database's catalog."""
        ...
