"""vecext's DuckDB UDFs: vectorised Arrow functions over the process's codec cache.

The UDFs (``vecext_udf_*``, global in DuckDB, not part of the API) receive the codec's
name *and fingerprint* with every call and take the trained codec from this process's
codec cache, keyed by fingerprint. The ``vecext.*`` macros supply both: the generic
ones read the fingerprint from ``vecext.codecs``, the per-codec ones
(``vecext.<codec>_encode`` ...) carry it as a constant written when the codec was
saved. A fingerprint hashes the codec's whole trained state, so a cache keyed by it
cannot mix codecs: two databases with different codecs of the same name ask for
different entries, and a codec replaced in the catalog is never served by a stale
copy -- the new macros ask for the new fingerprint, which is loaded or reported as
missing.

The ``vecext.*`` macros over them are in :mod:`vecext.duckdb.macros`. A UDF never
queries the database (it runs inside a query on the same connection);
:func:`vecext.duckdb.save_codec`, :func:`~vecext.duckdb.load_codec` and
:func:`~vecext.duckdb.attach` fill the cache.

Why one cache per process and not per connection: DuckDB registers a Python UDF for
the whole database instance, but the Python function is released when the
*registering* connection closes, and calling it from another connection of the
instance then crashes the process (duckdb 1.5.5). The functions and the cache
therefore live in this module for the life of the process, and every instance
registers the same functions.

Queries are usually constant across a scan, but DuckDB hands a UDF one copy per row;
the UDFs notice equal rows and compute once. A PQ lookup table is large (M x 256
floats), so ``vecext.codec_lut`` / ``vecext.<codec>_lut`` are scalar subqueries: DuckDB
computes them once per distinct query instead of materialising a table per row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from duckdb.sqltypes import BLOB, FLOAT, UBIGINT, UTINYINT, VARCHAR

from vecext.codecs import Codec, CodecError, CodecVersionError, codec_kind
from vecext.codecs.binary import hamming_rows
from vecext.duckdb import _arrow as ar

# -- the codec cache --------------------------------------------------------------------


class CodecCache:
    """Trained codecs keyed by fingerprint (a hash of the whole trained state).

    Entries are private copies rebuilt from catalog rows, so no caller can mutate
    them; :meth:`get` still re-checks the fingerprint of what it returns.
    """

    def __init__(self) -> None:
        self._codecs: dict[str, Codec] = {}

    def __contains__(self, fingerprint: str) -> bool:
        return fingerprint in self._codecs

    def put(self, codec: Codec) -> None:
        self._codecs[codec.fingerprint] = codec

    def get(self, name: str, fingerprint: str) -> Codec:
        codec = self._codecs.get(fingerprint)
        if codec is None:
            raise CodecError(
                f"codec {name!r} version {fingerprint} is not loaded in this DuckDB "
                f"connection: call vecext.duckdb.load_codec(con, {name!r}) or "
                "vecext.duckdb.attach(con)"
            )
        if codec.fingerprint != fingerprint:  # cannot happen unless the copy was altered
            raise CodecVersionError(
                f"cached codec {name!r} is version {codec.fingerprint}, expected {fingerprint}"
            )
        return codec


#: This process's codecs, shared by every DuckDB instance it opens (see the module doc).
CACHE = CodecCache()
PROBE_UDF = "vecext_udf_registered"


def ensure_udfs(con: duckdb.DuckDBPyConnection) -> CodecCache:
    """Register the UDFs in ``con``'s database instance unless it has them; return the cache.

    DuckDB keeps Python UDFs per database instance (all connections and cursors of one
    in-process database share them); a probe UDF tells whether they are there. (A
    binder error does not abort an open transaction, and probing is much cheaper than
    scanning ``duckdb_functions()``.)
    """
    try:
        con.execute(f"SELECT {PROBE_UDF}()").fetchone()
    except duckdb.CatalogException:
        for name, (fn, params, ret, kind) in _UDFS.items():
            con.create_function(
                name, fn, params, ret, type=kind, null_handling="special", side_effects=False
            )
    return CACHE


# -- the UDFs ---------------------------------------------------------------------------


def _groups(names: Any, fps: Any) -> Iterator[tuple[str, str, np.ndarray | None]]:
    """Rows grouped by codec: ``(name, fingerprint, rows)``; ``rows`` None = every row.

    Rows with a NULL codec name are in no group (their result is NULL); a name whose
    fingerprint is NULL is not in ``vecext.codecs``.
    """
    names, fps = ar.combine(names), ar.combine(fps)
    if len(names) == 0:
        return
    unknown = pc.and_(names.is_valid(), fps.is_null())
    if pc.any(unknown).as_py():
        first = names.filter(unknown)[0].as_py()
        raise CodecError(f"unknown codec {first!r}: it is not in vecext.codecs")
    if names.null_count == 0 and len(pc.unique(fps)) == 1:
        yield names[0].as_py(), fps[0].as_py(), None
        return
    codes = fps.dictionary_encode()
    idx = np.asarray(codes.indices.to_numpy(zero_copy_only=False))
    has = ar.valid_mask(codes.indices)
    for j, fp in enumerate(codes.dictionary.to_pylist()):
        rows = np.flatnonzero(has & (idx == j))
        if rows.size:
            yield names[int(rows[0])].as_py(), fp, rows


def _same_rows(X: np.ndarray) -> bool:
    return X.shape[0] > 1 and bool((X[0] == X).all())


def _encode(codec: Codec, X: np.ndarray) -> np.ndarray:
    if _same_rows(X):
        return np.repeat(codec.encode(X[:1]), X.shape[0], axis=0)
    return codec.encode(X)


def paired_distances(codec: Codec, Q: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``D[i] = codec.distances(Q[i], codes[i])`` for every row, vectorised.

    One query for all rows (the usual scan) is exactly ``codec.distances``; a few
    distinct queries are grouped; many take a row-wise formulation of the same
    estimate (PQ: the same float32 table sum; binary: the same Hamming count; half,
    int8, rbq: the exact metric to the decoded vector in the quantiser's space,
    equal to ``distances`` up to float rounding).
    """
    n = Q.shape[0]
    if n == 0:
        return np.zeros(0, np.float32)
    if n == 1 or _same_rows(Q):
        return codec.distances(Q[:1], codes)[0]
    uq, inv = np.unique(Q, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    if uq.shape[0] <= 8:
        D = np.empty(n, np.float32)
        for j in range(uq.shape[0]):
            rows = np.flatnonzero(inv == j)
            D[rows] = codec.distances(uq[j : j + 1], codes[rows])[0]
        return D
    return _rowwise(codec, Q, codes)


def _rowwise(codec: Codec, Q: np.ndarray, codes: np.ndarray) -> np.ndarray:
    n = Q.shape[0]
    off = np.float32(codec.distance_offset)
    query = codec_kind(codec).query_argument
    if query == "lut":
        D = np.empty(n, np.float32)
        m = codes.shape[1]
        for i0 in range(0, n, 256):  # (256, M, 256) float32 tables per block
            lut = codec.distance_table(Q[i0 : i0 + 256])  # type: ignore[attr-defined]
            c = codes[i0 : i0 + 256]
            r = np.arange(c.shape[0])
            acc = np.zeros(c.shape[0], np.float32)
            for j in range(m):  # float32, subquantizer order: as PQCodec.distances
                acc += lut[r, j, c[:, j]]
            D[i0 : i0 + 256] = acc + off if off else acc
        return D
    if query == "codes":  # the Hamming distance between sign codes
        return hamming_rows(codec.encode(Q), codes).astype(np.float32)
    # quantiser space (after normalisation and pretransform), as Codec.distances works
    y = codec._forward(Q, "q")
    x = codec._decode(codes)
    if codec.inner_metric == "l2":
        D = ((y.astype(np.float64) - x) ** 2).sum(axis=1)
    else:
        D = -(y.astype(np.float64) * x).sum(axis=1) + float(off)
    return D.astype(np.float32)


def _take(arr: pa.Array, rows: np.ndarray | None) -> pa.Array:
    return arr if rows is None else arr.take(pa.array(rows))


def _make_udfs(cache: CodecCache) -> dict[str, tuple[Callable[..., Any], list[Any], Any, str]]:
    """name -> (function, parameter types, return type, UDF type), closing over ``cache``."""

    def each_group(names: Any, fps: Any) -> Iterator[tuple[Codec, str, np.ndarray | None]]:
        for name, fp, rows in _groups(names, fps):
            yield cache.get(name, fp), name, rows

    def encoder(layout: ar.Layout, fn: str) -> Callable[..., Any]:
        def udf(names: Any, fps: Any, v: Any) -> pa.Array:
            v = ar.combine(v)
            parts = []
            for codec, name, rows in each_group(names, fps):
                X, valid = ar.list_matrix(
                    _take(v, rows), codec.d, np.float32, f"{fn}({name!r}, v): v"
                )
                parts.append((rows, valid, _encode(codec, X)))
            return _assemble(
                parts, len(v), np.uint8, lambda X, ok: ar.codes_to_arrow(X, layout, ok, fixed=False)
            )

        return udf

    def decoder(layout: ar.Layout, fn: str) -> Callable[..., Any]:
        def udf(names: Any, fps: Any, c: Any) -> pa.Array:
            c = ar.combine(c)
            parts = []
            for codec, name, rows in each_group(names, fps):
                codes, valid = ar.codes_from_arrow(
                    _take(c, rows), layout, codec.code_size, f"{fn}({name!r}, codes): codes"
                )
                parts.append((rows, valid, codec.decode(codes)))
            return _assemble(parts, len(c), np.float32, _float_lists)

        return udf

    def distance(names: Any, fps: Any, q: Any, c: Any) -> pa.Array:
        q, c = ar.combine(q), ar.combine(c)
        parts = []
        for codec, name, rows in each_group(names, fps):
            qg, cg = _take(q, rows), _take(c, rows)
            both = ar.valid_mask(qg) & ar.valid_mask(cg)
            if not both.all():
                keep = pa.array(both)
                qg, cg = qg.filter(keep), cg.filter(keep)
            what = f"vecext.codec_distance({name!r}, codes, q)"
            Q, _ = ar.list_matrix(qg, codec.d, np.float32, f"{what}: q")
            codes, _ = ar.binary_matrix(cg, codec.code_size, f"{what}: codes")
            parts.append((rows, both, paired_distances(codec, Q, codes)[:, None]))
        return _assemble(parts, len(c), np.float32, lambda X, ok: ar.floats(X[:, 0], ok))

    def pq_lut(names: Any, fps: Any, q: Any) -> pa.Array:
        q = ar.combine(q)
        parts = []
        for codec, name, rows in each_group(names, fps):
            if not codec_kind(codec).has_lut:
                raise CodecError(
                    f"vecext.codec_lut({name!r}, q): {name!r} is a {codec.kind} codec; "
                    "lookup tables exist for pq codecs only"
                )
            Q, valid = ar.list_matrix(
                _take(q, rows), codec.d, np.float32, f"vecext.codec_lut({name!r}, q): q"
            )
            table = codec.distance_table  # type: ignore[attr-defined]
            if _same_rows(Q):
                lut = np.repeat(table(Q[:1]).reshape(1, -1), len(Q), axis=0)
            else:
                lut = table(Q).reshape(len(Q), -1)
            parts.append((rows, valid, lut))
        return _assemble(parts, len(q), np.float32, _float_lists)

    def blob_to(layout: ar.Layout) -> Callable[..., Any]:
        # staged code columns (vecext.duckdb.columns): BLOB -> UTINYINT[] / UBIGINT[]
        def udf(c: Any) -> pa.Array:
            c = ar.combine(c)
            valid = ar.valid_mask(c)
            lengths = pc.binary_length(c.filter(pa.array(valid))).to_numpy(zero_copy_only=False)
            width = int(lengths[0]) if len(lengths) else 0
            codes, valid = ar.binary_matrix(c, width, "codes")
            return ar.codes_to_arrow(codes, layout, valid, fixed=False)

        return udf

    floats_list = duckdb.list_type(FLOAT)
    u8_list, u64_list = duckdb.list_type(UTINYINT), duckdb.list_type(UBIGINT)
    key = [VARCHAR, VARCHAR]
    arrow = {
        "vecext_udf_encode": (encoder("blob", "vecext.codec_encode"), [*key, floats_list], BLOB),
        "vecext_udf_encode_u8": (encoder("u8", "encode"), [*key, floats_list], u8_list),
        "vecext_udf_encode_u64": (encoder("u64", "encode"), [*key, floats_list], u64_list),
        "vecext_udf_decode": (decoder("blob", "vecext.codec_decode"), [*key, BLOB], floats_list),
        "vecext_udf_decode_u8": (decoder("u8", "decode"), [*key, u8_list], floats_list),
        "vecext_udf_decode_u64": (decoder("u64", "decode"), [*key, u64_list], floats_list),
        "vecext_udf_distance": (distance, [*key, floats_list, BLOB], FLOAT),
        "vecext_udf_pq_lut": (pq_lut, [*key, floats_list], floats_list),
        "vecext_udf_blob_to_u8": (blob_to("u8"), [BLOB], u8_list),
        "vecext_udf_blob_to_u64": (blob_to("u64"), [BLOB], u64_list),
    }
    udfs = {name: (*spec, "arrow") for name, spec in arrow.items()}
    udfs[PROBE_UDF] = (lambda: True, [], duckdb.sqltypes.BOOLEAN, "native")
    return udfs


def _float_lists(X: np.ndarray, valid: np.ndarray) -> pa.Array:
    return ar.lists(np.ascontiguousarray(X, np.float32), valid, pa.float32())


def _assemble(
    parts: list[tuple[np.ndarray | None, np.ndarray, np.ndarray]],
    n: int,
    dtype: Any,
    to_arrow: Callable[[np.ndarray, np.ndarray], pa.Array],
) -> pa.Array:
    """One result column from per-codec parts ``(rows, valid, values of the valid rows)``.

    ``rows`` None means the part covers every row (the usual single-codec call).
    """
    if len(parts) == 1 and parts[0][0] is None:
        _, valid, X = parts[0]
        return to_arrow(X, valid)
    widths = {X.shape[1] for _, _, X in parts}
    if len(widths) > 1:
        raise CodecError("one call mixes codecs with different output sizes; use one codec")
    dense = np.zeros((n, widths.pop() if widths else 0), dtype)
    valid_all = np.zeros(n, dtype=bool)
    for rows, valid, X in parts:
        assert rows is not None
        dense[rows[valid]] = X
        valid_all[rows[valid]] = True
    return to_arrow(dense[valid_all], valid_all)


#: Created once and kept for the life of the process: DuckDB does not keep its own
#: reference once the registering connection is closed (see the module docstring).
_UDFS = _make_udfs(CACHE)
UDF_NAMES = sorted(_UDFS)
