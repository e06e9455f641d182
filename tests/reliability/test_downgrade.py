"""Issue 13 item 4: ``alembic downgrade base`` and ``vecext uninstall`` drop only
vecext's own objects and refuse, naming them, while user objects depend on vecext's.

Before, both ran ``DROP SCHEMA vecext CASCADE``, which dropped a user's generated column
(with its data), a view and an expression index that used vecext functions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest
from alembic import command
from alembic.config import Config
from typer.testing import CliRunner

import vecext.postgres as vp
from tests.reliability.conftest import pg_load
from vecext.errors import CatalogError
from vecext.postgres import catalog
from vecext.postgres.uninstall import INSTALL_LOCK

REPO = Path(__file__).resolve().parents[2]
D = 8
X = np.random.default_rng(5).standard_normal((150, D)).astype(np.float32)


def alembic_config(dsn: str) -> Config:
    cfg = Config(str(REPO / "migrations" / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO / "migrations"))
    cfg.set_main_option("sqlalchemy.url", dsn)
    return cfg


def _equip(conn: psycopg.Connection) -> tuple[str, bool]:
    """A table with a compressed column (trigger-maintained) and three user objects that
    use vecext functions: a generated column, a view and an expression index (the last
    only where the codec functions pin their search_path: CREATE INDEX runs them with
    ``search_path = pg_catalog``, and pgvector lives in public)."""
    pg_load(conn, ("items",), X)
    vp.train_codec(conn, "it8", "items", "embedding", "int8", metric="l2")
    # codes in the table (layout 'table'): a code column is user data an uninstall keeps
    col = vp.add_compressed_column(
        conn, "items", "embedding", "it8", progress=False, layout="table"
    )
    conn.execute(
        "ALTER TABLE items ADD COLUMN mine bytea GENERATED ALWAYS AS "
        "(vecext.it8_encode(embedding)) STORED"
    )
    conn.execute("CREATE VIEW my_view AS SELECT id, vecext.it8_encode(embedding) AS c FROM items")
    try:
        with conn.transaction():
            conn.execute("CREATE INDEX my_expr_idx ON items (vecext.it8_encode(embedding))")
    except psycopg.errors.UndefinedFunction:  # functions without a pinned search_path
        conn.execute("CREATE INDEX my_expr_idx ON items (id)")  # a plain one, same name
        return col, False
    return col, True


def _user_objects_intact(conn: psycopg.Connection, col: str) -> None:
    n = conn.execute("SELECT count(*) FROM items WHERE mine IS NOT NULL").fetchone()[0]
    assert n == len(X)
    assert conn.execute("SELECT count(*) FROM my_view").fetchone()[0] == len(X)
    assert conn.execute("SELECT to_regclass('my_expr_idx') IS NOT NULL").fetchone()[0]
    assert conn.execute(f"SELECT count({col}) FROM items").fetchone()[0] == len(X)


def test_uninstall_refuses_while_user_objects_depend_then_drops_only_vecext(pg_catalog):
    conn = pg_catalog
    col, expr_index = _equip(conn)
    with pytest.raises(CatalogError) as info:
        catalog.uninstall(conn)
    msg = str(info.value)
    for name in ("my_view", "items.mine", "vecext.it8_encode"):
        assert name in msg, (name, msg)
    assert ("my_expr_idx" in msg) == expr_index, msg
    assert catalog.installed_version(conn) is not None  # nothing was dropped
    _user_objects_intact(conn, col)
    # the CLI says the same and exits non-zero
    from vecext.tools.cli.app import app

    dsn = conn.info.dsn
    res = CliRunner().invoke(app, ["uninstall", "--dsn", dsn])
    assert res.exit_code != 0 and "my_view" in res.output, res.output
    # once the user's objects are gone, vecext's own go, and only those
    conn.execute("DROP VIEW my_view")
    conn.execute("DROP INDEX my_expr_idx")
    conn.execute("ALTER TABLE items DROP COLUMN mine")
    conn.execute("CREATE TABLE keep_me (id int)")
    res = CliRunner().invoke(app, ["uninstall", "--dsn", dsn])
    assert res.exit_code == 0, res.output
    assert conn.execute("SELECT to_regnamespace('vecext')").fetchone()[0] is None
    assert conn.execute("SELECT to_regclass('keep_me') IS NOT NULL").fetchone()[0]
    # the code column keeps its data, the vector column is untouched, writes work
    assert conn.execute(f"SELECT count({col}) FROM items").fetchone()[0] == len(X)
    got = conn.execute("SELECT embedding::text FROM items ORDER BY id LIMIT 1").fetchone()[0]
    assert np.allclose(np.array(eval(got)), X[0], atol=1e-6)
    conn.execute(
        "INSERT INTO items (id, embedding) VALUES (1000, %s::vector)", [str(X[0].tolist())]
    )
    left = conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'items'::regclass AND NOT tgisinternal"
    ).fetchone()[0]
    assert left == 0
    # a second uninstall has nothing to do; install works again
    assert catalog.uninstall(conn) == []
    catalog.install(conn)


def test_alembic_downgrade_base_with_user_dependants(pg_dsn):
    cfg = alembic_config(pg_dsn)
    command.upgrade(cfg, "head")
    with vp.connect(pg_dsn, autocommit=True) as conn:
        col, _ = _equip(conn)
    with pytest.raises(CatalogError, match="my_view"):
        command.downgrade(cfg, "base")
    with vp.connect(pg_dsn, autocommit=True) as conn:
        _user_objects_intact(conn, col)
        assert catalog.installed_version(conn) == "0.6.0"  # one transaction: nothing undone
        assert conn.execute("SELECT version_num FROM vecext_alembic_version").fetchall() != []
        conn.execute("DROP VIEW my_view")
        conn.execute("DROP INDEX my_expr_idx")
        conn.execute("ALTER TABLE items DROP COLUMN mine")
    command.downgrade(cfg, "base")
    with vp.connect(pg_dsn, autocommit=True) as conn:
        assert catalog.installed_version(conn) is None
        assert conn.execute(f"SELECT count({col}) FROM items").fetchone()[0] == len(X)


def test_undoing_an_upgrade_script_refuses_while_its_functions_are_used(pg_dsn):
    """0.2.0 -> 0.3.0 created vecext.codec_encode: undoing it would drop it."""
    cfg = alembic_config(pg_dsn)
    command.upgrade(cfg, "head")
    with vp.connect(pg_dsn, autocommit=True) as conn:
        pg_load(conn, ("items",), X)
        vp.train_codec(conn, "it8", "items", "embedding", "int8", metric="l2")
        conn.execute(
            "CREATE VIEW uses_new AS SELECT vecext.codec_encode('it8', embedding) FROM items"
        )
    with pytest.raises(CatalogError, match="uses_new"):
        command.downgrade(cfg, "vecext_0_2_0")
    with vp.connect(pg_dsn, autocommit=True) as conn:
        assert catalog.installed_version(conn) == "0.6.0"  # one transaction: nothing undone
        conn.execute("DROP VIEW uses_new")
    command.downgrade(cfg, "vecext_0_2_0")
    with vp.connect(pg_dsn, autocommit=True) as conn:
        assert catalog.installed_version(conn) == "0.2.0"


def test_lock_is_the_install_lock():
    assert INSTALL_LOCK == catalog._INSTALL_LOCK


def test_uninstall_with_code_stores(pg_catalog):
    """Catalog 0.4.0 keeps codes in vecext."store_<id>": a store is vecext's and goes
    with it, with the triggers that keep it; a view of yours over a store is refused."""
    conn = pg_catalog
    pg_load(conn, ("items",), X)
    vp.train_codec(conn, "bits", "items", "embedding", "binary", metric="cosine")
    col = vp.add_compressed_column(conn, "items", "embedding", "bits", progress=False)
    (store,) = conn.execute("SELECT vecext.code_store('items', %s)::text", [col]).fetchone()
    conn.execute(f"CREATE VIEW my_codes AS SELECT pk, code FROM {store}")
    with pytest.raises(CatalogError, match=r"view public\.my_codes .*uses table vecext"):
        catalog.uninstall(conn)
    assert conn.execute(f"SELECT count(*) FROM {store}").fetchone()[0] == len(X)
    conn.execute("DROP VIEW my_codes")
    dropped = catalog.uninstall(conn)
    assert f"table {store}" in dropped, dropped
    assert conn.execute("SELECT to_regnamespace('vecext')").fetchone()[0] is None
    # vecext's event trigger (a superuser's install makes one) goes too
    assert (
        conn.execute("SELECT count(*) FROM pg_event_trigger WHERE evtname ~ '^vecext'").fetchone()[
            0
        ]
        == 0
    )
    left = conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'items'::regclass AND NOT tgisinternal"
    ).fetchone()[0]
    assert left == 0
    assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == len(X)
    conn.execute("INSERT INTO items VALUES (1000, %s::vector)", [str(X[0].tolist())])
    conn.execute("TRUNCATE items")  # no vecext trigger left behind to fail
