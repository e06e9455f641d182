"""Issue 13 (What it must show): ``vecext info`` warns when the catalog's functions do
not pin search_path or when no role besides the owner may use schema vecext, and says
what to run; it stays quiet once both are set."""

from __future__ import annotations

import json

from psycopg import sql
from typer.testing import CliRunner

from vecext.postgres.health import catalog_warnings
from vecext.tools.cli.app import app


def _info(dsn: str) -> dict:
    res = CliRunner().invoke(app, ["info", "--dsn", dsn, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _functions(conn) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT oid::regprocedure::text FROM pg_proc WHERE pronamespace = 'vecext'::regnamespace"
        ).fetchall()
    ]


def test_info_warns_about_search_path_and_grants(pg_catalog):
    conn = pg_catalog
    dsn = conn.info.dsn
    # the state an old catalog is in: one function unpinned, no grant on the schema
    fn = _functions(conn)[0]
    conn.execute(sql.SQL(f"ALTER ROUTINE {fn} RESET search_path"))
    grantees = conn.execute(
        "SELECT DISTINCT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident("
        "pg_get_userbyid(a.grantee)) END FROM pg_namespace n, aclexplode(n.nspacl) a "
        "WHERE n.nspname = 'vecext' AND a.grantee <> n.nspowner"
    ).fetchall()
    for (g,) in grantees:
        conn.execute(sql.SQL(f"REVOKE ALL ON SCHEMA vecext FROM {g}"))
    warnings = _info(dsn)["warnings"]
    assert any("do not pin search_path" in w and "vecext install" in w for w in warnings), warnings
    assert any("may use schema vecext" in w and "grant_usage" in w for w in warnings), warnings
    # both set: no warning
    for f in _functions(conn):
        conn.execute(sql.SQL(f"ALTER ROUTINE {f} SET search_path = pg_catalog, public, pg_temp"))
    conn.execute("CREATE ROLE vecext_reader_t NOLOGIN")
    try:
        conn.execute("GRANT USAGE ON SCHEMA vecext TO vecext_reader_t")
        assert catalog_warnings(conn) == []
        assert _info(dsn)["warnings"] == []
    finally:
        conn.execute("REVOKE ALL ON SCHEMA vecext FROM vecext_reader_t")
        conn.execute("DROP ROLE vecext_reader_t")
