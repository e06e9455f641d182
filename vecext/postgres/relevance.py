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

import numpy as np
import psycopg

from vecext.catalog.adapters import (
    AdapterInfo,
    AdapterRecord,
    adapter_from_rows,
    adapter_info,
    adapter_record,
    check_adapter_name,
    check_query_dim,
)
from vecext.errors import CatalogError
from vecext.postgres.catalog import require_catalog
from vecext.relevance.base import RelevanceError, RelevanceMethod

__all__ = [
    "AdapterInfo",
    "drop_adapter",
    "get_adapter_info",
    "list_adapters",
    "load_adapter",
    "save_adapter",
]

_INFO = "SELECT name, method, dim, version, params, fingerprint FROM vecext.relevance_adapters"


def _vector_text(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.9g}" for x in np.asarray(v, np.float32).tolist()) + "]"


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
    rec = adapter_record(name, method)
    with conn.transaction():  # or a savepoint in the caller's
        # serialise concurrent saves of one name
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('vecext.relevance.' || %s))", [name])
        row = conn.execute(
            "SELECT fingerprint FROM vecext.relevance_adapters WHERE name = %s", [name]
        ).fetchone()
        if row is not None and row[0] != rec.fingerprint:
            if not replace:
                raise CatalogError(
                    f"relevance adapter {name!r} already exists (version {row[0]}, this one is "
                    f"version {rec.fingerprint}); pass replace=True to replace it"
                )
            conn.execute("DELETE FROM vecext.relevance_adapters WHERE name = %s", [name])
        if row is None or row[0] != rec.fingerprint:
            _insert(conn, rec)
    return get_adapter_info(conn, name)


def _insert(conn: psycopg.Connection, rec: AdapterRecord) -> None:
    conn.execute(
        "INSERT INTO vecext.relevance_adapters (name, method, dim, version, params, fingerprint) "
        "VALUES (%s, %s, %s, %s, %s::jsonb, %s)",
        [rec.name, rec.method, rec.dim, rec.version, rec.params, rec.fingerprint],
    )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO vecext.relevance_arrays "
            "(adapter_name, array_name, dtype, shape, data, vec) "
            "VALUES (%s, %s, %s, %s, %s, %s::vector)",
            [
                (
                    rec.name, a.name, a.dtype, a.shape, a.data,
                    None if rec.vectors.get(a.name) is None
                    else _vector_text(rec.vectors[a.name]),  # type: ignore[arg-type]
                )
                for a in rec.arrays
            ],
        )  # fmt: skip


def list_adapters(conn: psycopg.Connection) -> list[AdapterInfo]:
    """Every relevance adapter in the catalog, by name."""
    require_catalog(conn)
    rows = conn.execute(_INFO + " ORDER BY name").fetchall()
    return [adapter_info(*r) for r in rows]


def get_adapter_info(conn: psycopg.Connection, name: str) -> AdapterInfo:
    """The catalog row of adapter ``name``; :class:`RelevanceError` naming the known ones."""
    check_adapter_name(name)
    require_catalog(conn)
    row = conn.execute(_INFO + " WHERE name = %s", [name]).fetchone()
    if row is None:
        known = [a.name for a in list_adapters(conn)]
        raise RelevanceError(
            f"unknown relevance adapter {name!r}; known adapters: "
            f"{', '.join(known) if known else '(none)'}"
        )
    return adapter_info(*row)


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
    info = get_adapter_info(conn, name)
    if dim is not None:
        check_query_dim(info, dim, "it was asked for dimension")
    rows = conn.execute(
        "SELECT array_name, dtype, shape, data FROM vecext.relevance_arrays "
        "WHERE adapter_name = %s ORDER BY array_name",
        [name],
    ).fetchall()
    arrays = [(r[0], r[1], list(r[2]), bytes(r[3])) for r in rows]
    return adapter_from_rows(
        info.name, info.method, info.dim, info.version, info.params, info.fingerprint, arrays,
        expected_fingerprint=fingerprint,
    )  # fmt: skip


def drop_adapter(conn: psycopg.Connection, name: str, *, missing_ok: bool = False) -> bool:
    """Delete adapter ``name`` and its arrays. Returns whether one was dropped."""
    check_adapter_name(name)
    require_catalog(conn)
    cur = conn.execute("DELETE FROM vecext.relevance_adapters WHERE name = %s", [name])
    if cur.rowcount == 0:
        if missing_ok:
            return False
        get_adapter_info(conn, name)  # raises, naming the known adapters
    return True
