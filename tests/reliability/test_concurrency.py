"""8 concurrent searchers while writers insert, on both backends: no row lost or wrong.

Writers insert rows whose vector is a pure function of their id, in increasing id order,
so every search can be checked whatever it saw: each returned row's distance is the
exact distance of that id's vector, rows are unique, k come back, and no row of the
initial table (visible to every search) that is nearer than the k-th result is missing.
PostgreSQL also checks exact search against numpy on the same REPEATABLE READ snapshot,
and, at the end, that every stored code equals the Python encode of its row's vector.
"""

from __future__ import annotations

import threading
import time

import numpy as np

import vecext
import vecext.duckdb as vd
import vecext.postgres as vp
from tests.reliability.conftest import pg_load, vector_text

D = 16
N0 = 1500
N_NEW = 150
N_NEW_DUCK = 30  # DuckDB commits are slower under 8 concurrent readers
SEARCHERS = 8
K = 10
SECONDS = 6.0


def vec(i: int) -> np.ndarray:
    return np.random.default_rng(10_000 + i).standard_normal(D).astype(np.float32)


X0 = np.stack([vec(i) for i in range(N0)])


def l2(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Euclidean distance (what vecext returns for metric l2), in float64."""
    return np.sqrt(((a.astype(np.float64) - q) ** 2).sum(-1))


def check(ids, dist, q: np.ndarray, exact: bool) -> None:
    ids = [int(i) for i in ids]
    assert len(ids) == K and len(set(ids)) == K, ids
    want = l2(np.stack([vec(i) for i in ids]), q)
    assert np.allclose(np.asarray(dist, np.float64), want, rtol=1e-4, atol=1e-4), (ids, dist)
    if exact:
        kth = float(np.max(want))
        closer = set(np.flatnonzero(l2(X0, q) < kth - 1e-4).tolist())
        assert closer <= set(ids), closer - set(ids)


def run_threads(searcher, writer) -> list[BaseException]:
    errors: list[BaseException] = []
    stop = threading.Event()

    def guard(fn, *args):
        try:
            fn(stop, *args)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=guard, args=(searcher, s)) for s in range(SEARCHERS)]
    threads.append(threading.Thread(target=guard, args=(writer,)))
    for t in threads:
        t.start()
    deadline = time.monotonic() + SECONDS * 4
    threads[-1].join(max(0.0, deadline - time.monotonic()))
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(30)
    return errors


def test_postgres_searchers_with_writers(mconn, module_dsn):
    pg_load(mconn, ("conc",), X0)
    vp.train_codec(mconn, "conc_bin", "conc", "embedding", "binary", metric="l2")
    col = vp.add_compressed_column(mconn, "conc", "embedding", "conc_bin", progress=False)
    counts = [0] * SEARCHERS

    def searcher(stop, s):
        rng = np.random.default_rng(s)
        with vp.connect(module_dsn) as conn:  # transactions: one snapshot per check
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            while not stop.is_set():
                q = rng.standard_normal(D).astype(np.float32)
                strategy = "exact" if counts[s] % 2 == 0 else "compressed"
                r = vecext.search(conn, "conc", "embedding", q, K, metric="l2", strategy=strategy)
                check(r.ids, r.distances, q, strategy == "exact")
                if strategy == "exact":  # the same snapshot, brute force in numpy
                    rows = conn.execute("SELECT id, embedding::text FROM conc").fetchall()
                    ids = np.array([i for i, _ in rows])
                    xs = np.array([np.array(eval(t), np.float32) for _, t in rows])
                    order = np.lexsort((ids, l2(xs, q)))[:K]
                    assert [int(i) for i in r.ids] == ids[order].tolist()
                conn.commit()
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                counts[s] += 1

    def writer(stop):
        with vp.connect(module_dsn, autocommit=True) as conn:
            for i in range(N0, N0 + N_NEW):
                if stop.is_set():
                    return
                conn.execute(
                    "INSERT INTO conc (id, embedding) VALUES (%s, %s)", [i, vector_text(vec(i))]
                )

    errors = run_threads(searcher, writer)
    assert not errors, errors[0]
    assert min(counts) >= 2, counts
    n = mconn.execute("SELECT count(*) FROM conc").fetchone()[0]
    assert n == N0 + N_NEW  # no row lost
    codec = vp.load_codec(mconn, "conc_bin")
    # the codes live in the column's code store (catalog 0.4.0)
    (store,) = mconn.execute("SELECT vecext.code_store('conc', %s)::text", [col]).fetchone()
    rows = mconn.execute(
        f"SELECT t.id, s.code::text FROM conc t JOIN {store} s ON s.pk = t.id ORDER BY t.id"
    ).fetchall()
    assert len(rows) == n  # every row has its code
    want = codec.encode(np.stack([vec(i) for i, _ in rows]))
    got = np.packbits(np.array([[c == "1" for c in t] for _, t in rows]), axis=1)
    assert np.array_equal(got, want)  # every code is the encode of its row's vector


def test_duckdb_searchers_with_writers(tmp_path):
    con = vd.connect(str(tmp_path / "conc.duckdb"))
    con.execute(f"CREATE TABLE conc (id INTEGER PRIMARY KEY, embedding FLOAT[{D}])")
    con.executemany("INSERT INTO conc VALUES (?, ?)", [(i, x.tolist()) for i, x in enumerate(X0)])
    vd.train_codec(con, "conc_bin", "conc", "embedding", "binary", metric="l2")
    vd.add_compressed_column(con, "conc", "embedding", "conc_bin")
    counts = [0] * SEARCHERS

    def searcher(stop, s):
        rng = np.random.default_rng(s)
        cur = con.cursor()
        while not stop.is_set():
            q = rng.standard_normal(D).astype(np.float32)
            strategy = "exact" if counts[s] % 2 == 0 else "compressed"
            r = vecext.search(cur, "conc", "embedding", q, K, metric="l2", strategy=strategy)
            check(r.ids, r.distances, q, strategy == "exact")
            counts[s] += 1

    def writer(stop):
        cur = con.cursor()
        for i in range(N0, N0 + N_NEW_DUCK):
            if stop.is_set():
                return
            cur.execute("INSERT INTO conc (id, embedding) VALUES (?, ?)", [i, vec(i).tolist()])

    errors = run_threads(searcher, writer)
    assert not errors, errors[0]
    assert min(counts) >= 2, counts
    assert con.execute("SELECT count(*) FROM conc").fetchone()[0] == N0 + N_NEW_DUCK
    # rows written without refresh are still found: each new row is its own nearest
    for i in (N0, N0 + N_NEW_DUCK // 2, N0 + N_NEW_DUCK - 1):
        r = vecext.search(con, "conc", "embedding", vec(i), K, metric="l2", strategy="compressed")
        assert int(r.ids[0]) == i
    con.close()


def test_postgres_writers_during_backfill(mconn, module_dsn):
    """Three writers insert, update, delete and set vectors to NULL while refresh()
    backfills in small batches: afterwards the code store holds exactly one code per row
    with a vector, each the Python encode of that row's current vector (a concurrent
    write always wins), and none for deleted rows or NULL vectors."""
    n0 = 3000
    x0 = np.stack([vec(i) for i in range(n0)])
    pg_load(mconn, ("bf",), x0)
    vp.train_codec(mconn, "bf_bin", "bf", "embedding", "binary", metric="l2")
    col = vp.add_compressed_column(mconn, "bf", "embedding", "bf_bin", backfill=False)
    errors: list[BaseException] = []
    done = threading.Event()
    during = [0, 0, 0]  # writes made while the backfill ran

    def writer(w: int) -> None:
        rng = np.random.default_rng(100 + w)
        try:
            with vp.connect(module_dsn, autocommit=True) as conn:
                i = 0
                while not done.is_set() or i < 60:
                    r = int(rng.integers(0, n0))
                    op = i % 4
                    if op == 0:
                        conn.execute(
                            "INSERT INTO bf VALUES (%s, %s) ON CONFLICT DO NOTHING",
                            [n0 + 1000 * w + i, vector_text(vec(n0 + 1000 * w + i))],
                        )
                    elif op == 1:
                        conn.execute(
                            "UPDATE bf SET embedding = %s WHERE id = %s",
                            [vector_text(vec(r + 7)), r],
                        )
                    elif op == 2:
                        conn.execute("DELETE FROM bf WHERE id = %s", [r])
                    else:
                        conn.execute("UPDATE bf SET embedding = NULL WHERE id = %s", [r])
                    i += 1
                    during[w] += not done.is_set()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    try:
        with vp.connect(module_dsn, autocommit=True) as conn:
            vp.refresh(conn, "bf", col, batch_size=97, progress=False)
    finally:
        done.set()
        for t in threads:
            t.join(60)
    assert not errors, errors[0]
    assert min(during) >= 5, during
    assert vp.stale_rows(mconn, "bf", col) == 0
    (store,) = mconn.execute("SELECT vecext.code_store('bf', %s)::text", [col]).fetchone()
    rows = mconn.execute("SELECT id, embedding::text FROM bf ORDER BY id").fetchall()
    codes = dict(mconn.execute(f"SELECT pk, code::text FROM {store}").fetchall())
    with_vector = {i: t for i, t in rows if t is not None}
    assert set(codes) == set(with_vector)  # no code for deleted rows or NULL vectors
    ids = sorted(with_vector)
    xs = np.stack([np.array(eval(with_vector[i]), np.float32) for i in ids])
    want = vp.load_codec(mconn, "bf_bin").encode(xs)
    got = np.packbits(np.array([[c == "1" for c in codes[i]] for i in ids]), axis=1)
    assert np.array_equal(got, want)
