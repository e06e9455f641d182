"""PostgreSQL-only search input: a quoted table name is read as SQL reads it, and a search leaves the
caller's session settings and transaction alone. (Bad arguments, query vectors,
missing tables, bound values and checked identifiers on every backend:
``tests/contract/test_errors.py``.)"""

from __future__ import annotations

import pytest

from vecext.postgres import connect, search
from vecext.search import SearchError


def test_a_quoted_table_name_is_read_as_sql_reads_it(sconn, search_env) -> None:
    """One spelling for every function (``vecext.catalog.names``): ``"items"`` and
    ``public."items"`` are the table items; a broken quote is refused."""
    want = search(sconn, "items", "embedding", search_env.xq[0], 10, strategy="exact").ids
    for name in ('"items"', 'public."items"', '"public".items'):
        r = search(sconn, name, "embedding", search_env.xq[0], 10, strategy="exact")
        assert r.ids.tolist() == want.tolist()
    for bad in ('"items', '"ite"ms"', '"Items"'):
        with pytest.raises(SearchError):
            search(sconn, bad, "embedding", search_env.xq[0], 10)
    (n,) = sconn.execute("SELECT count(*) FROM items").fetchone()
    assert n == 20_000


def test_settings_do_not_leak_into_the_callers_session(search_env) -> None:
    with connect(search_env.dsn) as conn:  # not autocommit
        r = search(conn, "items", "embedding", search_env.xq[0], 10, strategy="exact")
        assert len(r) == 10
        assert conn.execute("SHOW enable_indexscan").fetchone() == ("on",)
        # inside the caller's open transaction: a savepoint, released after its settings are
        # restored (tests/postgres/test_search_transaction.py)
        conn.execute("CREATE TEMP TABLE mine (x int)")
        conn.execute("INSERT INTO mine VALUES (1)")
        r = search(conn, "items", "embedding", search_env.xq[0], 10, strategy="hnsw")
        assert len(r) == 10
        assert conn.execute("SHOW hnsw.ef_search").fetchone() == ("40",)
        assert conn.execute("SELECT x FROM mine").fetchall() == [(1,)]
        conn.rollback()
