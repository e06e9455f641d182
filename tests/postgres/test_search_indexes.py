"""Native pgvector indexes: every storage, partial and concurrent builds, build memory,
pgvector's bounds, calibration. (Creating, listing, searching and dropping through the
same verbs on every backend: ``tests/contract/test_indexes.py``.)"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from tests.postgres.search_data import load, recall
from vecext.postgres import (
    connect,
    create_vector_index,
    drop_vector_index,
    hnsw_build_memory,
    list_vector_indexes,
    search,
)
from vecext.postgres.indexes import IndexBuildError, VectorIndexError, value_bytes

N_I = 3_000


@pytest.fixture(scope="module")
def iconn(search_env) -> Iterator[psycopg.Connection]:
    conn = connect(search_env.dsn, autocommit=True)
    load(conn, "iitems", search_env, n=N_I)
    yield conn
    conn.close()


def _mwm(conn: psycopg.Connection) -> str:
    return conn.execute("SHOW maintenance_work_mem").fetchone()[0]


def test_every_storage_is_created_listed_and_searched(iconn, search_env) -> None:
    made = [
        create_vector_index(iconn, "iitems", "embedding", metric="cosine"),
        create_vector_index(iconn, "iitems", "embedding", metric="cosine", storage="halfvec"),
        create_vector_index(iconn, "iitems", "embedding", storage="bit"),
        create_vector_index(iconn, "iitems", "embedding", metric="l2", method="ivfflat", lists=10),
    ]
    found = {ix.name: ix for ix in list_vector_indexes(iconn, "iitems", "embedding")}
    assert set(found) == {ix.name for ix in made}
    kinds = {(ix.method, ix.storage, ix.metric, ix.opclass) for ix in found.values()}
    assert kinds == {
        ("hnsw", "vector", "cosine", "vector_cosine_ops"),
        ("hnsw", "halfvec", "cosine", "halfvec_cosine_ops"),
        ("hnsw", "bit", "hamming", "bit_hamming_ops"),
        ("ivfflat", "vector", "l2", "vector_l2_ops"),
    }
    assert all(ix.dim == 32 and ix.valid and ix.size_bytes > 0 for ix in found.values())
    assert made[0].options == {"m": 16, "ef_construction": 64}
    assert made[3].options == {"lists": 10}
    mask = np.arange(20_000) < N_I
    for ix, floor in ((made[0], 0.9), (made[1], 0.9), (made[2], 0.0)):
        recs = []
        for q in search_env.xq[:8]:
            r = search(iconn, "iitems", "embedding", q, 10, strategy="hnsw", using=ix.name)
            assert len(r) == 10 and r.plan.params["index"] == ix.name
            # halfvec and bit candidates are reranked: exact distances, sorted
            x = search_env.xb[r.ids].astype(np.float64)
            ref = 1 - (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
            assert np.allclose(r.distances, ref, atol=1e-5)
            recs.append(recall(r.ids, search_env.truth(q, 10, mask)))
        assert np.mean(recs) >= floor, (ix.storage, np.mean(recs))
    for ix in made:
        assert drop_vector_index(iconn, ix.name)
    assert list_vector_indexes(iconn, "iitems", "embedding") == []


def test_partial_and_concurrent_builds(iconn) -> None:
    ix = create_vector_index(iconn, "iitems", "embedding", where={"cat": "a"}, concurrently=True)
    assert ix.predicate == "cat = 'a'::text"
    assert ix.name.startswith("iitems_embedding_hnsw_vector_cosine_p")
    before = _mwm(iconn)
    drop_vector_index(iconn, ix.name, concurrently=True)
    assert _mwm(iconn) == before  # the session setting was restored
    with connect(iconn.info.dsn) as tx_conn:  # not autocommit
        tx_conn.execute("SELECT 1")  # a transaction is open
        with pytest.raises(VectorIndexError, match="cannot run inside a transaction block"):
            create_vector_index(tx_conn, "iitems", "embedding", concurrently=True)
        tx_conn.rollback()


def test_memory_estimate_matches_pgvector(iconn) -> None:
    """pgvector says after how many tuples its graph left maintenance_work_mem; the
    documented per-element formula must agree with it."""
    notices: list[str] = []
    iconn.add_notice_handler(lambda d: notices.append(str(d.message_primary)))
    with iconn.transaction():
        iconn.execute("SET LOCAL maintenance_work_mem = '1MB'")
        iconn.execute("SET LOCAL max_parallel_maintenance_workers = 0")
        iconn.execute("CREATE INDEX mem_probe ON iitems USING hnsw (embedding vector_l2_ops)")
        iconn.execute("DROP INDEX mem_probe")
    (msg,) = [n for n in notices if "no longer fits" in n]
    fitted = int(msg.split("after ")[1].split()[0])
    actual = (1 << 20) / fitted
    per = value_bytes("vector", 32) + 2 * 16 * 16 + 200
    assert abs(per - actual) / actual < 0.15, (per, actual)
    # with the estimate, the same build stays in memory
    notices.clear()
    with iconn.transaction():
        iconn.execute("SET LOCAL maintenance_work_mem = '1MB'")
        ix = create_vector_index(iconn, "iitems", "embedding", metric="l2", parallel_workers=0)
    assert not [n for n in notices if "no longer fits" in n]
    drop_vector_index(iconn, ix.name)
    assert hnsw_build_memory(1_000_000, 768, m=16) > hnsw_build_memory(1_000_000, 768, m=8)


def test_build_memory_cap_says_how_much_is_needed(iconn) -> None:
    with pytest.raises(IndexBuildError, match=r"needs about \d+ MB of maintenance_work_mem, more "
                                              r"than the cap of 1 MB"):  # fmt: skip
        create_vector_index(iconn, "iitems", "embedding", max_memory=1 << 20)
    assert list_vector_indexes(iconn, "iitems", "embedding") == []


def test_bad_index_requests(iconn) -> None:
    with pytest.raises(VectorIndexError, match="unknown index storage 'float8'"):
        create_vector_index(iconn, "iitems", "embedding", storage="float8")
    with pytest.raises(VectorIndexError, match="unknown index method 'btree'"):
        create_vector_index(iconn, "iitems", "embedding", method="btree")
    with pytest.raises(VectorIndexError, match="iitems.cat is text; an index needs vector"):
        create_vector_index(iconn, "iitems", "cat")
    with pytest.raises(VectorIndexError, match="at most 1000"):
        create_vector_index(iconn, "iitems", "embedding", m=8, ef_construction=2000)
    with pytest.raises(VectorIndexError, match="at least 2 \\* m = 32"):
        create_vector_index(iconn, "iitems", "embedding", m=16, ef_construction=20)
    with pytest.raises(VectorIndexError, match="does not exist"):
        drop_vector_index(iconn, "no_such_index")


def test_hnsw_calibration_sets_ef_search(iconn, search_env) -> None:
    from vecext.postgres import calibrate_index

    ix = create_vector_index(iconn, "iitems", "embedding", metric="cosine", m=4,
                             ef_construction=8)  # a deliberately weak graph  # fmt: skip
    rec = calibrate_index(iconn, "iitems", ix.name, n_queries=30, ef_ladder=(10, 40, 400))
    curve = rec["ef_search"]
    assert rec["queries"] == "perturbed rows" and list(curve) == ["10", "40", "400"]
    assert curve["10"] < curve["400"] and curve["400"] >= 0.85
    (stored,) = list_vector_indexes(iconn, "iitems", "embedding")
    assert stored.comment["calibration"]["ef_search"] == curve
    # perturbed rows are easier than real queries: the search aims their measured recall
    # at a tenth of the allowed loss (0.995 for 0.95), and at least HNSW_EF_FLOOR
    from vecext.postgres.backend import PostgresBackend
    from vecext.search.planner import PlannerSettings

    floor = PlannerSettings().resolve(PostgresBackend.planner_defaults).hnsw_ef_floor

    want = next((int(e) for e, r in curve.items() if r >= 0.995), 400)
    r = search(iconn, "iitems", "embedding", search_env.xq[0], 10, strategy="hnsw")
    assert r.plan.params["ef_search"] == max(want, floor)
    # calibrated on given queries (a query log): half the allowed loss, as the planner
    rec = calibrate_index(iconn, "iitems", ix.name, queries=search_env.xq[:10],
                          ef_ladder=(10, 40, 400, 1000))  # fmt: skip
    curve = rec["ef_search"]
    want = next((int(e) for e, r in curve.items() if r >= 0.975), 1000)
    r = search(iconn, "iitems", "embedding", search_env.xq[0], 10, strategy="hnsw")
    assert r.plan.params["ef_search"] == max(want, floor)
    drop_vector_index(iconn, ix.name)
