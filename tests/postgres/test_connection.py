"""Connections, the embedded server and pgvector checks: including the bad-input cases."""

from __future__ import annotations

import os
import time

import psutil
import pytest

from vecext.errors import ConnectionFailed, EmbeddedServerError, PgvectorError
from vecext.postgres import connection, pgvector


def test_dsn_resolution_order(monkeypatch):
    monkeypatch.setenv("VECEXT_DSN", "postgresql://from-env/db")
    assert connection.resolve_dsn("postgresql://given/db") == "postgresql://given/db"
    assert connection.resolve_dsn(None) == "postgresql://from-env/db"


def test_unreachable_host_fails_fast_naming_host_and_cause():
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed) as info:
        connection.connect("postgresql://nobody@127.0.0.1:1/db")
    assert time.monotonic() - t0 < 10
    msg = str(info.value)
    assert "127.0.0.1:1/db" in msg
    assert "refused" in msg.lower()


def test_missing_socket_directory_is_named(tmp_path):
    missing = tmp_path / "no-such-dir"
    with pytest.raises(ConnectionFailed) as info:
        connection.connect(f"postgresql://postgres@/db?host={missing}")
    assert str(missing) in str(info.value)


def test_sqlalchemy_url_keeps_socket_dirs(pg_server_dsn):
    import sqlalchemy as sa

    url = connection.sqlalchemy_url(pg_server_dsn)
    assert url.startswith("postgresql+psycopg://")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    engine.dispose()


def test_embedded_server_is_postgres_18_with_pgvector_08(pg_conn):
    version = pg_conn.execute("SHOW server_version").fetchone()[0]
    if os.environ.get("VECEXT_TEST_DSN") is None:
        assert version.startswith("18.")
        assert pgvector.parse_version(pgvector.installed_version(pg_conn)) >= (0, 8, 0)
    assert pgvector.require(pg_conn, "iterative_scan")


@pytest.mark.skipif(
    os.environ.get("VECEXT_TEST_DSN") is not None or os.geteuid() != 0,
    reason="checks the embedded server's process owner when the tests run as root",
)
def test_running_as_root_uses_a_separate_server_user(pg_conn):
    pid = pg_conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    assert psutil.Process(pid).username() == "embedded_postgres"


def test_unwritable_data_directory_is_named(tmp_path):
    from vecext.postgres.embedded import start_embedded

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    target = blocker / "pg18"
    with pytest.raises(EmbeddedServerError) as info:
        start_embedded(target)
    assert str(target) in str(info.value)


def test_database_without_pgvector(pg_server_dsn):
    import psycopg

    from tests.conftest import _drop_db, with_dbname

    name = "no_pgvector_here"
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        with (
            connection.connect(with_dbname(pg_server_dsn, name)) as conn,
            pytest.raises(PgvectorError, match=r"not created in database 'no_pgvector_here'"),
        ):
            pgvector.require(conn, "halfvec")
    finally:
        _drop_db(pg_server_dsn, name)


@pytest.mark.parametrize(
    ("found", "feature", "needed"),
    [
        ("0.6.2", "halfvec", "0.7.0"),
        ("0.6.2", "bit", "0.7.0"),
        ("0.7.4", "iterative_scan", "0.8.0"),
    ],
)
def test_too_old_pgvector_names_found_and_needed(found, feature, needed):
    with pytest.raises(PgvectorError) as info:
        pgvector.check_version(found, feature)
    assert found in str(info.value) and needed in str(info.value)


def test_server_without_pgvector_names_the_minimum():
    with pytest.raises(PgvectorError, match=r"not installed.*>= 0\.7\.0"):
        pgvector.check_version(None, "halfvec")


def test_new_enough_versions_pass():
    pgvector.check_version("0.8.6", "iterative_scan")
    pgvector.check_version("0.7.0", "bit")
    assert pgvector.parse_version("0.8.0-dev") == (0, 8, 0)
