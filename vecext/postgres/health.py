"""What ``vecext info`` warns about in a PostgreSQL catalog: settings that make other
roles fail or make codes depend on the caller.

* **search_path**: a vecext function without a pinned ``search_path`` (``proconfig``)
  resolves pgvector's types, operators and ``l2_normalize`` through the caller's path:
  under ``search_path = app`` inserts fail inside the trigger, and a user function of
  the same name earlier on the path changes the codes it writes; CREATE INDEX runs
  expression-index functions with ``search_path = pg_catalog`` and cannot find them.
* **grants**: a role that can log in (not a superuser, not the catalog's owner) without
  USAGE on schema ``vecext`` cannot search, and on an old catalog its INSERTs and
  UPDATEs on a table with a compressed column fail in the trigger (``permission
  denied for schema vecext``). A single-role database gets no warning.

Each warning says what to run; none is an error (a single-role database is fine).
"""

from __future__ import annotations

import psycopg

#: functions that must pin search_path: all of vecext's but procedures (a procedure
#: with a SET clause cannot COMMIT; vecext.backfill names every object with its schema)
#: and a PQ codec's inlinable lookup sum ``<codec>_distance(bytea, real[])`` (a SET
#: clause would stop inlining; it uses built-in operators only)
_MUST_PIN = """p.pronamespace = 'vecext'::regnamespace AND p.prokind <> 'p'
   AND NOT (p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql')
            AND p.proargtypes = '17 1021'::oidvector)"""
_PINNED = "EXISTS (SELECT 1 FROM unnest(p.proconfig) AS c WHERE c LIKE 'search\\_path=%')"
#: PQ lookup sums that pin search_path anyway (by hand, or by an early build of the 0.4.0
#: upgrade that pinned every function): a function with a SET clause is never inlined
_PINNED_LOOKUP = f"""
SELECT array_agg(p.oid::regprocedure::text ORDER BY p.proname)
  FROM pg_proc p
 WHERE p.pronamespace = 'vecext'::regnamespace AND p.prokind = 'f'
   AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql')
   AND p.proargtypes = '17 1021'::oidvector AND {_PINNED}
"""
_UNPINNED = f"""
SELECT count(*) FILTER (WHERE NOT {_PINNED}), count(*),
       (array_agg(p.proname::text ORDER BY p.proname) FILTER (WHERE NOT {_PINNED}))[1:3]
  FROM pg_proc p WHERE {_MUST_PIN}
"""

#: roles that can log in, are not superusers (who need no grant) and may not use vecext
_WITHOUT_USAGE = """
SELECT array_agg(r.rolname::text ORDER BY r.rolname)
  FROM pg_roles r
 WHERE r.rolcanlogin AND NOT r.rolsuper AND r.rolname !~ '^pg_'
   AND r.oid <> (SELECT nspowner FROM pg_namespace WHERE nspname = 'vecext')
   AND NOT has_schema_privilege(r.oid, 'vecext', 'USAGE')
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
    (lookups,) = conn.execute(_PINNED_LOOKUP).fetchone()  # type: ignore[misc]
    if lookups:
        fixes = "; ".join(f"ALTER FUNCTION {f} RESET search_path" for f in lookups[:3])
        out.append(
            f"{len(lookups)} PQ lookup sum(s) pin search_path, which stops PostgreSQL from "
            "inlining them into a search (PQ candidate stages run many times slower): "
            f"run {fixes}"
            + (" (and the others)" if len(lookups) > 3 else "")
            + ", or save the codec again"
        )
    (roles,) = conn.execute(_WITHOUT_USAGE).fetchone()  # type: ignore[misc]
    if roles:
        has_grant = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'grant_usage' "
            "AND pronamespace = 'vecext'::regnamespace)"
        ).fetchone()[0]  # type: ignore[index]
        how = (
            "SELECT vecext.grant_usage('<role>')"
            if has_grant
            else "upgrade the catalog with `vecext install`, then SELECT vecext.grant_usage('<role>')"
        )
        shown = ", ".join(roles[:3]) + (f" and {len(roles) - 3} more" if len(roles) > 3 else "")
        out.append(
            f"{len(roles)} login role(s) may not use schema vecext ({shown}): they cannot "
            "search tables with vecext columns"
            + ("" if has_grant else ", and their writes to such tables fail in vecext's trigger")
            + f"; grant them with {how} (README: Roles and privileges)"
        )
    return out


__all__ = ["catalog_warnings"]
