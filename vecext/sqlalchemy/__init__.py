"""SQLAlchemy support: code-column types, their distance comparators and a query builder.

Import from here (``vecext.sqlalchemy.PQCodes``): it is the stable path Alembic
writes into migrations. pgvector's own types are re-exported so that a model
needs one import.
"""

from pgvector.sqlalchemy import BIT, HALFVEC, SPARSEVEC, VECTOR, Vector

from vecext.sqlalchemy.query import VectorQuery, VectorQueryError, vector_search
from vecext.sqlalchemy.reflection import code_column_reflect, code_types
from vecext.sqlalchemy.schema import (
    CompressedStore,
    compressed,
    compressed_column,
    compressed_info,
    declared_stores,
    vector_index,
)
from vecext.sqlalchemy.store_index import StoreIndex, code_index, declared_store_indexes
from vecext.sqlalchemy.types import (
    CODE_TYPES,
    BinaryCodes,
    CodeTypeError,
    HalfCodes,
    Int8Codes,
    PQCodes,
    RBQCodes,
    code_type,
    code_type_for,
)
from vecext.sqlalchemy.values import CodeValueError

__all__ = [
    "BIT",
    "CODE_TYPES",
    "HALFVEC",
    "SPARSEVEC",
    "VECTOR",
    "BinaryCodes",
    "CodeTypeError",
    "CodeValueError",
    "CompressedStore",
    "HalfCodes",
    "Int8Codes",
    "PQCodes",
    "RBQCodes",
    "StoreIndex",
    "Vector",
    "VectorQuery",
    "VectorQueryError",
    "code_column_reflect",
    "code_index",
    "code_type",
    "code_type_for",
    "code_types",
    "compressed",
    "compressed_column",
    "compressed_info",
    "declared_store_indexes",
    "declared_stores",
    "vector_index",
    "vector_search",
]
