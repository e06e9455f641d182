"""Alembic operations for pgvector indexes: ``op.create_vector_index`` and its reverse
``op.drop_vector_index`` (implemented in :mod:`vecext.alembic.impl`)."""

from __future__ import annotations

from typing import Any

from alembic.operations import MigrateOperation, Operations

from vecext.alembic.base import MigrationError
from vecext.alembic.base import irreversible as _irreversible

#: pgvector index methods, the metrics they order by, and what the index stores
#: (the column, its ``halfvec`` cast, or ``binary_quantize`` bits: Hamming)
INDEX_METHODS = ("hnsw", "ivfflat")
INDEX_METRICS = ("l2", "ip", "cosine")
INDEX_STORAGES = ("vector", "halfvec", "bit")
INDEX_OPTIONS = ("m", "ef_construction", "lists", "max_memory")
#: keyword arguments of CreateVectorIndexOp besides its index options
_NAMED = ("method", "metric", "storage", "concurrently", "schema")


@Operations.register_operation("create_vector_index")
class CreateVectorIndexOp(MigrateOperation):
    """A pgvector HNSW or IVFFlat index on a vector column or a quantized expression.

    ``storage="halfvec"`` indexes ``column::halfvec(d)``, ``storage="bit"``
    ``binary_quantize(column)::bit(d)`` (Hamming: a candidate stage to rerank).
    ``options``: ``m``, ``ef_construction`` (HNSW), ``lists`` (IVFFlat) and
    ``max_memory`` (bytes: refuse a build that would need more). The build is
    done by :func:`vecext.postgres.indexes.create_vector_index`, which sizes
    ``maintenance_work_mem`` from its memory estimate; the estimate is logged.
    """

    def __init__(
        self,
        name: str,
        table: str,
        column: str,
        *,
        method: str = "hnsw",
        metric: str = "cosine",
        storage: str = "vector",
        concurrently: bool = False,
        schema: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        if method not in INDEX_METHODS:
            raise MigrationError(
                f"index {name!r}: unknown method {method!r}; use one of {', '.join(INDEX_METHODS)}"
            )
        if metric not in INDEX_METRICS:
            raise MigrationError(
                f"index {name!r}: unknown metric {metric!r}; use one of {', '.join(INDEX_METRICS)}"
            )
        if storage not in INDEX_STORAGES:
            raise MigrationError(
                f"index {name!r}: storage must be one of {', '.join(INDEX_STORAGES)}, "
                f"got {storage!r}"
            )
        for key, value in (options or {}).items():
            if key not in INDEX_OPTIONS:
                raise MigrationError(
                    f"index {name!r}: unknown option {key!r}; use {', '.join(INDEX_OPTIONS)}"
                )
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise MigrationError(
                    f"index {name!r}: {key} must be a positive integer, got {value!r}"
                )
        self.name = name
        self.table = table
        self.column = column
        self.method = method
        self.metric = metric
        self.storage = storage
        self.concurrently = concurrently
        self.schema = schema
        self.options = dict(options or {})

    @classmethod
    def from_arguments(
        cls, name: str, table: str, column: str, **kwargs: Any
    ) -> CreateVectorIndexOp:
        """The operation of ``op.create_vector_index(name, table, column, **kwargs)``:
        this class's keyword arguments, and index options (``m=16``) for the rest."""
        named = {k: kwargs.pop(k) for k in _NAMED if k in kwargs}
        return cls(name, table, column, **named, options=kwargs)

    @classmethod
    def create_vector_index(
        cls, operations: Operations, name: str, table: str, column: str, **kwargs: Any
    ) -> Any:
        """Create index ``name`` on ``table.column`` (``CONCURRENTLY`` when asked); the
        keyword arguments are this class's, and any others are index options (``m=16``)."""
        return operations.invoke(cls.from_arguments(name, table, column, **kwargs))

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "metric": self.metric}
        if self.storage != "vector":
            out["storage"] = self.storage
        if self.concurrently:
            out["concurrently"] = True
        if self.schema:
            out["schema"] = self.schema
        out.update(self.options)
        return out

    def reverse(self) -> DropVectorIndexOp:
        return DropVectorIndexOp(
            self.name, schema=self.schema, concurrently=self.concurrently, recreate=self
        )

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("create_vector_index", self.schema, self.name)


@Operations.register_operation("drop_vector_index")
class DropVectorIndexOp(MigrateOperation):
    """Drop a vector index (``CONCURRENTLY`` when asked); the table is untouched."""

    def __init__(
        self,
        name: str,
        *,
        schema: str | None = None,
        concurrently: bool = False,
        recreate: CreateVectorIndexOp | None = None,
    ) -> None:
        self.name = name
        self.schema = schema
        self.concurrently = concurrently
        self.recreate = recreate

    @classmethod
    def drop_vector_index(
        cls,
        operations: Operations,
        name: str,
        *,
        schema: str | None = None,
        concurrently: bool = False,
        table: str | None = None,
        column: str | None = None,
        **create_args: Any,
    ) -> Any:
        """Drop index ``name``; pass ``table``, ``column`` (and ``create_vector_index``'s
        other arguments) to make the drop reversible."""
        recreate = None
        if table is not None and column is not None:
            recreate = CreateVectorIndexOp.from_arguments(
                name, table, column, concurrently=concurrently, schema=schema, **create_args
            )
        return operations.invoke(
            cls(name, schema=schema, concurrently=concurrently, recreate=recreate)
        )

    def reverse(self) -> CreateVectorIndexOp:
        if self.recreate is None:
            raise _irreversible(f"drop_vector_index({self.name!r})", "table= and column=")
        return self.recreate

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("drop_vector_index", self.schema, self.name)


__all__ = [
    "INDEX_METHODS",
    "INDEX_METRICS",
    "INDEX_OPTIONS",
    "INDEX_STORAGES",
    "CreateVectorIndexOp",
    "DropVectorIndexOp",
]
