"""SQLAlchemy types for vecext code columns, with their distance comparators.

=================  ===============  ==========================================
type               PostgreSQL       reflects as (without ``code_column_reflect``)
=================  ===============  ==========================================
``PQCodes``        ``bytea``        ``BYTEA``
``BinaryCodes``    ``bit(dim)``     ``BIT(dim)``
``HalfCodes``      ``halfvec(dim)`` ``pgvector.sqlalchemy.HALFVEC(dim)``
``Int8Codes``      ``bytea``        ``BYTEA``
``RBQCodes``       ``bytea``        ``BYTEA``
=================  ===============  ==========================================

None of them has a type name of its own in PostgreSQL, so nothing is added to the
dialect's ``ischema_names`` (pgvector-python already registers ``vector``,
``halfvec``, ``sparsevec``; SQLAlchemy ``bit``). :mod:`vecext.sqlalchemy.reflection`
recovers the vecext types from the catalog (``code_column_reflect``).

The Python value of every code column is the codec's code row, a ``uint8`` array
equal to ``codec.encode(x)[i]`` (see :mod:`vecext.sqlalchemy.values`). ``dim`` is the
dimension the quantiser sees (after any PCA / Matryoshka pretransform).

Each type's ``repr`` is its constructor, and its ``__module__`` is the public
``vecext.sqlalchemy``, so Alembic writes ``vecext.sqlalchemy.PQCodes(m=48,
codec='items_pq')`` into migrations.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import sqlalchemy as sa
from pgvector.sqlalchemy import BIT, HALFVEC, VECTOR
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator

from vecext.codecs.kinds import KINDS, codec_kind
from vecext.errors import VecextError
from vecext.sqlalchemy import values as V

PUBLIC_MODULE = "vecext.sqlalchemy"


class CodeTypeError(VecextError, ValueError):
    """A code-column expression that cannot be built (no codec, bad parameter)."""


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise CodeTypeError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_codec(codec: str | None) -> str | None:
    if codec is None:
        return None
    from vecext.catalog.rows import check_name

    return check_name(codec)


def vecext_func(name: str, *args: Any, type_: Any = None) -> sa.sql.functions.Function[Any]:
    """``vecext.<name>(args...)`` as a SQLAlchemy function (schema-qualified)."""
    return getattr(sa.func.vecext, name)(*args, type_=type_)


def query_vector(q: Any) -> sa.ColumnElement[Any]:
    """A bound float32 query vector cast to pgvector ``vector``."""
    if isinstance(q, sa.ColumnElement):
        return q
    arr = np.asarray(q, dtype=np.float32).reshape(-1)
    return sa.cast(sa.bindparam(None, arr, type_=VECTOR(arr.shape[0])), VECTOR(arr.shape[0]))


def _repr(cls_name: str, **kw: Any) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in kw.items() if v is not None)
    return f"{cls_name}({args})"


class _CodeType:
    """What every code type has: its constructor from a codec's catalog row, and the
    codec parameters that the type fixes (``op.create_codec`` trains with them)."""

    @classmethod
    def for_codec(cls, dim: int, code_size: int, codec: str | None, params: dict[str, Any]) -> Any:
        """The type of a codec whose quantiser sees ``dim`` dimensions."""
        return cls(dim=dim, codec=codec)  # type: ignore[call-arg]

    def codec_params(self) -> dict[str, Any]:
        """Codec parameters the type determines (PQ: ``m``; rbq: ``bits``)."""
        return {}


class _DimCodes(_CodeType):
    """A code type sized by the dimension its quantiser sees (``bit(dim)``, ``halfvec(dim)``)."""

    def __init__(self, dim: int, codec: str | None = None) -> None:
        dim = _positive("dim", dim)
        super().__init__(dim)  # type: ignore[call-arg]  # next in the MRO: the pgvector type
        self.dim = dim
        self.codec = _check_codec(codec)

    def __repr__(self) -> str:
        return _repr(type(self).__name__, dim=self.dim, codec=self.codec)


class _CodeComparator:
    """Methods shared by every code type's comparator (mixed into each Comparator)."""

    expr: Any
    type: Any

    def _codec(self, codec: str | None) -> str:
        name = codec or self.type.codec
        if name is None:
            raise CodeTypeError(
                f"{type(self.type).__name__} column {getattr(self.expr, 'key', self.expr)} has no "
                "codec: give the type one (codec='...') or pass codec= to the method"
            )
        return _check_codec(name)  # type: ignore[return-value]

    def decode(self, codec: str | None = None) -> sa.ColumnElement[Any]:
        """``vecext.<codec>_decode(codes)``: the approximate vector, in the input space."""
        return vecext_func(f"{self._codec(codec)}_decode", self.expr, type_=VECTOR())

    def distance_to(self, q: Any, codec: str | None = None) -> sa.ColumnElement[float]:
        """The codec's estimated distance to a float query ``q`` (smaller is closer).

        The fast per-codec function of the SQL API, ``vecext.<codec>_distance(codes,
        q)``, with the query side its kind takes: a PQ lookup table, the encoded query
        (Hamming distance between sign codes), or the float query itself.
        """
        name = self._codec(codec)
        qv = query_vector(q)
        query = codec_kind(self.type.kind).query_argument
        if query == "lut":
            other: Any = vecext_func(f"{name}_lut", qv, type_=postgresql.ARRAY(sa.REAL))
        elif query == "codes":
            other = vecext_func(f"{name}_encode", qv, type_=self.type)
        else:
            other = qv
        return vecext_func(f"{name}_distance", self.expr, other, type_=sa.REAL())


class _ByteaCodes(_CodeType, TypeDecorator[Any]):
    """Codes stored as their bytes in a ``bytea`` column (PQ, int8, rbq); each subclass
    says how wide they are (``code_size``)."""

    impl = sa.LargeBinary
    cache_ok = True
    kind: ClassVar[str]
    code_size: Any

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return V.bytes_to_db(value, self.code_size, self.kind)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return V.bytes_from_db(value)

    class Comparator(TypeDecorator.Comparator[Any], _CodeComparator):
        pass

    comparator_factory = Comparator


class PQCodes(_ByteaCodes):
    """Product-quantizer codes: ``m`` bytes per row in a ``bytea`` column.

    Parameters
    ----------
    m : int
        Sub-quantizers = bytes per code.
    codec : str, optional
        The catalog codec that made the codes (needed by the distance methods).
    """

    cache_ok = True  # not inherited: SQLAlchemy asks every TypeDecorator class
    kind: ClassVar[str] = "pq"

    def __init__(self, m: int, codec: str | None = None) -> None:
        super().__init__()
        self.m = _positive("m", m)
        self.codec = _check_codec(codec)

    @property
    def code_size(self) -> int:
        return self.m

    @classmethod
    def for_codec(
        cls, dim: int, code_size: int, codec: str | None, params: dict[str, Any]
    ) -> PQCodes:
        return cls(m=code_size, codec=codec)

    def codec_params(self) -> dict[str, Any]:
        return {"m": self.m}

    def __repr__(self) -> str:
        return _repr(type(self).__name__, m=self.m, codec=self.codec)

    class Comparator(_ByteaCodes.Comparator):
        def lut(self, q: Any, codec: str | None = None) -> sa.ColumnElement[Any]:
            """``vecext.<codec>_lut(q)``: the query's M x 256 lookup table."""
            return vecext_func(
                f"{self._codec(codec)}_lut", query_vector(q), type_=postgresql.ARRAY(sa.REAL)
            )

        def pq_distance(self, lut: Any, codec: str | None = None) -> sa.ColumnElement[float]:
            """``vecext.<codec>_distance(codes, lut)``: the ADC lookup sum.

            ``lut`` is a SQL expression (e.g. :meth:`lut`) or the flattened table as
            numbers (``PQCodec.distance_table(q).ravel()``), bound as ``real[]``.
            """
            if not isinstance(lut, sa.ColumnElement):
                arr = np.asarray(lut, dtype=np.float32).reshape(-1)
                if arr.shape[0] != 256 * self.type.m:
                    raise CodeTypeError(
                        f"a PQ lookup table for m={self.type.m} has {256 * self.type.m} "
                        f"values, got {arr.shape[0]}"
                    )
                lut = sa.cast(
                    sa.bindparam(None, arr.tolist(), type_=postgresql.ARRAY(sa.REAL)),
                    postgresql.ARRAY(sa.REAL),
                )
            return vecext_func(f"{self._codec(codec)}_distance", self.expr, lut, type_=sa.REAL())

    comparator_factory = Comparator


class BinaryCodes(_DimCodes, BIT):
    """Binary (sign) codes of ``dim`` bits in a pgvector ``bit(dim)`` column.

    Extends :class:`pgvector.sqlalchemy.BIT` (``hamming_distance``,
    ``jaccard_distance``); values are the codec's packed ``uint8`` codes.
    """

    cache_ok = True
    kind: ClassVar[str] = "binary"

    @property
    def code_size(self) -> int:
        return (self.dim + 7) // 8

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return super().process_bind_param(V.bits_to_db(value, self.dim), dialect)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return V.bits_from_db(value, self.dim)

    class Comparator(BIT.Comparator, _CodeComparator):
        def hamming_distance_to(self, q: Any, codec: str | None = None) -> sa.ColumnElement[Any]:
            """``codes <~> vecext.<codec>_encode(q)``: Hamming distance to the encoded query."""
            enc = vecext_func(f"{self._codec(codec)}_encode", query_vector(q), type_=self.type)
            return self.op("<~>", return_type=sa.Float)(enc)

    comparator_factory = Comparator


class HalfCodes(_DimCodes, TypeDecorator[Any]):
    """Half-precision codes in a pgvector ``halfvec(dim)`` column.

    The comparator has pgvector's halfvec distances (``l2_distance``,
    ``cosine_distance``, ``max_inner_product``, ``l1_distance``) against a float
    query cast to ``halfvec``; with a pretransform use :meth:`distance_to`.
    """

    impl = HALFVEC
    cache_ok = True
    kind: ClassVar[str] = "half"

    @property
    def code_size(self) -> int:
        return 2 * self.dim

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return V.half_to_db(value, self.dim)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return V.half_from_db(value)

    class Comparator(TypeDecorator.Comparator[Any], _CodeComparator):
        def _half(self, q: Any) -> sa.ColumnElement[Any]:
            if isinstance(q, sa.ColumnElement):
                return q
            arr = np.asarray(q, dtype=np.float32).reshape(-1)
            t = HALFVEC(arr.shape[0])
            return sa.cast(sa.bindparam(None, arr, type_=t), t)

        def l2_distance(self, q: Any) -> sa.ColumnElement[Any]:
            return self.op("<->", return_type=sa.Float)(self._half(q))

        def cosine_distance(self, q: Any) -> sa.ColumnElement[Any]:
            return self.op("<=>", return_type=sa.Float)(self._half(q))

        def max_inner_product(self, q: Any) -> sa.ColumnElement[Any]:
            return self.op("<#>", return_type=sa.Float)(self._half(q))

        def l1_distance(self, q: Any) -> sa.ColumnElement[Any]:
            return self.op("<+>", return_type=sa.Float)(self._half(q))

    comparator_factory = Comparator


class Int8Codes(_ByteaCodes):
    """8-bit scalar codes, one byte per dimension, in a ``bytea`` column."""

    cache_ok = True
    kind: ClassVar[str] = "int8"

    def __init__(self, dim: int, codec: str | None = None) -> None:
        super().__init__()
        self.dim = _positive("dim", dim)
        self.codec = _check_codec(codec)

    @property
    def code_size(self) -> int:
        return self.dim

    def __repr__(self) -> str:
        return _repr(type(self).__name__, dim=self.dim, codec=self.codec)


class RBQCodes(Int8Codes):
    """Multi-bit residual binary codes (``bits`` sign levels of ``dim`` bits and
    ``bits`` float16 scales: ``bits * ceil(dim / 8) + 2 * bits`` bytes) in ``bytea``."""

    cache_ok = True
    kind: ClassVar[str] = "rbq"

    def __init__(self, dim: int, bits: int = 2, codec: str | None = None) -> None:
        super().__init__(dim, codec)
        self.bits = _positive("bits", bits)
        if self.bits > 4:
            raise CodeTypeError(f"rbq: bits must be in 1..4, got {bits}")

    @property
    def code_size(self) -> int:
        return self.bits * ((self.dim + 7) // 8) + 2 * self.bits

    @classmethod
    def for_codec(
        cls, dim: int, code_size: int, codec: str | None, params: dict[str, Any]
    ) -> RBQCodes:
        return cls(dim=dim, bits=int(params.get("bits", 2)), codec=codec)

    def codec_params(self) -> dict[str, Any]:
        return {"bits": self.bits}

    def __repr__(self) -> str:
        return _repr(type(self).__name__, dim=self.dim, bits=self.bits, codec=self.codec)


#: codec kind -> the column type of its codes (each kind's record names its type)
CODE_TYPES: dict[str, type[Any]] = {
    kind: globals()[k.sqlalchemy_type] for kind, k in KINDS.items() if k.sqlalchemy_type
}

for _cls in CODE_TYPES.values():
    # Alembic renders "<type's module>.<repr>": keep that the public, stable path
    _cls.__module__ = PUBLIC_MODULE
    _cls.Comparator.__module__ = PUBLIC_MODULE


def code_type(kind: str, dim: int, code_size: int, codec: str | None = None, **params: Any) -> Any:
    """The column type for a codec ``kind`` whose quantiser sees ``dim`` dimensions."""
    if kind not in CODE_TYPES:
        raise CodeTypeError(
            f"no column type for codec kind {kind!r}; known: {', '.join(CODE_TYPES)}"
        )
    return CODE_TYPES[kind].for_codec(dim, code_size, codec, params)


def code_type_for(codec: Any, name: str | None = None) -> Any:
    """The column type that stores a trained ``vecext.codecs`` codec's codes.

    >>> code_type_for(make_codec("pq", 384, m=48).train(xt), "items_pq")  # doctest: +SKIP
    PQCodes(m=48, codec='items_pq')
    """
    params = {"bits": getattr(codec, "bits", 2)}
    return code_type(codec.kind, codec.d_inner, codec.code_size, name, **params)
