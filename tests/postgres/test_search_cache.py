"""The per-connection cache of table facts and filter estimates (vecext.postgres.info_cache):
hits while nothing changed, a re-read after every kind of change, from this connection
or another, and an honest explain()."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from psycopg import sql

from tests.postgres.search_data import load, make_data
from vecext.postgres import (
    add_compressed_column,
    connect,
    create_vector_index,
    drop_vector_index,
    install,
    search,
    statement,
    train_codec,
)
from vecext.postgres.info_cache import cache_for

CACHED = "table facts and catalog rows: cached on this connection (unchanged)"
READ = "table facts and catalog rows: read from the catalog"


@pytest.fixture(scope="module")
def data():
    return make_data(seed=3)


@pytest.fixture
def conn(pg_dsn: str, data) -> Iterator[psycopg.Connection]:
    c = connect(pg_dsn, autocommit=True)
    load(c, "items", data, n=4_000)
    c.execute("CREATE INDEX items_cat ON items (cat)")
    c.execute("VACUUM ANALYZE items")
    yield c
    c.close()


def _steps(r) -> list[str]:
    return r.plan.steps


def _truth(data, q, k, mask=None):
    m = np.arange(len(data.xb)) < 4_000
    return data.truth(q, k, m if mask is None else m & mask)


def test_second_search_is_cached_and_right(conn, data) -> None:
    q = data.xq[0]
    first = search(conn, "items", "embedding", q, 10)
    assert READ in _steps(first)
    second = search(conn, "items", "embedding", q, 10)
    assert CACHED in _steps(second)
    assert "cached" in second.explain()
    assert list(second.ids) == list(first.ids) == list(_truth(data, q, 10))


def test_search_path_is_read_with_the_table_facts(conn, data) -> None:
    # every statement binds the path read once with the table's facts, which the stamp
    # re-reads when pgvector's pg_extension row changes
    from vecext.postgres.backend import PostgresBackend

    info = PostgresBackend(conn).table_info("items", "embedding", "cosine")
    (want,) = conn.execute("SELECT " + statement.PATH_TEXT.replace("%%", "%")).fetchone()
    assert info.ref.search_path == want and "pg_temp" in want
    rows = statement.fetch_local(
        conn, {}, sql.SQL("SELECT current_setting('search_path')"), [], info.ref.search_path
    )
    assert rows == [(want,)]
    with conn.transaction():  # inside a caller's transaction: a savepoint, same path
        assert statement.fetch_local(
            conn, {}, sql.SQL("SELECT current_setting('search_path')"), [], want
        ) == [(want,)]
    assert conn.execute("SHOW search_path").fetchone()[0] != want


def test_catalog_less_database_inside_a_transaction(pg_dsn: str, data) -> None:
    # no vecext catalog: the stamp never names a missing table, so the caller's
    # transaction stays usable
    with connect(pg_dsn) as c:
        load(c, "items", data, n=500)
        for _ in range(2):
            r = search(c, "items", "embedding", data.xq[1], 5)
            assert len(r.ids) == 5
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        c.execute("SELECT 1")
        c.rollback()


def test_index_created_dropped_and_renamed_are_seen(conn, data) -> None:
    q = data.xq[2]
    assert search(conn, "items", "embedding", q, 10).strategy == "exact"
    ix = create_vector_index(conn, "items", "embedding", metric="cosine")
    r = search(conn, "items", "embedding", q, 10, strategy="hnsw")
    assert READ in _steps(r) and r.plan.params["index"] == ix.name
    conn.execute(
        sql.SQL("ALTER INDEX {} RENAME TO items_hnsw_renamed").format(sql.Identifier(ix.name))
    )
    r = search(conn, "items", "embedding", q, 10, strategy="hnsw")
    assert r.plan.params["index"] == "items_hnsw_renamed"
    drop_vector_index(conn, "items", "items_hnsw_renamed")
    with pytest.raises(Exception, match="HNSW index"):
        search(conn, "items", "embedding", q, 10, strategy="hnsw")


def test_column_changes_are_seen(conn, data) -> None:
    q = data.xq[3]
    search(conn, "items", "embedding", q, 10)
    conn.execute("ALTER TABLE items RENAME COLUMN cat TO category")
    # the renamed column is known at once (the search that finds out re-reads the table)
    with pytest.raises(Exception, match="category"):
        search(conn, "items", "embedding", q, 10, filter={"cat": "a"})
    r = search(conn, "items", "embedding", q, 10, filter={"category": "b"})
    assert CACHED in _steps(r) and len(r.ids) == 10
    conn.execute("ALTER TABLE items RENAME COLUMN embedding TO vec")
    with pytest.raises(Exception, match="no column 'embedding'"):
        search(conn, "items", "embedding", q, 10)
    assert len(search(conn, "items", "vec", q, 10).ids) == 10


def test_another_connection_and_rollback_are_seen(conn, pg_dsn: str, data) -> None:
    q = data.xq[4]
    install(conn)
    search(conn, "items", "embedding", q, 10)
    # another session adds a compressed column: the next search here ranks by it
    with connect(pg_dsn, autocommit=True) as other:
        train_codec(other, "c_bin", "items", "embedding", "binary", metric="cosine")
        add_compressed_column(other, "items", "embedding", "c_bin", "emb_bin", progress=False)
    r = search(conn, "items", "embedding", q, 10, strategy="compressed")
    assert READ in _steps(r) and r.plan.params["codes"] == "emb_bin"
    assert list(r.ids) == list(_truth(data, q, 10))
    # an own change inside a transaction, seen there, and gone after the rollback
    with connect(pg_dsn) as tx:
        search(tx, "items", "embedding", q, 10, strategy="compressed")
        tx.execute("UPDATE vecext.compressed_columns SET status = 'backfilling'")
        with pytest.raises(Exception, match="compressed column"):
            search(tx, "items", "embedding", q, 10, strategy="compressed")
        tx.rollback()
        r = search(tx, "items", "embedding", q, 10, strategy="compressed")
        assert READ in _steps(r) and r.plan.params["codes"] == "emb_bin"
        tx.rollback()


def test_estimates_cached_until_statistics_change(conn, data) -> None:
    q = data.xq[5]
    r = search(conn, "items", "embedding", q, 10, filter={"cat": "b"})
    assert any("PostgreSQL's planner" in s for s in _steps(r))
    r = search(conn, "items", "embedding", q, 10, filter={"cat": "b"})
    assert any("filter estimate" in s and "cached" in s for s in _steps(r))
    # another value is another estimate
    r = search(conn, "items", "embedding", q, 10, filter={"cat": "c"})
    assert any("PostgreSQL's planner" in s for s in _steps(r))
    # new rows and ANALYZE: a new stamp, so a new estimate
    conn.execute(
        "INSERT INTO items (id, embedding, cat) SELECT id + 100000, embedding, 'b' FROM items"
    )
    conn.execute("ANALYZE items")
    r = search(conn, "items", "embedding", q, 10, filter={"cat": "b"})
    assert READ in _steps(r) and any("PostgreSQL's planner" in s for s in _steps(r))


def test_count_only_near_the_exact_threshold(conn, data) -> None:
    from vecext.search import PlannerSettings

    q = data.xq[6]
    mask = np.asarray(data.cat == "a")
    n_a = int((mask & (np.arange(len(data.xb)) < 4_000)).sum())
    near = PlannerSettings(exact_max_rows=n_a)  # the estimate is near the threshold
    r = search(conn, "items", "embedding", q, 10, filter={"cat": "a"}, settings=near)
    assert any(s.startswith(f"counted {n_a} matching rows") for s in _steps(r))
    assert r.strategy == "exact" and r.plan.est_matching == n_a
    assert list(r.ids) == list(_truth(data, q, 10, mask))
    far = PlannerSettings(exact_max_rows=20)
    r = search(conn, "items", "embedding", q, 10, filter={"cat": "a"}, settings=far)
    assert not any(s.startswith("counted") for s in _steps(r))


def test_pipelined_statement_error_leaves_the_connection_idle(conn) -> None:
    assert conn.autocommit  # an idle autocommit connection: the pipelined path
    with pytest.raises(psycopg.errors.DivisionByZero):
        statement.fetch_local(conn, {"enable_sort": "off"}, sql.SQL("SELECT 1 / 0"), [])
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert conn.execute("SHOW enable_sort").fetchone()[0] == "on"
    rows = statement.fetch_local(
        conn, {"enable_sort": "off"}, sql.SQL("SELECT current_setting('enable_sort')"), []
    )
    assert rows == [("off",)]
    assert conn.execute("SHOW enable_sort").fetchone()[0] == "on"


def test_cache_is_per_connection(conn, pg_dsn: str) -> None:
    with connect(pg_dsn, autocommit=True) as other:
        assert cache_for(other) is not cache_for(conn)


def test_kept_facts_are_checked_with_the_statement_and_planned_again(conn, pg_dsn, data) -> None:
    """On an idle autocommit connection a search plans from the facts kept from the last
    search and sends the stamp with its statement: no stamp round trip of its own, and a
    change seen there discards the rows and plans again from facts read now."""
    from vecext.postgres import info_cache

    q = data.xq[5]
    search(conn, "items", "embedding", q, 10)
    calls = []
    real = info_cache._prepared
    info_cache._prepared = lambda *a: calls.append(a) or real(*a)  # type: ignore[assignment]
    try:
        r = search(conn, "items", "embedding", q, 10)
        assert CACHED in _steps(r) and calls == []  # the stamp went with the statement
        # explain_only runs no statement: it checks the stamp first
        assert CACHED in search(conn, "items", "embedding", q, 10, explain_only=True).explain()
        assert len(calls) == 1
        # another session replaces the table by one of another size: the search's check
        # sees it, and the rows come from a plan made for the new table
        with connect(pg_dsn, autocommit=True) as other:
            other.execute("ALTER TABLE items RENAME TO items_old")
            load(other, "items", data, n=50)
            other.execute("VACUUM ANALYZE items")
        r = search(conn, "items", "embedding", q, 10)
    finally:
        info_cache._prepared = real  # type: ignore[assignment]
    assert READ in _steps(r) and r.plan.n_rows == 50
    m = np.arange(len(data.xb)) < 50
    assert list(r.ids) == list(data.truth(q, 10, m))


def test_a_filter_on_a_column_added_since_the_kept_facts(conn, pg_dsn, data) -> None:
    q = data.xq[6]
    search(conn, "items", "embedding", q, 10)
    with connect(pg_dsn, autocommit=True) as other:
        other.execute("ALTER TABLE items ADD COLUMN tag text")
        other.execute("UPDATE items SET tag = 'x' WHERE id < 30")
    r = search(conn, "items", "embedding", q, 10, filter={"tag": "x"})
    assert READ in _steps(r)
    m = np.arange(len(data.xb)) < 30
    assert list(r.ids) == list(data.truth(q, 10, m))


def test_the_check_sets_the_statements_settings(conn, data) -> None:
    # the stamp sent ahead of a statement also carries its set_config calls
    from vecext.postgres.backend import PostgresBackend

    search(conn, "items", "embedding", data.xq[0], 10)
    info = PostgresBackend(conn).table_info("items", "embedding", "cosine")
    got = cache_for(conn).unchecked('"items"', "embedding", "cosine")
    assert got is not None
    rows = statement.fetch_local(
        conn, {"enable_sort": "off"},
        sql.SQL("SELECT current_setting('search_path'), current_setting('enable_sort')"), [],
        info.ref.search_path, got[1],
    )  # fmt: skip
    assert rows == [(info.ref.search_path, "off")]
    assert conn.execute("SHOW enable_sort").fetchone()[0] == "on"


def test_search_statements_are_prepared_and_planned_per_value(conn, data) -> None:
    """A search's statements are server-side prepared statements (parsed once per
    connection), planned for each search's own values (never a generic plan, which
    could not use a partial index for the filter's value); the caller's connection
    keeps its own preparation setting and plan_cache_mode."""
    conn.prepare_threshold = None  # the caller prepares nothing
    mask_a, mask_b = np.asarray(data.cat) == "a", np.asarray(data.cat) == "b"
    for i in range(8):
        cat, mask = ("a", mask_a) if i % 2 else ("b", mask_b)
        q = data.xq[i]
        r = search(conn, "items", "embedding", q, 10, filter={"cat": cat}, strategy="exact")
        assert list(r.ids) == list(_truth(data, q, 10, mask))
        conn.execute("SELECT 42").fetchone()
    rows = conn.execute(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
    ).fetchall()
    searches = [r for r in rows if '"cat" = ' in r[0] and "ORDER BY" in r[0]]
    assert len(searches) == 1, rows
    assert searches[0][1] == 0 and searches[0][2] >= 7  # a custom plan every time
    assert not [r for r in rows if "42" in r[0]]  # the caller's own statements: not prepared
    assert conn.prepare_threshold is None
    assert conn.execute("SHOW plan_cache_mode").fetchone()[0] == "auto"


def test_only_this_tables_catalog_rows_and_store_indexes_are_in_its_stamp(conn, data) -> None:
    """A backfill of another table writes its compressed_columns row at every batch, and
    an index on another table's code store is no concern of this table: both leave this
    table's facts kept. The same on this table are seen at the next search."""
    install(conn)
    load(conn, "others", data, n=500)
    train_codec(conn, "c_bin", "items", "embedding", "binary", metric="cosine")
    for table in ("items", "others"):
        add_compressed_column(conn, table, "embedding", "c_bin", "emb_bin", progress=False)
    q = data.xq[7]
    search(conn, "items", "embedding", q, 10, strategy="compressed")
    write = "UPDATE vecext.compressed_columns SET rows_encoded = rows_encoded WHERE table_name = %s"
    conn.execute(write, ["others"])
    create_vector_index(conn, "others", "emb_bin", metric="cosine")
    assert CACHED in _steps(search(conn, "items", "embedding", q, 10, strategy="compressed"))
    conn.execute(write, ["items"])
    assert READ in _steps(search(conn, "items", "embedding", q, 10, strategy="compressed"))
    ix = create_vector_index(conn, "items", "emb_bin", metric="cosine")
    r = search(conn, "items", "embedding", q, 10, strategy="hnsw")
    assert READ in _steps(r) and r.plan.params["index"] == ix.name
    assert CACHED in _steps(search(conn, "items", "embedding", q, 10, strategy="hnsw"))
