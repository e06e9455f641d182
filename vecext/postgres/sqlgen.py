"""Per-codec SQL functions: ``vecext.<codec>_encode / _decode / _distance / _prepare / _lut``.

Every function embeds the trained arrays as constants, so it is honestly
``IMMUTABLE`` (it is regenerated whenever the codec is saved): the planner folds
``<codec>_lut('<literal>')`` to a constant and inlines ``<codec>_distance``.
Reading the catalog instead was measured 3-5x slower for encoding (a trigger
pays it per row; see ``bench/compressed_columns.py``).

Big bodies are PL/pgSQL, whose plans (and parsed constants) are cached per
session; the scan-time distance functions are one-line ``LANGUAGE sql`` bodies
the planner inlines.

The numerics reproduce the Python core (``vecext.codecs``) operation by
operation in float32 (pgvector's ``vector`` arithmetic is float32):

* PQ encode is the nearest centroid per sub-quantizer in squared L2. All 256
  distances of every sub-quantizer come from a few whole-vector pgvector
  operations (the sub-vectors are tiled 256 times by repeated ``||``), and the
  argmin is a tournament of 8 halving rounds over centroid-major blocks
  (centroids in bit-reversed order, so a tie keeps the lower index, as FAISS).
* The PQ lookup table of a query has the same sub-quantizer-major layout as
  ``PQCodec.distance_table``: ``lut[m * 256 + k + 1]``.
* Bit strings (``binary_quantize``, stored codes) become 0/1 or -1/+1 vectors by
  looking up each packed byte in a 256-entry table of 8-float vectors; parsing
  their text form (``'0110' -> '[0,1,1,0]'``) was measured 4-5x slower.

Only numbers from the trained codec and identifiers quoted by
:class:`psycopg.sql.Identifier` are written into function bodies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from psycopg import sql

from vecext.codecs import Codec, CodecError, PQCodec
from vecext.codecs.transforms import PCA, Matryoshka

SCHEMA = "vecext"
#: suffixes of the per-codec functions (``vecext.<codec>_<suffix>``)
SUFFIXES = ("encode", "decode", "distance", "prepare", "lut")
#: generic functions a per-codec name must not shadow
GENERIC = frozenset(
    {
        "vecext_version",
        "codec_fingerprint",
        "encode",
        "decode",
        "distance",
        "pq_lut",
        "add_compressed_column",
        "backfill",
        "drop_compressed_column",
        "compressed_column_trigger",
    }
)
#: pgvector's maximum number of dimensions of a ``vector``
MAX_VECTOR_DIMS = 16000
#: PQ sub-quantizers handled per block of whole-vector operations (62 * 256 <= 16000)
PQ_GROUP = MAX_VECTOR_DIMS // 256

IMMUTABLE = "IMMUTABLE STRICT PARALLEL SAFE"


@dataclass(frozen=True)
class FunctionDef:
    """One generated function. ``args``/``returns``/``language`` are fixed text."""

    suffix: str
    args: str  # e.g. "v vector"
    arg_types: str  # e.g. "vector" (for DROP / COMMENT / regprocedure)
    returns: str
    language: str  # "sql" or "plpgsql"
    body: str


def column_type(codec: Codec) -> str:
    """The PostgreSQL type of a code column for ``codec``."""
    if codec.kind == "binary":
        return f"bit({codec.d_inner})"
    if codec.kind == "half":
        return f"halfvec({codec.d_inner})"
    return "bytea"


def function_name(codec_name: str, suffix: str) -> str:
    return f"{codec_name}_{suffix}"


def check_function_names(codec_name: str) -> None:
    """Refuse codec names whose functions would shadow a generic vecext function."""
    for suffix in SUFFIXES:
        fname = function_name(codec_name, suffix)
        if fname in GENERIC:
            raise CodecError(
                f"codec name {codec_name!r} would create vecext.{fname}, which is a generic "
                "vecext function; choose another name"
            )


# ---------------------------------------------------------------------------
# literals


def _floats(a: np.ndarray) -> str:
    """float32 values as text that pgvector / float4in parse back bit for bit
    (9 significant digits identify every float32)."""
    a = np.asarray(a, dtype=np.float32).ravel()
    if not np.isfinite(a).all():
        raise CodecError("codec arrays hold NaN or infinite values; retrain the codec")
    return ",".join(f"{v:.9g}" for v in a.tolist())


def vec(a: np.ndarray) -> str:
    return f"'[{_floats(a)}]'::vector"


def reals(a: np.ndarray) -> str:
    return f"'{{{_floats(a)}}}'::real[]"


def _ident(name: str) -> str:
    return sql.Identifier(SCHEMA, name).as_string(None)


def _lit(text: str) -> str:
    return sql.Literal(text).as_string(None)


def bit_table(zero: str) -> str:
    """A ``vector[]`` of 256 entries: entry ``b + 1`` holds the 8 bits of byte ``b``
    (most significant first, the order of ``bit_send`` and ``np.packbits``) as
    1 (set) and ``zero`` (clear)."""
    rows = ",".join(
        '"[' + ",".join("1" if (b >> (7 - i)) & 1 else zero for i in range(8)) + ']"'
        for b in range(256)
    )
    return f"'{{{rows}}}'::vector[]"


def bits_expr(data: str, nbits: int, table: str, offset: int | str = 0) -> str:
    """Bits ``0 .. nbits-1`` packed in the bytea ``data`` from byte ``offset``, as a
    vector, by looking up each byte in ``table`` (a :func:`bit_table` variable).

    Parsing the bits' text form (``'0110' -> '[0,1,1,0]'``) costs ~130 ns per element
    in pgvector's parser; a byte lookup ~400 ns per 8 elements.
    """
    nbytes = (nbits + 7) // 8

    def pos(i: int) -> str:  # ``offset`` may be a variable's name
        return str(offset + i) if isinstance(offset, int) else f"{offset} + {i}"

    expr = _tree_concat([f"{table}[1 + get_byte({data}, {pos(i)})]" for i in range(nbytes)])
    if nbytes * 8 != nbits:
        expr = f"subvector({expr}, 1, {nbits})"
    return expr


def _dim_check(codec_name: str, var: str, d: int) -> str:
    return (
        f"IF vector_dims({var}) <> {d} THEN RAISE EXCEPTION 'codec %: vector has % dimensions, "
        f"expected %', {_lit(codec_name)}, vector_dims({var}), {d} "
        "USING ERRCODE = 'data_exception'; END IF;"
    )


def _code_len_check(codec_name: str, var: str, size: int) -> str:
    return (
        f"IF length({var}) <> {size} THEN RAISE EXCEPTION 'codec %: codes have % bytes, "
        f"expected %', {_lit(codec_name)}, length({var}), {size} "
        "USING ERRCODE = 'data_exception'; END IF;"
    )


def _tree_concat(items: list[str]) -> str:
    """``a || b || ...`` as a balanced tree: O(n log n) copying instead of O(n^2)."""
    while len(items) > 1:
        items = [
            f"({items[i]} || {items[i + 1]})" if i + 1 < len(items) else items[i]
            for i in range(0, len(items), 2)
        ]
    return items[0]


# ---------------------------------------------------------------------------
# the pipeline pieces, as PL/pgSQL statements over vector variables


def _has_steps(codec: Codec) -> bool:
    rot = isinstance(codec, PQCodec) and codec.rotation is not None
    return codec.metric == "cosine" or codec.pretransform is not None or rot


def _prepare_stmts(codec: Codec, src: str, dst: str) -> list[str]:
    """``dst := src`` normalised (cosine), pretransformed, OPQ-rotated."""
    out = [f"{dst} := {src};"]
    if codec.metric == "cosine":
        out.append(f"{dst} := l2_normalize({dst});")
    t = codec.pretransform
    if isinstance(t, PCA):
        assert t.mean is not None and t.projection is not None
        if np.any(t.mean != 0):
            out.append(f"{dst} := {dst} - {vec(t.mean)};")
        rows = ", ".join(f"inner_product({dst}, {vec(p)})" for p in t.projection)
        out.append(f"{dst} := ARRAY[{rows}]::vector;")
    elif isinstance(t, Matryoshka):
        out.append(f"{dst} := l2_normalize(subvector({dst}, 1, {t.d_out}));")
    if isinstance(codec, PQCodec) and codec.rotation is not None:
        rows = ", ".join(f"inner_product({dst}, {vec(r)})" for r in codec.rotation)
        out.append(f"{dst} := ARRAY[{rows}]::vector;")
    return out


def _reverse_stmts(codec: Codec, var: str) -> list[str]:
    """Map ``var`` from the quantiser's space back to the input space (in place)."""
    out = []
    if isinstance(codec, PQCodec) and codec.rotation is not None:
        # y @ R: inner products with the columns of R
        cols = ", ".join(f"inner_product({var}, {vec(c)})" for c in codec.rotation.T)
        out.append(f"{var} := ARRAY[{cols}]::vector;")
    t = codec.pretransform
    if isinstance(t, PCA):
        assert t.mean is not None and t.projection is not None
        cols = ", ".join(f"inner_product({var}, {vec(c)})" for c in t.projection.T)
        out.append(f"{var} := ARRAY[{cols}]::vector + {vec(t.mean)};")
    elif isinstance(t, Matryoshka):
        assert t.d_in is not None
        pad = t.d_in - t.d_out
        if pad:
            out.append(f"{var} := {var} || array_fill(0::real, ARRAY[{pad}])::vector;")
    return out


def _prep_call(codec_name: str, codec: Codec, q: str) -> str:
    """An SQL expression: the prepared query (inline when it is cheap)."""
    if not _has_steps(codec):
        return q
    if codec.metric == "cosine" and codec.pretransform is None and not _rotated(codec):
        return f"l2_normalize({q})"
    return f"{_ident(function_name(codec_name, 'prepare'))}({q})"


def _rotated(codec: Codec) -> bool:
    return isinstance(codec, PQCodec) and codec.rotation is not None


def _plpgsql(decls: list[str], stmts: list[str]) -> str:
    d = "\n".join(f"  {x}" for x in decls)
    s = "\n".join(f"  {x}" for x in stmts)
    return f"DECLARE\n{d}\nBEGIN\n{s}\nEND"


def _metric_expr(codec: Codec, q: str, x: str) -> str:
    """Exact metric between two float vectors in the quantiser's space, as real."""
    if codec.metric == "l2":
        return f"vector_l2_squared_distance({q}, {x})::real"
    if codec.metric == "ip":
        return f"({q} <#> {x})::real"
    return f"(1 + ({q} <#> {x}))::real"


# ---------------------------------------------------------------------------
# per kind


def functions_for(codec_name: str, codec: Codec) -> list[FunctionDef]:
    """All per-codec functions of a trained codec."""
    if not codec.is_trained:
        raise CodecError(f"codec {codec_name!r} is not trained")
    from vecext.postgres import sqlgen_kinds, sqlgen_pq

    generators = {
        "pq": sqlgen_pq.functions,
        "binary": sqlgen_kinds.binary,
        "half": sqlgen_kinds.half,
        "int8": sqlgen_kinds.int8,
        "rbq": sqlgen_kinds.rbq,
    }
    if codec.kind not in generators:
        raise CodecError(f"no SQL functions for codec kind {codec.kind!r}")
    return [_prepare_fn(codec_name, codec), *generators[codec.kind](codec_name, codec)]


def _prepare_fn(name: str, codec: Codec) -> FunctionDef:
    if not _has_steps(codec):
        body = "SELECT q"
        return FunctionDef("prepare", "q vector", "vector", "vector", "sql", body)
    if codec.metric == "cosine" and codec.pretransform is None and not _rotated(codec):
        return FunctionDef(
            "prepare", "q vector", "vector", "vector", "sql", "SELECT l2_normalize(q)"
        )
    stmts = [_dim_check(name, "q", codec.d), *_prepare_stmts(codec, "q", "x"), "RETURN x;"]
    return FunctionDef(
        "prepare", "q vector", "vector", "vector", "plpgsql", _plpgsql(["x vector;"], stmts)
    )


def _decode_fn(
    name: str, codec: Codec, arg: str, arg_type: str, inner: list[str], pm: bool = False
) -> FunctionDef:
    """``_decode``: ``inner`` statements set ``y`` from the codes, then the reverse.
    ``pm``: declare ``pm``, the +1 / -1 :func:`bit_table`."""
    stmts = [*inner, *_reverse_stmts(codec, "y"), "RETURN y;"]
    decls = ["y vector;", *([f"pm vector[] := {bit_table('-1')};"] if pm else [])]
    return FunctionDef("decode", arg, arg_type, "vector", "plpgsql", _plpgsql(decls, stmts))


# ---------------------------------------------------------------------------
# DDL


def create_statements(codec_name: str, codec: Codec) -> list[sql.Composed]:
    """``CREATE OR REPLACE FUNCTION`` + ``COMMENT`` for every per-codec function."""
    out = []
    for f in functions_for(codec_name, codec):
        fname = sql.Identifier(SCHEMA, function_name(codec_name, f.suffix))
        vol = IMMUTABLE
        out.append(
            sql.SQL("CREATE OR REPLACE FUNCTION {}({}) RETURNS {} LANGUAGE {} {} AS {}").format(
                fname,
                sql.SQL(f.args),
                sql.SQL(f.returns),
                sql.SQL(f.language),
                sql.SQL(vol),
                sql.Literal(f.body),
            )
        )
        out.append(
            sql.SQL("COMMENT ON FUNCTION {}({}) IS {}").format(
                fname, sql.SQL(f.arg_types), sql.Literal(function_comment(codec_name, codec))
            )
        )
    return out


def function_comment(codec_name: str, codec: Codec) -> str:
    """The comment of every per-codec function; the generic SQL functions compare its
    fingerprint with the catalog's to detect functions of another trained version."""
    return f"vecext codec {codec_name} version {codec.fingerprint}"
