"""Multi-tenant search in PostgreSQL: partial HNSW indexes for large tenants, IVF list ids
kept by triggers. (Isolation, required tenants, filters and bound values for every
backend: ``tests/contract/test_tenants.py``.)"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from tests.postgres.search_data import load, vector_text
from vecext.postgres import (
    add_compressed_column,
    add_ivf_lists,
    connect,
    create_tenant_indexes,
    declare_tenant_column,
    search,
    tenant_indexes,
    train_codec,
)
from vecext.search.api import SearchError
from vecext.search.planner import PlannerSettings

N_T = 6_000
#: 4,000 / 1,500 / 500 rows, interleaved
TENANTS = ["big", "big", "big", "big", "big", "big", "big", "big", "mid", "mid", "mid", "small"]


@pytest.fixture(scope="module")
def tenv(search_env) -> Iterator[tuple[psycopg.Connection, object, np.ndarray]]:
    conn = connect(search_env.dsn, autocommit=True)
    tenants = np.array([TENANTS[i % len(TENANTS)] for i in range(N_T)])
    load(conn, "titems", search_env, tenants=tenants.tolist(), n=N_T)
    declare_tenant_column(conn, "titems", "tenant")
    train_codec(conn, "tnt_pq", "titems", "embedding", "pq", metric="cosine", m=8, niter=5)
    add_compressed_column(conn, "titems", "embedding", "tnt_pq", "emb_pq", progress=False)
    add_ivf_lists(conn, "titems", "embedding", nlist=40, niter=5)
    made = create_tenant_indexes(conn, "titems", "embedding", min_rows=3_000)
    assert [ix.comment["tenant"] for ix in made] == ['"big"']
    yield conn, search_env, tenants
    conn.close()


def _queries_near_other_tenants(data, tenants, tenant, n=6):
    """Queries next to rows of *other* tenants, so a leak would show."""
    others = np.flatnonzero(tenants[:N_T] != tenant)[:n]
    return data.xb[others] + 0.01


def test_large_tenant_uses_its_partial_index(tenv) -> None:
    conn, data, tenants = tenv
    idx = tenant_indexes(conn, "titems", "embedding")
    assert list(idx) == ['"big"']
    (ix,) = idx['"big"']
    assert ix.predicate == "tenant = 'big'::text" and ix.method == "hnsw"
    s = PlannerSettings(exact_max_rows=1_000)
    before = _idx_scans(conn, ix.name)
    for q in _queries_near_other_tenants(data, tenants, "big"):
        r = search(conn, "titems", "embedding", q, 10, tenant="big", settings=s)
        assert r.strategy == "hnsw" and r.plan.params["index"] == ix.name
        assert len(r) == 10 and (tenants[r.ids] == "big").all()
        assert f"has its own HNSW index {ix.name}" in r.explain()
    # PostgreSQL really scanned the partial index (the bound tenant implies its predicate)
    assert _idx_scans(conn, ix.name) > before
    # a tenant without its own index is never searched through another tenant's
    mid = search(conn, "titems", "embedding", data.xq[0], 10, tenant="mid", settings=s)
    assert mid.strategy in ("exact", "ivf", "compressed")
    assert "no HNSW index of its own" in mid.explain()
    with pytest.raises(SearchError, match="needs an HNSW index"):
        search(conn, "titems", "embedding", data.xq[0], 10, tenant="mid", strategy="hnsw")


def _idx_scans(conn: psycopg.Connection, name: str) -> int:
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT pg_stat_clear_snapshot()")
    (n,) = conn.execute(
        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = %s", [name]
    ).fetchone()
    return int(n)


def test_list_ids_follow_inserts_and_updates(tenv) -> None:
    from vecext.postgres import ivf_lists, load_codec

    conn, data, _ = tenv
    lists = ivf_lists(conn, "titems", "emb_pq")
    # in the code store (catalog 0.5.0), column list
    assert lists is not None and lists.nlist == 40 and lists.list_column == "list"
    assert lists.store is not None
    store = f'vecext."{lists.store}"'
    coarse = load_codec(conn, lists.codec_name)
    # the backfill and the trigger agree with the Python quantizer
    rows = conn.execute(f"SELECT pk, list FROM {store} ORDER BY pk LIMIT 500").fetchall()
    assert [r[1] for r in rows] == coarse.assign(data.xb[:500]).tolist()
    x = data.xq[:3]
    with conn.transaction():
        for i, v in enumerate(x):
            conn.execute(
                "INSERT INTO titems (id, embedding, cat, tenant) VALUES (%s, %s, 'a', 'mid')",
                [100_000 + i, vector_text(v)],
            )
        got = conn.execute(f"SELECT list FROM {store} WHERE pk >= 100000 ORDER BY pk").fetchall()
        assert [g[0] for g in got] == coarse.assign(x).tolist()
        conn.execute(
            "UPDATE titems SET embedding = %s WHERE id = 100000", [vector_text(data.xb[7])]
        )
        (moved,) = conn.execute(f"SELECT list FROM {store} WHERE pk = 100000").fetchone()
        assert moved == coarse.assign(data.xb[7:8])[0]
        conn.execute("DELETE FROM titems WHERE id >= 100000")


def test_drop_and_readd_lists(tenv) -> None:
    from vecext.postgres import drop_ivf_lists, ivf_lists

    conn, data, tenants = tenv
    drop_ivf_lists(conn, "titems", "emb_pq")
    assert ivf_lists(conn, "titems", "emb_pq") is None
    cols = {r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'titems'::regclass AND attnum > 0 "
        "AND NOT attisdropped"
    ).fetchall()}  # fmt: skip
    assert "embedding_list" not in cols
    # nor in the code store (catalog 0.5.0)
    assert conn.execute(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = vecext.code_store('titems', "
        "'emb_pq') AND attname = 'list' AND NOT attisdropped"
    ).fetchone() == (0,)
    assert not conn.execute(
        "SELECT 1 FROM pg_trigger WHERE tgrelid = 'titems'::regclass "
        "AND tgname = 'vecext_embedding_list'"
    ).fetchall()
    with pytest.raises(SearchError, match="needs IVF lists and codes"):
        search(conn, "titems", "embedding", data.xq[0], 10, tenant="big", strategy="ivf")
    indexes = {r[0] for r in conn.execute(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'titems'::regclass"
    ).fetchall()}  # fmt: skip
    lists = add_ivf_lists(conn, "titems", "embedding", nlist=40, niter=5)
    # lists in the code store (catalog 0.5.0): one index on the store's list column, none on
    # the table (the tenant is joined by primary key)
    assert lists.store is not None and len(lists.indexes) == 1
    assert {r[0] for r in conn.execute(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'titems'::regclass"
    ).fetchall()} == indexes  # fmt: skip
    r = search(conn, "titems", "embedding", data.xq[0], 10, tenant="big", strategy="ivf")
    assert len(r) == 10 and (tenants[r.ids] == "big").all()
