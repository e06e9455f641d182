"""Remove vecext's own objects from a PostgreSQL database, and nothing else.

``uninstall`` (``vecext uninstall``, ``alembic downgrade base``) never runs ``DROP
SCHEMA ... CASCADE``: it first asks ``pg_depend`` which objects outside vecext depend
on vecext's (a view or a generated column calling a codec function, an expression
index, a default, a foreign key or view over a catalog table) and refuses, naming each
of them, while any exists. Otherwise it drops, without CASCADE, vecext's triggers on
user tables and its event triggers, then every function, procedure, table and type of
the ``vecext`` schema, then the (then empty) schema. The code columns vecext added to
user tables keep their data (they are user data now); vector columns are never touched.

vecext's objects are what lives in schema ``vecext`` (do not keep your own objects
there) plus the triggers and event triggers that call its functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from vecext.errors import CatalogError

SCHEMA = "vecext"
#: the advisory lock the install scripts take (``vecext.postgres.catalog._INSTALL_LOCK``)
INSTALL_LOCK = 0x76656378

#: objects of schema vecext, and what outside it depends on them (a trigger's, default's,
#: constraint's or view rule's home is its table's schema)
_DEPENDANTS = """
WITH own AS (
    SELECT 'pg_proc'::regclass AS classid, oid AS objid FROM pg_proc
     WHERE pronamespace = %(ns)s::regnamespace
    UNION ALL
    SELECT 'pg_class'::regclass, oid FROM pg_class WHERE relnamespace = %(ns)s::regnamespace
    UNION ALL
    SELECT 'pg_type'::regclass, oid FROM pg_type WHERE typnamespace = %(ns)s::regnamespace
), deps AS (
    SELECT DISTINCT d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid
      FROM pg_depend d JOIN own o ON o.classid = d.refclassid AND o.objid = d.refobjid
     WHERE d.deptype IN ('n', 'a')
)
SELECT i.type, i.schema, i.identity,
       pg_describe_object(deps.refclassid, deps.refobjid, 0),
       deps.classid = 'pg_trigger'::regclass
         AND (SELECT p.pronamespace = %(ns)s::regnamespace FROM pg_trigger t
                JOIN pg_proc p ON p.oid = t.tgfoid WHERE t.oid = deps.objid),
       deps.classid = 'pg_event_trigger'::regclass
  FROM deps, LATERAL pg_identify_object(deps.classid, deps.objid, deps.objsubid) i,
       LATERAL (SELECT CASE deps.classid
         WHEN 'pg_class'::regclass THEN (SELECT relnamespace FROM pg_class WHERE oid = deps.objid)
         WHEN 'pg_proc'::regclass THEN (SELECT pronamespace FROM pg_proc WHERE oid = deps.objid)
         WHEN 'pg_type'::regclass THEN (SELECT typnamespace FROM pg_type WHERE oid = deps.objid)
         WHEN 'pg_attrdef'::regclass THEN (SELECT c.relnamespace FROM pg_attrdef a
              JOIN pg_class c ON c.oid = a.adrelid WHERE a.oid = deps.objid)
         WHEN 'pg_constraint'::regclass THEN (SELECT coalesce(c.relnamespace, k.connamespace)
              FROM pg_constraint k LEFT JOIN pg_class c ON c.oid = k.conrelid
              WHERE k.oid = deps.objid)
         WHEN 'pg_trigger'::regclass THEN (SELECT c.relnamespace FROM pg_trigger t
              JOIN pg_class c ON c.oid = t.tgrelid WHERE t.oid = deps.objid)
         WHEN 'pg_rewrite'::regclass THEN (SELECT c.relnamespace FROM pg_rewrite r
              JOIN pg_class c ON c.oid = r.ev_class WHERE r.oid = deps.objid)
         WHEN 'pg_policy'::regclass THEN (SELECT c.relnamespace FROM pg_policy p
              JOIN pg_class c ON c.oid = p.polrelid WHERE p.oid = deps.objid)
         END AS ns) home
 WHERE home.ns IS DISTINCT FROM %(ns)s::regnamespace
 ORDER BY 1, 2, 3
"""


@dataclass(frozen=True)
class Dependant:
    """An object outside vecext that depends on a vecext object."""

    type: str  # pg_identify_object's: "view", "default value", "index", "trigger", ...
    identity: str
    uses: str  # the vecext object, as pg_describe_object prints it

    def __str__(self) -> str:
        return f"{self.type} {self.identity} (uses {self.uses})"


def dependants(conn: psycopg.Connection) -> tuple[list[Dependant], list[str], list[str]]:
    """``(user objects depending on vecext, vecext triggers on user tables, event
    triggers)``; the last two as ``pg_identify_object`` identities."""
    rows = conn.execute(_DEPENDANTS, {"ns": SCHEMA}).fetchall()
    users: dict[tuple[str, str], Dependant] = {}
    triggers: list[str] = []
    events: list[str] = []
    for typ, _schema, identity, uses, is_vecext_trigger, is_event in rows:
        if is_vecext_trigger:
            triggers.append(identity)
        elif is_event:
            events.append(identity)
        else:
            if typ == "rule" and identity.startswith('"_RETURN" on '):
                # a view's (or materialized view's) query: name the view
                typ, identity = "view", identity[len('"_RETURN" on ') :]
            users.setdefault((typ, identity), Dependant(typ, identity, uses))
    return list(users.values()), sorted(set(triggers)), sorted(set(events))


def refuse_dependants(found: list[Dependant], action: str) -> None:
    """A :class:`CatalogError` naming every user object in the way of ``action``."""
    if not found:
        return
    listed = "\n  ".join(str(d) for d in found)
    raise CatalogError(
        f"cannot {action}: {len(found)} object(s) of yours depend on vecext objects:\n  "
        f"{listed}\ndrop or change them first (vecext drops none of your objects)"
    )


def uninstall(conn: psycopg.Connection) -> list[str]:
    """Drop vecext's own objects (see the module docstring); returns what was dropped.

    Runs in the caller's transaction when there is one (an Alembic migration), else in
    its own. Refuses with a :class:`CatalogError` naming the user objects that depend on
    vecext while any exists. A database without the catalog is left as it is.
    """
    if not conn.autocommit or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return _uninstall(conn)
    with conn.transaction():
        return _uninstall(conn)


def _uninstall(conn: psycopg.Connection) -> list[str]:
    if conn.execute("SELECT to_regnamespace(%s)", [SCHEMA]).fetchone()[0] is None:  # type: ignore[index]
        return []
    # one uninstall / install at a time (the install scripts take the same lock)
    conn.execute("SELECT pg_advisory_xact_lock(%s)", [INSTALL_LOCK])
    users, triggers, events = dependants(conn)
    refuse_dependants(users, "uninstall vecext")
    dropped: list[str] = []
    for name, table in conn.execute(
        """SELECT t.tgname, t.tgrelid::regclass::text FROM pg_trigger t
             JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_class c ON c.oid = t.tgrelid
            WHERE p.pronamespace = %s::regnamespace AND c.relnamespace <> %s::regnamespace
              AND NOT t.tgisinternal""",
        [SCHEMA, SCHEMA],
    ).fetchall():
        conn.execute(sql.SQL("DROP TRIGGER {} ON {}").format(sql.Identifier(name), sql.SQL(table)))
        dropped.append(f"trigger {name} on {table}")
    for (name,) in conn.execute(
        """SELECT e.evtname FROM pg_event_trigger e JOIN pg_proc p ON p.oid = e.evtfoid
            WHERE p.pronamespace = %s::regnamespace""",
        [SCHEMA],
    ).fetchall():
        conn.execute(sql.SQL("DROP EVENT TRIGGER {}").format(sql.Identifier(name)))
        dropped.append(f"event trigger {name}")
    steps = [
        (
            "SELECT CASE prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' "
            "ELSE 'FUNCTION' END, oid::regprocedure::text FROM pg_proc "
            "WHERE pronamespace = %s::regnamespace ORDER BY prokind = 'a' DESC, oid DESC"
        ),
        (
            "SELECT CASE relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' "
            "WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, oid::regclass::text FROM pg_class "
            "WHERE relnamespace = %s::regnamespace AND relkind IN ('v', 'm', 'r', 'p', 'S') "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
            "AND d.objid = pg_class.oid AND d.deptype IN ('a', 'i') "
            "AND d.refclassid = 'pg_class'::regclass) "
            "ORDER BY relkind IN ('v', 'm') DESC, relkind = 'S', oid DESC"
        ),
        (
            "SELECT 'TYPE', t.oid::regtype::text FROM pg_type t WHERE t.typnamespace = "
            "%s::regnamespace AND t.typtype IN ('c', 'e', 'd', 'r') AND (t.typrelid = 0 OR "
            "(SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c') AND t.typelem = 0"
        ),
    ]
    todo = [
        (kind, name)
        for query in steps
        for kind, name in conn.execute(query, [SCHEMA]).fetchall()
        if not (kind == "TYPE" and name.startswith("_"))
    ]
    # vecext's objects depend on one another (foreign keys between catalog tables, a
    # function's row type, a default calling a function): drop what nothing else of
    # vecext needs first, pass after pass, each drop in a savepoint, never CASCADE
    while todo:
        left: list[tuple[str, str]] = []
        error = ""
        for kind, name in todo:
            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL("DROP {} IF EXISTS {}").format(sql.SQL(kind), sql.SQL(name))
                    )
            except psycopg.errors.DependentObjectsStillExist as exc:
                left.append((kind, name))
                error = str(exc).splitlines()[0]
                continue
            dropped.append(f"{kind.lower()} {name}")
        if len(left) == len(todo):
            raise CatalogError(
                f"cannot uninstall vecext: {', '.join(n for _, n in left)} still needed ({error})"
            )
        todo = left
    conn.execute(sql.SQL("DROP SCHEMA {}").format(sql.Identifier(SCHEMA)))  # RESTRICT
    dropped.append(f"schema {SCHEMA}")
    return dropped


__all__ = ["Dependant", "dependants", "refuse_dependants", "uninstall"]
