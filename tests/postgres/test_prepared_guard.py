"""What a prepared search's guard (vecext.postgres.guard) catches on PostgreSQL: an index
created or dropped, a code column replaced by another codec, a tenant column declared,
each by another connection or inside the caller's transaction; a dropped column fails
clearly; what the guard leaves to refresh() (ANALYZE) changes nothing until then. Rows
are checked against search(), which reads the table's facts afresh."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from tests.postgres.search_data import load, make_data
from vecext.postgres import (
    add_compressed_column,
    calibrate,
    connect,
    create_vector_index,
    declare_tenant_column,
    drop_compressed_column,
    drop_vector_index,
    install,
    search,
    train_codec,
    undeclare_tenant_column,
)
from vecext.search import SearchError, prepare_search

N = 3_000


@pytest.fixture(scope="module")
def data():
    return make_data(seed=11)


@pytest.fixture(scope="module")
def db(pg_server_dsn: str, pg_template: str, data) -> Iterator[str]:
    from tests.conftest import _create_db, _drop_db, with_dbname

    name = _create_db(pg_server_dsn, pg_template)
    dsn = with_dbname(pg_server_dsn, name)
    with connect(dsn, autocommit=True) as conn:
        install(conn)
        load(conn, "g", data, n=N)
        conn.execute("VACUUM ANALYZE g")
        train_codec(conn, "g_bin", "g", "embedding", "binary", metric="cosine")
        add_compressed_column(conn, "g", "embedding", "g_bin", "e_bin", progress=False)
        calibrate(conn, "g", "e_bin")
    yield dsn
    _drop_db(pg_server_dsn, name)


@pytest.fixture
def conns(db: str) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """The searching connection and another one that changes the table."""
    a, b = connect(db, autocommit=True), connect(db, autocommit=True)
    yield a, b
    a.close()
    b.close()


def _same(ps, conn, q, **kw) -> None:
    got, want = ps(q), search(conn, "g", "embedding", q, 10, **kw)
    assert got.strategy == want.strategy, (got.explain(), want.explain())
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_allclose(got.distances, want.distances, rtol=1e-6, atol=1e-6)


def test_an_index_created_or_dropped_plans_again(conns, data) -> None:
    conn, other = conns
    ps = prepare_search(conn, "g", "embedding", 10)
    q = data.xq[0]
    before = ps(q).strategy
    assert before != "hnsw" and ps.replans == 0
    ix = create_vector_index(other, "g", "embedding", metric="cosine")
    try:
        _same(ps, conn, q)
        assert ps.replans == 1 and ps(q).strategy == "hnsw"
        assert "plan kept by a prepared search" in ps.explain()
    finally:
        drop_vector_index(other, "g", ix.name)
    _same(ps, conn, q)
    assert ps.replans == 2 and ps(q).strategy == before


def test_a_code_column_replaced_by_another_codec(conns, data) -> None:
    conn, other = conns
    ps = prepare_search(conn, "g", "embedding", 10, strategy="compressed", using="e_bin")
    for q in data.xq[:3]:
        _same(ps, conn, q, strategy="compressed", using="e_bin")
    # the same column name, codes of another codec (twice the bits) in another store: the
    # kept statement names the old store, whose absence makes it plan again
    drop_compressed_column(other, "g", "e_bin")
    train_codec(
        other, "g_bin2", "g", "embedding", "binary", metric="cosine", pretransform="expand:64"
    )
    add_compressed_column(other, "g", "embedding", "g_bin2", "e_bin", progress=False)
    calibrate(other, "g", "e_bin")
    for q in data.xq[:3]:
        _same(ps, conn, q, strategy="compressed", using="e_bin")
    assert ps.replans == 1
    assert (
        ps(data.xq[0]).plan.params
        == search(
            conn, "g", "embedding", data.xq[0], 10, strategy="compressed", using="e_bin"
        ).plan.params
    )


def test_a_code_column_calibrated_again_plans_again(conns, data) -> None:
    # its catalog row changed, its store did not: only the guard can tell
    conn, other = conns
    ps = prepare_search(conn, "g", "embedding", 10, strategy="compressed", using="e_bin")
    ps(data.xq[0])
    calibrate(other, "g", "e_bin", n_queries=50)
    _same(ps, conn, data.xq[0], strategy="compressed", using="e_bin")
    assert ps.replans == 1


def test_a_walk_over_a_dropped_code_index_is_refused_by_name(conns, data) -> None:
    conn, other = conns
    ix = create_vector_index(other, "g", "e_bin")
    ps = prepare_search(conn, "g", "embedding", 10, strategy="hnsw", using=ix.name)
    _same(ps, conn, data.xq[1], strategy="hnsw", using=ix.name)
    drop_vector_index(other, "g", ix.name)
    with pytest.raises(SearchError, match=f"no code column or index named '{ix.name}'"):
        ps(data.xq[1])


def test_a_tenant_column_declared_later_is_required(conns, data) -> None:
    conn, other = conns
    ps = prepare_search(conn, "g", "embedding", 10)
    ps(data.xq[0])
    declare_tenant_column(other, "g", "cat", index=False)
    try:
        with pytest.raises(SearchError, match="tenant column 'cat'"):
            ps(data.xq[0])
    finally:
        undeclare_tenant_column(other, "g")
    _same(ps, conn, data.xq[0])


def test_changes_inside_the_callers_transaction(conns, data) -> None:
    conn, _ = conns
    ps = prepare_search(conn, "g", "embedding", 10)
    q = data.xq[2]
    plain = ps(q).strategy
    with conn.transaction():
        ix = create_vector_index(conn, "g", "embedding", metric="cosine")
        got = ps(q)
        assert got.strategy == "hnsw" and ps.replans == 1
        np.testing.assert_array_equal(got.ids, search(conn, "g", "embedding", q, 10).ids)
        assert ix.name in got.explain()
        raise psycopg.Rollback()
    # rolled back: the index never was
    assert ps(q).strategy == plain and ps.replans == 2


def test_what_the_guard_leaves_to_refresh(conns, data) -> None:
    conn, other = conns
    ps = prepare_search(conn, "g", "embedding", 10, filter={"cat": "b"})
    ps(data.xq[0])
    other.execute("ANALYZE g")
    ps(data.xq[0])
    assert ps.replans == 0  # new statistics: the kept plan stands until refresh()
    ps.refresh()
    assert ps.replans == 1
    _same(ps, conn, data.xq[0], filter={"cat": "b"})


def test_rows_written_meanwhile_are_found(conns, data) -> None:
    conn, other = conns
    ps = prepare_search(conn, "g", "embedding", 10, strategy="compressed", using="e_bin")
    q = data.xq[3]
    other.execute(
        "INSERT INTO g (id, embedding, cat) VALUES (%s, %s::real[]::vector, 'b')",
        [10_000_001, q.tolist()],
    )
    try:
        got = ps(q)
        assert got.ids[0] == 10_000_001 and ps.replans == 0
    finally:
        other.execute("DELETE FROM g WHERE id = %s", [10_000_001])


def test_a_dropped_column_fails_clearly(db: str, data) -> None:
    with connect(db, autocommit=True) as conn, connect(db, autocommit=True) as other:
        load(conn, "g2", data, n=500)
        ps = prepare_search(conn, "g2", "embedding", 10, strategy="exact")
        ps(data.xq[0])
        other.execute("ALTER TABLE g2 DROP COLUMN embedding")
        with pytest.raises(SearchError, match="no column 'embedding'"):
            ps(data.xq[0])
        other.execute("DROP TABLE g2")


def test_a_catalog_installed_later_is_seen(pg_dsn: str, data) -> None:
    # no vecext catalog when prepared: the guard reads the catalog's state, so a tenant
    # column declared after an install is required at the next call
    with connect(pg_dsn, autocommit=True) as conn, connect(pg_dsn, autocommit=True) as other:
        load(conn, "g3", data, n=500)
        ps = prepare_search(conn, "g3", "embedding", 10, strategy="exact")
        ps(data.xq[0])
        install(other)
        declare_tenant_column(other, "g3", "cat", index=False)
        with pytest.raises(SearchError, match="tenant column 'cat'"):
            ps(data.xq[0])
        assert len(prepare_search(conn, "g3", "embedding", 10, tenant="b")(data.xq[0])) == 10
