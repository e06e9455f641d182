"""vecext's DuckDB macros: the generic ``vecext.codec_*`` functions and each codec's own.

The generic macros (the SQL API of :mod:`vecext.sqlapi`) read the codec's fingerprint
from ``vecext.codecs`` and call the Arrow UDFs of :mod:`vecext.duckdb.udfs`; the
per-codec macros (``vecext.<codec>_encode`` ...) carry the fingerprint as a constant
written when the codec was saved, and the fast distances are plain SQL expressions
over the code column's layout (PQ: a lookup-table sum over ``UTINYINT[M]``; binary:
``bit_count(xor(...))`` over ``UBIGINT`` words). Both are recreated by every writable
connection (:func:`vecext.duckdb.attach`), so a catalog upgrade renames them without
touching the stored codecs.
"""

from __future__ import annotations

from vecext.codecs import KINDS, Codec
from vecext.duckdb import _arrow as ar
from vecext.duckdb._sql import quote_ident, quote_literal

#: The generic functions of the SQL API (vecext/sqlapi.py), as DuckDB macros: the
#: codec group ``vecext.codec_*`` of catalog 0.3.0 (codes before the query, as in every
#: ``vecext.<codec>_distance(codes, q)``), then the 0.1.0 names as deprecated aliases
#: with their old argument order (after the macros they call).
GENERIC_MACROS = {
    "codec_fingerprint": (
        "(codec)",
        "(SELECT fingerprint FROM vecext.codecs WHERE name = codec)",
    ),
    "codec_encode": (
        "(codec, v)",
        "vecext_udf_encode(codec, vecext.codec_fingerprint(codec), CAST(v AS FLOAT[]))",
    ),
    "codec_decode": (
        "(codec, codes)",
        "vecext_udf_decode(codec, vecext.codec_fingerprint(codec), CAST(codes AS BLOB))",
    ),
    "codec_distance": (
        "(codec, codes, q)",
        "vecext_udf_distance(codec, vecext.codec_fingerprint(codec), CAST(q AS FLOAT[]), "
        "CAST(codes AS BLOB))",
    ),
    "codec_lut": (
        "(codec, q)",
        # a scalar subquery: computed once per distinct query, not once per row
        "(SELECT vecext_udf_pq_lut(codec, vecext.codec_fingerprint(codec), CAST(q AS FLOAT[])))",
    ),
    "encode": ("(codec, v)", "vecext.codec_encode(codec, v)"),
    "decode": ("(codec, codes)", "vecext.codec_decode(codec, codes)"),
    "distance": ("(codec, q, codes)", "vecext.codec_distance(codec, codes, q)"),
    "pq_lut": ("(codec, q)", "vecext.codec_lut(codec, q)"),
}

PER_CODEC_SUFFIXES = ("encode", "decode", "lut", "distance")


def generic_macro_sql() -> list[str]:
    return [
        f"CREATE OR REPLACE MACRO vecext.{quote_ident(name)}{params} AS {body}"
        for name, (params, body) in GENERIC_MACROS.items()
    ]


def codec_macro_names(name: str, kind: str) -> list[str]:
    """The per-codec macros a codec of ``kind`` gets (``_lut`` for lookup-table kinds only)."""
    # a kind this vecext does not know (rows another tool wrote) has no lookup table
    lut = kind in KINDS and KINDS[kind].has_lut
    return [f"{name}_{s}" for s in PER_CODEC_SUFFIXES if s != "lut" or lut]


def codec_macro_sql(name: str, codec: Codec) -> list[str]:
    """``CREATE OR REPLACE MACRO`` statements of ``codec``'s per-codec functions."""
    args = f"{quote_literal(name)}, {quote_literal(codec.fingerprint)}"
    layout = ar.code_layout(codec)
    d, size = codec.d, codec.code_size
    vec = f"FLOAT[{d}]"

    def macro(suffix: str, params: str, body: str) -> str:
        return (
            f"CREATE OR REPLACE MACRO vecext.{quote_ident(f'{name}_{suffix}')}({params}) AS {body}"
        )

    out: list[str] = []
    if layout == "u8":
        out.append(
            macro(
                "encode",
                "v",
                f"CAST(vecext_udf_encode_u8({args}, CAST(v AS FLOAT[])) AS UTINYINT[{size}])",
            )
        )
        out.append(
            macro(
                "decode",
                "codes",
                f"CAST(vecext_udf_decode_u8({args}, CAST(codes AS UTINYINT[])) AS {vec})",
            )
        )
        out.append(macro("lut", "q", f"(SELECT vecext_udf_pq_lut({args}, CAST(q AS FLOAT[])))"))
        # ADC as one inlinable expression: lists are 1-based, sub-quantizer m's table
        # starts at m * 256 + 1; the INTEGER cast keeps 255 + 1 from overflowing UTINYINT
        terms = " + ".join(f"lut[codes[{m + 1}]::INTEGER + {m * 256 + 1}]" for m in range(size))
        if codec.distance_offset:
            terms = f"({terms}) + CAST({codec.distance_offset!r} AS FLOAT)"
        out.append(macro("distance", "codes, lut", f"({terms})"))
    elif layout == "u64":
        w = ar.n_words(size)
        out.append(
            macro(
                "encode",
                "v",
                f"CAST(vecext_udf_encode_u64({args}, CAST(v AS FLOAT[])) AS UBIGINT[{w}])",
            )
        )
        out.append(
            macro(
                "decode",
                "codes",
                f"CAST(vecext_udf_decode_u64({args}, CAST(codes AS UBIGINT[])) AS {vec})",
            )
        )
        # bit_count returns TINYINT: widen before summing
        terms = " + ".join(f"bit_count(xor(codes[{i + 1}], q[{i + 1}]))::INTEGER" for i in range(w))
        out.append(macro("distance", "codes, q", f"CAST({terms} AS FLOAT)"))
    else:
        out.append(macro("encode", "v", f"vecext_udf_encode({args}, CAST(v AS FLOAT[]))"))
        out.append(
            macro(
                "decode", "codes", f"CAST(vecext_udf_decode({args}, CAST(codes AS BLOB)) AS {vec})"
            )
        )
        out.append(
            macro(
                "distance",
                "codes, q",
                f"vecext_udf_distance({args}, CAST(q AS FLOAT[]), CAST(codes AS BLOB))",
            )
        )
    return out
