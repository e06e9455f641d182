"""What the DuckDB search does its own way: VSS applies its LIMIT before a filter, the
exact scan must not be rewritten into an index scan, rows written after a refresh have
no codes yet, large tables are sampled for estimates. Every strategy against brute
force, the k-rows guarantee, budgets, planning and calibration for every backend:
``tests/contract/test_strategies.py``."""

from __future__ import annotations

from tests.duckdb.conftest import SEARCH_N
from vecext.duckdb import strategies
from vecext.duckdb.backend import DuckDBBackend
from vecext.search import search
from vecext.search.api import Request
from vecext.search.filters import Eq
from vecext.search.planner import Plan


def test_hnsw_under_a_selective_filter_falls_back_and_says_so(search_env) -> None:
    con, data = search_env
    r = search(con, "items", "embedding", data.xq[0], 10, strategy="hnsw", filter={"cat": "d"})
    assert len(r) == 10 and r.complete
    text = r.explain()
    assert "before the filter" in text
    if r.strategy == "hnsw+exact":  # VSS found fewer than 10 of the 20 matching rows
        assert "fell back to an exact scan" in text


def _exact_context(con, data, pred=None) -> strategies.Context:
    backend = DuckDBBackend(con)
    info = backend.table_info("items", "embedding", "cosine")
    req = Request("items", "embedding", data.xq[0], 10, "cosine", pred)
    where, params = backend.where(info, pred)
    return strategies.Context(con, info, req, Plan("exact", "test"), where, params)


def _operators(con, sql, params) -> str:
    (_, text) = con.execute("EXPLAIN " + sql, params).fetchone()
    return text


def test_exact_never_uses_the_hnsw_index(search_env) -> None:
    con, data = search_env
    for pred in (None, Eq("cat", "a")):
        sql, params = strategies.exact_statement(_exact_context(con, data, pred))
        assert "HNSW_INDEX_SCAN" not in _operators(con, sql, params)
    # ...whereas the plain top-k query is rewritten into an index scan
    plain = "SELECT id FROM items ORDER BY array_cosine_distance(embedding, ?::FLOAT[32]) LIMIT 10"
    assert "HNSW_INDEX_SCAN" in _operators(con, plain, [data.xq[0].tolist()])
    sql, params = strategies.hnsw_statement(_exact_context(con, data), 64)
    assert "HNSW_INDEX_SCAN" in _operators(con, sql, params)


def test_rows_written_after_a_refresh_have_no_codes_yet(search_env) -> None:
    # (that every strategy still finds them: tests/contract/test_strategies.py)
    con, data = search_env
    q = data.xq[3]
    new_id = SEARCH_N + 7
    con.execute(
        "INSERT INTO items (id, embedding, cat, tenant) VALUES (?, ?::FLOAT[32], 'b', 'big')",
        [new_id, q.tolist()],
    )
    try:
        codes = con.execute(
            "SELECT emb_pq IS NULL, embedding_list IS NULL FROM items WHERE id = ?", [new_id]
        ).fetchone()
        assert codes == (True, True)  # no refresh yet: neither codes nor a list
        r = search(con, "items", "embedding", q, 10, strategy="compressed")
        assert r.ids[0] == new_id and r.distances[0] < 1e-5
    finally:
        con.execute("DELETE FROM items WHERE id = ?", [new_id])


def test_large_tables_get_a_sampled_estimate(search_env, monkeypatch) -> None:
    import sys

    con, data = search_env
    mod = sys.modules["vecext.duckdb.backend"]
    backend = DuckDBBackend(con)
    info = backend.table_info("items", "embedding", "cosine")
    assert backend.estimate_matching(info, Eq("cat", "a")) == 10_000  # a count
    monkeypatch.setattr(mod, "SAMPLE_ABOVE", 1_000)
    monkeypatch.setattr(mod, "SAMPLE_PERCENT", 50.0)
    est = backend.estimate_matching(info, Eq("cat", "a"))
    assert 5_000 <= est <= 15_000 and est == backend.estimate_matching(info, Eq("cat", "a"))
    r = search(con, "items", "embedding", data.xq[0], 10, filter={"cat": "d"})
    assert len(r) == 10 and r.complete  # estimates steer the plan, never the guarantee
