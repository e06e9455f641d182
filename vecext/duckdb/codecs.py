"""Trained codecs in a DuckDB database: save, load, drop, list and train.

A codec is stored as the rows of :mod:`vecext.catalog.rows` (the same rows, bytes and
fingerprint as in PostgreSQL) and gets its per-codec macros ``vecext.<name>_encode``,
``_decode``, ``_distance`` (and ``_lut`` for PQ) in the same transaction. DuckDB has
no ``ON DELETE CASCADE``: dependent rows are deleted here, in one transaction.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from vecext.catalog.rows import CodecRecord, check_name, codec_from_rows, codec_record
from vecext.codecs import Codec, CodecError, check_fingerprint, make_codec
from vecext.duckdb import _arrow as ar
from vecext.duckdb._sql import (
    is_read_only,
    quote_ident,
    registered,
    resolve_table,
    transaction,
    vector_dim,
)
from vecext.duckdb.catalog import installed_version, require_catalog
from vecext.duckdb.functions import registrar
from vecext.duckdb.udfs import (
    GENERIC_MACROS,
    PER_CODEC_SUFFIXES,
    CodecCache,
    codec_macro_names,
    codec_macro_sql,
    ensure_udfs,
    generic_macro_sql,
)
from vecext.errors import CatalogError


@dataclass(frozen=True)
class CodecInfo:
    """A row of ``vecext.codecs`` (the same fields as ``vecext.postgres.CodecInfo``)."""

    name: str
    kind: str
    dim: int
    metric: str
    code_size: int
    fingerprint: str
    params: dict[str, Any]
    column_type: str  # the DuckDB type of this codec's code columns


_INFO_COLUMNS = "name, kind, dim, metric, code_size, fingerprint, params"


def _info(r: tuple[Any, ...]) -> CodecInfo:
    params = json.loads(r[6]) if isinstance(r[6], str) else dict(r[6])
    size = int(r[4])
    ctype = {"pq": f"UTINYINT[{size}]", "binary": f"UBIGINT[{ar.n_words(size)}]"}.get(r[1], "BLOB")
    return CodecInfo(r[0], r[1], int(r[2]), r[3], size, r[5], params, ctype)


def _check_codec_name(name: str) -> str:
    check_name(name)
    for suffix in PER_CODEC_SUFFIXES:
        if f"{name}_{suffix}" in GENERIC_MACROS:
            raise CodecError(
                f"codec name {name!r} is reserved: its function vecext.{name}_{suffix} "
                "would replace vecext's own; choose another name"
            )
    return name


def _columns_using(con: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    rows = con.execute(
        "SELECT table_schema, table_name, code_column FROM vecext.compressed_columns "
        "WHERE codec_name = ? OR ivf_codec_name = ? ORDER BY 1, 2, 3",
        [name, name],
    ).fetchall()
    return [f"{s}.{t}.{c}" for s, t, c in rows]


def _record_codec(rec: CodecRecord) -> Codec:
    """A private copy of the codec, rebuilt from its catalog rows (fingerprint checked)."""
    arrays = [(a.name, a.dtype, a.shape, a.data) for a in rec.arrays]
    return codec_from_rows(rec.name, rec.kind, rec.params, rec.fingerprint, arrays)


def _vectors_table(rec: CodecRecord) -> pa.Table:
    vecs = [v.vec for v in rec.vectors]
    lengths = np.fromiter((len(v) for v in vecs), dtype=np.int64, count=len(vecs))
    offsets = np.zeros(len(vecs) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.concatenate(vecs).astype(np.float32) if vecs else np.zeros(0, np.float32)
    return pa.table(
        {
            "codec_name": pa.array([rec.name] * len(vecs), pa.string()),
            "part": pa.array([v.part for v in rec.vectors], pa.string()),
            "sub": pa.array([v.sub for v in rec.vectors], pa.int32()),
            "idx": pa.array([v.idx for v in rec.vectors], pa.int32()),
            "vec": pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)),
        }
    )


def _delete_rows(con: duckdb.DuckDBPyConnection, name: str) -> None:
    for table in ("codebook_vectors", "codec_arrays"):
        con.execute(f"DELETE FROM vecext.{table} WHERE codec_name = ?", [name])
    con.execute("DELETE FROM vecext.codecs WHERE name = ?", [name])


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
    with transaction(con):
        old = con.execute(
            "SELECT fingerprint, kind FROM vecext.codecs WHERE name = ?", [name]
        ).fetchone()
        if old is not None and old[0] != rec.fingerprint:
            if not replace:
                raise CatalogError(
                    f"codec {name!r} already exists (version {old[0]}, this codec is version "
                    f"{rec.fingerprint}); pass replace=True to replace it"
                )
            users = _columns_using(con, name)
            if users:
                raise CatalogError(
                    f"cannot replace codec {name!r}: compressed column(s) {', '.join(users)} "
                    f"hold codes of its version {old[0]}; drop them (drop_compressed_column) "
                    "or save the new codec under another name"
                )
            _delete_rows(con, name)
            stale = set(codec_macro_names(name, old[1])) - set(codec_macro_names(name, rec.kind))
            _drop_macros(con, sorted(stale))
        if old is None or old[0] != rec.fingerprint:
            _insert_rows(con, rec)
        for sql in codec_macro_sql(name, private):
            con.execute(sql)
    cache.put(private)
    return codec_info(con, name)


def _insert_rows(con: duckdb.DuckDBPyConnection, rec: CodecRecord) -> None:
    con.execute(
        "INSERT INTO vecext.codecs (name, kind, dim, metric, code_size, params, fingerprint, "
        "format_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            rec.name,
            rec.kind,
            rec.dim,
            rec.metric,
            rec.code_size,
            rec.params_json,
            rec.fingerprint,
            rec.format_version,
        ],
    )
    if rec.arrays:
        con.executemany(
            "INSERT INTO vecext.codec_arrays (codec_name, array_name, dtype, shape, data) "
            "VALUES (?, ?, ?, ?, ?)",
            [[rec.name, a.name, a.dtype, a.shape, a.data] for a in rec.arrays],
        )
    if rec.vectors:  # thousands of rows for a PQ codebook: through Arrow
        with registered(con, _vectors_table(rec)) as src:
            con.execute(
                "INSERT INTO vecext.codebook_vectors (codec_name, part, sub, idx, vec) "
                f"SELECT codec_name, part, sub, idx, vec FROM {src}"
            )


def codec_info(con: duckdb.DuckDBPyConnection, name: str) -> CodecInfo:
    """The catalog row of codec ``name``; :class:`CodecError` naming the known codecs if none."""
    check_name(name)
    require_catalog(con)
    row = con.execute(
        f"SELECT {_INFO_COLUMNS} FROM vecext.codecs WHERE name = ?", [name]
    ).fetchone()
    if row is None:
        known = [c.name for c in list_codecs(con)]
        raise CodecError(
            f"unknown codec {name!r}; known codecs: {', '.join(known) if known else '(none)'}"
        )
    return _info(row)


def _read_codec(con: duckdb.DuckDBPyConnection, info: CodecInfo) -> Codec:
    arrays = con.execute(
        "SELECT array_name, dtype, shape, data FROM vecext.codec_arrays WHERE codec_name = ? "
        "ORDER BY array_name",
        [info.name],
    ).fetchall()
    return codec_from_rows(info.name, info.kind, info.params, info.fingerprint, arrays)


def _cache_codec(cache: CodecCache, con: duckdb.DuckDBPyConnection, name: str) -> Codec:
    info = codec_info(con, name)
    if info.fingerprint not in cache:
        cache.put(_read_codec(con, info))
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
    codec = _read_codec(con, info)
    if fingerprint is not None:
        check_fingerprint(codec, fingerprint)
    cache = ensure_udfs(con)
    if info.fingerprint not in cache:
        cache.put(_read_codec(con, info))  # a private copy: the caller may retrain its own
    return codec


def drop_codec(con: duckdb.DuckDBPyConnection, name: str, *, missing_ok: bool = False) -> bool:
    """Delete a codec, its arrays, codebook vectors and macros; refused while a
    compressed column uses it. Returns whether a codec was dropped."""
    require_catalog(con)
    check_name(name)
    with transaction(con):
        row = con.execute("SELECT kind FROM vecext.codecs WHERE name = ?", [name]).fetchone()
        if row is None:
            if missing_ok:
                return False
            raise CodecError(f"unknown codec {name!r}")
        users = _columns_using(con, name)
        if users:
            raise CatalogError(
                f"cannot drop codec {name!r}: compressed column(s) {', '.join(users)} use it; "
                "drop them first (vecext.duckdb.drop_compressed_column)"
            )
        _delete_rows(con, name)
        _drop_macros(con, codec_macro_names(name, str(row[0])))
    return True


def list_codecs(con: duckdb.DuckDBPyConnection) -> list[CodecInfo]:
    """Every codec in the catalog, by name."""
    require_catalog(con)
    rows = con.execute(f"SELECT {_INFO_COLUMNS} FROM vecext.codecs ORDER BY name").fetchall()
    return [_info(r) for r in rows]


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
    exists = con.execute("SELECT fingerprint FROM vecext.codecs WHERE name = ?", [name]).fetchone()
    if exists and not replace:
        raise CatalogError(
            f"codec {name!r} already exists (version {exists[0]}): pass replace=True to replace it"
        )
    xt = read_vectors(con, table, col, sample=sample, seed=seed)
    codec.train(xt)
    save_codec(con, name, codec, replace=replace)
    return codec


@registrar
def register_codec_functions(con: duckdb.DuckDBPyConnection) -> None:
    """UDFs, the generic macros, and every stored codec loaded with its macros."""
    cache = ensure_udfs(con)
    if installed_version(con) is None:
        return  # a plain connection: the macros live in the catalog's schema
    writable = not is_read_only(con)
    if writable:
        for sql in generic_macro_sql():
            con.execute(sql)
    for (name,) in con.execute("SELECT name FROM vecext.codecs ORDER BY 1").fetchall():
        try:
            _check_codec_name(name)  # rows written by other tools: no macro over vecext's own
            codec = _cache_codec(cache, con, name)
        except (CodecError, CatalogError) as exc:
            warnings.warn(f"vecext: codec {name!r} not loaded: {exc}", stacklevel=2)
            continue
        if writable:
            for sql in codec_macro_sql(name, codec):
                con.execute(sql)
