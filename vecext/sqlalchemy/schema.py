"""Declaring compressed columns and vector indexes in models.

Both record what vecext needs in ``info`` (read by Alembic autogenerate, which
then writes ``op.create_codec`` / ``op.add_compressed_column`` /
``op.create_vector_index`` instead of plain column and index operations)::

    class Item(Base):
        __tablename__ = "items"
        id: Mapped[int] = mapped_column(primary_key=True)
        embedding = mapped_column(Vector(384))
        embedding_pq = compressed_column("embedding", PQCodes(m=48, codec="items_pq"))
        __table_args__ = (vector_index("items_embedding_hnsw", "embedding", metric="cosine"),)
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import mapped_column

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
    """An ORM ``mapped_column`` holding the codes of column ``source``.

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
