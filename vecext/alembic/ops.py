"""Alembic operations for vecext: one ``MigrateOperation`` per concept, each reversible.

=============================  =================================
operation                      reverse
=============================  =================================
``op.create_codec``            ``op.drop_codec``
``op.add_compressed_column``   ``op.drop_compressed_column``
``op.create_vector_index``     ``op.drop_vector_index``
``op.mirror_columns``          ``op.unmirror_columns``
=============================  =================================

Importing :mod:`vecext.alembic` registers them on ``alembic.op``; their
implementations live in :mod:`vecext.alembic.impl` and their autogenerate
renderers in :mod:`vecext.alembic.render`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from alembic.operations import MigrateOperation, Operations

from vecext.alembic import index_ops, mirror_ops
from vecext.alembic.base import MigrationError
from vecext.alembic.base import irreversible as _irreversible

# the index and mirror operations live in modules of their own; importing them here
# registers them with the others and keeps ``ops.CreateVectorIndexOp`` valid
from vecext.alembic.index_ops import *  # noqa: F403
from vecext.alembic.mirror_ops import *  # noqa: F403
from vecext.alembic.mirror_ops import check_columns
from vecext.catalog.rows import check_name

# ---------------------------------------------------------------------------
# codecs


@Operations.register_operation("create_codec")
class CreateCodecOp(MigrateOperation):
    """Train a codec on a sample of a table's vector column, or load a saved one.

    ``op.create_codec("items_pq", table="items", column="embedding", kind="pq",
    metric="cosine", sample=20000, m=48)`` or ``op.create_codec("items_pq",
    from_file="codecs/items_pq.npz")`` (bytes of ``vecext.codecs.dump_state``; a
    relative path is taken from the Alembic script directory).
    """

    def __init__(
        self,
        name: str,
        *,
        table: str | None = None,
        column: str | None = None,
        kind: str | None = None,
        metric: str = "cosine",
        sample: int | None = None,
        from_file: str | None = None,
        schema: str | None = None,
        seed: int = 0,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.name = check_name(name)
        self.table = table
        self.column = column
        self.kind = kind
        self.metric = metric
        self.sample = sample
        self.from_file = from_file
        self.schema = schema
        self.seed = seed
        self.params = dict(params or {})
        if from_file is None:
            missing = [
                n for n, v in (("table", table), ("column", column), ("kind", kind)) if not v
            ]
            if missing:
                raise MigrationError(
                    f"create_codec({name!r}) needs from_file=, or table=, column= and kind= "
                    f"to train on a sample; missing: {', '.join(missing)}"
                )
        elif any(v is not None for v in (kind, sample)) or self.params:
            raise MigrationError(
                f"create_codec({name!r}): from_file= loads a trained codec; kind=, sample= "
                "and codec parameters apply to training only"
            )

    @classmethod
    def create_codec(cls, operations: Operations, name: str, **kwargs: Any) -> Any:
        """Train (or load) codec ``name`` and save it in the vecext catalog; the keyword
        arguments are this class's, and any others are codec parameters (``m=48``)."""
        return operations.invoke(cls(name, **_split_params(kwargs)))

    def spec(self) -> dict[str, Any]:
        """Keyword arguments that recreate this operation (used by renderers and reverse)."""
        out: dict[str, Any] = {}
        for key in ("table", "column", "kind", "sample", "from_file", "schema"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.from_file is None:
            out["metric"] = self.metric
            if self.seed:
                out["seed"] = self.seed
        out.update(self.params)
        return out

    def reverse(self) -> DropCodecOp:
        return DropCodecOp(self.name, recreate=self)

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("create_codec", self.name)


@Operations.register_operation("drop_codec")
class DropCodecOp(MigrateOperation):
    """Drop a codec and its per-codec SQL functions from the catalog.

    Refused while a compressed column still uses it. Accepts the arguments of
    ``create_codec`` so that the drop can be reversed.
    """

    def __init__(self, name: str, *, recreate: CreateCodecOp | None = None) -> None:
        self.name = name
        self.recreate = recreate

    @classmethod
    def drop_codec(cls, operations: Operations, name: str, **create_args: Any) -> Any:
        """Drop codec ``name``; pass ``create_codec``'s arguments to make it reversible."""
        recreate = CreateCodecOp(name, **_split_params(create_args)) if create_args else None
        return operations.invoke(cls(name, recreate=recreate))

    def reverse(self) -> CreateCodecOp:
        if self.recreate is None:
            raise _irreversible(f"drop_codec({self.name!r})", "how to recreate the codec")
        return self.recreate

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("drop_codec", self.name)


def _split_params(kw: dict[str, Any]) -> dict[str, Any]:
    named = ("table", "column", "kind", "metric", "sample", "from_file", "schema", "seed")
    out = {k: v for k, v in kw.items() if k in named}
    params = {k: v for k, v in kw.items() if k not in named}
    if params:
        out["params"] = params
    return out


# ---------------------------------------------------------------------------
# compressed columns

#: where a compressed column keeps its codes (``None``: chosen when the migration runs)
LAYOUTS = ("store", "table")


def _check_layout(layout: str | None) -> None:
    if layout is not None and layout not in LAYOUTS:
        raise MigrationError(f"layout must be 'store' or 'table', got {layout!r}")


@Operations.register_operation("add_compressed_column")
class AddCompressedColumnOp(MigrateOperation):
    """Add a compressed column of a vector column (a code store, or a code column in the
    table), the triggers that keep it current, and fill it in batches."""

    def __init__(
        self,
        table: str,
        source_column: str,
        codec: str,
        code_column: str | None = None,
        *,
        batch_size: int = 10_000,
        backfill: bool = True,
        schema: str | None = None,
        layout: str | None = None,
        mirror: str | Iterable[str] | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise MigrationError(f"batch_size must be a positive integer, got {batch_size!r}")
        _check_layout(layout)
        self.mirror = _check_mirror(table, code_column, layout, mirror)
        self.table = table
        self.source_column = source_column
        self.codec = codec
        self.code_column = code_column
        self.batch_size = batch_size
        self.backfill = backfill
        self.schema = schema
        self.layout = layout

    @classmethod
    def add_compressed_column(cls, operations: Operations, *args: Any, **kwargs: Any) -> Any:
        """Add ``code_column`` (codes of ``source_column`` by ``codec``) to ``table``.

        The column gets a trigger that encodes on INSERT and UPDATE, and existing
        rows are encoded ``batch_size`` at a time (``backfill=False`` skips that;
        ``CALL vecext.backfill(...)`` later). Returns the code column's name. The
        arguments are this class's.

        ``layout="store"`` keeps the codes in a code store ``vecext."store_<id>"`` and
        leaves the table unaltered (catalog 0.4.0; see ``vecext.postgres.stores``);
        ``layout="table"`` adds the code column to the table (an UPDATE of every row).
        ``mirror=["category", ...]`` mirrors filter columns of the table into the new
        code store (catalog 0.6.0, :func:`vecext.postgres.mirror_columns`), before the
        backfill, which then writes their values with the codes; the table's declared
        tenant column is mirrored too, as ``vecext.postgres.add_compressed_column``
        does. ``op.mirror_columns`` mirrors more columns later.
        Autogenerate always writes ``layout=``: ``"store"`` for
        :func:`vecext.sqlalchemy.compressed` declarations, ``"table"`` for
        :func:`vecext.sqlalchemy.compressed_column` table columns. Without it (a
        hand-written call, or a migration generated before vecext wrote it) the
        layout is chosen when the migration runs: ``"table"`` on a catalog older than
        0.4.0 or when the migration's ``target_metadata`` declares ``code_column`` as
        a column of the table (what generated files without ``layout=`` came from:
        replayed on a new database they still make the column the model maps),
        else ``"store"``.
        """
        return operations.invoke(cls(*args, **kwargs))

    def reverse(self) -> DropCompressedColumnOp:
        if self.code_column is None:
            raise _irreversible(
                f"add_compressed_column({self.table!r}, {self.source_column!r}, {self.codec!r})",
                "the code column's name (code_column=)",
            )
        return DropCompressedColumnOp(
            self.table,
            self.code_column,
            schema=self.schema,
            source_column=self.source_column,
            codec=self.codec,
            batch_size=self.batch_size,
            layout=self.layout,
            mirror=self.mirror,
        )

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("add_compressed_column", self.schema, self.table, self.code_column)


@Operations.register_operation("drop_compressed_column")
class DropCompressedColumnOp(MigrateOperation):
    """Drop a compressed column (its code store or code column), its triggers and its
    catalog entry; the source column stays."""

    def __init__(
        self,
        table: str,
        code_column: str,
        *,
        schema: str | None = None,
        source_column: str | None = None,
        codec: str | None = None,
        batch_size: int = 10_000,
        layout: str | None = None,
        mirror: str | Iterable[str] | None = None,
    ) -> None:
        _check_layout(layout)
        self.mirror = _check_mirror(table, code_column, layout, mirror)
        self.table = table
        self.code_column = code_column
        self.schema = schema
        self.source_column = source_column
        self.codec = codec
        self.batch_size = batch_size
        self.layout = layout

    @classmethod
    def drop_compressed_column(cls, operations: Operations, *args: Any, **kwargs: Any) -> Any:
        """Drop ``code_column`` of ``table`` (its code store, or its column in the table);
        never touches the source vectors (the store's mirrored columns go with it). The
        arguments are this class's (``source_column=``, ``codec=``, ``layout=`` and
        ``mirror=``: what the reverse re-adds)."""
        return operations.invoke(cls(*args, **kwargs))

    def reverse(self) -> AddCompressedColumnOp:
        if self.source_column is None or self.codec is None:
            raise _irreversible(
                f"drop_compressed_column({self.table!r}, {self.code_column!r})",
                "source_column= and codec=",
            )
        return AddCompressedColumnOp(
            self.table,
            self.source_column,
            self.codec,
            self.code_column,
            batch_size=self.batch_size,
            schema=self.schema,
            layout=self.layout,
            mirror=self.mirror,
        )

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("drop_compressed_column", self.schema, self.table, self.code_column)


def _check_mirror(
    table: str, code_column: str | None, layout: str | None, mirror: Any
) -> list[str]:
    what = f"compressed column {table}.{code_column or '(unnamed)'}: mirror="
    names = check_columns(what, mirror, empty=True)
    if names and layout == "table":
        raise MigrationError(
            f"{what} needs layout='store': only a code store mirrors columns (a "
            "layout='table' column is a column of the table already)"
        )
    return names


__all__ = [
    *index_ops.__all__,
    *mirror_ops.__all__,
    "AddCompressedColumnOp",
    "CreateCodecOp",
    "DropCodecOp",
    "DropCompressedColumnOp",
    "MigrationError",
]
