"""SQL generation for the binary, half, int8 and rbq codecs (see :mod:`.sqlgen`).

Each function reproduces the Python core's arithmetic in float32:

* binary: ``binary_quantize(prepare(v) - mean)`` (``bit`` = ``np.packbits`` order);
  decode ``mean + scale * signs``; distance pgvector's Hamming ``<~>``.
* half: ``prepare(v)::halfvec`` (round to nearest even, as numpy); distances are the
  exact metric against ``codes::vector``.
* int8: per dimension, ``trunc(255 * clip((x - vmin) / vdiff, 0, 1))`` in float4 and
  ``vmin + ((code + 0.5) / 255) * vdiff`` in float8, element by element as FAISS'
  ``QT_8bit`` (pgvector has no element-wise division).
* rbq: ``bits`` residual sign levels; each scale is ``mean |r|`` in float8 rounded
  to float16 (``halfvec``), stored little-endian after the packed levels.
"""

from __future__ import annotations

from vecext.codecs import Codec, RBQCodec
from vecext.postgres.sqlgen_base import (
    FunctionDef,
    bit_table,
    bits_expr,
    code_len_check,
    decode_fn,
    decoded_distance_fn,
    dim_check,
    metric_expr,
    plpgsql,
    prep_call,
    prepare_stmts,
    reals,
    vec,
)


def binary(name: str, codec: Codec) -> list[FunctionDef]:
    mean, scale = codec.mean, codec.scale  # type: ignore[attr-defined]
    prep = prep_call(name, codec, "v")
    encode = FunctionDef(
        "encode",
        "v vector",
        "vector",
        "bit",
        "sql",
        f"SELECT binary_quantize({prep} - {vec(mean)})",
    )
    signs = bits_expr("bit_send(codes)", codec.d_inner, "pm", offset=4)
    inner = [f"y := {vec(mean)} + {vec(scale)} * {signs};"]
    decode = decode_fn(name, codec, "codes bit", "bit", inner, pm=True)
    distance = FunctionDef(
        "distance", "codes bit, q bit", "bit, bit", "real", "sql", "SELECT (codes <~> q)::real"
    )
    return [encode, decode, distance]


def half(name: str, codec: Codec) -> list[FunctionDef]:
    prep = prep_call(name, codec, "v")
    encode = FunctionDef(
        "encode", "v vector", "vector", "halfvec", "sql", f"SELECT ({prep})::halfvec"
    )
    decode = decode_fn(name, codec, "codes halfvec", "halfvec", ["y := codes::vector;"])
    distance = FunctionDef(
        "distance",
        "codes halfvec, q vector",
        "halfvec, vector",
        "real",
        "sql",
        "SELECT " + metric_expr(codec, prep_call(name, codec, "q"), "codes::vector"),
    )
    return [encode, decode, distance]


def int8(name: str, codec: Codec) -> list[FunctionDef]:
    vmin, vdiff = codec.vmin, codec.vdiff  # type: ignore[attr-defined]
    d = codec.d_inner
    # exactly Int8Codec._encode in float32: t = (x - vmin) / vdiff (0 where vdiff = 0),
    # clipped to [0, 1], code = trunc(255 * t)
    enc = (
        "SELECT pg_catalog.decode(string_agg(lpad(to_hex(floor(255::real * least(greatest("
        "CASE WHEN df <> 0 THEN (u - lo) / df ELSE 0::real END, 0::real), 1::real))::int), "
        "2, '0'), '' ORDER BY i), 'hex') "
        f"FROM unnest(x::real[], {reals(vmin)}, {reals(vdiff)}) WITH ORDINALITY AS t(u, lo, df, i)"
    )
    encode = FunctionDef(
        "encode",
        "v vector",
        "vector",
        "bytea",
        "plpgsql",
        plpgsql(
            ["x vector;"],
            [
                dim_check(name, "v", codec.d),
                *prepare_stmts(codec, "v", "x"),
                f"RETURN ({enc});",
            ],
        ),
    )
    # Int8Codec._decode: t = (code + 0.5) / 255 in float32; vmin + t * vdiff in float64
    inner = [
        code_len_check(name, "codes", d),
        "y := (SELECT array_agg((lo::float8 + ((get_byte(codes, (i - 1)::int)::real + 0.5::real)"
        " / 255::real)::float8 * df::float8)::real ORDER BY i) "
        f"FROM unnest({reals(vmin)}, {reals(vdiff)}) WITH ORDINALITY AS t(lo, df, i))::vector;",
    ]
    decode = decode_fn(name, codec, "codes bytea", "bytea", inner)
    return [encode, decode, decoded_distance_fn(name, codec, inner)]


def _f16(u: str) -> str:
    """float8 value of the IEEE half whose bits are the integer expression ``u``."""
    return (
        f"(CASE WHEN (({u}) >> 10) & 31 = 0 THEN (({u}) & 1023) * 2.0::float8 ^ -24 "
        f"ELSE (1024 + (({u}) & 1023)) * 2.0::float8 ^ (((({u}) >> 10) & 31) - 25) END "
        f"* CASE WHEN ({u}) >= 32768 THEN -1 ELSE 1 END)"
    )


def rbq_inner_decode(name: str, codec: RBQCodec) -> list[str]:
    """Statements setting ``y`` (quantiser space) from ``codes`` (RBQCodec._decode)."""
    d, nb, bits = codec.d_inner, codec.nbytes, codec.bits
    assert codec.mean is not None
    out = [code_len_check(name, "codes", codec.code_size), f"y := {vec(codec.mean)};"]
    for i in range(bits):
        o = bits * nb + 2 * i
        a = _f16(f"get_byte(codes, {o}) + 256 * get_byte(codes, {o + 1})")
        signs = bits_expr("codes", d, "pm", offset=i * nb)
        out.append(f"y := y + array_fill(({a})::real, ARRAY[{d}])::vector * {signs};")
    return out


def rbq(name: str, codec: Codec) -> list[FunctionDef]:
    assert isinstance(codec, RBQCodec) and codec.mean is not None
    d, bits = codec.d_inner, codec.bits
    stmts = [dim_check(name, "v", codec.d), *prepare_stmts(codec, "v", "x")]
    stmts.append(f"r := x - {vec(codec.mean)};")
    for _ in range(bits):
        stmts += [
            "b := binary_quantize(r);",
            # the mean of |r| in float64; the halfvec cast rounds it to real, then to
            # half, and RBQCodec._encode rounds the same way
            f"h := ARRAY[(SELECT sum(abs(u)::float8) FROM unnest(r::real[]) u) / {d}]::halfvec;",
            "a := (h::real[])[1];",
            "bb := bit_send(b);",
            f"r := r - array_fill(a, ARRAY[{d}])::vector * {bits_expr('bb', d, 'pm', offset=4)};",
            "codes := codes || substring(bb from 5);",
            # halfvec_send: int16 dim, int16 unused, then big-endian halves
            "hb := substring(halfvec_send(h) from 5);",
            "sc := sc || substring(hb from 2 for 1) || substring(hb from 1 for 1);",
        ]
    stmts.append("RETURN codes || sc;")
    decls = [
        "x vector;",
        "r vector;",
        "b bit varying;",
        "h halfvec;",
        "a real;",
        "hb bytea;",
        "bb bytea;",
        f"pm vector[] := {bit_table('-1')};",
        "codes bytea := '';",
        "sc bytea := '';",
    ]
    encode = FunctionDef("encode", "v vector", "vector", "bytea", "plpgsql", plpgsql(decls, stmts))
    inner = rbq_inner_decode(name, codec)
    decode = decode_fn(name, codec, "codes bytea", "bytea", inner, pm=True)
    return [encode, decode, decoded_distance_fn(name, codec, inner, pm=True)]
