"""Fixtures and helpers of the reliability suite: small tables under any name, brute force."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import psycopg
from psycopg import sql

# the PostgreSQL tests' fixtures: a vecext database per module (module_dsn, mconn) and
# one FAISS thread
from tests.postgres.conftest import _faiss_single_thread, mconn, module_dsn, vector_text  # noqa: F401


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
