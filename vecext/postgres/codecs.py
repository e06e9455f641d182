"""Codecs in the PostgreSQL catalog: save (with their SQL functions), load, list, drop, train.

A saved codec is its ``vecext.codecs`` / ``codec_arrays`` / ``codebook_vectors`` rows
(written by :mod:`vecext.catalog.rows`, the same rows DuckDB stores) plus the
generated functions ``vecext.<name>_encode`` ... (:mod:`vecext.postgres.sqlgen`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from vecext.catalog.rows import check_name, codec_from_rows, codec_record
from vecext.codecs import Codec, CodecError, CodecVersionError, check_fingerprint, make_codec
from vecext.errors import CatalogError
from vecext.postgres import pgvector, sqlgen
from vecext.postgres.catalog import require_catalog

#: SQLSTATE raised by the generic SQL functions when a codec's generated functions
#: belong to another trained version than the catalog's rows
SQLSTATE_VERSION = "VX001"

#: pgvector feature each codec kind's SQL needs
_FEATURE = {"binary": "bit", "half": "halfvec", "rbq": "bit", "pq": "vector", "int8": "vector"}


@dataclass(frozen=True)
class CodecInfo:
    """A row of ``vecext.codecs``."""

    name: str
    kind: str
    dim: int
    metric: str
    code_size: int
    fingerprint: str
    params: dict[str, Any]
    column_type: str


@contextlib.contextmanager
def codec_errors() -> Iterator[None]:
    """Turn errors that vecext's SQL functions raise into the Python core's exceptions.

    ``SQLSTATE VX001`` (codec version mismatch) becomes
    :class:`~vecext.codecs.CodecVersionError`; the message names both fingerprints.

    Examples
    --------
    >>> with codec_errors():  # doctest: +SKIP
    ...     conn.execute("SELECT vecext.distance('items_pq', %s, %s)", [q, codes])
    """
    try:
        yield
    except psycopg.Error as exc:
        if exc.sqlstate == SQLSTATE_VERSION:
            msg = exc.diag.message_primary or str(exc)
            raise CodecVersionError(msg) from exc
        raise


def _exists(conn: psycopg.Connection, name: str) -> tuple[str, str] | None:
    row = conn.execute(
        "SELECT kind, fingerprint FROM vecext.codecs WHERE name = %s", [name]
    ).fetchone()
    return None if row is None else (row[0], row[1])


def columns_using(conn: psycopg.Connection, name: str) -> list[str]:
    """``schema.table.column`` of every compressed column made with codec ``name``."""
    rows = conn.execute(
        """SELECT format('%%I.%%I.%%I', table_schema, table_name, code_column)
           FROM vecext.compressed_columns WHERE codec_name = %s OR ivf_codec_name = %s
           ORDER BY 1""",
        [name, name],
    ).fetchall()
    return [r[0] for r in rows]


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
    pgvector.require(conn, _FEATURE.get(codec.kind, "vector"))
    record = codec_record(name, codec)
    statements = sqlgen.create_statements(name, codec)
    with conn.transaction():  # or a savepoint in the caller's
        # serialise concurrent saves of one name
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('vecext.codec.' || %s))", [name])
        old = _exists(conn, name)
        changed = old is not None and old[1] != record.fingerprint
        if changed:
            assert old is not None
            if not replace:
                raise CatalogError(
                    f"codec {name!r} already exists (version {old[1]}, this codec is version "
                    f"{record.fingerprint}); pass replace=True to replace it"
                )
            used = columns_using(conn, name)
            if used:
                raise CatalogError(
                    f"cannot replace codec {name!r}: compressed columns {', '.join(used)} hold "
                    f"codes of its version {old[1]}; drop them (drop_compressed_column) or save "
                    "the new codec under another name"
                )
            # the old functions may have other signatures (another kind): drop them
            _drop_functions(conn, name)
            conn.execute("DELETE FROM vecext.codecs WHERE name = %s", [name])
        if old is None or changed:
            _insert_rows(conn, record)
        for stmt in statements:
            conn.execute(stmt)
    return _info(
        name,
        record.kind,
        record.dim,
        record.metric,
        record.code_size,
        record.fingerprint,
        record.params,
    )


def _insert_rows(conn: psycopg.Connection, record: Any) -> None:
    conn.execute(
        """INSERT INTO vecext.codecs
           (name, kind, dim, metric, code_size, params, fingerprint, format_version)
           VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)""",
        [
            record.name,
            record.kind,
            record.dim,
            record.metric,
            record.code_size,
            record.params_json,
            record.fingerprint,
            record.format_version,
        ],
    )
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO vecext.codec_arrays (codec_name, array_name, dtype, shape, data)
               VALUES (%s, %s, %s, %s, %s)""",
            [(record.name, a.name, a.dtype, a.shape, a.data) for a in record.arrays],
        )
    # thousands of rows for a PQ codebook: COPY
    with conn.cursor().copy(
        "COPY vecext.codebook_vectors (codec_name, part, sub, idx, vec) FROM STDIN"
    ) as copy:
        for v in record.vectors:
            text = "[" + ",".join(f"{x:.9g}" for x in np.asarray(v.vec, np.float32).tolist()) + "]"
            copy.write_row((record.name, v.part, v.sub, v.idx, text))


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


def _info(
    name: str, kind: str, dim: int, metric: str, code_size: int, fp: str, params: Any
) -> CodecInfo:
    if isinstance(params, str):
        params = json.loads(params)
    pt = params.get("pretransform") or {}
    d_inner = int(pt.get("d_out", dim)) if pt else int(dim)
    ctype = {"binary": f"bit({d_inner})", "half": f"halfvec({d_inner})"}.get(kind, "bytea")
    return CodecInfo(name, kind, int(dim), metric, int(code_size), fp, dict(params), ctype)


def list_codecs(conn: psycopg.Connection) -> list[CodecInfo]:
    """Every codec in the catalog, by name."""
    require_catalog(conn)
    rows = conn.execute(
        """SELECT name, kind, dim, metric, code_size, fingerprint, params
           FROM vecext.codecs ORDER BY name"""
    ).fetchall()
    return [_info(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]


def codec_info(conn: psycopg.Connection, name: str) -> CodecInfo:
    """The catalog row of codec ``name``; :class:`CodecError` naming the known codecs if none."""
    check_name(name)
    require_catalog(conn)
    row = conn.execute(
        """SELECT name, kind, dim, metric, code_size, fingerprint, params
           FROM vecext.codecs WHERE name = %s""",
        [name],
    ).fetchone()
    if row is None:
        known = [c.name for c in list_codecs(conn)]
        raise CodecError(
            f"unknown codec {name!r}; known codecs: {', '.join(known) if known else '(none)'}"
        )
    return _info(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


def load_codec(conn: psycopg.Connection, name: str, *, fingerprint: str | None = None) -> Codec:
    """Rebuild codec ``name`` from the catalog.

    Its arrays must hash to the fingerprint the catalog records, and to
    ``fingerprint`` when given (e.g. the version recorded next to stored codes);
    otherwise :class:`~vecext.codecs.CodecVersionError` names both versions.
    """
    info = codec_info(conn, name)
    rows = conn.execute(
        """SELECT array_name, dtype, shape, data FROM vecext.codec_arrays
           WHERE codec_name = %s ORDER BY array_name""",
        [name],
    ).fetchall()
    arrays = [(r[0], r[1], list(r[2]), bytes(r[3])) for r in rows]
    codec = codec_from_rows(name, info.kind, info.params, info.fingerprint, arrays)
    if fingerprint is not None:
        check_fingerprint(codec, fingerprint)
    return codec


def drop_codec(conn: psycopg.Connection, name: str, *, missing_ok: bool = False) -> bool:
    """Drop codec ``name`` (rows and SQL functions); refused while columns use it."""
    check_name(name)
    require_catalog(conn)
    with conn.transaction():  # or a savepoint in the caller's
        if _exists(conn, name) is None:
            if missing_ok:
                return False
            raise CodecError(f"unknown codec {name!r}")
        used = columns_using(conn, name)
        if used:
            raise CatalogError(
                f"cannot drop codec {name!r}: compressed columns {', '.join(used)} use it; "
                "drop them first (drop_compressed_column)"
            )
        _refuse_if_list_trigger(conn, name)
        _drop_functions(conn, name)
        conn.execute("DELETE FROM vecext.codecs WHERE name = %s", [name])
    return True


def _refuse_if_list_trigger(conn: psycopg.Connection, name: str) -> None:
    """An IVF codec whose list trigger is still installed (orphaned by the SQL function
    vecext.drop_compressed_column of catalog 0.1.0) must stay: the trigger reads its
    centroids on every INSERT, and would fail without them."""
    from vecext.postgres.ivf import list_triggers

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
    from vecext.postgres.columns import read_vectors, resolve_column

    check_name(name)
    if isinstance(sample, bool) or not isinstance(sample, int) or sample <= 0:
        raise CodecError(f"sample must be a positive integer, got {sample!r}")
    col = resolve_column(conn, table, column)
    codec = make_codec(kind, col.dim, metric, **params)  # bad kind / params fail before I/O
    xt = read_vectors(conn, col, sample=sample, seed=seed)
    codec.train(xt)
    save_codec(conn, name, codec, replace=replace)
    return codec


__all__ = [
    "SQLSTATE_VERSION",
    "CodecInfo",
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
