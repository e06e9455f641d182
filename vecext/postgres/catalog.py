"""Install and upgrade the vecext catalog (schema ``vecext``) in PostgreSQL, and the
:class:`PgDialect` through which :mod:`vecext.catalog.store` reads and writes it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from vecext.catalog import scripts as _scripts
from vecext.catalog.dialect import register
from vecext.catalog.scripts import InstallResult
from vecext.errors import CatalogError
from vecext.postgres import pgvector

#: identifiers PostgreSQL prints without quotes (keywords aside)
_PLAIN_IDENT = re.compile(r"^[a-z_][a-z0-9_$]*$")


@register(psycopg.Connection)
class PgDialect:
    """The catalog store's view of a psycopg connection (see :class:`vecext.catalog.dialect.Dialect`)."""

    backend = "postgres"
    api = "vecext.postgres"
    case_insensitive = False
    json_type = "jsonb"
    vector_type = "vector"

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def require_catalog(self) -> str:
        return require_catalog(self.conn)

    @staticmethod
    def _sql(text: str) -> str:
        # the store writes ? placeholders and never a literal %
        return text.replace("?", "%s")

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(self._sql(query), list(params))  # type: ignore[arg-type]
        return cur.fetchall() if cur.description is not None else []

    def run(self, query: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(self._sql(query), list(params))  # type: ignore[arg-type]

    def run_many(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(query), rows)  # type: ignore[arg-type]

    def vector(self, v: np.ndarray | None) -> str | None:
        return None if v is None else pgvector.vector_text(v)

    def copy_vectors(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(*table.split(".")), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        with self.conn.cursor() as cur, cur.copy(stmt) as copy:
            for r in rows:
                copy.write_row((*r[:-1], pgvector.vector_text(r[-1])))

    def transaction(self) -> AbstractContextManager[Any]:
        return self.conn.transaction()  # or a savepoint in the caller's

    def lock(self, key: str) -> None:
        self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [key])

    def name_text(self, *parts: str) -> str:
        return ".".join(
            p if _PLAIN_IDENT.match(p) else '"' + p.replace('"', '""') + '"' for p in parts
        )


#: Serialises concurrent installs on one server (pg_advisory_xact_lock key).
_INSTALL_LOCK = 0x76656378  # "vecx"


def installed_version(conn: psycopg.Connection) -> str | None:
    """The catalog version installed in ``conn``'s database, or ``None``."""
    row = conn.execute("SELECT to_regclass('vecext.installed_version')").fetchone()
    if row is None or row[0] is None:
        return None
    return _scripts.recorded_version(conn.execute(_scripts.VERSION_SQL).fetchone())


def install(conn: psycopg.Connection, target: str | None = None) -> InstallResult:
    """Install or upgrade the catalog to ``target`` (default: this package's version).

    Runs in one transaction: either every script applies or none does. Running
    it again is a no-op. A catalog newer than ``target`` is refused.
    """
    if conn.autocommit:
        # a transaction block is needed for the all-or-nothing guarantee
        with conn.transaction():
            return _install_locked(conn, target)
    with conn.transaction():
        return _install_locked(conn, target)


def _install_locked(conn: psycopg.Connection, target: str | None) -> InstallResult:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", [_INSTALL_LOCK])
    avail = pgvector.installed_version(conn) or pgvector.available_version(conn)
    pgvector.check_version(avail, "halfvec", where=f"database {conn.info.dbname!r}")
    previous = installed_version(conn)
    steps = _scripts.plan("postgres", previous, target)
    # no parameters: each script is sent as one simple-protocol script
    return _scripts.apply(steps, conn.execute, lambda: installed_version(conn), previous)


def require_catalog(conn: psycopg.Connection) -> str:
    """Return the installed catalog version, or raise a clear error if there is none."""
    version = installed_version(conn)
    if version is None:
        raise CatalogError(
            f"the vecext catalog is not installed in database {conn.info.dbname!r}: "
            "run `vecext install` (or vecext.postgres.install(conn))"
        )
    return version


def apply_script(conn: psycopg.Connection, script_name: str) -> bool:
    """Apply one named script inside the caller's transaction, unless already applied.

    This is what the Alembic revisions in ``migrations/`` run, so a database
    installed by ``vecext install`` and one installed by Alembic hold the same
    catalog. Returns whether the script ran.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s)", [_INSTALL_LOCK])
    wanted = {s.name: s for s in _scripts.plan("postgres", None)}
    if script_name not in wanted:
        raise CatalogError(f"no vecext script named {script_name!r}")
    script = wanted[script_name]
    current = installed_version(conn)
    if current is not None and _scripts.vtuple(current) >= _scripts.vtuple(script.to_version):
        return False
    if current != script.from_version:
        raise CatalogError(
            f"{script_name} upgrades {script.from_version or 'nothing'}, "
            f"but the catalog is at {current or 'nothing'}"
        )
    pgvector.check_version(
        pgvector.installed_version(conn) or pgvector.available_version(conn),
        "halfvec",
        where=f"database {conn.info.dbname!r}",
    )
    conn.execute(script.text())
    return True


_ROUTINE = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE)\s+vecext\.(\w+)\s*\(", re.M | re.I
)
_BODY = re.compile(r"\bAS\s+(\$\w*\$)", re.I)
_RECORD = re.compile(
    r"^(UPDATE\s+vecext\.installed_version\s+SET|INSERT\s+INTO\s+vecext\.install_history)\b",
    re.I,
)


def _routines(text: str) -> tuple[dict[str, tuple[str, str]], str]:
    """The functions and procedures a script defines, ``name -> (kind, statement)`` (the
    last definition of a name wins), and the script's text without them."""
    found: dict[str, tuple[str, str]] = {}
    rest, pos = [], 0
    for m in _ROUTINE.finditer(text):
        if m.start() < pos:  # inside the previous routine's body
            continue
        body = _BODY.search(text, m.end())
        if body is None:
            raise CatalogError(f"cannot parse the definition of vecext.{m.group(2)}")
        tag = body.group(1)
        end = text.index(";", text.index(tag, body.end()) + len(tag)) + 1
        found[m.group(2)] = (m.group(1).upper(), text[m.start() : end])
        rest.append(text[pos : m.start()])
        pos = end
    rest.append(text[pos:])
    return found, "".join(rest)


def _undo_code_stores(conn: psycopg.Connection) -> None:
    """The table changes of catalog 0.4.0, undone; refused while a compressed column keeps
    its codes in a code store (they would be lost): those are named."""
    held = conn.execute(
        "SELECT format('%s.%s.%s', n.nspname, r.relname, k.code_column) "
        "FROM vecext.compressed_columns k JOIN pg_class r ON r.oid = k.table_oid "
        "JOIN pg_namespace n ON n.oid = r.relnamespace WHERE k.layout = 'store' ORDER BY k.id"
    ).fetchall()
    if held:
        raise CatalogError(
            "catalog 0.4.0 cannot be downgraded while compressed columns keep their codes in "
            f"code stores: {', '.join(r[0] for r in held)}; drop them first "
            "(drop_compressed_column), or stay on 0.4.0"
        )
    # 0.4.0's add_compressed_column has a layout argument: 0.3.0's comes back below
    conn.execute("DROP FUNCTION vecext.add_compressed_column(regclass, name, text, name, text)")
    conn.execute("DROP EVENT TRIGGER IF EXISTS vecext_sql_drop")
    # the search_path 0.4.0 pinned, and the triggers' owner rights, go
    for (f,) in conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p "
        "WHERE p.pronamespace = 'vecext'::regnamespace AND p.prokind = 'f'"
    ).fetchall():
        conn.execute(f"ALTER FUNCTION {f} RESET search_path SECURITY INVOKER")
    conn.execute(
        "ALTER TABLE vecext.compressed_columns "
        "DROP CONSTRAINT compressed_columns_table_oid_code_column_key, "
        "ADD CONSTRAINT compressed_columns_table_schema_table_name_code_column_key "
        "UNIQUE (table_schema, table_name, code_column), "
        "DROP COLUMN table_oid, DROP COLUMN source_attnum, DROP COLUMN key_attnum, "
        "DROP COLUMN layout"
    )


def _undo_store_lists(conn: psycopg.Connection) -> None:
    """The table change of catalog 0.5.0, undone; refused while a code store keeps IVF
    lists (0.4.0's store trigger cannot keep them current): those are named."""
    held = conn.execute(
        "SELECT format('%s.%s.%s', n.nspname, r.relname, k.code_column) "
        "FROM vecext.compressed_columns k JOIN pg_class r ON r.oid = k.table_oid "
        "JOIN pg_namespace n ON n.oid = r.relnamespace "
        "WHERE k.list_column IS NOT NULL AND k.list_layout = 'store' ORDER BY k.id"
    ).fetchall()
    if held:
        raise CatalogError(
            "catalog 0.5.0 cannot be downgraded while compressed columns keep IVF lists in "
            f"their code stores: {', '.join(r[0] for r in held)}; drop the lists first "
            "(drop_ivf_lists), or stay on 0.5.0"
        )
    conn.execute("ALTER TABLE vecext.compressed_columns DROP COLUMN list_layout")


def _undo_mirrors(conn: psycopg.Connection) -> None:
    """The table change of catalog 0.6.0, undone; refused while a code store mirrors
    columns of its table (0.5.0's store trigger cannot keep them current): those are
    named."""
    held = conn.execute(
        "SELECT format('%s.%s.%s', n.nspname, r.relname, k.code_column) "
        "FROM vecext.compressed_columns k JOIN pg_class r ON r.oid = k.table_oid "
        "JOIN pg_namespace n ON n.oid = r.relnamespace "
        "WHERE cardinality(k.mirror_attnums) > 0 ORDER BY k.id"
    ).fetchall()
    if held:
        raise CatalogError(
            "catalog 0.6.0 cannot be downgraded while code stores mirror filter columns: "
            f"{', '.join(r[0] for r in held)}; drop those compressed columns first "
            "(drop_compressed_column), or stay on 0.6.0"
        )
    conn.execute("ALTER TABLE vecext.compressed_columns DROP COLUMN mirror_attnums")


#: upgrade scripts that change tables, and how a downgrade undoes those changes (their
#: functions are undone as for every script)
_UNDO_TABLES = {
    "vecext--0.3.0--0.4.0.sql": _undo_code_stores,
    "vecext--0.4.0--0.5.0.sql": _undo_store_lists,
    "vecext--0.5.0--0.6.0.sql": _undo_mirrors,
}
#: from this catalog on every vecext function pins its search_path (a routine a
#: downgrade restores from its script's text gets the pin back)
_PINNED_PATH = "0.4.0"


def revert_script(conn: psycopg.Connection, script_name: str) -> bool:
    """Undo one upgrade script inside the caller's transaction, if it is the last one applied.

    What the Alembic revisions' ``downgrade()`` runs. Only scripts that (re)define
    functions and procedures can be undone (and 0.4.0, whose table changes
    :func:`_undo_code_stores` undoes while no code store holds codes): the routines the
    script replaced get their definitions of the version it started from back, the ones
    it created are dropped, and the catalog records that version again. Returns whether anything
    was undone (``False``: the script was not applied).
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s)", [_INSTALL_LOCK])
    chain = _scripts.plan("postgres", None)
    names = [s.name for s in chain]
    if script_name not in names:
        raise CatalogError(f"no vecext script named {script_name!r}")
    script = chain[names.index(script_name)]
    if script.from_version is None:
        raise CatalogError(f"{script_name} installs the catalog: uninstall it instead")
    current = installed_version(conn)
    if current is None or _scripts.vtuple(current) < _scripts.vtuple(script.to_version):
        return False
    if current != script.to_version:
        raise CatalogError(
            f"the catalog is at {current}: undo the scripts after {script_name} first"
        )
    mine, rest = _routines(script.text())
    # what is left besides the routines: comment lines and the version record
    code = "\n".join(ln for ln in rest.splitlines() if not ln.lstrip().startswith("--"))
    statements = [t.strip() for t in code.split(";") if t.strip()]
    if script_name in _UNDO_TABLES:
        _UNDO_TABLES[script_name](conn)
    elif any(not _RECORD.match(s) for s in statements):
        raise CatalogError(
            f"{script_name} changes more than functions and procedures: it cannot be undone"
        )
    earlier: dict[str, tuple[str, str]] = {}
    for s in chain[: names.index(script_name)]:
        earlier.update(_routines(s.text())[0])
    _refuse_dropping_used(conn, [n for n in mine if n not in earlier], script_name)
    pin = _scripts.vtuple(script.from_version) >= _scripts.vtuple(_PINNED_PATH)
    for name, (kind, _) in mine.items():
        if name in earlier:
            conn.execute(
                re.sub(r"^CREATE\s+(?:OR\s+REPLACE\s+)?", "CREATE OR REPLACE ", earlier[name][1])
            )
            if pin:
                _pin_search_path(conn, name)
            continue
        for (signature,) in conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p "
            "WHERE p.pronamespace = 'vecext'::regnamespace AND p.proname = %s",
            [name],
        ).fetchall():
            conn.execute(f"DROP {kind} {signature}")
    conn.execute("UPDATE vecext.installed_version SET version = %s", [script.from_version])
    conn.execute("DELETE FROM vecext.install_history WHERE script = %s", [script_name])
    return True


def _pin_search_path(conn: psycopg.Connection, name: str) -> None:
    """``search_path`` pinned on the vecext routines named ``name``, as catalog 0.4.0 pins
    it on every function (a PQ lookup sum and the procedure backfill excepted)."""
    for (f,) in conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p "
        "WHERE p.pronamespace = 'vecext'::regnamespace AND p.prokind = 'f' AND p.proname = %s "
        "AND NOT (p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql') "
        "AND p.proargtypes = '17 1021'::oidvector)",
        [name],
    ).fetchall():
        conn.execute(
            sql.SQL("ALTER FUNCTION {} SET search_path = pg_catalog, {}, pg_temp").format(
                sql.SQL(f), sql.Identifier(_pgvector_schema(conn))
            )
        )


def _pgvector_schema(conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT vecext.pgvector_schema()").fetchone()
    return str(row[0]) if row and row[0] else "public"


def _refuse_dropping_used(conn: psycopg.Connection, routines: list[str], script: str) -> None:
    """Undoing ``script`` drops ``routines``: a :class:`CatalogError` naming the objects
    of yours that use one of them."""
    from vecext.postgres.uninstall import dependants, refuse_dependants

    if not routines:
        return
    prefixes = tuple(f"vecext.{n}(" for n in routines)
    users, _, _ = dependants(conn)
    in_way = [d for d in users if d.uses.split(" ", 1)[-1].startswith(prefixes)]
    refuse_dependants(in_way, f"undo {script}")


def uninstall(conn: psycopg.Connection) -> list[str]:
    """Drop vecext's own objects (never ``DROP SCHEMA ... CASCADE``); refuse, naming
    them, while objects of yours depend on them (:mod:`vecext.postgres.uninstall`).

    Compressed columns in user tables lose their triggers but keep their data;
    source vector columns are never touched. Returns what was dropped.
    """
    from vecext.postgres.uninstall import uninstall as _uninstall

    return _uninstall(conn)
