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

from collections.abc import Callable
from typing import Any

from psycopg import sql

from vecext.codecs import Codec, CodecError
from vecext.postgres import sqlgen_kinds, sqlgen_pq
from vecext.postgres.sqlgen_base import SCHEMA, FunctionDef, function_name, prepare_fn

#: suffixes of the per-codec functions (``vecext.<codec>_<suffix>``)
SUFFIXES = ("encode", "decode", "distance", "prepare", "lut")
#: generic functions a per-codec name must not shadow
GENERIC = frozenset(
    {
        "vecext_version",
        "codec_fingerprint",
        "codec_encode",
        "codec_decode",
        "codec_distance",
        "codec_lut",
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
IMMUTABLE = "IMMUTABLE STRICT PARALLEL SAFE"
#: codec kind -> its functions besides ``_prepare`` (a kind without an entry has no
#: SQL functions, and cannot be saved in PostgreSQL)
GENERATORS: dict[str, Callable[[str, Any], list[FunctionDef]]] = {
    "pq": sqlgen_pq.functions,
    "binary": sqlgen_kinds.binary,
    "half": sqlgen_kinds.half,
    "int8": sqlgen_kinds.int8,
    "rbq": sqlgen_kinds.rbq,
}


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
# per kind


def functions_for(codec_name: str, codec: Codec) -> list[FunctionDef]:
    """All per-codec functions of a trained codec."""
    if not codec.is_trained:
        raise CodecError(f"codec {codec_name!r} is not trained")
    if codec.kind not in GENERATORS:
        raise CodecError(f"no SQL functions for codec kind {codec.kind!r}")
    return [prepare_fn(codec_name, codec), *GENERATORS[codec.kind](codec_name, codec)]


# ---------------------------------------------------------------------------
# DDL


def create_statements(
    codec_name: str, codec: Codec, pgvector_schema: str | None = None
) -> list[sql.Composed]:
    """``CREATE OR REPLACE FUNCTION`` + ``COMMENT`` for every per-codec function; with
    ``pgvector_schema``, each (but an inlinable PQ lookup sum) runs with ``search_path =
    pg_catalog, <pgvector_schema>, pg_temp``, as every catalog function does."""
    out = []
    for f in functions_for(codec_name, codec):
        fname = sql.Identifier(SCHEMA, function_name(codec_name, f.suffix))
        pin = sql.SQL("")
        if pgvector_schema is not None and not f.inline:
            pin = sql.SQL(" SET search_path = pg_catalog, {}, pg_temp").format(
                sql.Identifier(pgvector_schema)
            )
        out.append(
            sql.SQL("CREATE OR REPLACE FUNCTION {}({}) RETURNS {} LANGUAGE {} {}{} AS {}").format(
                fname,
                sql.SQL(f.args),
                sql.SQL(f.returns),
                sql.SQL(f.language),
                sql.SQL(IMMUTABLE),
                pin,
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
