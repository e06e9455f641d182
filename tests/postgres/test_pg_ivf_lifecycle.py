"""IVF lists over their whole life in PostgreSQL: kept current by the trigger on INSERT,
UPDATE and COPY, dropped with the compressed column they belong to (no list column,
trigger, index or centroid left behind) in one transaction, from Python or SQL, and
lists orphaned by catalog 0.1.0 found and dropped. Lists of a code-store column live in
its store (catalog 0.5.0; more in ``test_pg_ivf_store.py``). (The life every backend shares:
``tests/contract/test_ivf_lifecycle.py``.)"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import psycopg
import pytest
from psycopg import sql

from tests.postgres.conftest import clustered, store_of, vector_text
from vecext.codecs import make_codec
from vecext.errors import CatalogError
from vecext.postgres import (
    add_compressed_column,
    add_ivf_lists,
    compressed_column,
    drop_codec,
    drop_compressed_column,
    drop_orphaned_ivf_lists,
    ivf_lists,
    load_codec,
    orphaned_ivf_lists,
    save_codec,
    search,
)

D = 16
N = 1_500


@pytest.fixture(scope="module")
def codecs(mconn):
    xt = clustered(800, D, seed=40)
    save_codec(mconn, "lc_pq", make_codec("pq", D, "l2", m=4, niter=8).train(xt))
    save_codec(mconn, "lc_bin", make_codec("binary", D, "l2").train(xt))


def _table(conn: psycopg.Connection, name: str, seed: int) -> np.ndarray:
    """``name (id integer PRIMARY KEY, embedding vector(16), cat text)``, N rows."""
    x = clustered(N, D, seed=seed)
    conn.execute(
        sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, embedding vector({}), cat text)").format(
            sql.Identifier(name), sql.Literal(D)
        )
    )
    with conn.cursor().copy(
        sql.SQL("COPY {} (id, embedding, cat) FROM STDIN").format(sql.Identifier(name))
    ) as copy:
        for i, row in enumerate(x):
            copy.write_row((i, vector_text(row), "ab"[i % 2]))
    return x


def _checksum(conn: psycopg.Connection, table: str) -> str:
    q = sql.SQL("SELECT md5(string_agg(id || ':' || embedding::text, ',' ORDER BY id)) FROM {}")
    return conn.execute(q.format(sql.Identifier(table))).fetchone()[0]


def _columns(conn: psycopg.Connection, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped",
        [table],
    ).fetchall()
    return {r[0] for r in rows}


def _triggers(conn: psycopg.Connection, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
        [table],
    ).fetchall()
    return {r[0] for r in rows}


def _indexes(conn: psycopg.Connection, table: str) -> set[str]:
    rows = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [table]).fetchall()
    return {r[0] for r in rows}


def _codec_rows(conn: psycopg.Connection, name: str) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        conn.execute(
            "SELECT (SELECT count(*) FROM vecext.codecs WHERE name = %(n)s), "
            "(SELECT count(*) FROM vecext.codec_arrays WHERE codec_name = %(n)s), "
            "(SELECT count(*) FROM vecext.codebook_vectors WHERE codec_name = %(n)s)",
            {"n": name},
        ).fetchone()
    )


def _store_indexes(conn: psycopg.Connection, table: str, code_column: str) -> set[str]:
    store = store_of(conn, table, code_column)
    rows = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = 'vecext' AND tablename = %s",
        [store.as_string(conn).split(".")[1].strip('"')],
    ).fetchall()
    return {r[0] for r in rows}


def _store_lists(conn: psycopg.Connection, table: str, code_column: str, lcol: str) -> dict:
    """``{key: list id}`` of every row of a compressed column's code store."""
    q = sql.SQL("SELECT pk, {} FROM {} ORDER BY pk").format(
        sql.Identifier(lcol), store_of(conn, table, code_column)
    )
    return dict(conn.execute(q).fetchall())


def test_dropping_a_compressed_column_leaves_no_trigger_or_index(mconn, codecs) -> None:
    x = _table(mconn, "lc_drop", seed=41)
    before = _checksum(mconn, "lc_drop")
    cols0, trig0, idx0 = (
        _columns(mconn, "lc_drop"),
        _triggers(mconn, "lc_drop"),
        _indexes(mconn, "lc_drop"),
    )
    add_compressed_column(mconn, "lc_drop", "embedding", "lc_pq", "emb_pq", progress=False)
    lists = add_ivf_lists(mconn, "lc_drop", "embedding", 8, niter=5, index_columns=["cat"])
    assert len(_triggers(mconn, "lc_drop")) > len(trig0)
    # the lists and their index are the code store's (catalog 0.5.0), not the table's
    assert _indexes(mconn, "lc_drop") == idx0 and _columns(mconn, "lc_drop") == cols0
    assert set(lists.indexes) <= _store_indexes(mconn, "lc_drop", "emb_pq")
    drop_compressed_column(mconn, "lc_drop", "emb_pq")
    # INSERT, COPY, UPDATE and DELETE still work: no trigger reads the dropped centroids
    _leaves_nothing(mconn, "lc_drop", cols0, trig0, idx0, lists.codec_name, before, x)


def test_a_failed_drop_changes_nothing(mconn, codecs) -> None:
    """The lists and the column go in one transaction: a failure keeps both."""
    _table(mconn, "lc_fail", seed=43)
    add_compressed_column(mconn, "lc_fail", "embedding", "lc_pq", "emb_pq", progress=False)
    lists = add_ivf_lists(mconn, "lc_fail", "embedding", 8, niter=5)
    cols = _columns(mconn, "lc_fail")
    # a view on the code store: PostgreSQL refuses DROP TABLE without CASCADE
    store = compressed_column(mconn, "lc_fail", "emb_pq").store
    mconn.execute(sql.SQL("CREATE VIEW lc_fail_codes AS SELECT pk, code FROM {}").format(store))
    with pytest.raises(psycopg.errors.DependentObjectsStillExist):
        drop_compressed_column(mconn, "lc_fail", "emb_pq")
    assert _columns(mconn, "lc_fail") == cols
    assert ivf_lists(mconn, "lc_fail", "emb_pq") == replace(lists, indexes=())
    assert compressed_column(mconn, "lc_fail", "emb_pq").status == "ready"
    mconn.execute("DROP VIEW lc_fail_codes")
    drop_compressed_column(mconn, "lc_fail", "emb_pq")
    assert lists.list_column not in _columns(mconn, "lc_fail")


def test_trigger_keeps_list_ids_current(mconn, codecs) -> None:
    x = _table(mconn, "lc_trig", seed=44)
    add_compressed_column(mconn, "lc_trig", "embedding", "lc_pq", "emb_pq", progress=False)
    lists = add_ivf_lists(mconn, "lc_trig", "embedding", 8, niter=5)
    coarse = load_codec(mconn, lists.codec_name)
    assert lists.store is not None  # a code-store column keeps its lists in the store

    def listed(ids):
        got = _store_lists(mconn, "lc_trig", "emb_pq", lists.list_column)
        return {i: got.get(i) for i in ids}

    got = _store_lists(mconn, "lc_trig", "emb_pq", lists.list_column)
    assert [got[i] for i in range(N)] == coarse.assign(x).tolist()

    # INSERT, COPY and UPDATE of the vector each assign the row's list at once
    far = x[:3] * -1.5
    mconn.execute("INSERT INTO lc_trig VALUES (50000, %s, 'a')", [vector_text(far[0])])
    with mconn.cursor().copy("COPY lc_trig (id, embedding, cat) FROM STDIN") as copy:
        copy.write_row((50001, vector_text(far[1]), "b"))
    mconn.execute("UPDATE lc_trig SET embedding = %s WHERE id = 7", [vector_text(far[2])])
    want = coarse.assign(far).tolist()
    assert listed([50000, 50001, 7]) == {50000: want[0], 50001: want[1], 7: want[2]}
    # an UPDATE of another column leaves the list alone; a NULL vector has no list
    mconn.execute("UPDATE lc_trig SET cat = 'z' WHERE id = 7")
    mconn.execute("UPDATE lc_trig SET embedding = NULL WHERE id = 8")
    assert listed([7, 8]) == {7: int(coarse.assign(far[2:3])[0]), 8: None}

    # (that the IVF search finds them at once: tests/contract/test_ivf_lifecycle.py)


def _leaves_nothing(conn, table, cols0, trig0, idx0, codec, before, x) -> None:
    """Nothing of a dropped compressed column or of its lists is left, the vectors are
    intact and writes still work (no trigger reading dropped centroids)."""
    assert _columns(conn, table) == cols0
    assert _triggers(conn, table) == trig0
    assert _indexes(conn, table) == idx0
    assert _codec_rows(conn, codec) == (0, 0, 0)
    assert not conn.execute(
        "SELECT 1 FROM vecext.compressed_columns WHERE table_name = %s", [table]
    ).fetchall()
    assert orphaned_ivf_lists(conn, table) == []
    assert _checksum(conn, table) == before
    t = sql.Identifier(table)
    conn.execute(sql.SQL("INSERT INTO {} VALUES (99999, %s, 'a')").format(t), [vector_text(x[0])])
    with conn.cursor().copy(sql.SQL("COPY {} (id, embedding, cat) FROM STDIN").format(t)) as cp:
        cp.write_row((99998, vector_text(x[1]), "b"))
    conn.execute(sql.SQL("DELETE FROM {} WHERE id >= 99998").format(t))
    conn.execute(
        sql.SQL("UPDATE {} SET embedding = %s WHERE id = 1").format(t), [vector_text(x[1])]
    )
    assert _checksum(conn, table) == before


def test_sql_function_drops_the_ivf_lists(mconn, codecs) -> None:
    """From plain SQL, catalog 0.2.0: vecext.drop_compressed_column drops the lists too."""
    x = _table(mconn, "lc_plain", seed=47)
    before = _checksum(mconn, "lc_plain")
    snap = (_columns(mconn, "lc_plain"), _triggers(mconn, "lc_plain"), _indexes(mconn, "lc_plain"))
    add_compressed_column(mconn, "lc_plain", "embedding", "lc_pq", "emb_pq", progress=False)
    lists = add_ivf_lists(mconn, "lc_plain", "embedding", 8, niter=5, index_columns=["cat"])
    # the list index is the store's (catalog 0.5.0): the table gets none
    assert _indexes(mconn, "lc_plain") == snap[2]
    assert len(set(lists.indexes) & _store_indexes(mconn, "lc_plain", "emb_pq")) == 1

    mconn.execute("SELECT vecext.drop_compressed_column('lc_plain', 'emb_pq')")

    _leaves_nothing(mconn, "lc_plain", *snap, lists.codec_name, before, x)
    assert orphaned_ivf_lists(mconn) == []
    # and lists can be added again under the same names
    add_compressed_column(mconn, "lc_plain", "embedding", "lc_pq", "emb_pq", progress=False)
    again = add_ivf_lists(mconn, "lc_plain", "embedding", 8, niter=5)
    assert (again.list_column, again.codec_name) == (lists.list_column, lists.codec_name)
    mconn.execute("SELECT vecext.drop_compressed_column('lc_plain', 'emb_pq')")
    _leaves_nothing(mconn, "lc_plain", *snap, lists.codec_name, before, x)


@pytest.fixture
def old_catalog(pg_dsn: str):
    """A database whose catalog vecext 0.1.0 installed, with codec lc_pq saved."""
    from vecext.postgres import connect, install

    conn = connect(pg_dsn, autocommit=True)
    assert install(conn, target="0.1.0").current == "0.1.0"
    xt = clustered(800, D, seed=40)
    save_codec(conn, "lc_pq", make_codec("pq", D, "l2", m=4, niter=8).train(xt))
    yield conn
    conn.close()


def test_lists_orphaned_by_the_0_1_0_sql_function_are_found_and_dropped(old_catalog) -> None:
    """Catalog 0.1.0's SQL function drops the code column only: the list column and its
    trigger stay. Their codec cannot be dropped from under the trigger (every INSERT
    would fail), add_ivf_lists names the fix, and drop_orphaned_ivf_lists removes them.
    The Python drop_compressed_column drops the lists itself on that catalog."""
    conn = old_catalog
    x = _table(conn, "lc_sql", seed=46)
    before = _checksum(conn, "lc_sql")
    cols0, trig0 = _columns(conn, "lc_sql"), _triggers(conn, "lc_sql")
    add_compressed_column(
        conn, "lc_sql", "embedding", "lc_pq", "emb_pq", progress=False, layout="table"
    )
    lists = add_ivf_lists(conn, "lc_sql", "embedding", 8, niter=5)
    conn.execute("SELECT vecext.drop_compressed_column('lc_sql', 'emb_pq')")
    assert lists.list_column in _columns(conn, "lc_sql")  # catalog 0.1.0's behaviour

    (orphan,) = orphaned_ivf_lists(conn, "lc_sql")
    assert (orphan.list_column, orphan.codec_name) == (lists.list_column, lists.codec_name)
    assert orphaned_ivf_lists(conn) == [orphan]
    with pytest.raises(CatalogError, match="trigger of IVF list column.*drop_orphaned_ivf_lists"):
        drop_codec(conn, lists.codec_name)
    conn.execute("INSERT INTO lc_sql VALUES (99999, %s, 'a')", [vector_text(x[0])])
    conn.execute("DELETE FROM lc_sql WHERE id = 99999")
    add_compressed_column(
        conn, "lc_sql", "embedding", "lc_pq", "emb_pq", progress=False, layout="table"
    )
    with pytest.raises(CatalogError, match="catalog 0.1.0.*drop_orphaned_ivf_lists"):
        add_ivf_lists(conn, "lc_sql", "embedding", 8, niter=5)

    assert drop_orphaned_ivf_lists(conn, "lc_sql") == [f"public.lc_sql.{lists.list_column}"]
    assert orphaned_ivf_lists(conn) == []
    assert drop_orphaned_ivf_lists(conn) == []
    assert _codec_rows(conn, lists.codec_name) == (0, 0, 0)
    assert _triggers(conn, "lc_sql") == trig0 | {"vecext_emb_pq"}
    assert _columns(conn, "lc_sql") == cols0 | {"emb_pq"}
    assert _checksum(conn, "lc_sql") == before
    # the compressed column added meanwhile is untouched, and gets lists again
    assert compressed_column(conn, "lc_sql", "emb_pq").status == "ready"
    add_ivf_lists(conn, "lc_sql", "embedding", 8, niter=5)
    assert orphaned_ivf_lists(conn) == []
    r = search(conn, "lc_sql", "embedding", x[9] + 0.01, 3, metric="l2", strategy="ivf")
    assert r.ids[0] == 9
    # from Python, the lists go with the column on this catalog too
    drop_compressed_column(conn, "lc_sql", "emb_pq")
    assert _columns(conn, "lc_sql") == cols0 and _triggers(conn, "lc_sql") == trig0
    assert _codec_rows(conn, lists.codec_name) == (0, 0, 0)
    assert orphaned_ivf_lists(conn) == []
    assert _checksum(conn, "lc_sql") == before


def test_catalog_upgraded_from_0_1_0_drops_lists_from_sql(old_catalog) -> None:
    """Lists added under catalog 0.1.0 go with their column once the catalog is at
    0.2.0 (here 0.4.0); lists 0.1.0 orphaned stay orphaned through the upgrade, and are still found
    and dropped."""
    from vecext.postgres import install

    conn = old_catalog
    x = _table(conn, "lc_up", seed=48)
    before = _checksum(conn, "lc_up")
    snap = (_columns(conn, "lc_up"), _triggers(conn, "lc_up"), _indexes(conn, "lc_up"))
    add_compressed_column(
        conn, "lc_up", "embedding", "lc_pq", "emb_pq", progress=False, layout="table"
    )
    lists = add_ivf_lists(conn, "lc_up", "embedding", 8, niter=5, index_columns=["cat"])
    y = _table(conn, "lc_orph", seed=49)
    add_compressed_column(
        conn, "lc_orph", "embedding", "lc_pq", "emb_pq", progress=False, layout="table"
    )
    orphaned = add_ivf_lists(conn, "lc_orph", "embedding", 8, niter=5)
    conn.execute("SELECT vecext.drop_compressed_column('lc_orph', 'emb_pq')")

    up = install(conn)
    assert (up.previous, up.current) == ("0.1.0", "0.6.0")
    assert [o.table.name for o in orphaned_ivf_lists(conn)] == ["lc_orph"]

    conn.execute("SELECT vecext.drop_compressed_column('lc_up', 'emb_pq')")
    _leaves_nothing(conn, "lc_up", *snap, lists.codec_name, before, x)

    # the recovery functions still clean up what 0.1.0 left
    conn.execute("INSERT INTO lc_orph VALUES (99999, %s, 'a')", [vector_text(y[0])])
    assert drop_orphaned_ivf_lists(conn) == [f"public.lc_orph.{orphaned.list_column}"]
    assert _codec_rows(conn, orphaned.codec_name) == (0, 0, 0)
    assert orphaned.list_column not in _columns(conn, "lc_orph")
    conn.execute("INSERT INTO lc_orph VALUES (99998, %s, 'a')", [vector_text(y[1])])
