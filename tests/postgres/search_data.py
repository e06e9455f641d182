"""Seeded data and a fully equipped table for the PostgreSQL search tests.

20,000 x 32 clustered vectors (not centred) with a categorical ``cat`` of skewed
sizes: ``a`` 50%, ``b`` 10%, ``c`` 1%, ``d`` 0.1%, ``f`` 5 rows (fewer than k),
``e`` the rest. Ground truth is numpy brute force in float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import psycopg
from psycopg import sql

N, D = 20_000, 32
CAT_SIZES = {"a": 10_000, "b": 2_000, "c": 200, "d": 20, "f": 5}
SELECTIVITY = {"a": 0.5, "b": 0.1, "c": 0.01, "d": 0.001}


@dataclass
class SearchData:
    xb: np.ndarray
    cat: np.ndarray
    xq: np.ndarray
    #: ``tiny`` (the first 20 rows), ``small`` (every 10th other row), ``big`` the rest
    tenant: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))
    dsn: str = ""
    extra: dict = field(default_factory=dict)

    def truth(self, q: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Exact cosine top-k ids (float64), among ``mask``."""
        xb = self.xb.astype(np.float64)
        xb /= np.linalg.norm(xb, axis=1, keepdims=True)
        qq = q.astype(np.float64) / np.linalg.norm(q)
        dist = 1 - xb @ qq
        if mask is not None:
            dist[~mask] = np.inf
        order = np.argsort(dist, kind="stable")[:k]
        return order[np.isfinite(dist[order])]


def make_data(seed: int = 0) -> SearchData:
    rng = np.random.default_rng(seed)
    centers = 2.0 * rng.standard_normal((40, D))
    labels = rng.integers(0, 40, N)
    xb = (centers[labels] + 0.8 * rng.standard_normal((N, D)) + 0.5).astype(np.float32)
    cat = np.array(
        [c for c, n in CAT_SIZES.items() for _ in range(n)] + ["e"] * (N - sum(CAT_SIZES.values()))
    )
    rng.shuffle(cat)
    xq = (xb[rng.choice(N, 20, replace=False)] + 0.3 * rng.standard_normal((20, D))).astype(
        np.float32
    )
    tenant = np.where(np.arange(N) % 10 == 0, "small", "big")
    tenant[:20] = "tiny"
    return SearchData(xb, cat, xq, tenant)


def vector_text(x: np.ndarray) -> str:
    return "[" + ",".join(f"{v:.9g}" for v in np.asarray(x, np.float32).tolist()) + "]"


def load(
    conn: psycopg.Connection,
    table: str,
    data: SearchData,
    tenants: list[str] | None = None,
    n: int = N,
) -> None:
    """``table (id bigint PRIMARY KEY, embedding vector(32), cat text [, tenant text])``
    with the first ``n`` rows."""
    t = sql.Identifier(table)
    extra = sql.SQL(", tenant text") if tenants is not None else sql.SQL("")
    # no autovacuum: its row-count estimates of a table bloated by the backfills vary
    # with timing, and the planner tests read them (the fixtures VACUUM ANALYZE instead)
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (id bigint PRIMARY KEY, embedding vector({}), cat text{}) "
            "WITH (autovacuum_enabled = false)"
        ).format(t, sql.Literal(D), extra)
    )
    cols = sql.SQL("id, embedding, cat, tenant" if tenants is not None else "id, embedding, cat")
    with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(t, cols)) as copy:
        for i in range(n):
            row = [i, vector_text(data.xb[i]), str(data.cat[i])]
            if tenants is not None:
                row.append(tenants[i])
            copy.write_row(row)
    conn.execute(sql.SQL("CREATE INDEX ON {} (cat)").format(t))
    conn.execute(sql.SQL("ANALYZE {}").format(t))


def recall(ids: np.ndarray, truth: np.ndarray) -> float:
    if len(truth) == 0:
        return 1.0
    return len(set(np.asarray(ids).tolist()) & set(truth.tolist())) / len(truth)
