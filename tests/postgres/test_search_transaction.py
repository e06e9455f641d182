"""A PostgreSQL search inside the caller's transaction (a connection without autocommit,
or ``with conn.transaction()``): it sees the caller's uncommitted writes and leaves them,
every setting, the transaction's usability and psycopg's prepared statements as they
were (vecext.postgres.statement: a savepoint released after its settings are restored)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.postgres.search_data import load, make_data, vector_text
from vecext.postgres import connect, create_vector_index, install, search, statement

INTRANS = psycopg.pq.TransactionStatus.INTRANS


@pytest.fixture(scope="module")
def data():
    return make_data(seed=5)


@pytest.fixture
def dsn(pg_dsn: str, data) -> str:
    with connect(pg_dsn, autocommit=True) as c:
        load(c, "items", data, n=3_000)
        install(c)
        create_vector_index(c, "items", "embedding", metric="cosine")
        c.execute("VACUUM ANALYZE items")
    return pg_dsn


@pytest.fixture
def tx(dsn: str) -> Iterator[psycopg.Connection]:
    c = connect(dsn)  # psycopg's default: every statement in a transaction
    yield c
    c.close()


def _settings(conn: psycopg.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT name, setting FROM pg_settings").fetchall())  # type: ignore[arg-type]


def _every_plan(conn: psycopg.Connection, data) -> None:
    """Searches whose statements set each setting vecext sets: an exact scan (index
    scans off, serial), HNSW (ef_search, iterative scan, sort off) and a scan budget
    (max_scan_tuples)."""
    q = data.xq[0]
    assert search(conn, "items", "embedding", q, 10, strategy="exact").strategy == "exact"
    assert search(conn, "items", "embedding", q, 10, strategy="hnsw").strategy == "hnsw"
    r = search(conn, "items", "embedding", q, 10, filter={"cat": "a"}, strategy="hnsw")
    assert r.plan.params.get("iterative_scan") == "strict_order"
    r = search(conn, "items", "embedding", q, 10, strategy="hnsw", max_scan_rows=500)
    assert len(r.ids) == 10


def test_settings_are_as_before_during_and_after_the_callers_transaction(tx, data) -> None:
    tx.execute("SELECT 1")
    tx.commit()
    tx.autocommit = True
    tx.execute("SET enable_sort = off")  # session values the caller set before
    tx.execute("SET search_path = public, pg_catalog")
    search(tx, "items", "embedding", data.xq[1], 10, strategy="hnsw")  # pgvector loaded
    before_tx = _settings(tx)
    tx.autocommit = False
    tx.execute("SET LOCAL hnsw.ef_search = 77")  # and transaction-local ones
    tx.execute("SET LOCAL max_parallel_workers_per_gather = 1")
    tx.execute("SET enable_indexscan = on")  # a session SET inside the transaction
    inside = _settings(tx)
    assert inside["hnsw.ef_search"] == "77"
    _every_plan(tx, data)
    assert tx.info.transaction_status == INTRANS
    assert _settings(tx) == inside
    tx.commit()
    # the transaction-local values end with it, as they would have without the searches
    assert _settings(tx) == before_tx
    assert before_tx["enable_sort"] == "off" and before_tx["hnsw.ef_search"] == "40"


def test_settings_are_as_before_inside_conn_transaction(dsn, data) -> None:
    with connect(dsn, autocommit=True) as c:
        search(c, "items", "embedding", data.xq[1], 10)
        idle = _settings(c)
        with c.transaction():
            c.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            inside = _settings(c)
            _every_plan(c, data)
            assert _settings(c) == inside
        assert _settings(c) == idle


def test_the_callers_uncommitted_writes_are_seen_and_kept(tx, data) -> None:
    q = data.xq[2]
    tx.execute(
        "INSERT INTO items (id, embedding, cat) VALUES (%s, %s::vector, 'zz')",
        [10_000_000, vector_text(q)],
    )
    tx.execute("CREATE TEMP TABLE mine (x int)")
    tx.execute("INSERT INTO mine VALUES (1)")
    for strategy in ("exact", "hnsw"):
        r = search(tx, "items", "embedding", q, 5, strategy=strategy)
        assert int(r.ids[0]) == 10_000_000
    r = search(tx, "items", "embedding", q, 5, filter={"cat": "zz"})
    assert r.ids.tolist() == [10_000_000]
    assert tx.execute("SELECT x FROM mine").fetchall() == [(1,)]
    assert tx.execute("SELECT cat FROM items WHERE id = 10000000").fetchall() == [("zz",)]
    tx.rollback()
    assert tx.execute("SELECT count(*) FROM items WHERE id = 10000000").fetchone() == (0,)
    tx.rollback()


def test_an_error_in_the_statement_leaves_the_transaction_usable(tx, data) -> None:
    tx.execute("CREATE TEMP TABLE mine (x int)")
    tx.execute("INSERT INTO mine VALUES (1)")
    tx.execute("SET LOCAL enable_sort = on")
    inside = _settings(tx)
    with pytest.raises(psycopg.errors.DivisionByZero):
        statement.fetch_local(tx, {"enable_sort": "off"}, sql.SQL("SELECT 1 / 0"), [])
    assert tx.info.transaction_status == INTRANS
    assert _settings(tx) == inside
    assert tx.execute("SELECT x FROM mine").fetchall() == [(1,)]
    # a search after it runs, and so does the caller
    assert len(search(tx, "items", "embedding", data.xq[3], 10).ids) == 10
    tx.execute("INSERT INTO mine VALUES (2)")
    tx.commit()


def test_the_stamp_stays_prepared_across_searches(tx, data) -> None:
    """psycopg deallocates every prepared statement when a command reports ROLLBACK; a
    search releases its savepoint instead, so the stamp is planned once."""
    seen = []
    for i, strategy in enumerate(("exact", "hnsw", "exact")):
        search(tx, "items", "embedding", data.xq[i], 10, strategy=strategy)
        # the stamp with the vecext catalog's rows (the first search also prepared the
        # one without them, before it saw the catalog)
        rows = tx.execute(
            "SELECT name, prepare_time FROM pg_prepared_statements "
            "WHERE statement LIKE '%%to_regclass%%' AND statement LIKE '%%\"vecext\".\"codecs\"%%'"
        ).fetchall()
        assert len(rows) == 1
        seen.append(rows[0])
    assert len(seen) == 3 and seen[0] == seen[1] == seen[2]
    tx.rollback()
