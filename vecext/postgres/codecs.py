"""Codecs in the PostgreSQL catalog: save (with their SQL functions), load, list, drop, train.

A saved codec is its ``vecext.codecs`` / ``codec_arrays`` / ``codebook_vectors`` rows
(written by :mod:`vecext.catalog.rows`, the same rows DuckDB stores) plus the
generated functions ``vecext.<name>_encode`` ... (:mod:`vecext.postgres.sqlgen`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql

from vecext.catalog import store
from vecext.catalog.api import codec_info, list_codecs
from vecext.catalog.rows import check_name, codec_record
from vecext.catalog.store import CodecInfo
from vecext.codecs import Codec, CodecError, CodecVersionError, codec_kind, make_codec
from vecext.errors import CatalogError
from vecext.postgres import pgvector, sqlgen
from vecext.postgres.catalog import PgDialect, require_catalog
from vecext.postgres.ivf_triggers import list_triggers
from vecext.postgres.tables import read_vectors, resolve_column

#: SQLSTATE raised by the generic SQL functions when a codec's generated functions
#: belong to another trained version than the catalog's rows
SQLSTATE_VERSION = "VX001"


@contextlib.contextmanager
def codec_errors() -> Iterator[None]:
    """Turn errors that vecext's SQL functions raise into the Python core's exceptions.

    ``SQLSTATE VX001`` (codec version mismatch) becomes
    :class:`~vecext.codecs.CodecVersionError`; the message names both fingerprints.

    Examples
    --------
    >>> with codec_errors():  # doctest: +SKIP
    ...     conn.execute("SELECT vecext.codec_distance('items_pq', %s, %s)", [codes, q])
    """
    try:
        yield
    except psycopg.Error as exc:
        if exc.sqlstate == SQLSTATE_VERSION:
            msg = exc.diag.message_primary or str(exc)
            raise CodecVersionError(msg) from exc
        raise


def columns_using(conn: psycopg.Connection, name: str) -> list[str]:
    """``schema.table.column`` of every compressed column made with codec ``name``."""
    return store.columns_using(PgDialect(conn), name)


def save_codec(
    conn: psycopg.Connection, name: str, codec: Codec, *, replace: bool = False
) -> CodecInfo:
    """Store a trained codec in the catalog and create its SQL functions.

    Parameters
    ----------
    conn
        Connection to a database with the vecext catalog.
    name
        Codec name: 1-48 characters of ``a-z``, ``0-9``, ``_``.
    codec
        A trained codec.
    replace
        Replace a codec of the same name. Refused while compressed columns use it:
        their codes were made by the old version.

    Saving the very same trained version again only regenerates its functions.

    Raises
    ------
    CodecError
        Bad name or untrained codec.
    CatalogError
        The name exists (without ``replace``) or compressed columns use it.
    """
    check_name(name)
    sqlgen.check_function_names(name)
    require_catalog(conn)
    pgvector.require(conn, codec_kind(codec).pgvector_feature)
    record = codec_record(name, codec)
    schema = pgvector.schema(conn)
    statements = sqlgen.create_statements(name, codec, schema)
    db = PgDialect(conn)
    with conn.transaction():  # or a savepoint in the caller's
        # the functions' argument types (vector, halfvec) resolve whatever the caller's
        # search_path is (set for these statements, then back to the caller's)
        (path,) = conn.execute("SELECT current_setting('search_path')").fetchone()  # type: ignore[misc]
        conn.execute(
            "SELECT set_config('search_path', format('pg_catalog, %%I, pg_temp', %s::text), true)",
            [schema],
        )
        # the old functions may have other signatures (another kind): drop them
        store.store_codec(
            db, record, replace=replace, on_replace=lambda _: _drop_functions(conn, name)
        )
        for stmt in statements:
            conn.execute(stmt)
        conn.execute("SELECT set_config('search_path', %s, true)", [path])
    return store.record_info(db, record)


def _drop_functions(conn: psycopg.Connection, name: str) -> None:
    rows = conn.execute(
        """SELECT p.proname, pg_get_function_identity_arguments(p.oid) FROM pg_proc p
           WHERE p.pronamespace = 'vecext'::regnamespace AND p.proname = ANY(%s)""",
        [[sqlgen.function_name(name, s) for s in sqlgen.SUFFIXES]],
    ).fetchall()
    for proname, args in rows:
        # the argument list is PostgreSQL's own rendering of the generated signature
        conn.execute(
            sql.SQL("DROP FUNCTION {}({})").format(sql.Identifier("vecext", proname), sql.SQL(args))
        )


def load_codec(conn: psycopg.Connection, name: str, *, fingerprint: str | None = None) -> Codec:
    """Rebuild codec ``name`` from the catalog.

    Its arrays must hash to the fingerprint the catalog records, and to
    ``fingerprint`` when given (e.g. the version recorded next to stored codes);
    otherwise :class:`~vecext.codecs.CodecVersionError` names both versions.
    """
    check_name(name)
    require_catalog(conn)
    return store.load_codec(PgDialect(conn), name, fingerprint=fingerprint)


def cached_codec(conn: psycopg.Connection, name: str, fingerprint: str) -> Codec:
    """A catalog codec, loaded once per (database, name, version) in this process."""
    return store.cached_codec(
        ("postgres", conn.info.dbname, name, fingerprint),
        lambda: load_codec(conn, name, fingerprint=fingerprint),
    )


def drop_codec(conn: psycopg.Connection, name: str, *, missing_ok: bool = False) -> bool:
    """Drop codec ``name`` (rows and SQL functions); refused while columns use it."""
    check_name(name)
    require_catalog(conn)

    def before(kind: str) -> None:
        _refuse_if_list_trigger(conn, name)
        _drop_functions(conn, name)

    return store.remove_codec(PgDialect(conn), name, missing_ok=missing_ok, before=before)


def _refuse_if_list_trigger(conn: psycopg.Connection, name: str) -> None:
    """An IVF codec whose list trigger is still installed (orphaned by the SQL function
    vecext.drop_compressed_column of catalog 0.1.0) must stay: the trigger reads its
    centroids on every INSERT, and would fail without them."""
    users = [
        f"{t.table}.{t.list_column}" for t in list_triggers(conn, None) if t.codec_name == name
    ]
    if users:
        raise CatalogError(
            f"cannot drop codec {name!r}: the trigger of IVF list column(s) {', '.join(users)} "
            "uses it; drop the lists first (vecext.postgres.drop_orphaned_ivf_lists)"
        )


def train_codec(
    conn: psycopg.Connection,
    name: str,
    table: str,
    column: str,
    kind: str,
    *,
    metric: str = "l2",
    sample: int = 100_000,
    seed: int = 0,
    replace: bool = False,
    **params: Any,
) -> Codec:
    """Train a codec on a sample of ``table.column`` and save it as ``name``.

    Up to ``sample`` non-NULL vectors are drawn: the whole table when it is small,
    else ``TABLESAMPLE BERNOULLI ... REPEATABLE (seed)``. ``params`` go to
    :func:`vecext.codecs.make_codec` (unknown ones raise :class:`CodecError`).
    """
    check_name(name)
    if isinstance(sample, bool) or not isinstance(sample, int) or sample <= 0:
        raise CodecError(f"sample must be a positive integer, got {sample!r}")
    col = resolve_column(conn, table, column, halfvec=True)
    codec = make_codec(kind, col.dim, metric, **params)  # bad kind / params fail before I/O
    xt = read_vectors(conn, col, sample=sample, seed=seed)
    codec.train(xt)
    save_codec(conn, name, codec, replace=replace)
    return codec


__all__ = [
    "SQLSTATE_VERSION",
    "CodecInfo",
    "cached_codec",
    "CodecVersionError",
    "codec_errors",
    "codec_info",
    "columns_using",
    "drop_codec",
    "list_codecs",
    "load_codec",
    "save_codec",
    "train_codec",
]
