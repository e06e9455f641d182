"""The SQL entry point ``vecext.search(...)`` for SQL-only users."""

from __future__ import annotations

import json

import numpy as np
import psycopg
import pytest

from tests.postgres.search_data import recall, vector_text
from vecext.postgres import search

SQL = "SELECT id, distance FROM vecext.search('items', 'embedding', %s::vector, %s, %s::jsonb{})"


def _sql(conn, q, k=10, filt=None, extra="", params=()):
    rows = conn.execute(
        SQL.format(extra), [vector_text(q), k, None if filt is None else json.dumps(filt), *params]
    ).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows])


def test_exact_matches_python(sconn, search_env) -> None:
    for q in search_env.xq[:5]:
        ids, dist = _sql(sconn, q, filt={"cat": "b"})
        ref = search(sconn, "items", "embedding", q, 10, strategy="exact", filter={"cat": "b"})
        assert ids.tolist() == ref.ids.tolist()
        assert np.allclose(dist, ref.distances, atol=1e-6)


def test_two_stage_on_codes(sconn, search_env) -> None:
    recs = []
    for q in search_env.xq[:10]:
        ids, dist = _sql(sconn, q, extra=", code_column => 'emb_pq'")
        assert len(ids) == 10 and np.all(np.diff(dist) >= 0)
        recs.append(recall(ids, search_env.truth(q, 10)))
    assert np.mean(recs) >= 0.9
    ids, _ = _sql(sconn, search_env.xq[0], filt={"cat": ["d", "f"]},
                  extra=", code_column => 'emb_bin'")  # fmt: skip
    assert len(ids) == 10 and set(search_env.cat[ids]) <= {"d", "f"}


def test_fewer_rows_than_k_and_bound_values(sconn, search_env) -> None:
    ids, _ = _sql(sconn, search_env.xq[0], filt={"cat": "f"}, extra=", code_column => 'emb_pq'")
    assert sorted(ids.tolist()) == sorted(np.flatnonzero(search_env.cat == "f").tolist())
    for evil in ("a' OR '1'='1", "a'); DROP TABLE items; --"):
        ids, _ = _sql(sconn, search_env.xq[0], filt={"cat": evil})
        assert len(ids) == 0
    (n,) = sconn.execute("SELECT count(*) FROM items").fetchone()
    assert n == 20_000


@pytest.mark.parametrize(
    ("filt", "extra", "message"),
    [
        ({"nope": 1}, "", "filter column nope does not exist in table items"),
        ({'cat" = cat OR "': 1}, "", "does not exist in table items"),
        (None, ", metric => 'dot'", "unknown metric 'dot'"),
        (None, ", code_column => 'cat'", "items.cat is not a vecext compressed column"),
        (None, ", code_column => 'emb_pq', metric => 'l2'", "for metric cosine"),
    ],
)
def test_errors(sconn, search_env, filt, extra, message) -> None:
    with pytest.raises(psycopg.Error, match=message):
        _sql(sconn, search_env.xq[0], filt=filt, extra=extra)
    with pytest.raises(psycopg.Error, match="k must be between 1 and 10000"):
        _sql(sconn, search_env.xq[0], k=0)
    with pytest.raises(psycopg.Error, match="the query has dimension 3"):
        sconn.execute("SELECT * FROM vecext.search('items', 'embedding', '[1,2,3]', 5)")


def test_every_code_is_ranked_beside_a_code_index(sconn, search_env) -> None:
    # an HNSW index over the binary store must not answer the candidate stage: a walk
    # returns at most hnsw.ef_search rows (1 here, with the alternatives disabled)
    from vecext.postgres import create_vector_index, drop_vector_index

    ix = create_vector_index(sconn, "items", "emb_bin", name="items_emb_bin_sql_hnsw")
    try:
        with sconn.transaction():
            for setting in ("hnsw.ef_search = 1", "enable_seqscan = off", "enable_sort = off",
                            "enable_hashjoin = off", "enable_mergejoin = off"):  # fmt: skip
                sconn.execute("SET LOCAL " + setting)
            for q in search_env.xq[:3]:
                ids, dist = _sql(sconn, q, extra=", code_column => 'emb_bin'")
                assert len(ids) == 10 and np.all(np.diff(dist) >= 0)
    finally:
        drop_vector_index(sconn, "items", ix.name)
    # restated in catalog 0.6.0: its own settings and the pinned search_path both kept
    (config,) = sconn.execute(
        "SELECT proconfig FROM pg_proc WHERE oid = "
        "'vecext.search(regclass, name, vector, integer, jsonb, text, name, real)'::regprocedure"
    ).fetchone()
    assert "enable_indexscan=off" in config
    assert any(c.startswith("search_path=pg_catalog,") for c in config)
