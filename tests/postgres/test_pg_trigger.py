"""Codes written by the code-store trigger (INSERT, UPDATE of the source, COPY)
equal the codes the Python core computes, for every codec kind."""

from __future__ import annotations

import numpy as np
import pytest
from psycopg import sql

from tests.postgres.conftest import clustered, store_codes, store_of, vector_text
from vecext.codecs import make_codec
from vecext.postgres import add_compressed_column, save_codec

D = 64


@pytest.fixture(scope="module")
def setup(mconn):
    conn = mconn
    xt = clustered(1500, D, seed=10)
    codecs = {
        "tr_pq": make_codec("pq", D, "l2", m=16, niter=10).train(xt),
        "tr_pq_cos": make_codec("pq", D, "cosine", m=8, niter=10, pretransform="pca:32").train(xt),
        "tr_bin": make_codec("binary", D, "cosine").train(xt),
        "tr_rbq": make_codec("rbq", D, "l2", bits=2).train(xt),
        "tr_i8": make_codec("int8", D, "l2").train(xt),
        "tr_half": make_codec("half", D, "ip"),
    }
    for name, codec in codecs.items():
        save_codec(conn, name, codec)
    conn.execute(f"CREATE TABLE docs (id int PRIMARY KEY, embedding vector({D}), note text)")
    for name in codecs:
        add_compressed_column(conn, "docs", "embedding", name, f"c_{name}", progress=False)
    return conn, codecs


def codes_of(conn, codec, name: str) -> np.ndarray:
    """The codes of rows id < 1000 as uint8 rows (the bytes of codec.encode)."""
    keys, codes = store_codes(conn, "docs", f"c_{name}", "pk < 1000")
    assert keys == sorted(keys)
    return codes


def assert_codes_match(codec, got: np.ndarray, x: np.ndarray) -> None:
    want = codec.encode(x)
    same = (got == want).all(axis=1)
    if codec.kind != "pq":
        assert same.all(), f"{(~same).sum()} of {len(same)} rows differ"
        return
    # PQ: nearest centroids may tie to float rounding (SQL sums (y - c)^2, FAISS
    # ||c||^2 - 2<y, c>): nearly all identical, and every differing pick as near
    assert (got == want).mean() >= 0.995
    y = (
        codec.pretransform.apply(x / np.linalg.norm(x, axis=1, keepdims=True))
        if codec.pretransform
        else x
    )
    for i, m in zip(*np.nonzero(got != want), strict=True):
        ym = y[i, m * codec.dsub : (m + 1) * codec.dsub]
        da = ((ym - codec.centroids[m, got[i, m]]) ** 2).sum()
        db = ((ym - codec.centroids[m, want[i, m]]) ** 2).sum()
        assert abs(da - db) <= 1e-5 * max(db, 1e-12)


def test_insert_update_and_copy_encode_like_python(setup):
    conn, codecs = setup
    x = clustered(300, D, seed=11)
    # plain INSERTs, one row per statement
    for i in range(100):
        conn.execute(
            "INSERT INTO docs (id, embedding) VALUES (%s, %s::vector)", [i, vector_text(x[i])]
        )
    # COPY fires the AFTER INSERT row trigger as well
    with conn.cursor().copy("COPY docs (id, embedding) FROM STDIN") as copy:
        for i in range(100, 300):
            copy.write_row((i, vector_text(x[i])))
    for name, codec in codecs.items():
        assert_codes_match(codec, codes_of(conn, codec, name), x)

    # UPDATE of the source re-encodes; UPDATE of another column leaves codes alone
    x2 = clustered(50, D, seed=12)
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE docs SET embedding = %s::vector WHERE id = %s",
            [(vector_text(v), i) for i, v in enumerate(x2)],
        )
    before = {n: codes_of(conn, c, n) for n, c in codecs.items()}
    conn.execute("UPDATE docs SET note = 'x'")
    x[:50] = x2
    for name, codec in codecs.items():
        after = codes_of(conn, codec, name)
        np.testing.assert_array_equal(after, before[name])
        assert_codes_match(codec, after, x)

    # NULL source, no code
    conn.execute("INSERT INTO docs (id, embedding) VALUES (1000, NULL)")
    for n in codecs:
        store = store_of(conn, "docs", f"c_{n}")
        q = sql.SQL("SELECT count(*) FROM {} WHERE pk = 1000").format(store)
        assert conn.execute(q).fetchone()[0] == 0


def test_trigger_checks_dimension_through_the_column_type(setup):
    conn, _ = setup
    import psycopg

    with pytest.raises(psycopg.errors.DataException, match="expected 64 dimensions, not 3"):
        conn.execute("INSERT INTO docs (id, embedding) VALUES (2000, '[1,2,3]')")


def test_rbq_trigger_codes_equal_python_bytes_over_many_rows(mconn):
    """The SQL encoder rounds each rbq scale float64 -> real -> half (pgvector's halfvec
    cast); RBQCodec._encode rounds the same way, so the bytes are equal on every row.
    Rounding float64 to half directly (the encoder before) differs from it on about 1
    row in 4000: these rows include such cases."""
    n, d = 12_000, 32
    rng = np.random.default_rng(81)
    x = (rng.standard_normal((n, d)) * rng.uniform(0.1, 3.0, (n, 1))).astype(np.float32)
    codec = make_codec("rbq", d, "l2", bits=2).train(x[:2000])
    # the data reaches the double-rounding cases: direct rounding gives other scales
    r = x - codec.mean
    s64 = np.abs(r).mean(axis=1, dtype=np.float64)
    assert (s64.astype(np.float16) != s64.astype(np.float32).astype(np.float16)).sum() >= 1
    save_codec(mconn, "tr_rbq_many", codec)
    mconn.execute(f"CREATE TABLE rbq_many (id int PRIMARY KEY, embedding vector({d}))")
    add_compressed_column(mconn, "rbq_many", "embedding", "tr_rbq_many", "c", backfill=False)
    with mconn.cursor().copy("COPY rbq_many (id, embedding) FROM STDIN") as copy:
        for i, row in enumerate(x):
            copy.write_row((i, vector_text(row)))
    keys, got = store_codes(mconn, "rbq_many", "c")
    assert keys == list(range(n))
    same = (got == codec.encode(x)).all(axis=1)
    assert same.all(), f"{(~same).sum()} of {n} rows differ: {np.nonzero(~same)[0][:5]}"
