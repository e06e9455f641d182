"""IVF lists in the code store (catalog 0.5.0, issue 11): adding them leaves the user's
table exactly as it was (size, files, columns, indexes, row versions); every store row's
list id equals the numpy assignment of its row's current vector after any mix of writes;
the IVF search over store lists returns what the same lists in the table return (and its
recall against numpy brute force, with and without filters); dropping the lists, the
column or the catalog leaves nothing behind; lists made by catalog 0.4.0 (in the table,
of both layouts) keep working through the upgrade."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from psycopg import sql

from tests.postgres.conftest import clustered, load_table, store_of, vector_text
from vecext.codecs import CodecError, make_codec
from vecext.codecs.ivf import IVFCodec
from vecext.errors import CatalogError
from vecext.postgres import (
    add_compressed_column,
    add_ivf_lists,
    compressed_column,
    connect,
    drop_compressed_column,
    drop_ivf_lists,
    drop_orphaned_compressed_columns,
    install,
    ivf_lists,
    load_codec,
    save_codec,
    search,
)

D = 16
N = 2_000


@pytest.fixture(scope="module")
def codecs(mconn):
    xt = clustered(1000, D, seed=90)
    save_codec(mconn, "is_pq", make_codec("pq", D, "l2", m=4, niter=8).train(xt))
    save_codec(mconn, "is_pqc", make_codec("pq", D, "cosine", m=4, niter=8).train(xt))


def _table(conn: psycopg.Connection, name: str, seed: int, n: int = N) -> np.ndarray:
    """``name (id integer PRIMARY KEY, embedding vector(16), cat text)``: n clustered rows,
    ``cat`` a/b alternating and ``rare`` on every 50th row."""
    x = clustered(n, D, seed=seed)
    t = sql.Identifier(name)
    conn.execute(
        sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, embedding vector({}), cat text)").format(
            t, sql.Literal(D)
        )
    )
    with conn.cursor().copy(sql.SQL("COPY {} (id, embedding, cat) FROM STDIN").format(t)) as cp:
        for i, row in enumerate(x):
            cp.write_row((i, vector_text(row), "rare" if i % 50 == 0 else "ab"[i % 2]))
    return x


def _snapshot(conn: psycopg.Connection, table: str) -> tuple:
    """Everything of the table adding lists must leave alone: total size, its file, its
    columns, indexes and row versions (ctid and xmin of every row)."""
    return conn.execute(
        """SELECT pg_total_relation_size(%(t)s::regclass), pg_relation_filenode(%(t)s::regclass),
                  (SELECT array_agg(attname ORDER BY attnum) FROM pg_attribute
                    WHERE attrelid = %(t)s::regclass AND attnum > 0 AND NOT attisdropped),
                  (SELECT array_agg(indexrelid::regclass::text ORDER BY 1) FROM pg_index
                    WHERE indrelid = %(t)s::regclass)""",
        {"t": table},
    ).fetchone() + conn.execute(
        sql.SQL("SELECT md5(string_agg(ctid::text || ':' || xmin::text, ',' ORDER BY id)) FROM {}")
        .format(sql.Identifier(table))
    ).fetchone()  # fmt: skip


def _vectors(conn: psycopg.Connection, table: str) -> tuple[list[int], np.ndarray]:
    rows = conn.execute(
        sql.SQL("SELECT id, embedding::text FROM {} WHERE embedding IS NOT NULL ORDER BY id")
        .format(sql.Identifier(table))
    ).fetchall()  # fmt: skip
    x = np.array([np.array(v.strip("[]").split(","), dtype=np.float32) for _, v in rows])
    return [r[0] for r in rows], x.reshape(len(rows), D)


def _store_lists(conn: psycopg.Connection, table: str, code_column: str) -> dict:
    q = sql.SQL("SELECT pk, list FROM {} ORDER BY pk").format(store_of(conn, table, code_column))
    return dict(conn.execute(q).fetchall())


def assert_lists_current(conn, table: str, code_column: str, coarse: IVFCodec) -> int:
    """One store row per row with a vector, its list = numpy's assignment of the vector."""
    keys, x = _vectors(conn, table)
    got = _store_lists(conn, table, code_column)
    assert sorted(got) == keys
    want = coarse.assign(x).tolist() if keys else []
    assert [got[k] for k in keys] == want
    return len(keys)


def _store_trigger_args(conn: psycopg.Connection, table: str, code_column: str) -> list[str]:
    store = compressed_column(conn, table, code_column).store_name
    (args,) = conn.execute(
        "SELECT tgargs FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = %s",
        [table, store],
    ).fetchone()
    return [a.decode() for a in bytes(args).split(b"\x00")[:-1]]


def _store_columns(conn: psycopg.Connection, table: str, code_column: str) -> list[str]:
    store = store_of(conn, table, code_column).as_string(conn)
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        [store],
    ).fetchall()
    return [r[0] for r in rows]


def test_adding_lists_leaves_the_table_as_it_was(mconn, codecs) -> None:
    _table(mconn, "is_guest", seed=91)
    add_compressed_column(mconn, "is_guest", "embedding", "is_pq", "emb_pq", progress=False)
    mconn.execute("VACUUM ANALYZE is_guest")
    before = _snapshot(mconn, "is_guest")
    lists = add_ivf_lists(
        mconn, "is_guest", "embedding", 16, niter=5, index_columns=["cat"], batch_size=300
    )
    assert _snapshot(mconn, "is_guest") == before
    assert lists.store == compressed_column(mconn, "is_guest", "emb_pq").store_name
    assert lists.list_column == "list" and len(lists.indexes) == 1
    assert _store_columns(mconn, "is_guest", "emb_pq") == ["pk", "code", "list"]
    (indexed,) = mconn.execute(
        "SELECT count(*) FROM pg_index WHERE indexrelid::regclass::text = %s",
        [f"vecext.{lists.indexes[0]}"],
    ).fetchone()
    assert indexed == 1
    assert mconn.execute(
        "SELECT list_column, list_layout FROM vecext.compressed_columns "
        "WHERE table_oid = 'is_guest'::regclass"
    ).fetchone() == ("list", "store")
    assert ivf_lists(mconn, "is_guest", "emb_pq") == lists.__class__(**{
        **lists.__dict__, "indexes": ()
    })  # fmt: skip
    assert assert_lists_current(mconn, "is_guest", "emb_pq", load_codec(mconn, lists.codec_name))
    # writes through the trigger change the store only
    mconn.execute("UPDATE is_guest SET cat = 'z' WHERE id = 3")
    assert _snapshot(mconn, "is_guest")[2:4] == before[2:4]


@pytest.mark.parametrize("codec", ["is_pq", "is_pqc"])
def test_store_lists_follow_every_write(mconn, codecs, codec) -> None:
    table = f"is_w_{codec}"
    x = _table(mconn, table, seed=92)
    t = sql.Identifier(table)
    add_compressed_column(mconn, table, "embedding", codec, "emb_pq", progress=False)
    lists = add_ivf_lists(mconn, table, "embedding", 12, niter=5, batch_size=700)
    coarse = load_codec(mconn, lists.codec_name)
    assert assert_lists_current(mconn, table, "emb_pq", coarse) == N

    def run(q: str, params: list | None = None) -> None:
        mconn.execute(sql.SQL(q).format(t=t), params or [])
        assert_lists_current(mconn, table, "emb_pq", coarse)

    far = -1.5 * x[:6]
    run("INSERT INTO {t} (id, embedding, cat) VALUES (90000, %s, 'a')", [vector_text(far[0])])
    run(
        "INSERT INTO {t} (id, embedding, cat) VALUES (90001, %s, 'a'), (90002, NULL, 'b')",
        [vector_text(far[1])],
    )
    with mconn.cursor().copy(sql.SQL("COPY {} (id, embedding, cat) FROM STDIN").format(t)) as cp:
        cp.write_row((90003, vector_text(far[2]), "b"))
    assert_lists_current(mconn, table, "emb_pq", coarse)
    run("UPDATE {t} SET embedding = %s WHERE id = 7", [vector_text(far[3])])
    run("UPDATE {t} SET embedding = %s WHERE id = 90002", [vector_text(far[4])])
    run("UPDATE {t} SET embedding = NULL WHERE id = 8")
    run("UPDATE {t} SET cat = 'q' WHERE id < 100")
    shift = vector_text(np.full(D, 0.7, np.float32))
    run("UPDATE {t} SET embedding = embedding + %s::vector WHERE id BETWEEN 200 AND 260", [shift])
    run("UPDATE {t} SET id = id + 20000 WHERE id BETWEEN 300 AND 310")  # keys move
    run("UPDATE {t} SET id = id + 100000 WHERE id = 400")
    run("DELETE FROM {t} WHERE id %% 7 = 0")
    assert_lists_current(mconn, table, "emb_pq", coarse)
    run("TRUNCATE {t}")
    assert _store_lists(mconn, table, "emb_pq") == {}
    run(
        "INSERT INTO {t} (id, embedding, cat) SELECT i, %s::vector, 'a' FROM generate_series(1, 5) i",
        [vector_text(far[0])],
    )
    assert set(_store_lists(mconn, table, "emb_pq").values()) == {int(coarse.assign(far[:1])[0])}


def test_a_rolled_back_write_leaves_the_lists(mconn, codecs) -> None:
    x = _table(mconn, "is_rb", seed=93, n=400)
    add_compressed_column(mconn, "is_rb", "embedding", "is_pq", "emb_pq", progress=False)
    lists = add_ivf_lists(mconn, "is_rb", "embedding", 4, niter=5)
    before = _store_lists(mconn, "is_rb", "emb_pq")
    with pytest.raises(psycopg.errors.DivisionByZero), mconn.transaction():
        mconn.execute("UPDATE is_rb SET embedding = %s WHERE id = 1", [vector_text(-x[1])])
        mconn.execute("DELETE FROM is_rb WHERE id = 2")
        mconn.execute("SELECT 1 / 0")
    assert _store_lists(mconn, "is_rb", "emb_pq") == before
    assert_lists_current(mconn, "is_rb", "emb_pq", load_codec(mconn, lists.codec_name))


def _brute(x: np.ndarray, keys: list[int], q: np.ndarray, k: int, ok=None) -> list[set]:
    out = []
    for qi in q:
        d = ((x - qi) ** 2).sum(1)
        if ok is not None:
            d = np.where(ok, d, np.inf)
        top = np.argsort(d, kind="stable")[:k]
        out.append({keys[i] for i in top if np.isfinite(d[i])})
    return out


def test_ivf_search_over_store_lists_equals_table_lists(mconn, codecs) -> None:
    """The same codes and the same coarse quantizer, the lists once in the store and once
    in the table (layout 'table'): the IVF search returns the same rows (k of them, under
    filters too), at the recall against numpy brute force it always had."""
    x = _table(mconn, "is_s", seed=94)
    _table(mconn, "is_t", seed=94)
    add_compressed_column(mconn, "is_s", "embedding", "is_pq", "emb_pq", progress=False)
    add_compressed_column(
        mconn, "is_t", "embedding", "is_pq", "emb_pq", progress=False, layout="table"
    )
    coarse = IVFCodec(D, "l2", nlist=24, niter=5).train(x)
    s = add_ivf_lists(mconn, "is_s", "embedding", codec=coarse, codec_name="is_ivf_s")
    t = add_ivf_lists(
        mconn, "is_t", "embedding", codec=coarse, codec_name="is_ivf_t", index_columns=["cat"]
    )
    assert s.store is not None and t.store is None
    keys = list(range(N))
    rng = np.random.default_rng(95)
    q = x[rng.choice(N, 30, replace=False)] + 0.05 * rng.standard_normal((30, D)).astype("f4")
    cats = np.array(["rare" if i % 50 == 0 else "ab"[i % 2] for i in range(N)])
    for flt, ok in [(None, None), ({"cat": "a"}, cats == "a"), ({"cat": "rare"}, cats == "rare")]:
        truth = _brute(x, keys, q, 10, ok)
        hits = {"is_s": 0, "is_t": 0}
        for i, qi in enumerate(q):
            rs = search(mconn, "is_s", "embedding", qi, 10, metric="l2", strategy="ivf",
                        filter=flt)  # fmt: skip
            rt = search(mconn, "is_t", "embedding", qi, 10, metric="l2", strategy="ivf",
                        filter=flt)  # fmt: skip
            assert rs.strategy == rt.strategy == "ivf"
            assert len(rs.ids) == len(rt.ids) == min(10, len(truth[i])) == 10
            assert rs.ids.tolist() == rt.ids.tolist()
            np.testing.assert_allclose(rs.distances, rt.distances, rtol=1e-6)
            hits["is_s"] += len(set(rs.ids.tolist()) & truth[i])
            hits["is_t"] += len(set(rt.ids.tolist()) & truth[i])
        assert hits["is_s"] == hits["is_t"]
        assert hits["is_s"] / (10 * len(q)) >= 0.9, (flt, hits)
    # rows written after the lists were built are found at once
    far = -3 * x[5]
    mconn.execute("INSERT INTO is_s (id, embedding, cat) VALUES (77777, %s, 'a')", [
        vector_text(far)
    ])  # fmt: skip
    r = search(mconn, "is_s", "embedding", far, 1, metric="l2", strategy="ivf", filter={"cat": "a"})
    assert r.ids.tolist() == [77777]


def test_drop_ivf_lists_gives_the_store_back(mconn, codecs) -> None:
    x = _table(mconn, "is_drop", seed=96, n=600)
    add_compressed_column(mconn, "is_drop", "embedding", "is_pq", "emb_pq", progress=False)
    args0 = _store_trigger_args(mconn, "is_drop", "emb_pq")
    before = _snapshot(mconn, "is_drop")
    lists = add_ivf_lists(mconn, "is_drop", "embedding", 4, niter=5)
    assert _store_trigger_args(mconn, "is_drop", "emb_pq") == [*args0, lists.codec_name]
    drop_ivf_lists(mconn, "is_drop", "emb_pq")
    assert _store_trigger_args(mconn, "is_drop", "emb_pq") == args0
    assert _store_columns(mconn, "is_drop", "emb_pq") == ["pk", "code"]
    assert mconn.execute(
        "SELECT count(*) FROM pg_class WHERE relname = %s", [lists.indexes[0]]
    ).fetchone() == (0,)
    assert mconn.execute(
        "SELECT list_column, ivf_codec_name, list_layout FROM vecext.compressed_columns "
        "WHERE table_oid = 'is_drop'::regclass"
    ).fetchone() == (None, None, None)
    assert mconn.execute(
        "SELECT count(*) FROM vecext.codecs WHERE name = %s", [lists.codec_name]
    ).fetchone() == (0,)
    assert _snapshot(mconn, "is_drop") == before
    # writes work, codes stay current, and lists can be added again
    mconn.execute("INSERT INTO is_drop (id, embedding) VALUES (9999, %s)", [vector_text(x[0])])
    again = add_ivf_lists(mconn, "is_drop", "embedding", 4, niter=5)
    assert_lists_current(mconn, "is_drop", "emb_pq", load_codec(mconn, again.codec_name))
    with pytest.raises(CatalogError, match="already has IVF lists"):
        add_ivf_lists(mconn, "is_drop", "embedding", 4, niter=5)


def test_dropping_the_column_or_the_table_drops_the_store_lists(mconn, codecs) -> None:
    for how in ("python", "sql", "drop table", "drop vector column"):
        name = f"is_gone_{how.replace(' ', '_')}"
        x = _table(mconn, name, seed=97, n=300)
        t = sql.Identifier(name)
        add_compressed_column(mconn, name, "embedding", "is_pq", "emb_pq", progress=False)
        before = _snapshot(mconn, name)
        trig0 = mconn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
            [name],
        ).fetchone()
        lists = add_ivf_lists(mconn, name, "embedding", 4, niter=5)
        store = compressed_column(mconn, name, "emb_pq").store_name
        if how == "python":
            drop_compressed_column(mconn, name, "emb_pq")
        elif how == "sql":
            mconn.execute("SELECT vecext.drop_compressed_column(%s, 'emb_pq')", [name])
        elif how == "drop table":
            mconn.execute(sql.SQL("DROP TABLE {}").format(t))
            drop_orphaned_compressed_columns(mconn)  # (the event trigger did it already)
        else:
            mconn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN embedding CASCADE").format(t))
            drop_orphaned_compressed_columns(mconn)
        assert mconn.execute("SELECT to_regclass(%s)", [f"vecext.{store}"]).fetchone() == (None,)
        assert mconn.execute(
            "SELECT count(*) FROM pg_class WHERE relname = %s", [lists.indexes[0]]
        ).fetchone() == (0,)
        assert mconn.execute(
            "SELECT count(*) FROM vecext.codecs WHERE name = %s", [lists.codec_name]
        ).fetchone() == (0,)
        if how in ("python", "sql"):
            after = _snapshot(mconn, name)
            assert after[1:] == before[1:] and after[0] == before[0]
            assert mconn.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
                [name],
            ).fetchone() == (trig0[0] - 2,)
            mconn.execute(sql.SQL("INSERT INTO {} (id, embedding) VALUES (9999, %s)").format(t), [
                vector_text(x[0])
            ])  # fmt: skip


def test_uninstall_takes_the_store_lists(pg_catalog) -> None:
    from vecext.postgres.catalog import uninstall

    conn = pg_catalog
    x = clustered(400, D, seed=98)
    save_codec(conn, "is_pq", make_codec("pq", D, "l2", m=4, niter=5).train(x))
    load_table(conn, "is_un", x)
    add_compressed_column(conn, "is_un", "embedding", "is_pq", "emb_pq", progress=False)
    add_ivf_lists(conn, "is_un", "embedding", 4, niter=5)
    before = _snapshot(conn, "is_un")
    uninstall(conn)
    assert conn.execute("SELECT to_regnamespace('vecext')").fetchone() == (None,)
    assert _snapshot(conn, "is_un") == before
    assert conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'is_un'::regclass AND NOT tgisinternal"
    ).fetchone() == (0,)
    conn.execute("INSERT INTO is_un (id, embedding) VALUES (9999, %s)", [vector_text(x[0])])


def test_bad_input_is_refused_clearly(mconn, codecs) -> None:
    _table(mconn, "is_bad", seed=99, n=300)
    add_compressed_column(mconn, "is_bad", "embedding", "is_pq", "emb_pq", progress=False)
    before = _snapshot(mconn, "is_bad")
    with pytest.raises(CatalogError, match="no column.*'nope'"):
        add_ivf_lists(mconn, "is_bad", "embedding", 4, niter=5, index_columns=["nope"])
    with pytest.raises(CatalogError, match="list_column 'code' is a column of the code store"):
        add_ivf_lists(mconn, "is_bad", "embedding", 4, niter=5, list_column="code")
    with pytest.raises(CatalogError, match="not a compressed column"):
        add_ivf_lists(mconn, "is_bad", "embedding", 4, niter=5, code_column="emb_nope")
    with pytest.raises(CodecError, match="300 vectors, fewer than the nlist=5000 lists"):
        add_ivf_lists(mconn, "is_bad", "embedding", 5000, niter=5)
    with pytest.raises(CatalogError, match="has no IVF lists"):
        drop_ivf_lists(mconn, "is_bad", "emb_pq")
    assert _snapshot(mconn, "is_bad") == before
    assert _store_columns(mconn, "is_bad", "emb_pq") == ["pk", "code"]


def _lists_as_0_4_0_made_them(conn, table: str, code_column: str, coarse: IVFCodec, name: str):
    """IVF lists the way vecext 0.4.0's add_ivf_lists made them on a code-store column: an
    integer column of the table, its BEFORE trigger, filled by UPDATE, indexed, recorded."""
    from vecext.catalog import store as cat_store
    from vecext.catalog.rows import codec_record
    from vecext.postgres.catalog import PgDialect

    t, lcol = sql.Identifier(table), f"{code_column}_list"
    cat_store.insert_codec(PgDialect(conn), codec_record(name, coarse))
    conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} integer").format(t, sql.Identifier(lcol)))
    conn.execute(
        sql.SQL(
            "CREATE TRIGGER {} BEFORE INSERT OR UPDATE OF embedding ON {} FOR EACH ROW "
            "EXECUTE FUNCTION vecext.ivf_lists_trigger('embedding', {}, {})"
        ).format(sql.Identifier(f"vecext_{lcol}"), t, sql.Literal(lcol), sql.Literal(name))
    )
    conn.execute(sql.SQL("UPDATE {} SET embedding = embedding").format(t))
    conn.execute(sql.SQL("CREATE INDEX ON {} ({})").format(t, sql.Identifier(lcol)))
    conn.execute(
        "UPDATE vecext.compressed_columns SET list_column = %s, ivf_codec_name = %s "
        "WHERE table_oid = %s::regclass AND code_column = %s",
        [lcol, name, table, code_column],
    )
    return lcol


def test_upgrade_from_0_4_0_keeps_lists_of_both_layouts(pg_dsn) -> None:
    conn = connect(pg_dsn, autocommit=True)
    try:
        assert install(conn, target="0.4.0").current == "0.4.0"
        xt = clustered(800, D, seed=100)
        save_codec(conn, "is_pq", make_codec("pq", D, "l2", m=4, niter=5).train(xt))
        xs = _table(conn, "up_store", seed=101, n=800)
        xt_ = _table(conn, "up_table", seed=102, n=800)
        add_compressed_column(conn, "up_store", "embedding", "is_pq", "emb_pq", progress=False)
        add_compressed_column(
            conn, "up_table", "embedding", "is_pq", "emb_pq", progress=False, layout="table"
        )
        # catalog 0.4.0 cannot keep lists in a store: a clear refusal, nothing changed
        with pytest.raises(CatalogError, match="version 0.4.0.*from catalog 0.5.0 on.*install"):
            add_ivf_lists(conn, "up_store", "embedding", 4, niter=5)
        coarse_s = IVFCodec(D, "l2", nlist=6, niter=5).train(xs)
        lcol_s = _lists_as_0_4_0_made_them(conn, "up_store", "emb_pq", coarse_s, "up_ivf_s")
        made_t = add_ivf_lists(conn, "up_table", "embedding", 6, niter=5)
        assert made_t.store is None

        up = install(conn)
        assert (up.previous, up.current) == ("0.4.0", "0.6.0")
        assert conn.execute(
            "SELECT code_column, layout, list_layout FROM vecext.compressed_columns ORDER BY id"
        ).fetchall() == [("emb_pq", "store", "table"), ("emb_pq", "table", "table")]
        for table, x, lcol, name in [
            ("up_store", xs, lcol_s, "up_ivf_s"),
            ("up_table", xt_, made_t.list_column, made_t.codec_name),
        ]:
            lists = ivf_lists(conn, table, "emb_pq")
            assert lists is not None and lists.store is None and lists.list_column == lcol
            coarse = load_codec(conn, name)
            t = sql.Identifier(table)
            # the table's trigger still assigns, and the IVF search reads the table's lists
            far = -2 * x[3]
            conn.execute(sql.SQL("INSERT INTO {} (id, embedding, cat) VALUES (5000, %s, 'a')")
                         .format(t), [vector_text(far)])  # fmt: skip
            got = conn.execute(
                sql.SQL("SELECT {} FROM {} WHERE id = 5000").format(sql.Identifier(lcol), t)
            ).fetchone()[0]
            assert got == int(coarse.assign(far[None, :])[0])
            for flt in (None, {"cat": "a"}):
                r = search(conn, table, "embedding", far, 3, metric="l2", strategy="ivf",
                           filter=flt)  # fmt: skip
                assert r.strategy == "ivf" and r.ids[0] == 5000 and len(r.ids) == 3
            r = search(conn, table, "embedding", x[9] + 0.001, 1, metric="l2", strategy="ivf")
            assert r.ids.tolist() == [9]
        # 0.5.0's SQL drop takes the table's lists with the column (layout 'store' too)
        conn.execute("SELECT vecext.drop_compressed_column('up_store', 'emb_pq')")
        cols = {
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'up_store'::regclass "
                "AND attnum > 0 AND NOT attisdropped"
            ).fetchall()
        }
        assert cols == {"id", "embedding", "cat"}
        # new lists of a store column go to its store
        add_compressed_column(conn, "up_store", "embedding", "is_pq", "emb_pq", progress=False)
        again = add_ivf_lists(conn, "up_store", "embedding", 4, niter=5)
        assert again.store is not None
        assert_lists_current(conn, "up_store", "emb_pq", load_codec(conn, again.codec_name))
    finally:
        conn.close()


def test_downgrade_from_0_5_0_refuses_while_a_store_keeps_lists(pg_catalog) -> None:
    from vecext.postgres.catalog import installed_version, revert_script

    conn = pg_catalog
    x = clustered(400, D, seed=103)
    save_codec(conn, "is_pq", make_codec("pq", D, "l2", m=4, niter=5).train(x))
    load_table(conn, "is_dn", x)
    add_compressed_column(conn, "is_dn", "embedding", "is_pq", "emb_pq", progress=False)
    add_ivf_lists(conn, "is_dn", "embedding", 4, niter=5)
    with conn.transaction():  # 0.6.0 first (no store mirrors columns)
        assert revert_script(conn, "vecext--0.5.0--0.6.0.sql")
    refused = "0.5.0 cannot be downgraded.*public.is_dn.emb_pq"
    with pytest.raises(CatalogError, match=refused), conn.transaction():
        revert_script(conn, "vecext--0.4.0--0.5.0.sql")
    assert installed_version(conn) == "0.5.0"
    drop_ivf_lists(conn, "is_dn", "emb_pq")
    with conn.transaction():
        assert revert_script(conn, "vecext--0.4.0--0.5.0.sql")
    assert installed_version(conn) == "0.4.0"
    # 0.4.0's functions are back, with their pinned search_path
    (cfg,) = conn.execute(
        "SELECT proconfig FROM pg_proc WHERE oid = 'vecext.store_trigger'::regproc"
    ).fetchone()
    assert cfg and cfg[0].startswith("search_path=pg_catalog")
    conn.execute("INSERT INTO is_dn (id, embedding) VALUES (9999, %s)", [vector_text(x[0])])
    assert install(conn).current == "0.6.0"
