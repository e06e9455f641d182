"""Declaring pgvector's HNSW index over the codes of a code store in a model.

A compressed column of layout ``store`` (:func:`vecext.sqlalchemy.compressed`) is not
a column of the table, so ``vector_index`` (a SQLAlchemy ``Index`` on the table's
columns) cannot name it. :func:`code_index` declares the index on the table instead,
beside the store::

    __table_args__ = (
        compressed("embedding_bits", "embedding", BinaryCodes(384, codec="items_bin")),
        code_index("items_bits_hnsw", "embedding_bits", m=16),
    )

Alembic autogenerate writes ``op.create_vector_index("items_bits_hnsw", "items",
"embedding_bits", ...)`` for it (after the store is added), compares it with the
indexes the catalog's stores have (by name; ``m`` and ``ef_construction`` when the
declaration gives them) and writes ``op.drop_vector_index`` for an index over a store
of the table that the model no longer declares (:mod:`vecext.alembic.compare_code_indexes`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.schema import SchemaItem

from vecext.sqlalchemy.schema import INFO_KEY, attach


class StoreIndex(SchemaItem):
    """An HNSW index over the codes of a :func:`~vecext.sqlalchemy.compressed` store of
    the table (see :func:`code_index`); recorded in ``table.info["vecext"]
    ["store_indexes"][name]``."""

    __visit_name__ = "vecext_store_index"

    def __init__(
        self, name: str, store: str, *, m: int | None = None, ef_construction: int | None = None
    ) -> None:
        from vecext.sqlalchemy.types import CodeTypeError

        for label, text in (("index name", name), ("store", store)):
            if not isinstance(text, str) or not text:
                raise CodeTypeError(f"code_index(): the {label} must be a string, got {text!r}")
        for label, value in (("m", m), ("ef_construction", ef_construction)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0
            ):
                raise CodeTypeError(
                    f"code_index({name!r}): {label} must be a positive integer, got {value!r}"
                )
        self.name = name
        self.store = store
        self.m = m
        self.ef_construction = ef_construction
        self.table: sa.Table | None = None

    @property
    def options(self) -> dict[str, int]:
        """The index options the declaration gives (the others are vecext's defaults)."""
        given = {"m": self.m, "ef_construction": self.ef_construction}
        return {k: v for k, v in given.items() if v is not None}

    def _set_parent(self, parent: Any, **kw: Any) -> None:
        attach(self, parent, "store_indexes", f"code_index({self.name!r})")

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"code_index({self.name!r}, {self.store!r}{opts})"


def code_index(
    name: str, store: str, *, m: int | None = None, ef_construction: int | None = None
) -> StoreIndex:
    """pgvector's HNSW index ``name`` over the codes of the table's code store ``store``
    (the name of a :func:`~vecext.sqlalchemy.compressed` declaration of the same table).

    Put it in ``__table_args__``. The index's operator class follows the codes
    (``bit_hamming_ops`` over binary codes, ``halfvec`` ops by the store's metric over
    half codes) and it lives in schema ``vecext`` beside the store; searches use it like
    any index (``vecext.postgres.create_vector_index`` on a compressed column).
    ``m`` and ``ef_construction`` default to vecext's (16; 200 over bit codes, 64 over
    half codes); when given, autogenerate also compares them with the built index and
    builds it again when they differ.
    """
    return StoreIndex(name, store, m=m, ef_construction=ef_construction)


def declared_store_indexes(table: sa.Table) -> dict[str, StoreIndex]:
    """The :func:`code_index` declarations of ``table``, by name."""
    return dict(table.info.get(INFO_KEY, {}).get("store_indexes", {}))


__all__ = ["StoreIndex", "code_index", "declared_store_indexes"]
