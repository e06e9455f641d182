"""The PostgreSQL catalog's install machinery: upgrade chains, a failed upgrade rolled
back, reverting function-only steps, named databases, CHECK constraints. (Installing,
reinstalling, refusing newer catalogs and upgrading from 0.1.0 on every backend:
``tests/contract/test_catalog.py``.)"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import psycopg
import pytest

import vecext
from vecext.catalog import scripts as _scripts
from vecext.codecs import make_codec
from vecext.errors import CatalogError
from vecext.postgres import (
    add_compressed_column,
    catalog,
    drop_codec,
    drop_compressed_column,
    save_codec,
)

REPO = Path(__file__).resolve().parents[2]


def snapshot(conn: psycopg.Connection) -> dict[str, list[tuple]]:
    """Everything the catalog defines: tables, columns, constraints, functions, rows."""
    q = {
        "columns": """SELECT table_name, column_name, data_type, udt_name, is_nullable,
                             column_default
                      FROM information_schema.columns WHERE table_schema = 'vecext'
                      ORDER BY 1, 2""",
        "constraints": """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
                          FROM pg_constraint
                          WHERE connamespace = 'vecext'::regnamespace ORDER BY 1, 2""",
        "functions": """SELECT p.proname, pg_get_function_identity_arguments(p.oid),
                               p.provolatile, p.proparallel, p.prosrc
                        FROM pg_proc p WHERE p.pronamespace = 'vecext'::regnamespace
                        ORDER BY 1, 2""",
        "version": "SELECT version FROM vecext.installed_version",
        "history": "SELECT script, version FROM vecext.install_history ORDER BY applied_at, script",
    }
    return {k: conn.execute(v).fetchall() for k, v in q.items()}


@pytest.fixture
def sql_tree(tmp_path, monkeypatch):
    """A copy of sql/ that tests may add upgrade scripts to."""
    root = tmp_path / "sql"
    shutil.copytree(REPO / "vecext" / "sql", root)
    monkeypatch.setattr(_scripts, "SQL_ROOT", root)
    return root / "postgres"


def test_upgrades_step_by_step(pg_conn, sql_tree):
    catalog.install(pg_conn)
    (sql_tree / "vecext--0.6.0--0.6.1.sql").write_text(
        "CREATE TABLE vecext.step_one (x int);\n"
        "UPDATE vecext.installed_version SET version = '0.6.1';\n"
        "INSERT INTO vecext.install_history VALUES ('vecext--0.6.0--0.6.1.sql', '0.6.1');\n"
    )
    (sql_tree / "vecext--0.6.1--0.7.0.sql").write_text(
        "ALTER TABLE vecext.step_one ADD COLUMN y int;\n"
        "UPDATE vecext.installed_version SET version = '0.7.0';\n"
        "INSERT INTO vecext.install_history VALUES ('vecext--0.6.1--0.7.0.sql', '0.7.0');\n"
    )
    result = catalog.install(pg_conn)
    assert result.previous == "0.6.0" and result.current == "0.7.0"
    assert result.applied == ["vecext--0.6.0--0.6.1.sql", "vecext--0.6.1--0.7.0.sql"]
    cols = pg_conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema='vecext' AND table_name='step_one' ORDER BY 1"
    ).fetchall()
    assert cols == [("x",), ("y",)]
    # a fresh database walks the whole chain
    pg_conn.execute("DROP SCHEMA vecext CASCADE")
    fresh = catalog.install(pg_conn)
    assert fresh.applied == [
        "vecext--0.1.0.sql",
        "vecext--0.1.0--0.2.0.sql",
        "vecext--0.2.0--0.3.0.sql",
        "vecext--0.3.0--0.4.0.sql",
        "vecext--0.4.0--0.5.0.sql",
        "vecext--0.5.0--0.6.0.sql",
        "vecext--0.6.0--0.6.1.sql",
        "vecext--0.6.1--0.7.0.sql",
    ]


def test_failed_upgrade_rolls_back_everything(pg_conn, sql_tree):
    catalog.install(pg_conn)
    (sql_tree / "vecext--0.6.0--0.6.1.sql").write_text(
        "CREATE TABLE vecext.good_step (x int);\n"
        "UPDATE vecext.installed_version SET version = '0.6.1';\n"
    )
    (sql_tree / "vecext--0.6.1--0.7.0.sql").write_text("SELECT no_such_function();\n")
    with pytest.raises(psycopg.errors.UndefinedFunction):
        catalog.install(pg_conn)
    assert catalog.installed_version(pg_conn) == "0.6.0"
    assert pg_conn.execute("SELECT to_regclass('vecext.good_step')").fetchone() == (None,)


def test_script_that_forgets_its_version_is_refused(pg_conn, sql_tree):
    catalog.install(pg_conn)
    (sql_tree / "vecext--0.6.0--0.6.1.sql").write_text("CREATE TABLE vecext.t (x int);\n")
    with pytest.raises(CatalogError, match="expected 0.6.1"):
        catalog.install(pg_conn)
    assert catalog.installed_version(pg_conn) == "0.6.0"


def test_package_and_catalog_versions_agree():
    """A release bumps both: the catalog an install ends at is the package's version, and
    pyproject.toml says the same."""
    assert _scripts.latest_version("postgres") == vecext.__version__
    assert _scripts.latest_version("duckdb") == vecext.__version__
    declared = re.search(
        r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(encoding="utf-8"), re.M
    )
    assert declared is not None and declared.group(1) == vecext.__version__


def test_revert_script_undoes_only_the_last_function_only_step(pg_conn, sql_tree):
    """What the Alembic revisions' downgrade() runs."""
    catalog.install(pg_conn, target="0.1.0")
    at_0_1_0 = snapshot(pg_conn)
    assert not catalog.revert_script(pg_conn, "vecext--0.1.0--0.2.0.sql")  # not applied
    with pytest.raises(CatalogError, match="uninstall"):
        catalog.revert_script(pg_conn, "vecext--0.1.0.sql")
    catalog.install(pg_conn, target="0.3.0")
    at_0_3_0 = snapshot(pg_conn)
    with pytest.raises(CatalogError, match="at 0.3.0: undo the scripts after"):
        catalog.revert_script(pg_conn, "vecext--0.1.0--0.2.0.sql")
    with pg_conn.transaction():
        assert catalog.revert_script(pg_conn, "vecext--0.2.0--0.3.0.sql")
    assert pg_conn.execute("SELECT to_regproc('vecext.codec_distance')").fetchone() == (None,)
    assert catalog.installed_version(pg_conn) == "0.2.0"
    with pg_conn.transaction():
        assert catalog.revert_script(pg_conn, "vecext--0.1.0--0.2.0.sql")
    assert snapshot(pg_conn) == at_0_1_0
    # a step that changes more than functions is refused
    (sql_tree / "vecext--0.6.0--0.6.1.sql").write_text(
        "CREATE TABLE vecext.step_one (x int);\n"
        "UPDATE vecext.installed_version SET version = '0.6.1';\n"
    )
    catalog.install(pg_conn)
    with pytest.raises(CatalogError, match="changes more than functions"):
        catalog.revert_script(pg_conn, "vecext--0.6.0--0.6.1.sql")
    pg_conn.execute("DROP TABLE vecext.step_one")
    pg_conn.execute("UPDATE vecext.installed_version SET version = '0.6.0'")
    # 0.6.0 added a catalog column (mirrored columns): undone while no store mirrors any
    # (refused otherwise: tests/postgres/test_pg_mirror_upgrade.py)
    with pg_conn.transaction():
        assert catalog.revert_script(pg_conn, "vecext--0.5.0--0.6.0.sql")
    assert catalog.installed_version(pg_conn) == "0.5.0"
    # 0.5.0 added a catalog column (where IVF lists are): undone while no store keeps lists
    # (refused otherwise: tests/postgres/test_pg_ivf_store.py)
    with pg_conn.transaction():
        assert catalog.revert_script(pg_conn, "vecext--0.4.0--0.5.0.sql")
    assert catalog.installed_version(pg_conn) == "0.4.0"
    # 0.4.0 changed catalog tables (code stores, OID keys): undone too, but never while
    # a code store holds codes
    save_codec(pg_conn, "h3", make_codec("half", 3, "l2"))
    pg_conn.execute("CREATE TABLE t (id int PRIMARY KEY, embedding vector(3))")
    add_compressed_column(pg_conn, "t", "embedding", "h3", backfill=False)
    held = r"code stores: public\.t\.embedding_h3; drop them"
    with pytest.raises(CatalogError, match=held), pg_conn.transaction():
        catalog.revert_script(pg_conn, "vecext--0.3.0--0.4.0.sql")
    drop_compressed_column(pg_conn, "t", "embedding_h3")
    drop_codec(pg_conn, "h3")
    pg_conn.execute("DROP TABLE t")
    with pg_conn.transaction():
        assert catalog.revert_script(pg_conn, "vecext--0.3.0--0.4.0.sql")
    back = snapshot(pg_conn)
    assert sorted(back.pop("history")) == sorted(at_0_3_0.pop("history"))
    assert back == at_0_3_0


def test_require_catalog_names_the_database(pg_conn):
    with pytest.raises(CatalogError, match="not installed in database"):
        catalog.require_catalog(pg_conn)


def test_catalog_rejects_bad_codec_names(pg_catalog):
    with pytest.raises(psycopg.errors.CheckViolation):
        pg_catalog.execute(
            "INSERT INTO vecext.codecs (name, kind, dim, metric, code_size, fingerprint) "
            "VALUES ('Robert''); DROP TABLE x; --', 'pq', 8, 'l2', 2, 'f')"
        )
