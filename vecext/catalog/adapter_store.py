"""The catalog store of relevance adapters, for every database.

``vecext.relevance_adapters`` / ``relevance_arrays`` hold the same rows in PostgreSQL
and DuckDB (:mod:`vecext.catalog.adapters`); this module inserts, reads and deletes
them through a :class:`~vecext.catalog.dialect.Dialect`. The SQL functions
``vecext.relevance_*`` of both databases read these rows.
"""

from __future__ import annotations

from vecext.catalog.adapters import (
    AdapterInfo,
    AdapterRecord,
    adapter_from_rows,
    adapter_info,
    adapter_record,
    check_adapter_name,
    check_query_dim,
)
from vecext.catalog.dialect import Dialect
from vecext.errors import CatalogError
from vecext.relevance.base import RelevanceError, RelevanceMethod

_ADAPTER_INFO = (
    "SELECT name, method, dim, version, params, fingerprint FROM vecext.relevance_adapters"
)


def save_adapter(
    db: Dialect, name: str, method: RelevanceMethod, *, replace: bool = False
) -> AdapterInfo:
    """Store a fitted relevance method under ``name`` (see ``vecext.postgres.save_adapter``)."""
    check_adapter_name(name)
    rec = adapter_record(name, method)
    with db.transaction():
        db.lock("vecext.relevance." + name)
        rows = db.rows("SELECT fingerprint FROM vecext.relevance_adapters WHERE name = ?", [name])
        old = rows[0][0] if rows else None
        if old is not None and old != rec.fingerprint:
            if not replace:
                raise CatalogError(
                    f"relevance adapter {name!r} already exists (version {old}, this one is "
                    f"version {rec.fingerprint}); pass replace=True to replace it"
                )
            _delete_adapter(db, name)
        if old != rec.fingerprint:
            _insert_adapter(db, rec)
    return get_adapter(db, name)


def _delete_adapter(db: Dialect, name: str) -> None:
    db.run("DELETE FROM vecext.relevance_arrays WHERE adapter_name = ?", [name])
    db.run("DELETE FROM vecext.relevance_adapters WHERE name = ?", [name])


def _insert_adapter(db: Dialect, rec: AdapterRecord) -> None:
    db.run(
        "INSERT INTO vecext.relevance_adapters (name, method, dim, version, params, fingerprint) "
        f"VALUES (?, ?, ?, ?, CAST(? AS {db.json_type}), ?)",
        [rec.name, rec.method, rec.dim, rec.version, rec.params, rec.fingerprint],
    )
    db.run_many(
        "INSERT INTO vecext.relevance_arrays (adapter_name, array_name, dtype, shape, data, vec) "
        f"VALUES (?, ?, ?, ?, ?, CAST(? AS {db.vector_type}))",
        [
            (rec.name, a.name, a.dtype, a.shape, a.data, db.vector(rec.vectors.get(a.name)))
            for a in rec.arrays
        ],
    )


def list_adapters(db: Dialect) -> list[AdapterInfo]:
    """Every relevance adapter in the catalog, by name."""
    return [adapter_info(*r) for r in db.rows(_ADAPTER_INFO + " ORDER BY name")]


def get_adapter(db: Dialect, name: str) -> AdapterInfo:
    """The row of adapter ``name``; :class:`RelevanceError` naming the known ones if none."""
    check_adapter_name(name)
    rows = db.rows(_ADAPTER_INFO + " WHERE name = ?", [name])
    if not rows:
        known = [a.name for a in list_adapters(db)]
        raise RelevanceError(
            f"unknown relevance adapter {name!r}; known adapters: "
            f"{', '.join(known) if known else '(none)'}"
        )
    return adapter_info(*rows[0])


def load_adapter(
    db: Dialect, name: str, *, dim: int | None = None, fingerprint: str | None = None
) -> RelevanceMethod:
    """Rebuild adapter ``name`` (see ``vecext.postgres.load_adapter``)."""
    info = get_adapter(db, name)
    if dim is not None:
        check_query_dim(info, dim, "it was asked for dimension")
    rows = db.rows(
        "SELECT array_name, dtype, shape, data FROM vecext.relevance_arrays "
        "WHERE adapter_name = ? ORDER BY array_name",
        [name],
    )
    arrays = [(r[0], r[1], list(r[2]), bytes(r[3])) for r in rows]
    return adapter_from_rows(
        info.name, info.method, info.dim, info.version, info.params, info.fingerprint, arrays,
        expected_fingerprint=fingerprint,
    )  # fmt: skip


def drop_adapter(db: Dialect, name: str, *, missing_ok: bool = False) -> bool:
    """Delete adapter ``name`` and its arrays. Returns whether one was dropped."""
    check_adapter_name(name)
    with db.transaction():
        if not db.rows("SELECT 1 FROM vecext.relevance_adapters WHERE name = ?", [name]):
            if missing_ok:
                return False
            get_adapter(db, name)  # raises, naming the known adapters
        _delete_adapter(db, name)
    return True
