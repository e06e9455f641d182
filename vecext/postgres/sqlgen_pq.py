"""SQL generation for PQ (encode, lookup table, inlinable ADC distance, decode).

Encoding, for each block of at most 62 sub-quantizers (``256 * 62 <= 16000``,
pgvector's dimension limit), with ``p`` a centroid position and ``m`` a
sub-quantizer of the block::

    t_j[p * Mg + m] = y[m * dsub + j]            (M values, tiled 256 times by ||)
    l = sum_j (t_j - C_j)^2                      C_j[p * Mg + m] = C[m, rev(p), j]
    8 rounds: keep the smaller half of (first half, second half), element-wise

``rev`` is the 8-bit bit reversal: after it, the first half of every round holds
only lower centroid indices than the second, so a tie keeps the lower index as
FAISS does. The kept half is chosen by a 0/1 mask from ``binary_quantize(a - b)``
(expanded byte by byte, see :func:`vecext.postgres.sqlgen.bits_expr`) and blended
exactly (``a * 1 + b * 0``).

The lookup table is sub-quantizer major, like ``PQCodec.distance_table``:
``lut[m * 256 + k + 1]``; ``<codec>_distance(codes, lut)`` is the inlinable sum
``lut[1 + get_byte(codes, 0)] + lut[257 + get_byte(codes, 1)] + ...`` (+ 1 for cosine),
summed in float4 in sub-quantizer order as the Python core sums in float32.
"""

from __future__ import annotations

import numpy as np

from vecext.codecs import PQCodec
from vecext.postgres.sqlgen_base import (
    PQ_GROUP,
    FunctionDef,
    bit_table,
    bits_expr,
    code_len_check,
    decode_fn,
    dim_check,
    plpgsql,
    prepare_stmts,
    reals,
    tree_concat,
    vec,
)

K = 256
_REV = np.array([int(f"{p:08b}"[::-1], 2) for p in range(K)])


def _groups(m: int) -> list[tuple[int, int]]:
    return [(m0, min(PQ_GROUP, m - m0)) for m0 in range(0, m, PQ_GROUP)]


def functions(name: str, codec: PQCodec) -> list[FunctionDef]:
    return [_encode(name, codec), _lut(name, codec), _distance(codec), _decode(name, codec)]


#: variables the encoder and the lookup table both compute with: the prepared query or
#: vector (``x``, ``y``), the tiled sub-vectors (``t``), differences (``e``), their sums (``l``)
_WORK = ["x vector;", "y real[];", "t vector;", "e vector;", "l vector;"]

#: mask bytes expanded per statement: PL/pgSQL re-initialises every expression once
#: per transaction, so the argmin loops over one small lookup expression instead of
#: unrolling ~1,500 lookups (which cost ~2.5 ms per single-row INSERT transaction)
CHUNK = 32


def vectors(rows: np.ndarray) -> str:
    """A ``vector[]`` literal, one vector per row."""
    inner = ",".join(f'"{vec(r)[1:-9]}"' for r in rows)  # vec() = "'[...]'::vector"
    return f"'{{{inner}}}'::vector[]"


def _encode(name: str, codec: PQCodec) -> FunctionDef:
    assert codec.centroids is not None
    C, dsub = codec.centroids, codec.dsub
    stmts = [dim_check(name, "v", codec.d), *prepare_stmts(codec, "v", "x"), "y := x::real[];"]
    decls = []
    for g, (m0, mg) in enumerate(_groups(codec.m)):
        # cj[j + 1][p * mg + m] = C[m0 + m, rev(p), j]: centroid-major, bit-reversed
        cj = np.stack([C[m0 : m0 + mg, _REV, j].T.ravel() for j in range(dsub)])
        decls.append(f"c{g} vector[] := {vectors(cj)};")
        sub = ", ".join(f"y[{(m0 + i) * dsub + 1} + j]" for i in range(mg))
        stmts += [
            f"FOR j IN 0..{dsub - 1} LOOP",
            f"  t := ARRAY[{sub}]::vector;",
            *["  t := t || t;"] * 8,  # 256 copies of the sub-vectors' j-th values
            f"  e := t - c{g}[j + 1];",
            "  l := coalesce(l + e * e, e * e);",
            "END LOOP;",
            f"ix := {vec(np.repeat(_REV, mg).astype(np.float32))};",
            f"n := {K // 2 * mg};",
            "LOOP",  # 8 rounds: keep the smaller of (first half, second half)
            "  a := subvector(l, 1, n);",
            "  b := subvector(l, n + 1, n);",
            "  bs := bit_send(binary_quantize(a - b)) || zeros;",  # 1 where b < a
            "  mk := NULL;",
            "  o := 4;",  # bit_send: int32 bit length first
            "  WHILE o < 4 + (n + 7) / 8 LOOP",
            f"    chunk := {bits_expr('bs', 8 * CHUNK, 'w01', offset='o')};",
            "    mk := coalesce(mk || chunk, chunk);",
            f"    o := o + {CHUNK};",
            "  END LOOP;",
            "  mk := subvector(mk, 1, n);",
            f"  nm := subvector({vec(np.ones(K // 2 * mg))}, 1, n) - mk;",
            "  l := a * nm + b * mk;",
            "  ix := subvector(ix, 1, n) * nm + subvector(ix, n + 1, n) * mk;",
            f"  EXIT WHEN n = {mg};",
            "  n := n / 2;",
            "END LOOP;",
            "codes := codes || ix::real[];",
            "l := NULL;",
        ]
    # codes -> bytea without a query: two hex digits per code from a 256-entry table
    hexes = ", ".join(f"hx[1 + codes[{j + 1}]::int]" for j in range(codec.m))
    stmts.append(f"RETURN pg_catalog.decode(array_to_string(ARRAY[{hexes}], ''), 'hex');")
    decls += [
        *_WORK,
        "a vector;",
        "b vector;",
        "mk vector;",
        "chunk vector;",
        "nm vector;",
        "ix vector;",
        "bs bytea;",
        "n int;",
        "o int;",
        f"zeros bytea := '\\x{'00' * CHUNK}';",
        f"w01 vector[] := {bit_table('0')};",
        "hx text[] := '{" + ",".join(f"{b:02x}" for b in range(256)) + "}';",
        "codes real[] := '{}';",
    ]
    return FunctionDef("encode", "v vector", "vector", "bytea", "plpgsql", plpgsql(decls, stmts))


def _lut(name: str, codec: PQCodec) -> FunctionDef:
    assert codec.centroids is not None
    C, dsub = codec.centroids, codec.dsub
    l2 = codec.inner_metric == "l2"
    stmts = [dim_check(name, "q", codec.d), *prepare_stmts(codec, "q", "x"), "y := x::real[];"]
    decls = []
    for g, (m0, mg) in enumerate(_groups(codec.m)):
        # sub-quantizer major: cj[j + 1][m * 256 + k] = C[m0 + m, k, j]; for ip negated:
        # products with -c sum to exactly the negated sum, -<q_m, c>
        cj = np.stack([C[m0 : m0 + mg, :, j].ravel() for j in range(dsub)])
        decls.append(f"c{g} vector[] := {vectors(cj if l2 else -cj)};")
        fills = [f"array_fill(y[{(m0 + i) * dsub + 1} + j], '{{256}}')::vector" for i in range(mg)]
        stmts += [
            f"FOR j IN 0..{dsub - 1} LOOP",
            f"  t := {tree_concat(fills)};",  # each value of the query's sub-vectors 256 times
            f"  e := t - c{g}[j + 1];" if l2 else f"  e := t * c{g}[j + 1];",
            "  l := coalesce(l + e * e, e * e);" if l2 else "  l := coalesce(l + e, e);",
            "END LOOP;",
            "lut := lut || l::real[];",
            "l := NULL;",
        ]
    stmts.append("RETURN lut;")
    decls += [*_WORK, "lut real[] := '{}';"]
    return FunctionDef("lut", "q vector", "vector", "real[]", "plpgsql", plpgsql(decls, stmts))


def distance_expr(m: int, codes: str, lut: str, offset: float) -> str:
    terms = [f"{lut}[{j * K + 1} + get_byte({codes}, {j})]" for j in range(m)]
    expr = " + ".join(terms)
    if offset:
        expr += f" + {offset:g}::real"
    return expr


def _distance(codec: PQCodec) -> FunctionDef:
    body = "SELECT " + distance_expr(codec.m, "codes", "lut", codec.distance_offset)
    return FunctionDef(
        "distance", "codes bytea, lut real[]", "bytea, real[]", "real", "sql", body, inline=True
    )


def _decode(name: str, codec: PQCodec) -> FunctionDef:
    assert codec.centroids is not None
    dsub = codec.dsub
    pieces = []
    for j in range(codec.m):
        start = f"{j * K * dsub} + get_byte(codes, {j}) * {dsub}"
        pieces.append(f"cb[{start} + 1 : {start} + {dsub}]")
    inner = [
        code_len_check(name, "codes", codec.m),
        f"cb := {reals(codec.centroids)};",
        f"y := ({' || '.join(pieces)})::vector;",
    ]
    fn = decode_fn(name, codec, "codes bytea", "bytea", inner)
    body = fn.body.replace("DECLARE\n", "DECLARE\n  cb real[];\n", 1)
    return FunctionDef(fn.suffix, fn.args, fn.arg_types, fn.returns, fn.language, body, fn.inline)
