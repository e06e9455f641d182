"""Relevance adapters in a DuckDB database: the SQL macros over their catalog rows.

Saving, loading, listing and dropping adapters are :mod:`vecext.catalog.api`'s verbs
(re-exported here, the same functions as ``vecext.postgres``'s): an adapter is stored
as the rows of :mod:`vecext.catalog.adapters` (the same rows, bytes and fingerprint as
in PostgreSQL). The macros ``vecext.relevance_score``,
``vecext.relevance_min_similarity`` and ``vecext.relevance_features`` read those rows
and compute what the PostgreSQL functions of the same names compute (see
``vecext.relevance_map`` in ``sql/postgres/``): the per-query slope and intercept from
``list_inner_product`` with the stored ``w_a`` / ``w_b`` vectors (in double
precision), then the calibrated score or the cosine bound of a threshold.
"""

from __future__ import annotations

import duckdb

from vecext.catalog import api
from vecext.catalog.api import *  # noqa: F403  (the verbs, where vecext 0.2 had them)
from vecext.duckdb._sql import is_read_only
from vecext.duckdb.catalog import installed_version
from vecext.duckdb.functions import registrar

__all__ = [*api.ADAPTER_VERBS, "register_relevance"]


# ---------------------------------------------------------------------------
# SQL macros. Their bodies are generated from fixed text (no user input): DuckDB
# macros take no parameters, and a helper macro would be one more name in schema
# vecext, so the per-query parameters are spelled out in each macro that needs them.


def _who(text: str) -> str:
    """An error message that starts with the adapter's quoted name."""
    return "'relevance adapter ''' || adapter || '''" + text


_UNKNOWN = (
    "'unknown relevance adapter ''' || adapter || '''; known adapters: ' || coalesce(("
    "SELECT string_agg(name, ', ' ORDER BY name) FROM vecext.relevance_adapters), '(none)')"
)


def _feature(fj: str, name: str) -> str:
    """The value of feature ``name`` in the features argument (bound once as ``fj``)."""
    return f"json_extract_string({fj}, '$.\"' || {name} || '\"')"


def _z(w: str, c: str, v: str) -> str:
    """``-(w <#> q) + c + v . features`` of the adapter in row ``f``, in double precision."""
    vec = (
        "(SELECT w.vec FROM vecext.relevance_arrays w "
        f"WHERE w.adapter_name = f.name AND w.array_name = '{w}')::DOUBLE[]"
    )
    value = _feature("f.fj", "f.names[i]")
    feats = f"list_transform(range(1, len(f.names) + 1), lambda i: f.{v}[i] * {value}::DOUBLE)"
    return f"list_inner_product({vec}, q::DOUBLE[]) + f.{c} + coalesce(list_sum({feats}), 0)"


_A = "(greatest(z.z_a, 0) + ln(1 + exp(-least(abs(z.z_a), 700)))) / z.s_scale"  # softplus
_USABLE = "f.method = 'cosine-adapter' AND len(q) = f.dim AND NOT f.missing"
_MISSING = _feature("f.fj", "n")
_ABSENT = _feature("fx.fj", "m")

#: one row: the adapter's method, why it cannot be evaluated (or NULL), and the
#: slope ``a`` / intercept ``b`` / threshold ``t`` of ``score = sigmoid(a s + b)``
_AB = f"""(SELECT CASE WHEN z.err IS NOT NULL THEN error(z.err) ELSE {{
        'method': z.method,
        'a': CASE z.method WHEN 'platt' THEN z.pa WHEN 'cosine-adapter' THEN {_A} END,
        'b': CASE z.method WHEN 'platt' THEN z.pb
             WHEN 'cosine-adapter' THEN z.z_b - {_A} * z.s_center END,
        't': z.t}} END
  FROM (SELECT f.method, f.t, f.pa, f.pb, f.s_scale, f.s_center,
    CASE
      WHEN f.name IS NULL THEN {_UNKNOWN}
      WHEN f.method NOT IN ('fixed', 'platt', 'cosine-adapter')
        THEN {_who(" uses method ' || f.method || ', which SQL cannot evaluate'")}
      WHEN f.method = 'cosine-adapter' AND len(q) <> f.dim
        THEN {_who(" was trained on dimension ' || f.dim || ', the query has dimension ' || len(q)")}
      WHEN f.missing
        THEN {_who(" uses the distribution features ' || array_to_string(f.names, ', ')")}
          || ' of the query''s candidates; missing: ' || coalesce(array_to_string(
               list_filter(f.names, lambda n: {_MISSING} IS NULL), ', '), 'all')
          || '. Pass features := vecext.relevance_features(adapter, <similarities of the '
          || 'query''s top candidates>)'
    END AS err,
    CASE WHEN {_USABLE} THEN {_z("w_a", "c_a", "va")} END AS z_a,
    CASE WHEN {_USABLE} THEN {_z("w_b", "c_b", "vb")} END AS z_b
    FROM (SELECT k.name, k.method, k.dim, n.names, fx.fj,
            json_extract(k.params, '$.threshold')::DOUBLE AS t,
            json_extract(k.params, '$.A')::DOUBLE AS pa,
            json_extract(k.params, '$.B')::DOUBLE AS pb,
            json_extract(k.params, '$.c_a')::DOUBLE AS c_a,
            json_extract(k.params, '$.c_b')::DOUBLE AS c_b,
            json_extract(k.params, '$.s_scale')::DOUBLE AS s_scale,
            json_extract(k.params, '$.s_center')::DOUBLE AS s_center,
            coalesce(from_json(json_extract(k.params, '$.v_a'), '["DOUBLE"]'), []) AS va,
            coalesce(from_json(json_extract(k.params, '$.v_b'), '["DOUBLE"]'), []) AS vb,
            k.method = 'cosine-adapter' AND len(n.names) > 0 AND (fx.fj IS NULL OR
              list_bool_or(list_transform(n.names, lambda m: {_ABSENT} IS NULL))) AS missing
          FROM (SELECT 1) one
          LEFT JOIN vecext.relevance_adapters k ON k.name = adapter
          LEFT JOIN LATERAL (SELECT coalesce(
              from_json(json_extract(k.params, '$.features'), '["VARCHAR"]'), []) AS names) n ON true
          -- bound once: a macro argument may be a subquery, and DuckDB allows none in lambdas
          CROSS JOIN (SELECT features::VARCHAR AS fj) fx) f) z)"""

_SIGMOID = "CASE WHEN x >= 0 THEN 1 / (1 + exp(-x)) ELSE exp(x) / (1 + exp(x)) END"

_MACROS = {
    "relevance_score": f"""CREATE OR REPLACE MACRO vecext.relevance_score(adapter, q, s, features := NULL) AS (
  SELECT CASE WHEN adapter IS NULL OR q IS NULL OR s IS NULL THEN NULL::DOUBLE
              WHEN p.ab.method = 'fixed' THEN s::DOUBLE
              ELSE (SELECT {_SIGMOID} FROM (SELECT least(greatest(p.ab.a * s + p.ab.b, -700), 700) AS x)) END
  FROM (SELECT CASE WHEN adapter IS NULL OR q IS NULL OR s IS NULL THEN NULL ELSE {_AB} END AS ab) p)""",
    "relevance_min_similarity": f"""CREATE OR REPLACE MACRO vecext.relevance_min_similarity(adapter, q, threshold := NULL, features := NULL) AS (
  SELECT CASE
      WHEN adapter IS NULL OR q IS NULL THEN NULL::DOUBLE
      WHEN p.t IS NULL OR isnan(p.t) OR isinf(p.t)
        THEN error({_who(": threshold must be a finite number, got ' || coalesce(p.t::VARCHAR, 'NULL')")})
      WHEN p.ab.method = 'fixed' THEN p.t
      WHEN p.t < 0 OR p.t > 1
        THEN error({_who(" (' || p.ab.method || '): threshold ' || p.t || ' is outside [0, 1]'")})
      WHEN p.t = 0 THEN '-inf'::DOUBLE
      WHEN p.t = 1 THEN 'inf'::DOUBLE
      WHEN p.ab.a > 0 THEN (ln(p.t / (1 - p.t)) - p.ab.b) / p.ab.a
      WHEN ln(p.t / (1 - p.t)) > p.ab.b THEN 'inf'::DOUBLE
      ELSE '-inf'::DOUBLE END
  FROM (SELECT ab, coalesce(threshold::DOUBLE, ab.t) AS t
        FROM (SELECT CASE WHEN adapter IS NULL OR q IS NULL THEN NULL ELSE {_AB} END AS ab)) p)""",
    "relevance_features": f"""CREATE OR REPLACE MACRO vecext.relevance_features(adapter, sims) AS (
  SELECT CASE
      WHEN adapter IS NULL OR sims IS NULL THEN NULL::JSON
      WHEN k.name IS NULL THEN error({_UNKNOWN})
      WHEN len(n.names) > 0 AND len(n.ss) = 0
        THEN error({_who(": its features ' || array_to_string(n.names, ', ')")}
                   || ' need the similarities of the query''s candidates, got none')
      ELSE to_json(map_from_entries(list_transform(n.names, lambda f: {{'k': f, 'v': CASE f
          WHEN 'top1' THEN n.ss[1]
          WHEN 'gap12' THEN n.ss[1] - n.ss[least(2, len(n.ss))]
          WHEN 'mean10' THEN list_avg(n.ss[1:10])
          WHEN 'gap1_10' THEN n.ss[1] - n.ss[least(10, len(n.ss))]
          WHEN 'std10' THEN list_aggregate(n.ss[1:10], 'stddev_pop') END}})))
    END
  FROM (SELECT 1) one
  LEFT JOIN vecext.relevance_adapters k ON k.name = adapter
  LEFT JOIN LATERAL (SELECT
        coalesce(from_json(json_extract(k.params, '$.features'), '["VARCHAR"]'), [])::VARCHAR[] AS names,
        list_reverse_sort(list_filter(sims::DOUBLE[], lambda x: x IS NOT NULL)) AS ss) n ON true)""",
}


@registrar
def register_relevance(con: duckdb.DuckDBPyConnection) -> None:
    """The relevance macros, in the catalog's schema (nothing on a plain or read-only
    connection: a read-only database keeps the macros it was saved with)."""
    if installed_version(con) is None or is_read_only(con):
        return
    for sql in _MACROS.values():
        con.execute(sql)
