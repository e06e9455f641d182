"""One record per codec kind: everything the database adapters need to know about it.

The adapters used to branch on kind strings (``if kind == "pq"``) in a dozen places:
which column type holds the codes in PostgreSQL and in DuckDB, which pgvector feature
the kind's SQL needs, how the query side of ``vecext.<codec>_distance`` is passed,
how codes travel through binary COPY and Arrow, which SQLAlchemy type maps them, and
which compressed column a search prefers. They read a :class:`CodecKind` instead, so
adding a kind means writing its codec module and its record here.

Pure: no database import. The SQLAlchemy type is named, not imported (the ORM layer
sits above this one and looks the name up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from vecext.codecs.base import Codec, CodecError
from vecext.codecs.binary import BinaryCodec, RBQCodec
from vecext.codecs.ivf import IVFCodec
from vecext.codecs.pq import PQCodec
from vecext.codecs.scalar import HalfCodec, Int8Codec

#: How codes are stored in PostgreSQL: ``bytea`` (the code bytes), pgvector ``bit(d)``
#: (packed bits, dimension 0 first) or pgvector ``halfvec(d)`` (the float16 values).
PgStorage = Literal["bytea", "bit", "halfvec"]
#: How codes are stored in DuckDB (see :mod:`vecext.duckdb._arrow`): ``UTINYINT[M]``
#: (one list element per code byte), ``UBIGINT[w]`` (big-endian 64-bit words) or ``BLOB``.
DuckLayout = Literal["u8", "u64", "blob"]
#: What the second argument of ``vecext.<codec>_distance(codes, q)`` is: the query's
#: lookup table (``real[]``), the query's own codes, or the float query vector.
QueryArgument = Literal["lut", "codes", "vector"]


@dataclass(frozen=True)
class CodecKind:
    """What the adapters need to know about one kind of codec.

    Attributes
    ----------
    name
        The kind, as ``Codec.kind`` and ``vecext.codecs.kind`` in the catalog.
    codec_class
        The codec's class (``make_codec(name, ...)`` builds one).
    pg_storage
        PostgreSQL type family of a code column (see :data:`PgStorage`).
    duckdb_layout
        DuckDB layout of a code column (see :data:`DuckLayout`).
    pgvector_feature
        The pgvector feature (a key of ``vecext.postgres.pgvector.FEATURES``) the
        kind's generated SQL functions need.
    query_argument
        The query side of ``vecext.<codec>_distance`` (see :data:`QueryArgument`);
        ``"lut"`` kinds also get ``vecext.<codec>_lut``.
    preference
        Rank among a column's compressed columns when a search picks one by itself
        (lower first: the candidate stage it gives is the most accurate per byte).
    rerank_cost_rows
        How many code distances of this kind cost as much as one exact rerank
        (a primary-key lookup and a float distance) in PostgreSQL; ``None``: not
        measured (the search uses the PQ figure).
    sqlalchemy_type
        Name of the ``vecext.sqlalchemy`` column type of the codes (``None``: none).
    code_column
        Whether the kind makes code columns at all (``ivf`` assigns lists instead).
    """

    name: str
    codec_class: type[Codec]
    pg_storage: PgStorage
    duckdb_layout: DuckLayout
    pgvector_feature: str
    query_argument: QueryArgument
    preference: int
    rerank_cost_rows: int | None = None
    sqlalchemy_type: str | None = None
    code_column: bool = True

    @property
    def has_lut(self) -> bool:
        """Whether the kind's codecs get a lookup-table function (``vecext.<codec>_lut``)."""
        return self.query_argument == "lut"

    def pg_column_type(self, d_inner: int) -> str:
        """The PostgreSQL type of a code column (``bytea``, ``bit(384)``, ``halfvec(384)``)."""
        return "bytea" if self.pg_storage == "bytea" else f"{self.pg_storage}({int(d_inner)})"

    def duckdb_column_type(self, code_size: int) -> str:
        """The DuckDB type of a code column (``UTINYINT[48]``, ``UBIGINT[6]``, ``BLOB``)."""
        if self.duckdb_layout == "u8":
            return f"UTINYINT[{int(code_size)}]"
        if self.duckdb_layout == "u64":
            return f"UBIGINT[{words(code_size)}]"
        return "BLOB"

    def column_type(self, backend: str, *, d_inner: int, code_size: int) -> str:
        """The code column type in ``backend`` (``"postgres"`` or ``"duckdb"``)."""
        if backend == "postgres":
            return self.pg_column_type(d_inner)
        if backend == "duckdb":
            return self.duckdb_column_type(code_size)
        raise ValueError(f"unknown backend {backend!r}; expected 'postgres' or 'duckdb'")


def words(code_size: int) -> int:
    """64-bit words that hold ``code_size`` bytes (DuckDB ``UBIGINT[w]`` binary codes)."""
    return (int(code_size) + 7) // 8


#: Every codec kind, in the order a search prefers them (see ``preference``).
KINDS: dict[str, CodecKind] = {
    k.name: k
    for k in (
        # per rerank: PQ lookups about 1 us per row, pgvector Hamming on bit(d) about 0.1 us
        CodecKind("pq", PQCodec, "bytea", "u8", "vector", "lut", 0, 12, "PQCodes"),
        CodecKind("rbq", RBQCodec, "bytea", "blob", "bit", "vector", 1, None, "RBQCodes"),
        CodecKind("int8", Int8Codec, "bytea", "blob", "vector", "vector", 2, None, "Int8Codes"),
        CodecKind("binary", BinaryCodec, "bit", "u64", "bit", "codes", 3, 100, "BinaryCodes"),
        CodecKind("half", HalfCodec, "halfvec", "blob", "halfvec", "vector", 4, None, "HalfCodes"),
        CodecKind("ivf", IVFCodec, "bytea", "blob", "vector", "vector", 9, code_column=False),
    )
}


def codec_kind(kind: str | Codec) -> CodecKind:
    """The record of ``kind`` (a kind name or a codec); :class:`CodecError` naming the known
    kinds when there is none."""
    name = kind.kind if isinstance(kind, Codec) else kind
    found = KINDS.get(name)
    if found is None:
        raise CodecError(f"unknown codec kind {name!r}; known kinds: {', '.join(sorted(KINDS))}")
    return found


def code_column_type(kind: str, backend: str, *, d_inner: int, code_size: int) -> str:
    """The code column type of ``kind`` in ``backend``; a kind this vecext does not know
    (catalog rows a newer vecext wrote) holds bytes (``bytea``, ``BLOB``)."""
    found = KINDS.get(kind)
    if found is None:
        return "bytea" if backend == "postgres" else "BLOB"
    return found.column_type(backend, d_inner=d_inner, code_size=code_size)


def preference(kind: str) -> int:
    """Sort key among compressed columns (unknown kinds last)."""
    found = KINDS.get(kind)
    return found.preference if found is not None else 99


def inner_dim(dim: int, params: dict[str, Any] | None) -> int:
    """The dimension a codec's quantiser sees, from its catalog row (``dim`` and the
    ``params`` JSON): the pretransform's output dimension, else ``dim``."""
    pt = (params or {}).get("pretransform") or {}
    return int(pt.get("d_out", dim)) if pt else int(dim)


__all__ = [
    "KINDS",
    "CodecKind",
    "DuckLayout",
    "PgStorage",
    "QueryArgument",
    "code_column_type",
    "codec_kind",
    "inner_dim",
    "preference",
    "words",
]
