"""Fixtures for the PostgreSQL codec and compressed-column tests: seeded data, and a
database shared by the tests of one module (training codecs is the slow part)."""

from __future__ import annotations

from collections.abc import Iterator

import faiss
import numpy as np
import psycopg
import pytest

from tests.conftest import (
    _create_db,
    _drop_db,
    clustered,  # noqa: F401  (the modules here import it from this one)
    with_dbname,
)


@pytest.fixture(scope="module", autouse=True)
def _faiss_single_thread() -> Iterator[None]:
    """One OpenMP thread: FAISS threads spinning on a loaded 2-core machine slow
    training down several times."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def vector_text(x: np.ndarray) -> str:
    """pgvector text of a float32 row, exact (9 significant digits)."""
    return "[" + ",".join(f"{v:.9g}" for v in np.asarray(x, np.float32).tolist()) + "]"


def load_table(
    conn: psycopg.Connection, table: str, x: np.ndarray, *, key_type: str = "integer"
) -> None:
    """``CREATE TABLE <table> (id <key_type> PRIMARY KEY, embedding vector(d))`` filled by COPY."""
    from psycopg import sql

    conn.execute(
        sql.SQL("CREATE TABLE {} (id {} PRIMARY KEY, embedding vector({}))").format(
            sql.Identifier(*table.split(".")), sql.SQL(key_type), sql.Literal(x.shape[1])
        )
    )
    with conn.cursor().copy(
        sql.SQL("COPY {} (id, embedding) FROM STDIN").format(sql.Identifier(*table.split(".")))
    ) as copy:
        for i, row in enumerate(x):
            copy.write_row((i, vector_text(row)))


def fetch_codes(conn: psycopg.Connection, query: str, params: list | None = None) -> np.ndarray:
    """A bytea column as (n, code_size) uint8."""
    rows = conn.execute(query, params or []).fetchall()
    return np.array([np.frombuffer(bytes(r[0]), np.uint8) for r in rows])


def store_of(conn: psycopg.Connection, table: str, code_column: str):
    """The code store ``vecext."store_<id>"`` of a compressed column (an Identifier)."""
    from vecext.postgres.columns import compressed_column

    store = compressed_column(conn, table, code_column).store
    assert store is not None, f"{table}.{code_column} has no code store"
    return store


def store_codes(
    conn: psycopg.Connection, table: str, code_column: str, where: str = "TRUE"
) -> tuple[list, np.ndarray]:
    """(keys, codes) of a compressed column's store in key order, the codes as uint8 rows
    (the bytes of ``codec.encode``, whatever the store's type)."""
    from psycopg import sql

    store = store_of(conn, table, code_column)
    typ = conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attname = 'code'",
        [store.as_string(conn)],
    ).fetchone()[0]
    if typ.startswith("bit"):  # int32 bit length, then the packed bits
        expr = "substring(bit_send(code) from 5)"
    elif "halfvec" in typ:  # int16 dim, int16 unused, big-endian halves
        expr = "substring(halfvec_send(code) from 5)"
    else:
        expr = "code"
    rows = conn.execute(
        sql.SQL("SELECT pk, {} FROM {} WHERE {} ORDER BY pk").format(
            sql.SQL(expr), store, sql.SQL(where)
        )
    ).fetchall()
    codes = np.array([np.frombuffer(bytes(r[1]), np.uint8) for r in rows])
    if "halfvec" in typ and len(rows):
        codes = codes.view(">f2").astype("<f2").view(np.uint8)
    return [r[0] for r in rows], codes


@pytest.fixture(scope="module")
def module_dsn(pg_server_dsn: str, pg_template: str) -> Iterator[str]:
    """A database with the vecext catalog, shared by the tests of one module."""
    from vecext.postgres import connect, install

    name = _create_db(pg_server_dsn, pg_template)
    dsn = with_dbname(pg_server_dsn, name)
    with connect(dsn, autocommit=True) as conn:
        install(conn)
    yield dsn
    _drop_db(pg_server_dsn, name)


@pytest.fixture(scope="module")
def mconn(module_dsn: str) -> Iterator[psycopg.Connection]:
    from vecext.postgres import connect

    conn = connect(module_dsn, autocommit=True)
    yield conn
    conn.close()


# ---------------------------------------------------------------------------
# search tests (vecext.postgres.search): one database for the whole session


def build_search_env(pg_server_dsn: str, pg_template: str) -> Iterator[object]:
    """``items`` with every search path: PQ and binary compressed columns (calibrated),
    IVF lists on the PQ column with a ``(cat, list)`` index, and an HNSW index; and
    ``plain`` (its first 2,000 rows, vectors only). See ``tests/postgres/search_data.py``.
    (The session fixture is ``pg_search_env`` in ``tests/conftest.py``, shared with
    ``tests/contract/``.)"""
    from tests.postgres.search_data import load, make_data
    from vecext.postgres import add_compressed_column, connect, install, train_codec
    from vecext.postgres.calibration import calibrate
    from vecext.postgres.indexes import create_vector_index
    from vecext.postgres.ivf import add_ivf_lists

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    data = make_data()
    name = _create_db(pg_server_dsn, pg_template)
    data.dsn = with_dbname(pg_server_dsn, name)
    try:
        with connect(data.dsn, autocommit=True) as conn:
            install(conn)
            load(conn, "items", data, tenants=data.tenant.tolist())
            load(conn, "plain", data, n=2_000)
            train_codec(
                conn,
                "srch_pq",
                "items",
                "embedding",
                "pq",
                metric="cosine",
                m=8,
                niter=10,
                sample=8_000,
            )
            add_compressed_column(conn, "items", "embedding", "srch_pq", "emb_pq", progress=False)
            train_codec(conn, "srch_bin", "items", "embedding", "binary", metric="cosine")
            add_compressed_column(conn, "items", "embedding", "srch_bin", "emb_bin", progress=False)
            data.extra["ivf"] = add_ivf_lists(
                conn, "items", "embedding", code_column="emb_pq", index_columns=["cat"], niter=10
            )
            data.extra["hnsw"] = create_vector_index(conn, "items", "embedding", metric="cosine")
            data.extra["cal_pq"] = calibrate(conn, "items", "emb_pq")
            data.extra["cal_bin"] = calibrate(conn, "items", "emb_bin")
            # the backfills left a dead version of every row: settle the statistics
            conn.execute("VACUUM ANALYZE items")
        faiss.omp_set_num_threads(before)
        yield data
    finally:
        faiss.omp_set_num_threads(before)
        _drop_db(pg_server_dsn, name)


@pytest.fixture(scope="session")
def search_env(pg_search_env: object) -> object:
    return pg_search_env


@pytest.fixture
def sconn(search_env: object) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the search database."""
    from vecext.postgres import connect

    conn = connect(search_env.dsn, autocommit=True)  # type: ignore[attr-defined]
    yield conn
    conn.close()
