"""Which benchmark methods exist, on which backend, and how to plug new ones in.

A *method* is one way of answering "the k nearest rows to this query vector that
match this filter" on one backend. The harness (:mod:`vecext.tools.bench.runner`) owns
the data, the ground truth, the timing and the metrics; a method only builds what
it needs and answers queries. Methods are registered under ``(name, backend)``::

    from vecext.tools.bench import BenchContext, BaseMethod, register_method

    class MyPQ(BaseMethod):
        def __init__(self, ctx: BenchContext) -> None:
            super().__init__(ctx, params={"M": 48}, bytes_per_vector=48)

        def build(self) -> float | None:
            ...  # train, encode, create indexes in ctx.conn on ctx.table
            return None  # harness times build(); return seconds only when reusing

        def search(self, q: np.ndarray) -> np.ndarray:
            ...  # int64 row ids, best first, at most ctx.k, all matching ctx.filter

        def storage_bytes(self) -> int:
            ...

    register_method("vecext-pq", "postgres", MyPQ)

vecext's own method names are reserved here (:data:`OUR_METHODS`); asking for one
that nobody has registered yet is a clear error, not a crash. Modules listed in
:data:`PLUGIN_MODULES` are imported before a method is looked up, so a plug-in
registers itself by adding its module path there (or by calling
:func:`register_method` before :func:`vecext.tools.bench.run_bench`).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from vecext.tools.bench.errors import BenchError

if TYPE_CHECKING:
    from vecext.tools.bench.context import BenchContext

__all__ = [
    "BACKENDS",
    "BASELINE_METHODS",
    "OUR_METHODS",
    "PLUGIN_MODULES",
    "BaseMethod",
    "BenchError",
    "BenchMethod",
    "MethodFactory",
    "MethodNotAvailable",
    "available_methods",
    "get_factory",
    "register_method",
]

BACKENDS = ("postgres", "duckdb", "faiss")

#: vecext's own methods: names reserved, implementations plug in later.
OUR_METHODS = ("vecext-pq", "vecext-ivfpq", "vecext-binary", "vecext-auto")

#: Baselines implemented in this package, and the backends each runs on.
BASELINE_METHODS: dict[str, tuple[str, ...]] = {
    "exact": ("postgres", "duckdb", "faiss"),
    "pgvector-hnsw": ("postgres",),
    "pgvector-halfvec-hnsw": ("postgres",),
    "pgvector-bit-rerank": ("postgres",),
    "vss-hnsw": ("duckdb",),
    "faiss-pq": ("faiss",),
    "faiss-ivfpq": ("faiss",),
}

#: Modules imported (once) before methods are looked up; each registers its methods.
PLUGIN_MODULES: list[str] = [
    "vecext.tools.bench.pg_methods",
    "vecext.tools.bench.duck_methods",
    "vecext.tools.bench.faiss_methods",
    "vecext.tools.bench.duck_vecext",  # vecext-* on duckdb
    "vecext.tools.bench.pg_vecext",  # vecext-* on postgres
    "vecext.tools.bench.lance_methods",  # LanceDB peers beside duckdb (extra [bench])
    "vecext.tools.bench.pg_codes",  # vecext-hnsw-* on postgres (HNSW over code stores)
]


class MethodNotAvailable(BenchError):
    """The method name is known but no implementation is registered for the backend."""


@runtime_checkable
class BenchMethod(Protocol):
    """What a method factory returns. The harness calls, in order:

    ``build()`` once (timed; return ``None``, or the recorded seconds of a build
    that was reused), ``search(q)`` once per query and pass (timed per call; ``q``
    is a float32 ``(d,)`` unit vector; return int64 row ids best first, at most
    ``ctx.k`` of them, every one matching ``ctx.filter``), ``storage_bytes()``
    after the searches, and ``close()`` last (also after an error).

    ``params`` (JSON-serialisable) and ``bytes_per_vector`` (what the candidate
    stage reads per row) are copied into the result.
    """

    params: dict[str, Any]
    bytes_per_vector: float

    def build(self) -> float | None: ...

    def search(self, q: np.ndarray) -> np.ndarray: ...

    def storage_bytes(self) -> int: ...

    def close(self) -> None: ...


#: ``factory(ctx) -> BenchMethod``; a class whose ``__init__`` takes the context is one.
MethodFactory = Callable[["BenchContext"], BenchMethod]


class BaseMethod(ABC):
    """Convenience base: keeps the context, the params and a no-op ``close``."""

    def __init__(
        self, ctx: BenchContext, *, params: dict[str, Any] | None = None, bytes_per_vector: float
    ) -> None:
        self.ctx = ctx
        self.params: dict[str, Any] = dict(params or {})
        self.bytes_per_vector = float(bytes_per_vector)

    @abstractmethod
    def build(self) -> float | None:
        """Build what the method needs; seconds spent (None: nothing to build)."""

    @abstractmethod
    def search(self, q: np.ndarray) -> np.ndarray:
        """Ids of the nearest rows for one query, best first."""

    @abstractmethod
    def storage_bytes(self) -> int:
        """Bytes the database reports for the method's vector data and indexes."""

    def close(self) -> None:
        return None

    def disk_bytes(self) -> int | None:
        """Bytes on disk of what the method searches (``None``: not measured)."""
        return None


_REGISTRY: dict[tuple[str, str], MethodFactory] = {}
_loaded: set[str] = set()


def register_method(
    name: str, backend: str, factory: MethodFactory, *, replace: bool = False
) -> None:
    """Register ``factory`` as method ``name`` on ``backend``.

    Raises ``ValueError`` for an unknown backend, or when ``(name, backend)`` is
    registered already and ``replace`` is false.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if not name or name != name.strip():
        raise ValueError(f"bad method name {name!r}")
    key = (name, backend)
    if key in _REGISTRY and not replace and _REGISTRY[key] is not factory:
        raise ValueError(f"method {name!r} is already registered on backend {backend!r}")
    _REGISTRY[key] = factory


def _load_plugins() -> None:
    for module in PLUGIN_MODULES:
        if module not in _loaded:
            importlib.import_module(module)
            _loaded.add(module)


def available_methods(backend: str | None = None) -> list[tuple[str, str]]:
    """Registered ``(name, backend)`` pairs, sorted."""
    _load_plugins()
    return sorted(k for k in _REGISTRY if backend is None or k[1] == backend)


def get_factory(name: str, backend: str) -> MethodFactory:
    """The factory of ``name`` on ``backend``, or a :class:`BenchError` that says why not."""
    if backend not in BACKENDS:
        raise BenchError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    _load_plugins()
    factory = _REGISTRY.get((name, backend))
    if factory is not None:
        return factory
    if name in OUR_METHODS:
        raise MethodNotAvailable(
            f"method {name!r} is not available yet on backend {backend!r}: vecext's own methods "
            "plug into the harness with vecext.tools.bench.register_method(name, backend, factory)"
        )
    elsewhere = sorted(b for (n, b) in _REGISTRY if n == name)
    if elsewhere:
        raise BenchError(
            f"method {name!r} runs on backend {', '.join(elsewhere)}, not {backend!r}; "
            f"methods on {backend!r}: {', '.join(n for n, _ in available_methods(backend))}"
        )
    known = sorted({n for n, _ in _REGISTRY} | set(OUR_METHODS))
    raise BenchError(f"unknown method {name!r}; known methods: {', '.join(known)}")
