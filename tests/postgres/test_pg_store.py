"""Code stores (catalog 0.4.0): every stored code equals the Python encode of its row's
current vector after any mix of writes (INSERT, COPY, UPDATE of the vector, the key or
another column, NULLs, DELETE, TRUNCATE), with concurrent writers during a backfill;
renamed tables and columns keep working; a dropped and re-created table starts clean;
a column of the 0.2.0 in-table layout keeps working through the upgrade."""

from __future__ import annotations

import random
import threading

import numpy as np
import psycopg
import pytest
from psycopg import sql

from tests.postgres.conftest import clustered, load_table, store_codes, vector_text
from vecext.codecs import make_codec
from vecext.errors import CatalogError
from vecext.postgres import (
    add_compressed_column,
    backfill,
    compressed_column,
    connect,
    drop_orphaned_compressed_columns,
    list_compressed_columns,
    migrate_to_store,
    save_codec,
    search,
    stale_rows,
)

D = 16


@pytest.fixture(scope="module")
def codecs(mconn):
    xt = clustered(1000, D, seed=70)
    out = {
        "st_pq": make_codec("pq", D, "l2", m=4, niter=8).train(xt),
        "st_bin": make_codec("binary", D, "cosine").train(xt),
        "st_half": make_codec("half", D, "l2"),
    }
    for name, codec in out.items():
        save_codec(mconn, name, codec)
    return out


def vectors(conn: psycopg.Connection, table: str) -> dict[int, np.ndarray]:
    """The table's rows with a vector: key -> vector."""
    rows = conn.execute(
        sql.SQL("SELECT id, embedding::text FROM {} WHERE embedding IS NOT NULL").format(
            sql.Identifier(table)
        )
    ).fetchall()
    return {k: np.array(v.strip("[]").split(","), dtype=np.float32) for k, v in rows}


def assert_store_current(conn, table: str, code_column: str, codec) -> int:
    """The store holds exactly one code per row with a vector, equal to codec.encode of
    that vector (PQ: nearest-centroid ties aside, see test_pg_trigger)."""
    want = vectors(conn, table)
    keys, codes = store_codes(conn, table, code_column)
    assert keys == sorted(want), "store keys differ from the rows with a vector"
    if not keys:
        return 0
    expect = codec.encode(np.stack([want[k] for k in keys]))
    same = (codes == expect).all(axis=1)
    if codec.kind == "pq":
        assert same.mean() >= 0.99, f"{(~same).sum()} of {len(same)} codes differ"
    else:
        assert same.all(), (
            f"{(~same).sum()} of {len(same)} codes differ, keys {np.array(keys)[~same][:5]}"
        )
    return len(keys)


def test_store_follows_every_kind_of_write(mconn, codecs):
    conn = mconn
    x = clustered(400, D, seed=71)
    # a deferrable key: a shift (id = id + 1) is checked at the end of its statement
    conn.execute(
        f"CREATE TABLE w (id int PRIMARY KEY DEFERRABLE, embedding vector({D}), note text)"
    )
    for name in codecs:
        add_compressed_column(conn, "w", "embedding", name, f"c_{name}", progress=False)
    # single INSERTs, a multi-row INSERT, COPY, a NULL vector
    for i in range(50):
        conn.execute("INSERT INTO w VALUES (%s, %s, 'a')", [i, vector_text(x[i])])
    conn.execute(
        sql.SQL("INSERT INTO w (id, embedding) VALUES {}").format(
            sql.SQL(", ").join(
                sql.SQL("({}, {}::vector)").format(sql.Literal(i), sql.Literal(vector_text(x[i])))
                for i in range(50, 150)
            )
        )
    )
    with conn.cursor().copy("COPY w (id, embedding) FROM STDIN") as copy:
        for i in range(150, 300):
            copy.write_row((i, vector_text(x[i])))
    conn.execute("INSERT INTO w VALUES (300, NULL, 'none')")
    # UPDATEs: vector, vector -> NULL, NULL -> vector, another column only
    conn.execute("UPDATE w SET embedding = %s WHERE id = 3", [vector_text(x[399])])
    conn.execute("UPDATE w SET embedding = NULL WHERE id BETWEEN 10 AND 19")
    conn.execute("UPDATE w SET embedding = %s WHERE id = 300", [vector_text(x[300])])
    conn.execute("UPDATE w SET note = 'b' WHERE id < 100")
    # key changes: a move to free keys, and a shift onto keys the same statement frees
    conn.execute("UPDATE w SET id = id + 1000 WHERE id BETWEEN 20 AND 24")
    conn.execute("DELETE FROM w WHERE id = 121")
    conn.execute("UPDATE w SET id = id + 1 WHERE id BETWEEN 100 AND 120")
    conn.execute("UPDATE w SET id = id - 1 WHERE id BETWEEN 101 AND 121")
    # key and vector together
    conn.execute("UPDATE w SET id = 2000, embedding = %s WHERE id = 30", [vector_text(x[398])])
    # DELETEs
    conn.execute("DELETE FROM w WHERE id BETWEEN 200 AND 249")
    conn.execute("DELETE FROM w WHERE id = 1020")
    for name, codec in codecs.items():
        n = assert_store_current(conn, "w", f"c_{name}", codec)
        assert n == 300 + 1 - 10 - 50 - 1 - 1
        assert stale_rows(conn, "w", f"c_{name}") == 0
    # a rolled-back transaction leaves the store as it was
    before = store_codes(conn, "w", "c_st_bin")
    with pytest.raises(ZeroDivisionError), conn.transaction():
        conn.execute("UPDATE w SET embedding = %s WHERE id < 50", [vector_text(x[0])])
        conn.execute("DELETE FROM w WHERE id > 100")
        1 / 0  # noqa: B018
    after = store_codes(conn, "w", "c_st_bin")
    assert after[0] == before[0] and (after[1] == before[1]).all()
    # TRUNCATE empties every store; writes afterwards are kept again
    conn.execute("TRUNCATE w")
    for name, codec in codecs.items():
        assert assert_store_current(conn, "w", f"c_{name}", codec) == 0
    conn.execute("INSERT INTO w VALUES (1, %s, 'c')", [vector_text(x[1])])
    for name, codec in codecs.items():
        assert assert_store_current(conn, "w", f"c_{name}", codec) == 1


def _writer(dsn: str, table: str, x: np.ndarray, seed: int, stop: threading.Event, errors: list):
    """Random single-row writes until ``stop``: new vectors, NULLs, deletes, re-inserts."""
    rng = random.Random(seed)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            t = sql.Identifier(table)
            while not stop.is_set():
                k = rng.randrange(len(x))
                op = rng.random()
                v = vector_text(x[rng.randrange(len(x))] * rng.uniform(0.5, 2))
                if op < 0.5:
                    q = sql.SQL("UPDATE {} SET embedding = %s WHERE id = %s").format(t)
                    conn.execute(q, [v, k])
                elif op < 0.65:
                    conn.execute(
                        sql.SQL("UPDATE {} SET embedding = NULL WHERE id = %s").format(t), [k]
                    )
                elif op < 0.8:
                    conn.execute(sql.SQL("DELETE FROM {} WHERE id = %s").format(t), [k])
                else:
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {} (id, embedding) VALUES (%s, %s) "
                            "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding"
                        ).format(t),
                        [k, v],
                    )
    except Exception as exc:  # reported by the test
        errors.append(exc)


def test_concurrent_writers_during_a_backfill(mconn, module_dsn, codecs):
    """Two writers change, NULL, delete and re-insert rows while the Python backfill
    fills the store in small batches: afterwards every code is the encode of its row's
    current vector, no deleted row or NULL vector has a code, and no row lacks one."""
    x = clustered(3000, D, seed=72)
    load_table(mconn, "busy", x)
    for name in ("st_bin", "st_half"):
        add_compressed_column(mconn, "busy", "embedding", name, f"c_{name}", backfill=False)
    stop, errors = threading.Event(), []
    writers = [
        threading.Thread(target=_writer, args=(module_dsn, "busy", x, s, stop, errors))
        for s in (1, 2)
    ]
    for w in writers:
        w.start()
    try:
        conn = connect(module_dsn, autocommit=True)
        for name in ("st_bin", "st_half"):
            backfill(conn, "busy", f"c_{name}", batch_size=97, progress=False)
        conn.close()
    finally:
        stop.set()
        for w in writers:
            w.join()
    assert not errors, errors
    for name in ("st_bin", "st_half"):
        assert compressed_column(mconn, "busy", f"c_{name}").status == "ready"
        assert assert_store_current(mconn, "busy", f"c_{name}", codecs[name]) > 2000
        assert stale_rows(mconn, "busy", f"c_{name}") == 0


def test_sql_backfill_skips_null_and_deleted_rows(mconn, codecs):
    """CALL vecext.backfill writes codes for rows with a vector only (a vector set to
    NULL before the batch leaves no code, issue 13 item 6)."""
    x = clustered(500, D, seed=73)
    load_table(mconn, "sqlfill", x)
    mconn.execute("SELECT vecext.add_compressed_column('sqlfill', 'embedding', 'st_bin', 'bits')")
    mconn.execute("UPDATE sqlfill SET embedding = NULL WHERE id % 7 = 0")
    mconn.execute("DELETE FROM sqlfill WHERE id % 11 = 0")
    mconn.execute("CALL vecext.backfill('sqlfill', 'bits', 64)")
    assert assert_store_current(mconn, "sqlfill", "bits", codecs["st_bin"]) > 350


def test_renamed_table_and_columns_keep_working(mconn, codecs):
    x = clustered(300, D, seed=74)
    load_table(mconn, "ren", x)
    add_compressed_column(mconn, "ren", "embedding", "st_pq", "pq", progress=False)
    mconn.execute("ALTER TABLE ren RENAME TO ren2")
    mconn.execute("ALTER TABLE ren2 RENAME COLUMN embedding TO emb")
    mconn.execute("ALTER TABLE ren2 RENAME COLUMN id TO key")
    mconn.execute("INSERT INTO ren2 (key, emb) VALUES (5000, %s)", [vector_text(x[7] * 3)])
    mconn.execute("UPDATE ren2 SET emb = %s WHERE key = 8", [vector_text(x[9] * 2)])
    (cc,) = list_compressed_columns(mconn, "ren2")
    assert (cc.table.name, cc.source_column, cc.key_column, cc.code_column) == (
        "ren2",
        "emb",
        "key",
        "pq",
    )
    keys, codes = store_codes(mconn, "ren2", "pq")
    assert len(keys) == 301 and 5000 in keys
    got = dict(zip(keys, codes.tolist(), strict=True))
    assert got[5000] == codecs["st_pq"].encode(x[7:8] * 3)[0].tolist()
    assert got[8] == codecs["st_pq"].encode(x[9:10] * 2)[0].tolist()
    r = search(mconn, "ren2", "emb", x[42], 5, metric="l2", strategy="compressed")
    assert r.ids[0] == 42
    with pytest.raises(CatalogError, match="does not exist"):
        list_compressed_columns(mconn, "ren")


def _store_exists(conn, store) -> bool:
    return conn.execute("SELECT to_regclass(%s)", [store.as_string(conn)]).fetchone()[0] is not None


def test_dropped_and_recreated_table_starts_clean(mconn, codecs):
    """The catalog's event trigger drops what belonged to a dropped table or vector
    column; without it (a catalog a non-superuser installed: here, disabled) the rows
    are never read (they name the old OID) and drop_orphaned_compressed_columns
    reclaims them."""
    x = clustered(100, D, seed=75)
    load_table(mconn, "again", x)
    add_compressed_column(mconn, "again", "embedding", "st_bin", "bits", progress=False)
    store = compressed_column(mconn, "again", "bits").store
    mconn.execute("DROP TABLE again")
    assert not _store_exists(mconn, store)
    assert mconn.execute("SELECT count(*) FROM vecext.compressed_columns").fetchone()[0] == sum(
        1 for _ in list_compressed_columns(mconn)
    )
    load_table(mconn, "again", x[:50])
    assert list_compressed_columns(mconn, "again") == []
    with pytest.raises(CatalogError, match="is not a vecext compressed column"):
        compressed_column(mconn, "again", "bits")
    # the same compressed column can be added again, and holds the new rows only
    add_compressed_column(mconn, "again", "embedding", "st_bin", "bits", progress=False)
    assert assert_store_current(mconn, "again", "bits", codecs["st_bin"]) == 50
    r = search(mconn, "again", "embedding", x[3], 3, strategy="compressed")
    assert r.ids[0] == 3
    # the vector column is dropped only with its dependents (CASCADE): the compressed
    # column goes with it, and the table keeps working
    store = compressed_column(mconn, "again", "bits").store
    mconn.execute("ALTER TABLE again ADD COLUMN note text")
    with pytest.raises(psycopg.errors.DependentObjectsStillExist, match="trigger store_"):
        mconn.execute("ALTER TABLE again DROP COLUMN embedding")
    mconn.execute("ALTER TABLE again DROP COLUMN embedding CASCADE")
    assert not _store_exists(mconn, store) and list_compressed_columns(mconn, "again") == []
    mconn.execute("INSERT INTO again (id, note) VALUES (1000, 'x')")
    # without the event trigger
    mconn.execute("ALTER EVENT TRIGGER vecext_sql_drop DISABLE")
    try:
        load_table(mconn, "again2", x[:10])
        add_compressed_column(mconn, "again2", "embedding", "st_bin", "bits", progress=False)
        store = compressed_column(mconn, "again2", "bits").store
        mconn.execute("DROP TABLE again2")
        load_table(mconn, "again2", x[:10])
        assert list_compressed_columns(mconn, "again2") == []
        add_compressed_column(mconn, "again2", "embedding", "st_bin", "bits", progress=False)
        assert _store_exists(mconn, store)
        assert drop_orphaned_compressed_columns(mconn) == ["public.again2.bits"]
        assert not _store_exists(mconn, store)
        assert drop_orphaned_compressed_columns(mconn) == []
        assert assert_store_current(mconn, "again2", "bits", codecs["st_bin"]) == 10
    finally:
        mconn.execute("ALTER EVENT TRIGGER vecext_sql_drop ENABLE")


def test_a_table_without_a_single_column_key_is_refused(mconn, codecs):
    mconn.execute(f"CREATE TABLE twokey (a int, b int, embedding vector({D}), PRIMARY KEY (a, b))")
    with pytest.raises(CatalogError, match="single-column primary key: its code store"):
        add_compressed_column(mconn, "twokey", "embedding", "st_bin")
    with pytest.raises(psycopg.errors.InvalidTableDefinition, match="single-column primary key"):
        mconn.execute("SELECT vecext.add_compressed_column('twokey', 'embedding', 'st_bin')")


def test_the_0_2_0_in_table_layout_survives_the_upgrade(pg_conn):
    """A column added under catalog 0.2.0 (codes in the table) is layout 'table' after
    the upgrade: its trigger, refresh, search and drop keep working."""
    from vecext.postgres import drop_compressed_column, install

    conn = pg_conn
    install(conn, target="0.2.0")
    x = clustered(600, D, seed=76)
    codec = make_codec("binary", D, "cosine").train(x)
    save_codec(conn, "old_bin", codec)
    load_table(conn, "legacy", x)
    with pytest.raises(CatalogError, match="code stores need 0.4.0; run `vecext install`"):
        add_compressed_column(conn, "legacy", "embedding", "old_bin", "bits", progress=False)
    add_compressed_column(
        conn, "legacy", "embedding", "old_bin", "bits", progress=False, layout="table"
    )
    assert install(conn).current == "0.6.0"
    cc = compressed_column(conn, "legacy", "bits")
    assert (cc.layout, cc.store, cc.status) == ("table", None, "ready")
    assert conn.execute(
        "SELECT table_oid = 'legacy'::regclass, layout FROM vecext.compressed_columns"
    ).fetchone() == (True, "table")
    conn.execute("INSERT INTO legacy VALUES (9000, %s)", [vector_text(x[5] * 2)])
    conn.execute("UPDATE legacy SET embedding = NULL WHERE id = 6")
    n = conn.execute("SELECT count(bits) FROM legacy").fetchone()[0]
    assert n == 600  # 600 + 1 inserted - 1 NULL vector
    assert stale_rows(conn, "legacy", "bits") == 0
    for i in (1, 77, 599):
        r = search(conn, "legacy", "embedding", x[i], 3, strategy="compressed")
        assert r.ids[0] == i
    # the documented way to a code store: migrate_to_store, then drop the old column
    store = migrate_to_store(conn, "legacy", "bits")
    assert store == f'vecext."store_{cc.id}"' or store == f"vecext.store_{cc.id}"
    assert compressed_column(conn, "legacy", "bits").layout == "store"
    assert assert_store_current(conn, "legacy", "bits", codec) == 600
    conn.execute("INSERT INTO legacy VALUES (9001, %s)", [vector_text(x[8] * 3)])
    assert conn.execute("SELECT bits FROM legacy WHERE id = 9001").fetchone() == (None,)
    conn.execute("ALTER TABLE legacy DROP COLUMN bits")
    assert assert_store_current(conn, "legacy", "bits", codec) == 601
    for i in (1, 77, 599):
        r = search(conn, "legacy", "embedding", x[i], 3, strategy="compressed")
        assert r.ids[0] == i
    assert migrate_to_store(conn, "legacy", "bits") == store  # again: nothing to do
    drop_compressed_column(conn, "legacy", "bits")
    cols = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'legacy'::regclass AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum"
    ).fetchall()
    assert cols == [("id",), ("embedding",)]


def test_hnsw_index_over_a_code_store(mconn, codecs):
    """create_vector_index on a compressed column builds pgvector's HNSW on its store:
    bit_hamming_ops over binary codes, halfvec ops over half codes; bytea codes have none.
    The index walk gives the codes' own nearest rows (checked against numpy)."""
    from vecext.postgres.index_build import VectorIndexError
    from vecext.postgres.indexes import create_vector_index

    x = clustered(2000, D, seed=77)
    load_table(mconn, "ixs", x)
    for name in codecs:
        add_compressed_column(mconn, "ixs", "embedding", name, f"c_{name}", progress=False)
    size = mconn.execute("SELECT pg_total_relation_size('ixs')").fetchone()[0]
    bix = create_vector_index(mconn, "ixs", "c_st_bin")
    assert (bix.schema, bix.table, bix.column, bix.storage, bix.opclass) == (
        "vecext",
        compressed_column(mconn, "ixs", "c_st_bin").store_name,
        "code",
        "bit",
        "bit_hamming_ops",
    )
    hix = create_vector_index(mconn, "ixs", "c_st_half", m=8)
    assert (hix.storage, hix.opclass, hix.options.get("m")) == ("halfvec", "halfvec_l2_ops", 8)
    with pytest.raises(VectorIndexError, match="bytea, which pgvector cannot index"):
        create_vector_index(mconn, "ixs", "c_st_pq")
    with pytest.raises(VectorIndexError, match="its code store takes an HNSW index"):
        create_vector_index(mconn, "ixs", "c_st_bin", method="ivfflat")
    # the table itself is untouched by the indexes on its stores
    assert mconn.execute("SELECT pg_total_relation_size('ixs')").fetchone()[0] == size
    codec = codecs["st_bin"]
    q = x[11] + 0.05
    bits = "".join(map(str, np.unpackbits(codec.encode(q[None, :])[0], count=codec.d_inner)))
    store = compressed_column(mconn, "ixs", "c_st_bin").store
    with mconn.transaction():
        mconn.execute("SET LOCAL enable_seqscan = off")
        mconn.execute("SET LOCAL hnsw.ef_search = 400")
        plan = mconn.execute(
            sql.SQL("EXPLAIN SELECT pk FROM {} ORDER BY code <~> %s::bit({}) LIMIT 5").format(
                store, sql.Literal(codec.d_inner)
            ),
            [bits],
        ).fetchall()
        assert bix.name in " ".join(r[0] for r in plan)
        got = mconn.execute(
            sql.SQL("SELECT pk, code <~> %s::bit({}) FROM {} ORDER BY 2 LIMIT 5").format(
                sql.Literal(codec.d_inner), store
            ),
            [bits],
        ).fetchall()
    ham = np.unpackbits(codec.encode(x) ^ codec.encode(q[None, :]), axis=1).sum(axis=1)
    assert [int(d) for _, d in got] == sorted(ham.tolist())[:5]


def test_storage_mode_keeps_halfvec_vectors_only(mconn, codecs):
    """Storage mode: the table keeps halfvec(d) vectors (no float32 column); compressed
    columns encode them (the float32 value of each half), the triggers keep the stores
    current, and a search reranks with the halfvec vectors: its ids are numpy's exact
    top-k over those values."""
    x = clustered(800, D, seed=78)
    x16 = x.astype(np.float16).astype(np.float32)
    mconn.execute(f"CREATE TABLE half_only (id int PRIMARY KEY, embedding halfvec({D}))")
    with mconn.cursor().copy("COPY half_only (id, embedding) FROM STDIN") as copy:
        for i, row in enumerate(x):
            copy.write_row((i, vector_text(row)))
    for name in ("st_bin", "st_pq"):
        add_compressed_column(mconn, "half_only", "embedding", name, f"c_{name}", batch_size=300)
        keys, codes = store_codes(mconn, "half_only", f"c_{name}")
        assert keys == list(range(800))
        same = (codes == codecs[name].encode(x16)).all(axis=1)
        assert same.mean() >= (0.99 if name == "st_pq" else 1.0)
    mconn.execute("INSERT INTO half_only VALUES (900, %s)", [vector_text(x[5] * 2)])
    _, got = store_codes(mconn, "half_only", "c_st_bin", "pk = 900")
    assert got.tolist() == codecs["st_bin"].encode(x16[5:6] * 2).tolist()
    # (the query is compared as a halfvec too)
    q = x[17] + 0.01
    q16 = q.astype(np.float16).astype(np.float32)
    xs = np.vstack([x16, x16[5:6] * 2])
    ids = np.array([*range(800), 900])
    dist = 1 - (xs @ q16) / np.linalg.norm(xs, axis=1) / np.linalg.norm(q16)
    order = np.argsort(dist, kind="stable")[:10]
    for s in ("exact", "compressed"):
        r = search(mconn, "half_only", "embedding", q, 10, strategy=s)
        assert set(r.ids.tolist()) == set(ids[order].tolist()), s
        np.testing.assert_allclose(r.distances, dist[order], atol=1e-4)
    with pytest.raises(CatalogError, match="in-table layout encodes vector columns only"):
        add_compressed_column(mconn, "half_only", "embedding", "st_half", layout="table")


def test_writes_between_read_and_merge_of_a_backfill_batch_win(
    mconn, module_dsn, codecs, monkeypatch
):
    """Issue 13 item 6, made deterministic: while a batch is being encoded (after its
    rows were read, before its codes go in), another session sets one row's vector to
    NULL, deletes one and changes one. The merge skips the first two and keeps the
    trigger's code of the third: no code on a NULL vector, no resurrected row, no stale
    code."""
    import vecext.postgres.columns as pg_columns

    x = clustered(300, D, seed=79)
    load_table(mconn, "race", x)
    add_compressed_column(mconn, "race", "embedding", "st_bin", "bits", backfill=False)
    codec = codecs["st_bin"]
    y = x[7] * -2

    class Meddling:
        """The codec, whose first encode lets another session write first."""

        def __init__(self, inner):
            self.inner, self.done = inner, False

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def encode(self, v):
            if not self.done:
                self.done = True
                with psycopg.connect(module_dsn, autocommit=True) as other:
                    other.execute("UPDATE race SET embedding = NULL WHERE id = 10")
                    other.execute("DELETE FROM race WHERE id = 11")
                    other.execute("UPDATE race SET embedding = %s WHERE id = 12", [vector_text(y)])
            return self.inner.encode(v)

    real = pg_columns.load_codec
    monkeypatch.setattr(pg_columns, "load_codec", lambda *a, **k: Meddling(real(*a, **k)))
    assert backfill(mconn, "race", "bits", batch_size=100, progress=False) == 297
    keys, codes = store_codes(mconn, "race", "bits")
    got = dict(zip(keys, codes.tolist(), strict=True))
    assert 10 not in got and 11 not in got and len(keys) == 298
    assert got[12] == codec.encode(y[None, :])[0].tolist()
    assert assert_store_current(mconn, "race", "bits", codec) == 298
