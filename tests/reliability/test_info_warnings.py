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


def _functions(conn, extra: str = "") -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT oid::regprocedure::text FROM pg_proc "
            f"WHERE pronamespace = 'vecext'::regnamespace {extra} ORDER BY oid"
        ).fetchall()
    ]


def test_info_warns_about_search_path_and_grants(pg_catalog):
    conn = pg_catalog
    dsn = conn.info.dsn
    # the state an old catalog is in: a function that does not pin search_path, and an
    # application role that was never granted anything
    fn = _functions(conn, "AND prokind = 'f'")[0]
    conn.execute(sql.SQL(f"ALTER ROUTINE {fn} RESET search_path"))
    conn.execute("CREATE ROLE vecext_app_t LOGIN")
    try:
        conn.execute("REVOKE ALL ON SCHEMA vecext FROM PUBLIC")
        warnings = _info(dsn)["warnings"]
        assert any("do not pin search_path" in w and "vecext install" in w for w in warnings)
        assert any(
            "may not use schema vecext (vecext_app_t)" in w and "grant_usage" in w for w in warnings
        ), warnings
        # both set: no warning
        for f in _functions(conn):
            conn.execute(
                sql.SQL(f"ALTER ROUTINE {f} SET search_path = pg_catalog, public, pg_temp")
            )
        conn.execute("GRANT USAGE ON SCHEMA vecext TO vecext_app_t")
        assert catalog_warnings(conn) == []
        assert _info(dsn)["warnings"] == []
    finally:
        conn.execute("REVOKE ALL ON SCHEMA vecext FROM vecext_app_t")
        conn.execute("DROP ROLE vecext_app_t")


def test_upgrade_keeps_pq_lookup_sums_inlinable_and_info_warns_when_pinned(pg_conn):
    """The 0.3.0 -> 0.4.0 upgrade pins search_path on every vecext function but a PQ
    codec's lookup sum: pinned, PostgreSQL no longer inlines it into a search (measured:
    300,000 codes, m=16, ORDER BY ... LIMIT 10: 4.5 s against 0.16 s). One pinned by hand
    is reported by ``vecext info`` with the statement that fixes it."""
    import numpy as np

    import vecext.postgres as vp
    from tests.reliability.conftest import pg_load

    conn = pg_conn
    vp.install(conn, target="0.3.0")
    pg_load(conn, ("t",), np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32))
    vp.train_codec(conn, "old_pq", "t", "embedding", "pq", m=4, metric="l2")
    vp.install(conn)
    (config,) = conn.execute(
        "SELECT proconfig FROM pg_proc WHERE oid = 'vecext.old_pq_distance(bytea,real[])'::regprocedure"
    ).fetchone()
    assert config is None
    assert not [w for w in catalog_warnings(conn) if "lookup sum" in w or "search_path" in w]
    conn.execute(
        "ALTER FUNCTION vecext.old_pq_distance(bytea,real[]) SET search_path = pg_catalog, pg_temp"
    )
    (warning,) = [w for w in catalog_warnings(conn) if "PQ lookup sum" in w]
    fix = "ALTER FUNCTION vecext.old_pq_distance(bytea,real[]) RESET search_path"
    assert fix in warning
    conn.execute(fix)
    assert not [w for w in catalog_warnings(conn) if "lookup sum" in w or "search_path" in w]
