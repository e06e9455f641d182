"""move_ivf_lists: IVF lists made before catalog 0.5.0 (an integer column of the user's
table) move to the code store with the same centroids and assignments; writes made
while they move keep every store row's list equal to numpy's assignment of its current
vector; the table loses the list column, its trigger and indexes; the IVF search returns
what it returned before; a table another session keeps locked leaves everything as it
was (the table's lists, their codec, a store without a list column)."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from psycopg import sql

from tests.postgres.conftest import clustered, vector_text
from tests.postgres.test_pg_ivf_lifecycle import _columns, _triggers
from tests.postgres.test_pg_ivf_store import (
    D,
    _lists_as_0_4_0_made_them,
    _store_columns,
    _store_trigger_args,
    _table,
    assert_lists_current,
)
from vecext.codecs import make_codec
from vecext.codecs.ivf import IVFCodec
from vecext.errors import CatalogError
from vecext.postgres import (
    add_compressed_column,
    connect,
    install,
    ivf_lists,
    ivf_move,
    load_codec,
    move_ivf_lists,
    save_codec,
    search,
)

N = 900


def _ivf_ids(conn: psycopg.Connection, table: str, qs: np.ndarray) -> list[list[int]]:
    out = []
    for q in qs:
        for flt in (None, {"cat": "a"}):
            r = search(conn, table, "embedding", q, 5, metric="l2", strategy="ivf", filter=flt)
            assert r.strategy == "ivf"
            out.append(r.ids.tolist())
    return out


@pytest.fixture
def old_lists(pg_dsn):
    """Tables ``mv_store`` and ``mv_table`` with a PQ compressed column each (layouts
    ``store`` and ``table``) and IVF lists made as catalog 0.4.0 made them, upgraded to
    the current catalog."""
    conn = connect(pg_dsn, autocommit=True)
    assert install(conn, target="0.4.0").current == "0.4.0"
    xt = clustered(800, D, seed=110)
    save_codec(conn, "mv_pq", make_codec("pq", D, "l2", m=4, niter=5).train(xt))
    x = _table(conn, "mv_store", seed=111, n=N)
    xt_ = _table(conn, "mv_table", seed=112, n=N)
    add_compressed_column(conn, "mv_store", "embedding", "mv_pq", "emb_pq", progress=False)
    add_compressed_column(
        conn, "mv_table", "embedding", "mv_pq", "emb_pq", progress=False, layout="table"
    )
    # refused on catalog 0.4.0, which has no lists in stores
    with pytest.raises(CatalogError, match="version 0.4.0.*0.5.0 on.*install"):
        move_ivf_lists(conn, "mv_store", "emb_pq")
    coarse = IVFCodec(D, "l2", nlist=8, niter=5).train(x)
    lcol = _lists_as_0_4_0_made_them(conn, "mv_store", "emb_pq", coarse, "mv_ivf")
    _lists_as_0_4_0_made_them(conn, "mv_table", "emb_pq", coarse, "mv_ivf_t")
    install(conn)
    yield conn, x, xt_, lcol
    conn.close()


def test_lists_move_to_the_store_with_writes_meanwhile(old_lists, pg_dsn, monkeypatch) -> None:
    conn, x, _, lcol = old_lists
    coarse = load_codec(conn, "mv_ivf")
    assert lcol in _columns(conn, "mv_store")
    store_triggers = _triggers(conn, "mv_store") - {f"vecext_{lcol}"}
    assert len(store_triggers) < len(_triggers(conn, "mv_store"))

    # writes from another session after the store's trigger assigns lists and before the
    # copy: a new row, a moved vector, a deleted row, a vector set to NULL
    far = -2 * x[5]
    real_copy = ivf_move._copy_lists

    def copy_after_writes(*args, **kwargs):
        with connect(pg_dsn, autocommit=True) as other:
            other.execute(
                "INSERT INTO mv_store (id, embedding, cat) VALUES (5000, %s, 'a')",
                [vector_text(far)],
            )
            other.execute("UPDATE mv_store SET embedding = %s WHERE id = 10", [vector_text(far)])
            other.execute("DELETE FROM mv_store WHERE id = 11")
            other.execute("UPDATE mv_store SET embedding = NULL WHERE id = 12")
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(ivf_move, "_copy_lists", copy_after_writes)
    moved = move_ivf_lists(conn, "mv_store", "emb_pq", batch_size=128)  # several batches
    assert moved.store is not None and moved.list_column == "list"
    assert (moved.codec_name, moved.nlist) == ("mv_ivf", 8)

    # the table: no list column, no list trigger, no index on it; the store keeps them
    assert _columns(conn, "mv_store") == {"id", "embedding", "cat"}
    assert _triggers(conn, "mv_store") == store_triggers
    (n_idx,) = conn.execute(
        "SELECT count(*) FROM pg_index WHERE indrelid = 'mv_store'::regclass AND NOT indisprimary"
    ).fetchone()
    assert n_idx == 0
    assert _store_columns(conn, "mv_store", "emb_pq") == ["pk", "code", "list"]
    assert _store_trigger_args(conn, "mv_store", "emb_pq")[-1] == "mv_ivf"
    listed = ivf_lists(conn, "mv_store", "emb_pq")
    assert listed is not None and listed.store == moved.store
    assert conn.execute(
        "SELECT list_layout FROM vecext.compressed_columns WHERE code_column = 'emb_pq' "
        "AND table_oid = 'mv_store'::regclass"
    ).fetchone() == ("store",)
    # every store row's list is numpy's assignment of its current vector (the same
    # centroids: nothing trained again)
    assert assert_lists_current(conn, "mv_store", "emb_pq", coarse) == N + 1 - 2
    assert load_codec(conn, "mv_ivf").centroids.tobytes() == coarse.centroids.tobytes()

    # the IVF search reads the store's lists: the moved row and the new one
    r = search(conn, "mv_store", "embedding", far, 2, metric="l2", strategy="ivf")
    assert sorted(r.ids.tolist()) == [10, 5000]
    # later writes are assigned by the store's trigger
    conn.execute(
        "INSERT INTO mv_store (id, embedding, cat) VALUES (5001, %s, 'b')", [vector_text(x[7])]
    )
    assert_lists_current(conn, "mv_store", "emb_pq", coarse)
    # moving again, or a column of layout 'table', or one without lists: refused
    with pytest.raises(CatalogError, match="in its code store already"):
        move_ivf_lists(conn, "mv_store", "emb_pq")
    with pytest.raises(CatalogError, match="layout 'table'"):
        move_ivf_lists(conn, "mv_table", "emb_pq")
    with pytest.raises(CatalogError, match="not a compressed column|has no IVF lists"):
        move_ivf_lists(conn, "mv_store", "emb_nope")


def test_a_locked_table_keeps_its_lists(old_lists, pg_dsn) -> None:
    conn, x, _, lcol = old_lists
    qs = x[[8, 90, 400]] + 0.01
    before_ids = _ivf_ids(conn, "mv_store", qs)
    with connect(pg_dsn) as reader:  # a long reader: its transaction holds ACCESS SHARE
        reader.execute("SELECT count(*) FROM mv_store").fetchone()
        with pytest.raises(CatalogError, match="stayed locked.*2 waits of 0.2 s"):
            move_ivf_lists(conn, "mv_store", "emb_pq", lock_timeout=0.2, attempts=2)
        reader.rollback()
    # as it was: the table's lists, column, trigger and codec; the store without lists
    listed = ivf_lists(conn, "mv_store", "emb_pq")
    assert listed is not None and listed.store is None and listed.list_column == lcol
    assert lcol in _columns(conn, "mv_store")
    assert f"vecext_{lcol}" in _triggers(conn, "mv_store")
    assert _store_columns(conn, "mv_store", "emb_pq") == ["pk", "code"]
    assert "mv_ivf" not in _store_trigger_args(conn, "mv_store", "emb_pq")
    assert isinstance(load_codec(conn, "mv_ivf"), IVFCodec)
    assert _ivf_ids(conn, "mv_store", qs) == before_ids
    # the table's trigger still assigns its lists
    conn.execute(
        "INSERT INTO mv_store (id, embedding, cat) VALUES (6000, %s, 'a')", [vector_text(x[2])]
    )
    (got,) = conn.execute(
        sql.SQL("SELECT {} FROM mv_store WHERE id = 6000").format(sql.Identifier(lcol))
    ).fetchone()
    assert got == int(load_codec(conn, "mv_ivf").assign(x[2][None, :])[0])
    # the move goes through once the table is free (here in a caller's transaction, whose
    # own lock_timeout stays), and the search returns what it did
    before_ids = _ivf_ids(conn, "mv_store", qs)
    with connect(pg_dsn) as tx:
        tx.execute("SET lock_timeout = '7s'")
        assert move_ivf_lists(tx, "mv_store", "emb_pq").store is not None
        assert tx.execute("SHOW lock_timeout").fetchone() == ("7s",)
        tx.commit()
    assert _ivf_ids(conn, "mv_store", qs) == before_ids
    assert_lists_current(conn, "mv_store", "emb_pq", load_codec(conn, "mv_ivf"))
    with pytest.raises(ValueError, match="batch_size"):
        move_ivf_lists(conn, "mv_table", "emb_pq", batch_size=0)


def _vector_writer(dsn: str, stop, errors: list, seed: int, x: np.ndarray) -> None:
    import random

    rng = random.Random(seed)
    try:
        with connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                k, op = rng.randrange(N + 100), rng.random()
                v = vector_text(x[rng.randrange(len(x))] + rng.random())
                if op < 0.5:
                    conn.execute("UPDATE mv_store SET embedding = %s WHERE id = %s", [v, k])
                elif op < 0.6:
                    conn.execute("UPDATE mv_store SET embedding = NULL WHERE id = %s", [k])
                elif op < 0.7:
                    conn.execute("DELETE FROM mv_store WHERE id = %s", [k])
                else:
                    conn.execute(
                        "INSERT INTO mv_store (id, embedding, cat) VALUES (%s, %s, 'a') "
                        "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding",
                        [k, v],
                    )
    except Exception as exc:  # pragma: no cover - reported by the test
        errors.append(exc)


def test_the_move_under_concurrent_writers_keeps_every_list(old_lists, pg_dsn) -> None:
    """Two writers move, NULL, delete and upsert vectors while the lists move in batches
    of 40 keys: afterwards every store row's list is numpy's assignment of its row's
    current vector (the copy never writes an older list over the trigger's newer one)."""
    import threading

    conn, x, _, _ = old_lists
    stop, errors = threading.Event(), []
    writers = [
        threading.Thread(target=_vector_writer, args=(pg_dsn, stop, errors, s, x)) for s in (1, 2)
    ]
    for w in writers:
        w.start()
    try:
        moved = move_ivf_lists(conn, "mv_store", "emb_pq", batch_size=40)
    finally:
        stop.set()
        for w in writers:
            w.join()
    assert not errors, errors
    assert moved.store is not None
    assert assert_lists_current(conn, "mv_store", "emb_pq", load_codec(conn, "mv_ivf")) > 0
