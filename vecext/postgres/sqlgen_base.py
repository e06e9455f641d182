"""The pieces every per-codec SQL generator is made of (see :mod:`vecext.postgres.sqlgen`).

Literals that pgvector parses back bit for bit, bit strings expanded through byte
lookup tables, input checks, and the codec pipeline as PL/pgSQL statements over
``vector`` variables (cosine normalisation, PCA / Matryoshka / expand pretransform, OPQ
rotation, and their inverses for decoding). :mod:`vecext.postgres.sqlgen_kinds` and
:mod:`vecext.postgres.sqlgen_pq` assemble them into functions per kind.

Only numbers from the trained codec and identifiers quoted by
:class:`psycopg.sql.Identifier` are written into function bodies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from psycopg import sql

from vecext.codecs import Codec, CodecError, PQCodec
from vecext.codecs.transforms import PCA, Expand, Matryoshka

SCHEMA = "vecext"
#: pgvector's maximum number of dimensions of a ``vector``
MAX_VECTOR_DIMS = 16000
#: PQ sub-quantizers handled per block of whole-vector operations (62 * 256 <= 16000)
PQ_GROUP = MAX_VECTOR_DIMS // 256


@dataclass(frozen=True)
class FunctionDef:
    """One generated function. ``args``/``returns``/``language`` are fixed text."""

    suffix: str
    args: str  # e.g. "v vector"
    arg_types: str  # e.g. "vector" (for DROP / COMMENT / regprocedure)
    returns: str
    language: str  # "sql" or "plpgsql"
    body: str
    #: an SQL function the planner must be able to inline (a PQ lookup sum): no pinned
    #: search_path (which would prevent it), so its body uses built-in operators only
    inline: bool = False


def function_name(codec_name: str, suffix: str) -> str:
    return f"{codec_name}_{suffix}"


# ---------------------------------------------------------------------------
# literals


def floats(a: np.ndarray) -> str:
    """float32 values as text that pgvector / float4in parse back bit for bit
    (9 significant digits identify every float32)."""
    a = np.asarray(a, dtype=np.float32).ravel()
    if not np.isfinite(a).all():
        raise CodecError("codec arrays hold NaN or infinite values; retrain the codec")
    return ",".join(f"{v:.9g}" for v in a.tolist())


def vec(a: np.ndarray) -> str:
    return f"'[{floats(a)}]'::vector"


def reals(a: np.ndarray) -> str:
    return f"'{{{floats(a)}}}'::real[]"


def qualified(name: str) -> str:
    return sql.Identifier(SCHEMA, name).as_string(None)


def literal(text: str) -> str:
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

    expr = tree_concat([f"{table}[1 + get_byte({data}, {pos(i)})]" for i in range(nbytes)])
    if nbytes * 8 != nbits:
        expr = f"subvector({expr}, 1, {nbits})"
    return expr


def dim_check(codec_name: str, var: str, d: int) -> str:
    return (
        f"IF vector_dims({var}) <> {d} THEN RAISE EXCEPTION 'codec %: vector has % dimensions, "
        f"expected %', {literal(codec_name)}, vector_dims({var}), {d} "
        "USING ERRCODE = 'data_exception'; END IF;"
    )


def code_len_check(codec_name: str, var: str, size: int) -> str:
    return (
        f"IF length({var}) <> {size} THEN RAISE EXCEPTION 'codec %: codes have % bytes, "
        f"expected %', {literal(codec_name)}, length({var}), {size} "
        "USING ERRCODE = 'data_exception'; END IF;"
    )


def tree_concat(items: list[str]) -> str:
    """``a || b || ...`` as a balanced tree: O(n log n) copying instead of O(n^2)."""
    while len(items) > 1:
        items = [
            f"({items[i]} || {items[i + 1]})" if i + 1 < len(items) else items[i]
            for i in range(0, len(items), 2)
        ]
    return items[0]


# ---------------------------------------------------------------------------
# the pipeline pieces, as PL/pgSQL statements over vector variables


def has_steps(codec: Codec) -> bool:
    rot = isinstance(codec, PQCodec) and codec.rotation is not None
    return codec.metric == "cosine" or codec.pretransform is not None or rot


def prepare_stmts(codec: Codec, src: str, dst: str) -> list[str]:
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
    elif isinstance(t, Expand):
        assert t.rotation is not None
        cols = ", ".join(f"inner_product({dst}, {vec(c)})" for c in t.rotation.T)
        out.append(f"{dst} := {dst} || ARRAY[{cols}]::vector;")
    if isinstance(codec, PQCodec) and codec.rotation is not None:
        rows = ", ".join(f"inner_product({dst}, {vec(r)})" for r in codec.rotation)
        out.append(f"{dst} := ARRAY[{rows}]::vector;")
    return out


def reverse_stmts(codec: Codec, var: str) -> list[str]:
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
    elif isinstance(t, Expand):
        assert t.inverse is not None
        cols = ", ".join(f"inner_product({var}, {vec(c)})" for c in t.inverse.T)
        out.append(f"{var} := ARRAY[{cols}]::vector;")
    elif isinstance(t, Matryoshka):
        assert t.d_in is not None
        pad = t.d_in - t.d_out
        if pad:
            out.append(f"{var} := {var} || array_fill(0::real, ARRAY[{pad}])::vector;")
    return out


def prep_call(codec_name: str, codec: Codec, q: str) -> str:
    """An SQL expression: the prepared query (inline when it is cheap)."""
    if not has_steps(codec):
        return q
    if codec.metric == "cosine" and codec.pretransform is None and not rotated(codec):
        return f"l2_normalize({q})"
    return f"{qualified(function_name(codec_name, 'prepare'))}({q})"


def rotated(codec: Codec) -> bool:
    return isinstance(codec, PQCodec) and codec.rotation is not None


def plpgsql(decls: list[str], stmts: list[str]) -> str:
    d = "\n".join(f"  {x}" for x in decls)
    s = "\n".join(f"  {x}" for x in stmts)
    return f"DECLARE\n{d}\nBEGIN\n{s}\nEND"


def metric_expr(codec: Codec, q: str, x: str) -> str:
    """Exact metric between two float vectors in the quantiser's space, as real."""
    if codec.metric == "l2":
        return f"vector_l2_squared_distance({q}, {x})::real"
    if codec.metric == "ip":
        return f"({q} <#> {x})::real"
    return f"(1 + ({q} <#> {x}))::real"


def prepare_fn(name: str, codec: Codec) -> FunctionDef:
    if not has_steps(codec):
        body = "SELECT q"
        return FunctionDef("prepare", "q vector", "vector", "vector", "sql", body)
    if codec.metric == "cosine" and codec.pretransform is None and not rotated(codec):
        return FunctionDef(
            "prepare", "q vector", "vector", "vector", "sql", "SELECT l2_normalize(q)"
        )
    stmts = [dim_check(name, "q", codec.d), *prepare_stmts(codec, "q", "x"), "RETURN x;"]
    return FunctionDef(
        "prepare", "q vector", "vector", "vector", "plpgsql", plpgsql(["x vector;"], stmts)
    )


def decode_fn(
    name: str, codec: Codec, arg: str, arg_type: str, inner: list[str], pm: bool = False
) -> FunctionDef:
    """``_decode``: ``inner`` statements set ``y`` from the codes, then the reverse.
    ``pm``: declare ``pm``, the +1 / -1 :func:`bit_table`."""
    stmts = [*inner, *reverse_stmts(codec, "y"), "RETURN y;"]
    decls = ["y vector;", *([f"pm vector[] := {bit_table('-1')};"] if pm else [])]
    return FunctionDef("decode", arg, arg_type, "vector", "plpgsql", plpgsql(decls, stmts))


def decoded_distance_fn(name: str, codec: Codec, inner: list[str], pm: bool = False) -> FunctionDef:
    """``_distance(codes bytea, q vector)`` of a kind compared in the quantiser's space:
    ``inner`` statements set ``y`` from the codes (as for :func:`decode_fn`), then the
    exact metric between the prepared query and ``y``."""
    stmts = [*inner, f"RETURN {metric_expr(codec, prep_call(name, codec, 'q'), 'y')};"]
    decls = ["y vector;", *([f"pm vector[] := {bit_table('-1')};"] if pm else [])]
    return FunctionDef(
        "distance", "codes bytea, q vector", "bytea, vector", "real", "plpgsql",
        plpgsql(decls, stmts),
    )  # fmt: skip
