"""Relevance adapters in the PostgreSQL catalog: save, load, list, drop.

A saved adapter is its ``vecext.relevance_adapters`` / ``vecext.relevance_arrays``
rows (:mod:`vecext.catalog.adapters`, the same rows DuckDB stores). The SQL
functions ``vecext.relevance_score``, ``vecext.relevance_min_similarity`` and
``vecext.relevance_features`` (``sql/postgres/``; the first two share
``vecext.relevance_map`` since catalog 0.2.0) read those rows, so SQL computes the
same calibrated scores as Python (pgvector inner products with the stored ``w_a`` /
``w_b`` vectors).
"""

from __future__ import annotations

import warnings

import psycopg

from vecext.catalog import store
from vecext.catalog.adapters import AdapterInfo, check_adapter_name
from vecext.postgres.catalog import PgDialect, require_catalog
from vecext.relevance.base import RelevanceMethod

__all__ = [
    "AdapterInfo",
    "adapter_info",
    "drop_adapter",
    "get_adapter_info",
    "list_adapters",
    "load_adapter",
    "save_adapter",
]


def save_adapter(
    conn: psycopg.Connection, name: str, method: RelevanceMethod, *, replace: bool = False
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
    require_catalog(conn)
    return store.save_adapter(PgDialect(conn), name, method, replace=replace)


def list_adapters(conn: psycopg.Connection) -> list[AdapterInfo]:
    """Every relevance adapter in the catalog, by name."""
    require_catalog(conn)
    return store.list_adapters(PgDialect(conn))


def adapter_info(conn: psycopg.Connection, name: str) -> AdapterInfo:
    """The catalog row of adapter ``name``; :class:`RelevanceError` naming the known ones."""
    check_adapter_name(name)
    require_catalog(conn)
    return store.get_adapter(PgDialect(conn), name)


def get_adapter_info(conn: psycopg.Connection, name: str) -> AdapterInfo:
    """Deprecated name of :func:`adapter_info` (as ``codec_info`` for codecs)."""
    warnings.warn(
        "get_adapter_info is deprecated: use adapter_info", DeprecationWarning, stacklevel=2
    )
    return adapter_info(conn, name)


def load_adapter(
    conn: psycopg.Connection,
    name: str,
    *,
    dim: int | None = None,
    fingerprint: str | None = None,
) -> RelevanceMethod:
    """Rebuild adapter ``name`` from the catalog.

    Its state must hash to the fingerprint the catalog records (and equal
    ``fingerprint`` when given), else :class:`CatalogError`. With ``dim`` (the
    dimension of the vectors it will meet), an adapter trained on another dimension
    raises :class:`RelevanceError` naming both.
    """
    check_adapter_name(name)
    require_catalog(conn)
    return store.load_adapter(PgDialect(conn), name, dim=dim, fingerprint=fingerprint)


def drop_adapter(conn: psycopg.Connection, name: str, *, missing_ok: bool = False) -> bool:
    """Delete adapter ``name`` and its arrays. Returns whether one was dropped."""
    check_adapter_name(name)
    require_catalog(conn)
    return store.drop_adapter(PgDialect(conn), name, missing_ok=missing_ok)
