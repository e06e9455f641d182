"""Trained codecs in a DuckDB database: save, load, drop, list and train.

A codec is stored as the rows of :mod:`vecext.catalog.rows` (the same rows, bytes and
fingerprint as in PostgreSQL) and gets its per-codec macros ``vecext.<name>_encode``,
``_decode``, ``_distance`` (and ``_lut`` for PQ) in the same transaction. DuckDB has
no ``ON DELETE CASCADE``: dependent rows are deleted here, in one transaction.
"""

from __future__ import annotations

import warnings
from typing import Any

import duckdb
import numpy as np

from vecext.catalog import store
from vecext.catalog.api import codec_info, list_codecs
from vecext.catalog.rows import CodecRecord, check_name, codec_from_rows, codec_record
from vecext.catalog.store import CodecInfo
from vecext.codecs import Codec, CodecError, check_fingerprint, make_codec
from vecext.duckdb import _arrow as ar
from vecext.duckdb._sql import (
    is_read_only,
    quote_ident,
    resolve_table,
    transaction,
    vector_dim,
)
from vecext.duckdb.catalog import DuckDialect, installed_version, require_catalog
from vecext.duckdb.functions import registrar
from vecext.duckdb.macros import (
    GENERIC_MACROS,
    PER_CODEC_SUFFIXES,
    codec_macro_names,
    codec_macro_sql,
    generic_macro_sql,
)
from vecext.duckdb.udfs import ensure_udfs
from vecext.errors import CatalogError


def _check_codec_name(name: str) -> str:
    check_name(name)
    for suffix in PER_CODEC_SUFFIXES:
        if f"{name}_{suffix}" in GENERIC_MACROS:
            raise CodecError(
                f"codec name {name!r} is reserved: its function vecext.{name}_{suffix} "
                "would replace vecext's own; choose another name"
            )
    return name


def _record_codec(rec: CodecRecord) -> Codec:
    """A private copy of the codec, rebuilt from its catalog rows (fingerprint checked)."""
    arrays = [(a.name, a.dtype, a.shape, a.data) for a in rec.arrays]
    return codec_from_rows(rec.name, rec.kind, rec.params, rec.fingerprint, arrays)


def _drop_macros(con: duckdb.DuckDBPyConnection, names: list[str]) -> None:
    for fn in names:
        con.execute(f"DROP MACRO IF EXISTS vecext.{quote_ident(fn)}")


def save_codec(
    con: duckdb.DuckDBPyConnection, name: str, codec: Codec, *, replace: bool = False
) -> CodecInfo:
    """Store a trained codec in the catalog and create its per-codec macros.

    Parameters
    ----------
    name
        Lower-case SQL name (``[a-z_][a-z0-9_]{0,47}``).
    replace
        Replace a codec of the same name. Refused while a compressed column uses it
        (the error names the columns): its codes were made by the old version.
        Saving the very same trained version again only recreates its macros.

    Raises
    ------
    CodecError
        Bad or reserved name, untrained codec.
    CatalogError
        The name exists with another version (without ``replace``) or compressed
        columns use it.
    """
    require_catalog(con)
    _check_codec_name(name)
    rec = codec_record(name, codec)
    private = _record_codec(rec)
    cache = ensure_udfs(con)
    db = DuckDialect(con)

    def drop_stale(old_kind: str) -> None:
        stale = set(codec_macro_names(name, old_kind)) - set(codec_macro_names(name, rec.kind))
        _drop_macros(con, sorted(stale))

    with transaction(con):
        store.store_codec(db, rec, replace=replace, on_replace=drop_stale)
        for sql in codec_macro_sql(name, private):
            con.execute(sql)
    cache.put(private)
    return store.record_info(db, rec)


def _cache_codec(con: duckdb.DuckDBPyConnection, name: str) -> Codec:
    """Codec ``name`` from the UDF cache, loaded into it first if need be."""
    cache = ensure_udfs(con)
    db = DuckDialect(con)
    info = store.codec_info(db, name)
    if info.fingerprint not in cache:
        cache.put(store.read_codec(db, info))
    return cache.get(name, info.fingerprint)


def load_codec(
    con: duckdb.DuckDBPyConnection, name: str, *, fingerprint: str | None = None
) -> Codec:
    """Rebuild codec ``name`` from the catalog (and make it usable by the SQL functions).

    Its arrays must hash to the fingerprint the catalog records, and to
    ``fingerprint`` when given (e.g. the version recorded next to stored codes);
    otherwise :class:`~vecext.codecs.CodecVersionError` names both versions.
    """
    info = codec_info(con, name)
    db = DuckDialect(con)
    codec = store.read_codec(db, info)
    if fingerprint is not None:
        check_fingerprint(codec, fingerprint)
    cache = ensure_udfs(con)
    if info.fingerprint not in cache:
        cache.put(store.read_codec(db, info))  # a private copy: the caller may retrain its own
    return codec


def cached_codec(con: duckdb.DuckDBPyConnection, name: str, fingerprint: str) -> Codec:
    """A catalog codec, rebuilt once per version in this process (the fingerprint is a
    hash of its arrays, so one entry serves every database that holds that version).
    The first load also puts it into the UDF cache."""
    return store.cached_codec(
        ("duckdb", name, fingerprint), lambda: load_codec(con, name, fingerprint=fingerprint)
    )


def drop_codec(con: duckdb.DuckDBPyConnection, name: str, *, missing_ok: bool = False) -> bool:
    """Delete a codec, its arrays, codebook vectors and macros; refused while a
    compressed column uses it. Returns whether a codec was dropped."""
    require_catalog(con)
    check_name(name)
    return store.remove_codec(
        DuckDialect(con),
        name,
        missing_ok=missing_ok,
        before=lambda kind: _drop_macros(con, codec_macro_names(name, kind)),
    )


def read_vectors(
    con: duckdb.DuckDBPyConnection,
    table: str,
    column: str,
    *,
    sample: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Non-NULL vectors of a ``FLOAT[d]``/``DOUBLE[d]`` column as ``(n, d)`` float32,
    all of them or a reservoir ``sample``."""
    t = resolve_table(con, table)
    col, d = vector_dim(con, t, column)
    sql = f"SELECT {quote_ident(col)} AS v FROM {t.sql} WHERE {quote_ident(col)} IS NOT NULL"
    if sample is not None:
        if isinstance(sample, bool) or not isinstance(sample, int) or sample <= 0:
            raise CodecError(f"sample must be a positive integer, got {sample!r}")
        sql = (
            f"SELECT v FROM ({sql}) USING SAMPLE reservoir({int(sample)} ROWS) "
            f"REPEATABLE ({int(seed)})"
        )
    tbl = con.execute(sql).to_arrow_table()
    X, _ = ar.list_matrix(tbl.column("v"), d, np.float32, f"{t}.{col}")
    return X


def train_codec(
    con: duckdb.DuckDBPyConnection,
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
    """Train a codec on (a reservoir sample of) a vector column and save it as ``name``.

    ``params`` go to :func:`vecext.codecs.make_codec` (``m=``, ``opq=``,
    ``pretransform=``, ...). Returns the trained codec.
    """
    require_catalog(con)
    _check_codec_name(name)
    t = resolve_table(con, table)
    col, d = vector_dim(con, t, column)
    codec = make_codec(kind, d, metric, **params)  # unknown kind / parameter: fail before reading
    exists = store.codec_version(DuckDialect(con), name)
    if exists and not replace:
        raise CatalogError(
            f"codec {name!r} already exists (version {exists[1]}): pass replace=True to replace it"
        )
    xt = read_vectors(con, table, col, sample=sample, seed=seed)
    codec.train(xt)
    save_codec(con, name, codec, replace=replace)
    return codec


@registrar
def register_codec_functions(con: duckdb.DuckDBPyConnection) -> None:
    """UDFs, the generic macros, and every stored codec loaded with its macros."""
    ensure_udfs(con)
    if installed_version(con) is None:
        return  # a plain connection: the macros live in the catalog's schema
    writable = not is_read_only(con)
    if writable:
        for sql in generic_macro_sql():
            con.execute(sql)
    for (name,) in con.execute("SELECT name FROM vecext.codecs ORDER BY 1").fetchall():
        try:
            _check_codec_name(name)  # rows written by other tools: no macro over vecext's own
            codec = _cache_codec(con, name)
        except (CodecError, CatalogError) as exc:
            warnings.warn(f"vecext: codec {name!r} not loaded: {exc}", stacklevel=2)
            continue
        if writable:
            for sql in codec_macro_sql(name, codec):
                con.execute(sql)


__all__ = [
    "CodecInfo",
    "cached_codec",
    "codec_info",
    "drop_codec",
    "list_codecs",
    "load_codec",
    "read_vectors",
    "register_codec_functions",
    "save_codec",
    "train_codec",
]
