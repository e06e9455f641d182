"""Catalog verbs that are the same on every database: relevance adapters, codec rows.

``vecext.postgres`` and ``vecext.duckdb`` export these very functions: each finds
the database of the connection it is given (:func:`~vecext.catalog.dialect.dialect_for`)
and reads or writes the catalog rows through :mod:`vecext.catalog.store` and
:mod:`vecext.catalog.adapter_store`. Verbs
with database-specific work besides the rows (saving a codec generates SQL
functions or macros; training reads the table) stay in the adapters.
"""

from __future__ import annotations

import warnings
from typing import Any

from vecext.catalog import adapter_store, store
from vecext.catalog.adapters import AdapterInfo, check_adapter_name
from vecext.catalog.dialect import dialect_for
from vecext.catalog.rows import check_name
from vecext.catalog.store import CodecInfo
from vecext.relevance.base import RelevanceMethod

#: The public face: what ``vecext.postgres`` and ``vecext.duckdb`` both export, with
#: the same meaning and the same leading parameters (each backend may add keyword
#: options of its own). Both adapters' ``__all__`` start with it.
VERBS = (
    # the catalog
    "install", "installed_version", "require_catalog", "InstallResult",
    # codecs
    "train_codec", "save_codec", "load_codec", "drop_codec", "list_codecs", "codec_info",
    "CodecInfo",
    # compressed columns
    "add_compressed_column", "drop_compressed_column", "list_compressed_columns",
    "compressed_column", "check_column_current", "refresh", "backfill", "stale_rows",
    "CompressedColumn",
    # IVF lists
    "add_ivf_lists", "drop_ivf_lists", "ivf_lists", "IVFLists",
    # native vector indexes
    "create_vector_index", "drop_vector_index", "list_vector_indexes", "hnsw_build_memory",
    "VectorIndexError",
    # relevance adapters
    "save_adapter", "load_adapter", "drop_adapter", "list_adapters", "adapter_info",
    "AdapterInfo",
    # tenants, calibration, search
    "declare_tenant_column", "undeclare_tenant_column", "calibrate", "search", "explain",
    "connect",
)  # fmt: skip

#: the relevance verbs, defined here once (``vecext.postgres.relevance`` and
#: ``vecext.duckdb.relevance`` re-export them)
ADAPTER_VERBS = [
    "AdapterInfo",
    "adapter_info",
    "drop_adapter",
    "get_adapter_info",
    "list_adapters",
    "load_adapter",
    "save_adapter",
]
__all__ = [
    "ADAPTER_VERBS",
    "VERBS",
    "AdapterInfo",
    "CodecInfo",
    "adapter_info",
    "codec_info",
    "drop_adapter",
    "get_adapter_info",
    "list_adapters",
    "list_codecs",
    "load_adapter",
    "save_adapter",
]

# ---------------------------------------------------------------------------
# relevance adapters (the SQL functions vecext.relevance_* read their rows)


def save_adapter(
    conn: Any, name: str, method: RelevanceMethod, *, replace: bool = False
) -> AdapterInfo:
    """Store a fitted relevance method in the catalog under ``name``.

    Saving the very same trained version again changes nothing. Another version under
    an existing name needs ``replace=True``.

    Raises
    ------
    CodecError
        Bad name (1-48 characters of ``a-z``, ``0-9``, ``_``).
    RuntimeError
        The method is not fitted.
    CatalogError
        The name holds another version and ``replace`` is false.
    """
    check_adapter_name(name)
    return adapter_store.save_adapter(dialect_for(conn), name, method, replace=replace)


def list_adapters(conn: Any) -> list[AdapterInfo]:
    """Every relevance adapter in the catalog, by name."""
    return adapter_store.list_adapters(dialect_for(conn))


def adapter_info(conn: Any, name: str) -> AdapterInfo:
    """The catalog row of adapter ``name``; :class:`RelevanceError` naming the known ones."""
    check_adapter_name(name)
    return adapter_store.get_adapter(dialect_for(conn), name)


def get_adapter_info(conn: Any, name: str) -> AdapterInfo:
    """Deprecated name of :func:`adapter_info` (as ``codec_info`` for codecs)."""
    warnings.warn(
        "get_adapter_info is deprecated: use adapter_info", DeprecationWarning, stacklevel=2
    )
    return adapter_info(conn, name)


def load_adapter(
    conn: Any, name: str, *, dim: int | None = None, fingerprint: str | None = None
) -> RelevanceMethod:
    """Rebuild adapter ``name`` from the catalog.

    Its state must hash to the fingerprint the catalog records (and equal
    ``fingerprint`` when given), else :class:`CatalogError`. With ``dim`` (the
    dimension of the vectors it will meet), an adapter trained on another dimension
    raises :class:`RelevanceError` naming both.
    """
    check_adapter_name(name)
    return adapter_store.load_adapter(dialect_for(conn), name, dim=dim, fingerprint=fingerprint)


def drop_adapter(conn: Any, name: str, *, missing_ok: bool = False) -> bool:
    """Delete adapter ``name`` and its arrays. Returns whether one was dropped."""
    check_adapter_name(name)
    return adapter_store.drop_adapter(dialect_for(conn), name, missing_ok=missing_ok)


# ---------------------------------------------------------------------------
# codecs


def list_codecs(conn: Any) -> list[CodecInfo]:
    """Every codec in the catalog, by name."""
    return store.list_codecs(dialect_for(conn))


def codec_info(conn: Any, name: str) -> CodecInfo:
    """The catalog row of codec ``name``; :class:`CodecError` naming the known codecs if none.

    ``column_type`` is the type of the codec's code columns in ``conn``'s database.
    """
    check_name(name)
    return store.codec_info(dialect_for(conn), name)
