"""Seeded synthetic retrieval results with a known, query-dependent relevance cut-off."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest


@dataclass
class Retrieved:
    xq: np.ndarray  # (nq, d) float32 unit queries
    S: np.ndarray  # (nq, N) float32 similarities, each row descending
    Y: np.ndarray  # (nq, N) bool labels
    n_relevant: np.ndarray  # (nq,) int64, >= Y.sum(1) (some relevant never retrieved)
    cut: np.ndarray  # (nq,) the true per-query cosine cut-off

    def take(self, rows: np.ndarray) -> Retrieved:
        return Retrieved(
            self.xq[rows], self.S[rows], self.Y[rows], self.n_relevant[rows], self.cut[rows]
        )


def make_retrieved(nq: int = 400, d: int = 16, N: int = 40, seed: int = 0) -> Retrieved:
    """Relevant documents score above a cut-off that is linear in the query vector
    (``0.55 + 0.25 * u.q``), irrelevant ones below it (with a little overlap): a single
    global cosine threshold cannot follow it, a query-dependent one can."""
    rng = np.random.default_rng(seed)
    xq = rng.standard_normal((nq, d))
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    cut = 0.55 + 0.25 * (xq @ u)
    n_pos = rng.integers(1, 8, nq)
    S = np.empty((nq, N))
    Y = np.zeros((nq, N), dtype=bool)
    for i in range(nq):
        pos = cut[i] + np.abs(rng.normal(0.0, 0.06, n_pos[i])) - 0.01
        neg = cut[i] - np.abs(rng.normal(0.0, 0.12, N - n_pos[i])) + 0.01
        s = np.r_[pos, neg]
        y = np.r_[np.ones(n_pos[i], bool), np.zeros(N - n_pos[i], bool)]
        order = np.argsort(-s, kind="stable")
        S[i], Y[i] = s[order], y[order]
    n_relevant = Y.sum(axis=1) + rng.integers(0, 2, nq)
    return Retrieved(
        xq.astype(np.float32), S.astype(np.float32), Y, n_relevant.astype(np.int64), cut
    )


@pytest.fixture(scope="session")
def retrieved() -> Retrieved:
    return make_retrieved()


@pytest.fixture(scope="session")
def train_test(retrieved: Retrieved) -> tuple[Retrieved, Retrieved]:
    half = retrieved.S.shape[0] // 2
    idx = np.arange(retrieved.S.shape[0])
    return retrieved.take(idx[:half]), retrieved.take(idx[half:])


@pytest.fixture(scope="session")
def fitted_adapter(train_test):
    from vecext.relevance import make_relevance

    tr, _ = train_test
    return make_relevance("cosine-adapter", lam=1e-3).fit(tr.xq, tr.S, tr.Y, tr.n_relevant)


# --------------------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def rel_data():
    """Documents, held-out queries and fitted adapters (see ``tests/relevance/sql_data.py``)."""
    from tests.relevance.sql_data import make_rel_data

    return make_rel_data()


@pytest.fixture(scope="session")
def rel_pg(pg_server_dsn, pg_template, rel_data):
    """PostgreSQL: the catalog, ``docs (id, embedding vector(16), cat)`` with an HNSW index
    (cosine), and every adapter of ``rel_data`` saved under its name."""
    from tests.conftest import _create_db, _drop_db, with_dbname
    from tests.postgres.conftest import load_table
    from vecext.postgres import connect, create_vector_index, install
    from vecext.postgres.relevance import save_adapter

    name = _create_db(pg_server_dsn, pg_template)
    conn = connect(with_dbname(pg_server_dsn, name), autocommit=True)
    try:
        install(conn)
        load_table(conn, "docs", rel_data.xb)
        conn.execute("ALTER TABLE docs ADD COLUMN cat integer")
        conn.execute("UPDATE docs SET cat = id % 3")
        conn.execute("ANALYZE docs")
        create_vector_index(conn, "docs", "embedding", metric="cosine")
        for adapter, method in rel_data.adapters.items():
            save_adapter(conn, adapter, method)
        yield conn
    finally:
        conn.close()
        _drop_db(pg_server_dsn, name)


@pytest.fixture(scope="session")
def rel_duck(rel_data):
    """DuckDB (in memory): the same ``docs`` with a PQ compressed column ``emb_pq``
    (cosine) instead of the index, and the same adapters."""
    import vecext.duckdb as vd
    from tests.duckdb.conftest import load_table
    from vecext.codecs import make_codec
    from vecext.duckdb.relevance import save_adapter

    con = vd.connect(vss=False)
    load_table(con, "docs", rel_data.xb)
    con.execute("ALTER TABLE docs ADD COLUMN cat INTEGER")
    con.execute("UPDATE docs SET cat = id % 3")
    codec = make_codec("pq", rel_data.xb.shape[1], "cosine", m=4, niter=8).train(rel_data.xb)
    vd.save_codec(con, "docs_pq", codec)
    vd.add_compressed_column(con, "docs", "embedding", "docs_pq", "emb_pq", progress=False)
    for adapter, method in rel_data.adapters.items():
        save_adapter(con, adapter, method)
    yield con
    con.close()


@pytest.fixture(params=["postgres", "duckdb"])
def rel_db(request):
    """Each backend's database in turn (``rel_pg``, ``rel_duck``)."""
    return request.getfixturevalue("rel_pg" if request.param == "postgres" else "rel_duck")
