"""Declaring compressed columns and vector indexes in models.

Each records what vecext needs in ``info`` (read by Alembic autogenerate, which
then writes ``op.create_codec`` / ``op.add_compressed_column`` /
``op.create_vector_index`` instead of plain column and index operations)::

    class Item(Base):
        __tablename__ = "items"
        id: Mapped[int] = mapped_column(primary_key=True)
        embedding = mapped_column(Vector(384))
        __table_args__ = (
            # codes in a code store vecext."store_<id>"(pk, code): the table is not altered
            compressed("embedding_pq", "embedding", PQCodes(m=48, codec="items_pq")),
            vector_index("items_embedding_hnsw", "embedding", metric="cosine"),
        )
        # or codes in a column of the table itself (layout 'table', the pre-0.4.0 layout)
        embedding_bits = compressed_column("embedding", BinaryCodes(384, codec="items_bin"))

:func:`compressed` is the default to reach for: a compressed column of layout
``store`` is not a column of the table (the ORM never loads or writes it), so it is
declared on the table, like an index, and recorded in ``Table.info["vecext"]
["stores"]``; autogenerate compares those declarations with the catalog's rows.
:func:`compressed_column` declares a real table column, so its migration adds the
column to the table (``layout="table"``). An HNSW index over a store's codes is
declared with :func:`vecext.sqlalchemy.code_index` (:mod:`vecext.sqlalchemy.store_index`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import mapped_column
from sqlalchemy.sql.schema import SchemaItem

INFO_KEY = "vecext"

#: pgvector operator classes: (column type, metric) -> opclass
OPCLASSES: dict[tuple[str, str], str] = {
    ("vector", "l2"): "vector_l2_ops",
    ("vector", "ip"): "vector_ip_ops",
    ("vector", "cosine"): "vector_cosine_ops",
    ("vector", "l1"): "vector_l1_ops",
    ("halfvec", "l2"): "halfvec_l2_ops",
    ("halfvec", "ip"): "halfvec_ip_ops",
    ("halfvec", "cosine"): "halfvec_cosine_ops",
    ("halfvec", "l1"): "halfvec_l1_ops",
    ("bit", "hamming"): "bit_hamming_ops",
    ("bit", "jaccard"): "bit_jaccard_ops",
}


def compressed_info(
    source: str,
    *,
    metric: str = "cosine",
    sample: int | None = None,
    seed: int = 0,
    batch_size: int = 10_000,
    **codec_params: Any,
) -> dict[str, Any]:
    """The ``info`` of a code column: its source column and how to train its codec."""
    return {
        INFO_KEY: {
            "source": source,
            "metric": metric,
            "sample": sample,
            "seed": seed,
            "batch_size": batch_size,
            "params": codec_params,
        }
    }


def compressed_column(source: str, type_: Any, **kw: Any) -> Any:
    """An ORM ``mapped_column`` holding the codes of column ``source`` in the table itself.

    This is layout ``table``: the migration adds the column to the table and fills
    it (an UPDATE of every row). Prefer :func:`compressed`, which keeps the codes
    in a code store and leaves the table as it is; use this when the ORM should
    load the codes with the row.

    The column is filled by its trigger, so it is declared with server-side
    ``FetchedValue`` defaults: the ORM reads the codes back instead of writing them.
    Keyword arguments are those of :func:`compressed_info` (codec training:
    ``metric``, ``sample``, ``seed`` and codec parameters such as ``opq=True``).
    """
    return mapped_column(
        type_,
        nullable=True,
        server_default=sa.FetchedValue(),
        server_onupdate=sa.FetchedValue(),
        info=compressed_info(source, **kw),
    )


class CompressedStore(SchemaItem):
    """A compressed column of layout ``store`` declared on a table (see :func:`compressed`).

    Attached to a :class:`~sqlalchemy.Table` (``__table_args__`` or ``Table(...)``
    arguments), it records itself in ``table.info["vecext"]["stores"][name]``. It is
    not a column: the codes live in ``vecext."store_<id>"``, kept by triggers.
    """

    __visit_name__ = "vecext_compressed_store"

    def __init__(
        self,
        name: str,
        source: str,
        type_: Any,
        *,
        metric: str = "cosine",
        sample: int | None = None,
        seed: int = 0,
        batch_size: int = 10_000,
        mirror: str | Iterable[str] | None = None,
        **codec_params: Any,
    ) -> None:
        from vecext.sqlalchemy.types import CODE_TYPES, CodeTypeError

        if not isinstance(name, str) or not name:
            raise CodeTypeError(
                f"compressed(): the code column's name must be a string, got {name!r}"
            )
        if not isinstance(source, str) or not source:
            raise CodeTypeError(
                f"compressed({name!r}): the source column must be a column name, got {source!r}"
            )
        if isinstance(type_, type):
            type_ = type_()  # a bare class: as SQLAlchemy allows for column types
        if not isinstance(type_, tuple(CODE_TYPES.values())):
            raise CodeTypeError(
                f"compressed({name!r}): {type_!r} is not a vecext code type; use one of "
                f"{', '.join(t.__name__ for t in CODE_TYPES.values())} "
                "(e.g. PQCodes(m=48, codec='items_pq'))"
            )
        if type_.codec is None:
            raise CodeTypeError(
                f"compressed({name!r}): {type(type_).__name__} needs the codec's name "
                "(codec='...'): the catalog keeps the codec under it"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise CodeTypeError(
                f"compressed({name!r}): batch_size must be a positive integer, got {batch_size!r}"
            )
        self.mirror = _mirror_names(name, source, mirror)
        self.name = name
        self.source = source
        self.type = type_
        self.metric = metric
        self.sample = sample
        self.seed = seed
        self.batch_size = batch_size
        self.params = codec_params
        self.table: sa.Table | None = None

    @property
    def codec(self) -> str:
        return str(self.type.codec)

    @property
    def spec(self) -> dict[str, Any]:
        """What :func:`compressed_info` records for a table column, for this store."""
        return compressed_info(
            self.source,
            metric=self.metric,
            sample=self.sample,
            seed=self.seed,
            batch_size=self.batch_size,
            **self.params,
        )[INFO_KEY]

    def _set_parent(self, parent: Any, **kw: Any) -> None:
        if isinstance(parent, sa.Table) and self.name in parent.c:
            raise sa.exc.ArgumentError(
                f"compressed({self.name!r}): table {parent.name} has a column of that name; a "
                "compressed column in a code store is not a table column (declare codes in the "
                "table with compressed_column(...) instead)"
            )
        attach(self, parent, "stores", f"compressed({self.name!r})")

    def __repr__(self) -> str:
        mirror = f", mirror={list(self.mirror)!r}" if self.mirror else ""
        return f"compressed({self.name!r}, {self.source!r}, {self.type!r}{mirror})"


def attach(item: Any, parent: Any, key: str, what: str) -> None:
    """Record the declaration ``item`` (``what``: how an error names it) under its name in
    ``parent.info["vecext"][key]``: ``parent`` must be a Table, and the name new there."""
    if not isinstance(parent, sa.Table):
        raise sa.exc.ArgumentError(f"{what} belongs to a Table (__table_args__), not {parent!r}")
    found = parent.info.setdefault(INFO_KEY, {}).setdefault(key, {})
    if item.name in found:
        raise sa.exc.ArgumentError(f"{what} is declared twice on table {parent.name}")
    found[item.name] = item
    item.table = parent


def _mirror_names(name: str, source: str, mirror: Any) -> tuple[str, ...]:
    """The columns of ``compressed(name, source, ..., mirror=)``; a ``CodeTypeError``
    for a name that is not a string, one named twice, or the source column."""
    from vecext.sqlalchemy.types import CodeTypeError

    names = [mirror] if isinstance(mirror, str) else list(mirror or [])
    bad = [c for c in names if not isinstance(c, str) or not c]
    if bad:
        raise CodeTypeError(f"compressed({name!r}): mirror= takes column names, got {bad[0]!r}")
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise CodeTypeError(f"compressed({name!r}): mirror= names {', '.join(twice)} twice")
    if source in names:
        raise CodeTypeError(
            f"compressed({name!r}): mirror= names the source column {source!r}; the code "
            "store has its codes already: mirror filter columns only"
        )
    return tuple(names)


def compressed(
    name: str,
    source: str,
    type_: Any,
    *,
    mirror: str | Iterable[str] | None = None,
    **kw: Any,
) -> CompressedStore:
    """A compressed column ``name`` holding the codes of column ``source`` in a code store.

    Put it in ``__table_args__`` (or among a ``Table``'s arguments). Alembic
    autogenerate writes ``op.create_codec`` (when the catalog has no codec of the
    type's name) and ``op.add_compressed_column(..., layout="store")`` for it, and
    ``op.drop_compressed_column`` for a code store of the table the model no longer
    declares (offered first to the environment's ``include_name`` / ``include_object``
    as a column of the table, see :mod:`vecext.alembic.compare_stores`). The table is
    never altered: search it with
    ``vector_search(session, Item.embedding, q)`` (``.using(name)`` to force it).

    Parameters
    ----------
    name : str
        The compressed column's name (``vecext.code_store(table, name)``).
    source : str
        The ``vector(d)`` column it encodes.
    type_ : code type
        ``PQCodes(m=48, codec="items_pq")``, ``BinaryCodes(384, codec=...)``, ...:
        the codec's kind and name, and what the type fixes of it (PQ's ``m``).
    mirror : list of str, optional
        Filter (or tenant) columns of the table to mirror into the code store (catalog
        0.6.0, :func:`vecext.postgres.mirror_columns`): a search filtering on them only
        scans the store. Autogenerate writes ``add_compressed_column(..., mirror=[...])``
        for a new store and ``op.mirror_columns`` / ``op.unmirror_columns`` when the
        declaration and the catalog differ. The table's declared tenant column is
        mirrored whether it is listed or not.
    **kw
        ``metric``, ``sample``, ``seed``, ``batch_size`` and codec parameters
        (``opq=True``), as for :func:`compressed_column`.
    """
    return CompressedStore(name, source, type_, mirror=mirror, **kw)


def declared_stores(table: sa.Table) -> dict[str, CompressedStore]:
    """The :func:`compressed` declarations of ``table``, by name."""
    return dict(table.info.get(INFO_KEY, {}).get("stores", {}))


def vector_index(
    name: str,
    column: Any,
    *,
    method: str = "hnsw",
    metric: str = "cosine",
    storage: str = "vector",
    dim: int | None = None,
    concurrently: bool = False,
    **options: Any,
) -> sa.Index:
    """A pgvector index for a model (``__table_args__`` or after the class).

    ``column`` is a column name (or Column); ``storage="bit"`` indexes
    ``binary_quantize(column)::bit(dim)`` (Hamming) and ``storage="halfvec"``
    ``column::halfvec(dim)``; both need ``dim``. ``options`` are ``m``,
    ``ef_construction`` (HNSW), ``lists`` (IVFFlat). Alembic autogenerate turns
    it into ``op.create_vector_index``.
    """
    col_name = column if isinstance(column, str) else column.key
    spec = {
        "column": col_name,
        "method": method,
        "metric": metric,
        "storage": storage,
        "concurrently": concurrently,
        "options": options,
    }
    if storage not in ("vector", "halfvec", "bit"):
        raise ValueError(f"index {name!r}: storage must be vector, halfvec or bit, got {storage!r}")
    key = (storage, "hamming" if storage == "bit" else metric)
    if key not in OPCLASSES:
        raise ValueError(f"index {name!r}: no {storage} operator class for metric {metric!r}")
    opclass = OPCLASSES[key]
    if storage == "vector":
        expr: Any = column
        ops_key = col_name
    else:
        if dim is None:
            raise ValueError(f"index {name!r}: storage={storage!r} needs dim=")
        col = sa.column(col_name) if isinstance(column, str) else column
        from pgvector.sqlalchemy import BIT, HALFVEC

        if storage == "bit":
            expr = sa.cast(sa.func.binary_quantize(col), BIT(dim))
        else:
            expr = sa.cast(col, HALFVEC(dim))
        ops_key = f"{col_name}_{storage}"
        expr = expr.label(ops_key)
        spec["dim"] = dim
    return sa.Index(
        name,
        expr,
        postgresql_using=method,
        postgresql_with={k: v for k, v in options.items() if k != "max_memory"},
        postgresql_ops={ops_key: opclass},
        info={INFO_KEY: spec},
    )
