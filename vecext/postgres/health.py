"""What ``vecext info`` warns about in a PostgreSQL catalog: settings that make other
roles fail or make codes depend on the caller.

* **search_path**: a vecext function without a pinned ``search_path`` (``proconfig``)
  resolves pgvector's types, operators and ``l2_normalize`` through the caller's path:
  under ``search_path = app`` inserts fail inside the trigger, and a user function of
  the same name earlier on the path changes the codes it writes; CREATE INDEX runs
  expression-index functions with ``search_path = pg_catalog`` and cannot find them.
* **grants**: when no role besides the catalog's owner may use schema ``vecext``, an
  application role cannot search, and its INSERTs and UPDATEs on a table with a
  compressed column fail in the trigger (``permission denied for schema vecext``).

Each warning says what to run; none is an error (a single-role database is fine).
"""

from __future__ import annotations

import psycopg

_UNPINNED = """
SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}'))
                                          AS c WHERE c LIKE 'search\\_path=%%')),
       count(*),
       (array_agg(p.proname::text ORDER BY p.proname) FILTER (WHERE NOT EXISTS (
            SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) AS c
             WHERE c LIKE 'search\\_path=%%')))[1:3]
  FROM pg_proc p WHERE p.pronamespace = 'vecext'::regnamespace
"""

_GRANTEES = """
SELECT pg_get_userbyid(n.nspowner),
       coalesce(array_agg(DISTINCT CASE a.grantee WHEN 0 THEN 'PUBLIC'
                                   ELSE pg_get_userbyid(a.grantee) END)
                FILTER (WHERE a.privilege_type = 'USAGE' AND a.grantee <> n.nspowner), '{}')
  FROM pg_namespace n LEFT JOIN LATERAL aclexplode(n.nspacl) a ON true
 WHERE n.nspname = 'vecext' GROUP BY n.nspowner
"""


def catalog_warnings(conn: psycopg.Connection) -> list[str]:
    """Warnings about the installed catalog (empty when it is fine or not installed)."""
    if conn.execute("SELECT to_regnamespace('vecext')").fetchone()[0] is None:  # type: ignore[index]
        return []
    out: list[str] = []
    unpinned, total, some = conn.execute(_UNPINNED).fetchone()  # type: ignore[misc]
    if unpinned:
        names = ", ".join(f"vecext.{n}" for n in some or [])
        out.append(
            f"{unpinned} of {total} vecext functions do not pin search_path (e.g. {names}): "
            "their results depend on the caller's search_path (a pgvector in another "
            "schema, a same-named function earlier on the path) and expression indexes "
            "cannot use them; upgrade the catalog with `vecext install` (codec functions: "
            "save the codec again)"
        )
    row = conn.execute(_GRANTEES).fetchone()
    if row is not None and not row[1]:
        has_grant = conn.execute(
            "SELECT to_regprocedure('vecext.grant_usage(name)') IS NOT NULL "
            "OR to_regprocedure('vecext.grant_usage(regrole)') IS NOT NULL "
            "OR to_regprocedure('vecext.grant_usage(text)') IS NOT NULL"
        ).fetchone()[0]  # type: ignore[index]
        how = (
            "SELECT vecext.grant_usage('<role>')"
            if has_grant
            else "upgrade the catalog with `vecext install`, then SELECT vecext.grant_usage('<role>')"
        )
        out.append(
            f"no role besides the catalog's owner ({row[0]}) may use schema vecext: other "
            "roles cannot search, and their writes to tables with compressed columns fail "
            f"in vecext's trigger; grant them with {how} (README: Roles and privileges)"
        )
    return out


__all__ = ["catalog_warnings"]
