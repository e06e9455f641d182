"""Fixtures of the reliability suite: a vecext database shared by a module (PostgreSQL)
and helpers to load small tables under any name."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import faiss
import numpy as np
import psycopg
import pytest
from psycopg import sql

from tests.conftest import _create_db, _drop_db, with_dbname


@pytest.fixture(scope="module", autouse=True)
def _faiss_single_thread() -> Iterator[None]:
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def rel_dsn(pg_server_dsn: str, pg_template: str) -> Iterator[str]:
    """A database with the vecext catalog, shared by the tests of one module."""
    from vecext.postgres import connect, install

    name = _create_db(pg_server_dsn, pg_template)
    dsn = with_dbname(pg_server_dsn, name)
    with connect(dsn, autocommit=True) as conn:
        install(conn)
    yield dsn
    _drop_db(pg_server_dsn, name)


@pytest.fixture(scope="module")
def rconn(rel_dsn: str) -> Iterator[psycopg.Connection]:
    from vecext.postgres import connect

    conn = connect(rel_dsn, autocommit=True)
    yield conn
    conn.close()


def vector_text(row: np.ndarray) -> str:
    return "[" + ",".join(f"{v:.9g}" for v in np.asarray(row, np.float32).tolist()) + "]"


def pg_load(conn: psycopg.Connection, parts: Sequence[str], x: np.ndarray, extra: str = "") -> None:
    """``CREATE TABLE <parts> (id int PRIMARY KEY, embedding vector(d)<extra>)`` + COPY."""
    ident = sql.Identifier(*parts)
    if len(parts) == 2:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(parts[0])))
    conn.execute(
        sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, embedding vector({}){})").format(
            ident, sql.Literal(x.shape[1]), sql.SQL(extra)
        )
    )
    with conn.cursor().copy(sql.SQL("COPY {} (id, embedding) FROM STDIN").format(ident)) as cp:
        for i, row in enumerate(x):
            cp.write_row((i, vector_text(row)))


def exact_ids(x: np.ndarray, q: np.ndarray, k: int, metric: str = "l2") -> np.ndarray:
    """numpy brute force: the ids (row numbers) of the k nearest rows, ties by id."""
    if metric == "l2":
        d = ((x - q) ** 2).sum(1)
    elif metric == "cosine":
        d = 1 - (x @ q) / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
    else:
        d = -(x @ q)
    return np.lexsort((np.arange(len(x)), d))[:k]
