"""Filter columns mirrored into code stores (catalog 0.6.0): after any mix of writes
(INSERT, UPDATE of a mirrored column only, of the vector, of the key, DELETE, TRUNCATE,
COPY) every store row's mirrored values equal its table row's; renames are followed;
bad input is refused with an error naming the problem; the tenant column is mirrored
on its own; dropping the compressed column takes it all."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from psycopg import sql

from tests.postgres.conftest import clustered, load_table, store_of, vector_text
from vecext.codecs import make_codec
from vecext.errors import CatalogError
from vecext.postgres import (
    add_compressed_column,
    declare_tenant_column,
    drop_compressed_column,
    mirror_columns,
    mirrored_columns,
    save_codec,
)

D = 16


@pytest.fixture(scope="module")
def codec(mconn):
    xt = clustered(800, D, seed=90)
    c = make_codec("binary", D, "cosine").train(xt)
    save_codec(mconn, "mir_bin", c)
    return c


def make_table(conn: psycopg.Connection, name: str, n: int = 300, seed: int = 91) -> np.ndarray:
    x = clustered(n, D, seed=seed)
    load_table(conn, name, x)
    conn.execute(
        sql.SQL(
            "ALTER TABLE {t} ADD COLUMN pos text, ADD COLUMN score real, ADD COLUMN note text;"
            "UPDATE {t} SET pos = (ARRAY['n','v','a','r'])[1 + id % 4], score = id % 7, "
            "note = 'x' || id"
        ).format(t=sql.Identifier(name))
    )
    return x


def assert_mirrored(conn: psycopg.Connection, table: str, code: str, columns: list[str]) -> int:
    """Every store row's mirrored values equal its table row's, and the store has a row
    exactly for each table row with a vector."""
    store = store_of(conn, table, code)
    nums = dict(
        conn.execute(
            "SELECT attname, attnum FROM pg_attribute WHERE attrelid = %s::regclass "
            "AND attnum > 0 AND NOT attisdropped",
            [sql.Identifier(table).as_string(conn)],
        ).fetchall()
    )
    cols = [sql.Identifier(c) for c in columns]
    mine = [sql.Identifier(f"col_{nums[c]}") for c in columns]
    table_rows = conn.execute(
        sql.SQL("SELECT id, {} FROM {} WHERE embedding IS NOT NULL ORDER BY id").format(
            sql.SQL(", ").join(cols), sql.Identifier(table)
        )
    ).fetchall()
    store_rows = conn.execute(
        sql.SQL("SELECT pk, {} FROM {} ORDER BY pk").format(sql.SQL(", ").join(mine), store)
    ).fetchall()
    assert store_rows == table_rows
    return len(store_rows)


def test_mirrors_follow_every_kind_of_write(mconn, codec):
    conn = mconn
    x = make_table(conn, "mir_w")
    add_compressed_column(conn, "mir_w", "embedding", "mir_bin", "e", progress=False)
    assert mirror_columns(conn, "mir_w", "e", ["pos", "score"], batch_size=64) == ["pos", "score"]
    assert mirrored_columns(conn, "mir_w", "e") == ["pos", "score"]
    assert assert_mirrored(conn, "mir_w", "e", ["pos", "score"]) == 300
    # a btree per mirrored column, in the store
    (n_btree,) = conn.execute(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'vecext' AND tablename = %s "
        "AND indexdef LIKE '%%btree (col_%%'",
        [store_of(conn, "mir_w", "e").as_string(conn).split(".")[1].strip('"')],
    ).fetchone()
    assert n_btree == 2
    writes = [
        "INSERT INTO mir_w (id, embedding, pos, score) VALUES (1000, %s, 'r', 1.5)",
        "UPDATE mir_w SET pos = 'v' WHERE id % 5 = 0",  # a mirrored column only
        "UPDATE mir_w SET score = NULL WHERE id % 11 = 0",
        "UPDATE mir_w SET note = 'y' WHERE id % 3 = 0",  # not mirrored: nothing to do
        "UPDATE mir_w SET embedding = %s, pos = 'a' WHERE id = 7",  # vector and mirror
        "UPDATE mir_w SET embedding = NULL WHERE id = 8",  # no vector: no store row
        "UPDATE mir_w SET embedding = %s WHERE id = 8",  # back, with its values
        "UPDATE mir_w SET id = id + 2000 WHERE id BETWEEN 20 AND 40",  # the key
        "UPDATE mir_w SET id = -id, pos = 'k' WHERE id BETWEEN 100 AND 110",  # key and mirror
        "DELETE FROM mir_w WHERE id % 13 = 0",
    ]
    for w in writes:
        params = [vector_text(x[3])] if "%s" in w else None
        conn.execute(w, params)
        assert_mirrored(conn, "mir_w", "e", ["pos", "score"])
    with conn.cursor().copy("COPY mir_w (id, embedding, pos) FROM STDIN") as cp:
        for i in range(5000, 5020):
            cp.write_row((i, vector_text(x[i % 300]), "n"))
    assert_mirrored(conn, "mir_w", "e", ["pos", "score"])
    # in one transaction, rolled back: nothing changes
    with pytest.raises(RuntimeError), conn.transaction():
        conn.execute("UPDATE mir_w SET pos = 'zzz'")
        raise RuntimeError
    assert_mirrored(conn, "mir_w", "e", ["pos", "score"])
    conn.execute("TRUNCATE mir_w")
    assert assert_mirrored(conn, "mir_w", "e", ["pos", "score"]) == 0
    conn.execute("INSERT INTO mir_w (id, embedding, pos) VALUES (1, %s, 'r')", [vector_text(x[1])])
    assert assert_mirrored(conn, "mir_w", "e", ["pos", "score"]) == 1


def test_renames_and_more_columns(mconn, codec):
    conn = mconn
    make_table(conn, "mir_r")
    add_compressed_column(
        conn, "mir_r", "embedding", "mir_bin", "e", mirror=["pos"], progress=False
    )
    conn.execute("ALTER TABLE mir_r RENAME COLUMN pos TO part")
    conn.execute("ALTER TABLE mir_r RENAME TO mir_r2")
    assert mirrored_columns(conn, "mir_r2", "e") == ["part"]
    conn.execute("UPDATE mir_r2 SET part = 'q' WHERE id < 50")
    assert_mirrored(conn, "mir_r2", "e", ["part"])
    # a second call adds columns; ones mirrored already stay
    assert mirror_columns(conn, "mir_r2", "e", ["note", "part"]) == ["part", "note"]
    conn.execute("UPDATE mir_r2 SET note = NULL, part = 'w' WHERE id > 250")
    assert_mirrored(conn, "mir_r2", "e", ["part", "note"])


def test_backfill_writes_the_mirrored_values(mconn, codec):
    conn = mconn
    make_table(conn, "mir_b")
    add_compressed_column(
        conn, "mir_b", "embedding", "mir_bin", "e", mirror=["pos"], batch_size=50, progress=False
    )
    assert assert_mirrored(conn, "mir_b", "e", ["pos"]) == 300
    add_compressed_column(
        conn, "mir_b", "embedding", "mir_bin", "e2", mirror="score", backfill=False
    )
    from vecext.postgres import refresh

    refresh(conn, "mir_b", "e2", batch_size=70, progress=False)
    assert assert_mirrored(conn, "mir_b", "e2", ["score"]) == 300


def test_bad_input_is_refused_by_name(mconn, codec):
    conn = mconn
    make_table(conn, "mir_bad")
    add_compressed_column(conn, "mir_bad", "embedding", "mir_bin", "e", progress=False)
    conn.execute("ALTER TABLE mir_bad ADD COLUMN other vector(3)")
    cases = {
        "nope": "no column 'nope'",
        "embedding": "vector column of e",
        "id": "primary key column of e",
        "other": "vector columns are not mirrored",
    }
    for col, msg in cases.items():
        with pytest.raises(CatalogError, match=msg):
            mirror_columns(conn, "mir_bad", "e", [col])
    with pytest.raises(CatalogError, match="pos named twice"):
        mirror_columns(conn, "mir_bad", "e", ["pos", "pos"])
    with pytest.raises(CatalogError, match="not a vecext compressed column"):
        mirror_columns(conn, "mir_bad", "nope", ["pos"])
    with pytest.raises(CatalogError, match="at least one column"):
        mirror_columns(conn, "mir_bad", "e", [])
    # add_compressed_column with a bad mirror adds nothing
    with pytest.raises(CatalogError, match="no column 'nope'"):
        add_compressed_column(conn, "mir_bad", "embedding", "mir_bin", "e3", mirror=["nope"])
    assert conn.execute(
        "SELECT count(*) FROM vecext.compressed_columns WHERE code_column = 'e3'"
    ).fetchone() == (0,)
    assert mirrored_columns(conn, "mir_bad", "e") == []


def test_tenant_column_is_mirrored_and_drop_takes_it_all(mconn, codec):
    conn = mconn
    make_table(conn, "mir_t")
    add_compressed_column(conn, "mir_t", "embedding", "mir_bin", "e", progress=False)
    declare_tenant_column(conn, "mir_t", "pos")  # into the existing store
    assert mirrored_columns(conn, "mir_t", "e") == ["pos"]
    add_compressed_column(conn, "mir_t", "embedding", "mir_bin", "e2", mirror=["score"])
    assert mirrored_columns(conn, "mir_t", "e2") == ["score", "pos"]  # and into new ones
    assert_mirrored(conn, "mir_t", "e2", ["score", "pos"])
    store = store_of(conn, "mir_t", "e2").as_string(conn)
    drop_compressed_column(conn, "mir_t", "e2")
    assert conn.execute("SELECT to_regclass(%s)", [store]).fetchone() == (None,)
    # the table's writes go on through the remaining store
    conn.execute("UPDATE mir_t SET pos = 'z' WHERE id < 10")
    assert_mirrored(conn, "mir_t", "e", ["pos"])


def test_unmirror_before_dropping_a_mirrored_column(mconn, codec):
    from vecext.postgres import unmirror_columns

    conn = mconn
    make_table(conn, "mir_u")
    add_compressed_column(
        conn, "mir_u", "embedding", "mir_bin", "e", mirror=["pos", "score"], progress=False
    )
    # the store's trigger watches pos: the drop is refused, nothing is lost
    with pytest.raises(psycopg.errors.DependentObjectsStillExist), conn.transaction():
        conn.execute("ALTER TABLE mir_u DROP COLUMN pos")
    with pytest.raises(CatalogError, match="does not mirror note"):
        unmirror_columns(conn, "mir_u", "e", ["note"])
    assert unmirror_columns(conn, "mir_u", "e", "pos") == ["score"]
    conn.execute("ALTER TABLE mir_u DROP COLUMN pos")
    conn.execute("UPDATE mir_u SET score = -1 WHERE id < 30")
    conn.execute("DELETE FROM mir_u WHERE id > 280")
    assert assert_mirrored(conn, "mir_u", "e", ["score"]) == 281
    assert mirrored_columns(conn, "mir_u", "e") == ["score"]


def test_the_trigger_is_replaced_without_blocking_reads(mconn, codec):
    """Changing what the store's trigger watches (mirror, unmirror, from Python or SQL)
    replaces it with CREATE OR REPLACE TRIGGER: SHARE ROW EXCLUSIVE on the user's table,
    which writers wait for and readers do not (DROP TRIGGER took ACCESS EXCLUSIVE)."""
    from vecext.postgres import unmirror_columns
    from vecext.postgres.ivf_store import store_trigger
    from vecext.postgres.stores import compressed_columns
    from vecext.postgres.tables import resolve_table

    conn = mconn
    make_table(conn, "mir_lk")
    add_compressed_column(conn, "mir_lk", "embedding", "mir_bin", "e", progress=False)

    def table_locks() -> set[str]:
        rows = conn.execute(
            "SELECT mode FROM pg_locks WHERE relation = 'mir_lk'::regclass "
            "AND pid = pg_backend_pid()"
        ).fetchall()
        return {r[0] for r in rows}

    (cc,) = compressed_columns(conn, resolve_table(conn, "mir_lk").oid)
    with conn.transaction():
        store_trigger(conn, cc, None, [])
        got = table_locks()
    assert "ShareRowExclusiveLock" in got and "AccessExclusiveLock" not in got
    mirror_columns(conn, "mir_lk", "e", ["pos"])
    with conn.transaction():
        conn.execute("SELECT vecext.unmirror_columns('mir_lk', 'e', ARRAY['pos'])")
        got = table_locks()
    assert "ShareRowExclusiveLock" in got and "AccessExclusiveLock" not in got
    with conn.transaction():
        conn.execute("SELECT vecext.mirror_columns('mir_lk', 'e', ARRAY['score'])")
        got = table_locks()
    assert "ShareRowExclusiveLock" in got and "AccessExclusiveLock" not in got
    # one trigger, the last definition: it writes score
    n = conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'mir_lk'::regclass AND NOT tgisinternal"
    ).fetchone()[0]
    assert n == 2  # the row trigger and the TRUNCATE trigger
    conn.execute("UPDATE mir_lk SET score = 42 WHERE id < 10")
    assert assert_mirrored(conn, "mir_lk", "e", ["score"]) == 300
    assert unmirror_columns(conn, "mir_lk", "e", "score") == []


def _pos_writer(dsn: str, stop, errors: list, seed: int) -> None:
    """Random single-row writes until ``stop``: the mirrored column, the vector, deletes."""
    import random

    rng = random.Random(seed)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                k, op = rng.randrange(1200), rng.random()
                if op < 0.6:
                    conn.execute("UPDATE mir_c SET pos = %s WHERE id = %s", [f"p{rng.random()}", k])
                elif op < 0.8:
                    conn.execute("UPDATE mir_c SET embedding = NULL WHERE id = %s", [k])
                elif op < 0.9:
                    conn.execute("DELETE FROM mir_c WHERE id = %s", [k])
                else:
                    conn.execute(
                        "INSERT INTO mir_c (id, embedding, pos) VALUES (%s, %s, 'new') "
                        "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding, pos = 'up'",
                        [k, vector_text(np.full(D, rng.random() + 0.1, np.float32))],
                    )
    except Exception as exc:  # pragma: no cover - reported by the test
        errors.append(exc)


def test_fill_under_concurrent_writes_keeps_every_value(mconn, module_dsn, codec):
    """Two writers change the mirrored column, NULL vectors, delete and upsert rows while
    mirror_columns fills in small batches: afterwards every store row's value is its
    row's (the fill never writes an older value over a trigger's newer one)."""
    import threading

    conn = mconn
    make_table(conn, "mir_c", n=1200, seed=93)
    add_compressed_column(conn, "mir_c", "embedding", "mir_bin", "e", progress=False)
    stop, errors = threading.Event(), []
    writers = [
        threading.Thread(target=_pos_writer, args=(module_dsn, stop, errors, s)) for s in (1, 2)
    ]
    for w in writers:
        w.start()
    try:
        with connect_to(module_dsn) as c2:
            mirror_columns(c2, "mir_c", "e", ["pos"], batch_size=37)
    finally:
        stop.set()
        for w in writers:
            w.join()
    assert not errors, errors
    assert assert_mirrored(conn, "mir_c", "e", ["pos"]) > 500


def connect_to(dsn: str) -> psycopg.Connection:
    from vecext.postgres import connect

    return connect(dsn, autocommit=True)


def test_a_connection_without_autocommit_is_left_idle_and_committed(mconn, module_dsn, codec):
    from vecext.postgres import connect, unmirror_columns

    make_table(mconn, "mir_n")
    conn = connect(module_dsn)  # autocommit off
    try:
        add_compressed_column(conn, "mir_n", "embedding", "mir_bin", "e", mirror=["pos"],
                              batch_size=50, progress=False)  # fmt: skip
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert mirror_columns(conn, "mir_n", "e", ["score"], batch_size=40) == ["pos", "score"]
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert unmirror_columns(conn, "mir_n", "e", ["score"]) == ["pos"]
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        # (declare_tenant_column reads the table before its own transaction, as before:
        # its work, the mirroring included, commits with the caller's)
        declare_tenant_column(conn, "mir_n", "note")
        conn.commit()
    finally:
        conn.close()
    assert mirrored_columns(mconn, "mir_n", "e") == ["pos", "note"]  # committed
    assert_mirrored(mconn, "mir_n", "e", ["pos", "note"])


def test_sql_backfill_writes_the_mirrored_values(mconn, codec):
    conn = mconn
    make_table(conn, "mir_s")
    add_compressed_column(conn, "mir_s", "embedding", "mir_bin", "e", mirror=["pos", "score"],
                          backfill=False)  # fmt: skip
    conn.execute("CALL vecext.backfill('mir_s', 'e', 64)")
    assert assert_mirrored(conn, "mir_s", "e", ["pos", "score"]) == 300
