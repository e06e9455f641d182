"""Compressed columns, their IVF lists and tenant columns as catalog rows, for every database.

``vecext.compressed_columns`` and ``vecext.tenant_columns`` are the same tables in
PostgreSQL and DuckDB; this module reads and writes their rows through a
:class:`~vecext.catalog.dialect.Dialect`. The adapters keep the DDL on the user's
table (PostgreSQL's SQL functions and triggers, DuckDB's hash columns) and the
encoding loops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vecext.catalog.dialect import Dialect, same_name
from vecext.catalog.store import CodecInfo
from vecext.codecs import CodecError, CodecVersionError
from vecext.errors import CatalogError


@dataclass(frozen=True)
class CompressedColumn:
    """A row of ``vecext.compressed_columns``.

    ``table`` is the backend's own reference to the table (PostgreSQL's carries the
    OID, DuckDB's the database); ``str(table)`` is ``schema.name``.
    """

    id: int
    table: Any
    source_column: str
    code_column: str
    codec: str
    codec_fingerprint: str
    key_column: str | None
    status: str
    backfill_position: str | None
    rows_encoded: int
    #: the IVF list column and its coarse quantizer, when lists were added
    list_column: str | None = None
    ivf_codec: str | None = None


_SELECT = (
    "SELECT id, table_schema, table_name, source_column, code_column, codec_name, "
    "codec_fingerprint, key_column, status, backfill_position, rows_encoded, list_column, "
    "ivf_codec_name FROM vecext.compressed_columns"
)


def compressed_columns(
    db: Dialect,
    ref: Callable[[str, str], Any],
    *,
    schema: str | None = None,
    table: str | None = None,
    code_column: str | None = None,
    order: str = "table_schema, table_name, code_column",
    cls: type[CompressedColumn] = CompressedColumn,
) -> list[CompressedColumn]:
    """Registered compressed columns (of ``schema.table``, named ``code_column``, when
    given), by table and column unless ``order`` says otherwise (``"id"``: by age);
    ``ref(schema, table)`` makes each one's table reference, ``cls`` (an adapter's
    subclass) the objects."""
    where, args = [], []
    if schema is not None and table is not None:
        where += ["table_schema = ?", "table_name = ?"]
        args += [schema, table]
    if code_column is not None:
        where.append(same_name(db, "code_column"))
        args.append(code_column)
    sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
    rows = db.rows(f"{sql} ORDER BY {order}", args)
    return [
        cls(
            id=int(r[0]), table=ref(r[1], r[2]), source_column=r[3], code_column=r[4],
            codec=r[5], codec_fingerprint=r[6], key_column=r[7], status=r[8],
            backfill_position=r[9], rows_encoded=int(r[10]), list_column=r[11], ivf_codec=r[12],
        )
        for r in rows
    ]  # fmt: skip


def compressed_column(
    db: Dialect, ref: Any, code_column: str, cls: type[CompressedColumn] = CompressedColumn
) -> CompressedColumn:
    """The row of compressed column ``code_column`` of table ``ref`` (as ``cls``); a
    :class:`CatalogError` naming the table's compressed columns if there is none."""

    def same(schema: str, table: str) -> Any:
        return ref

    found = compressed_columns(
        db, same, schema=ref.schema, table=ref.name, code_column=code_column, cls=cls
    )
    if found:
        return found[0]
    known = [c.code_column for c in compressed_columns(db, same, schema=ref.schema, table=ref.name)]
    raise CatalogError(
        f"{ref}.{code_column} is not a vecext compressed column "
        f"(compressed columns of {ref}: {', '.join(known) if known else 'none'})"
    )


def check_current(cc: CompressedColumn, info: CodecInfo) -> None:
    """:class:`CodecVersionError` naming both versions unless ``cc``'s codes were made by
    the codec version ``info`` (the catalog's) holds."""
    if info.fingerprint != cc.codec_fingerprint:
        raise CodecVersionError(
            f"compressed column {cc.table}.{cc.code_column} holds codes of codec {cc.codec!r} "
            f"version {cc.codec_fingerprint}, but the catalog holds version {info.fingerprint}; "
            "re-encode the column (drop_compressed_column + add_compressed_column)"
        )


def check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise CodecError(f"batch_size must be a positive integer, got {batch_size!r}")


def register(
    db: Dialect, ref: Any, source: str, code: str, codec: str, fingerprint: str, key: str | None
) -> None:
    """A new compressed column, still to fill (status ``backfilling``)."""
    db.run(
        "INSERT INTO vecext.compressed_columns (table_schema, table_name, source_column, "
        "code_column, codec_name, codec_fingerprint, key_column, status) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 'backfilling')",
        [ref.schema, ref.name, source, code, codec, fingerprint, key],
    )


def record_progress(db: Dialect, cc_id: int, position: str, rows: int) -> None:
    """After a committed batch: its last key (or rowid) and the rows it encoded."""
    db.run(
        "UPDATE vecext.compressed_columns SET backfill_position = ?, "
        "rows_encoded = rows_encoded + ?, updated_at = current_timestamp WHERE id = ?",
        [position, rows, cc_id],
    )


def set_position(db: Dialect, cc_id: int, position: str) -> None:
    """Record ``position`` (DuckDB: the refresh mark) without counting rows."""
    db.run(
        "UPDATE vecext.compressed_columns SET backfill_position = ? WHERE id = ?", [position, cc_id]
    )


def mark_ready(db: Dialect, cc_id: int, *, clear_position: bool) -> None:
    """Every row is encoded: status ``ready`` (and no resume position, if asked)."""
    position = ", backfill_position = NULL" if clear_position else ""
    db.run(
        f"UPDATE vecext.compressed_columns SET status = 'ready'{position}, "
        "updated_at = current_timestamp WHERE id = ?",
        [cc_id],
    )


def unregister(db: Dialect, cc_id: int) -> None:
    db.run("DELETE FROM vecext.compressed_columns WHERE id = ?", [cc_id])


# ---------------------------------------------------------------------------
# tenant columns


def tenant_column(db: Dialect, ref: Any) -> str | None:
    """The declared tenant column of table ``ref``, or ``None``."""
    rows = db.rows(
        "SELECT tenant_column FROM vecext.tenant_columns WHERE table_schema = ? AND table_name = ?",
        [ref.schema, ref.name],
    )
    return str(rows[0][0]) if rows else None


def declare_tenant(db: Dialect, ref: Any, column: str) -> None:
    """Record ``ref.column`` as the tenant column (the caller checked there was none)."""
    db.run(
        "INSERT INTO vecext.tenant_columns (table_schema, table_name, tenant_column) "
        "VALUES (?, ?, ?)",
        [ref.schema, ref.name, column],
    )


def undeclare_tenant(db: Dialect, ref: Any) -> None:
    db.run(
        "DELETE FROM vecext.tenant_columns WHERE table_schema = ? AND table_name = ?",
        [ref.schema, ref.name],
    )
