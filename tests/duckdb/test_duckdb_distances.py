"""DuckDB's codec functions, what only DuckDB has: code column layouts (UTINYINT lists,
big-endian UBIGINT words, BLOB), the exact PQ lookup sum, the UDFs' batching paths,
NULLs and errors raised inside UDFs. (Every codec kind and metric against the Python
core, FAISS and numpy on every backend: ``tests/contract/test_sql_functions.py``.)"""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

import vecext.duckdb as vd
from tests.duckdb.conftest import CODEC_SPECS, load_table, qparam
from vecext.codecs import make_codec
from vecext.codecs.binary import hamming
from vecext.duckdb.udfs import paired_distances

NAMES = sorted(CODEC_SPECS)


@pytest.fixture(scope="module")
def db(xb, trained):
    con = vd.connect(vss=False)
    load_table(con, "items", xb)
    for name in NAMES:
        codec = trained[name]
        vd.save_codec(con, name, codec)
        vd.add_compressed_column(con, "items", "embedding", name, f"c_{name}", progress=False)
    yield con
    con.close()


def sql_codes(con: duckdb.DuckDBPyConnection, column: str, codec) -> np.ndarray:
    """A code column as (n, code_size) uint8, converted independently of vecext."""
    rows = [r[0] for r in con.execute(f"SELECT {column} FROM items ORDER BY id").fetchall()]
    if codec.kind == "pq":
        return np.array(rows, dtype=np.uint8)
    if codec.kind == "binary":
        # big-endian 64-bit words, dimension 0 first, zero padding at the end
        b = np.array([[x for w in r for x in int(w).to_bytes(8, "big")] for r in rows], np.uint8)
        assert not b[:, codec.code_size :].any()
        return b[:, : codec.code_size]
    return np.array([list(r) for r in rows], dtype=np.uint8)


def close(got, ref, rtol=1e-4):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * max(1.0, np.abs(ref).max()))


def macro_distances(con, name, codec, q):
    fn = f"vecext.{name}_distance"
    if codec.kind == "pq":
        sql = f"SELECT {fn}(c_{name}, vecext.{name}_lut(?::FLOAT[])) FROM items ORDER BY id"
    elif codec.kind == "binary":
        sql = f"SELECT {fn}(c_{name}, vecext.{name}_encode(?::FLOAT[])) FROM items ORDER BY id"
    else:
        sql = f"SELECT {fn}(c_{name}, ?::FLOAT[]) FROM items ORDER BY id"
    return np.array([r[0] for r in con.execute(sql, [qparam(q)]).fetchall()], np.float32)


@pytest.mark.parametrize("name", NAMES)
def test_codes_and_decode_equal_python(db, xb, trained, name):
    codec = trained[name]
    codes = sql_codes(db, f"c_{name}", codec)
    np.testing.assert_array_equal(codes, codec.encode(xb))
    # per-codec decode of the column, generic decode of generic codes
    dec = db.execute(f"SELECT vecext.{name}_decode(c_{name}) FROM items ORDER BY id").fetchall()
    np.testing.assert_array_equal(np.array([r[0] for r in dec], np.float32), codec.decode(codes))
    gen = db.execute(
        "SELECT vecext.decode(?, vecext.encode(?, embedding)) FROM items ORDER BY id LIMIT 20",
        [name, name],
    ).fetchall()
    np.testing.assert_array_equal(
        np.array([r[0] for r in gen], np.float32), codec.decode(codes[:20])
    )


def test_pq_lookup_sum_is_exact(db, xb, xq, trained):
    """The SQL lookup sum adds the same float32 table entries in the same order."""
    codec = trained["pq_cos"]
    ref = codec.distances(xq[:1], codec.encode(xb))[0]
    got = macro_distances(db, "pq_cos", codec, xq[0])
    np.testing.assert_array_equal(got, ref)
    lut = db.execute("SELECT vecext.pq_lut('pq_cos', ?::FLOAT[])", [qparam(xq[0])]).fetchone()[0]
    np.testing.assert_array_equal(np.array(lut, np.float32), codec.distance_table(xq[:1]).ravel())


def test_binary_word_layout_and_hamming():
    """UBIGINT words are the packbits bytes read big-endian: dimension 0 is the most
    significant bit of word 1; the Hamming macro equals vecext.codecs.binary.hamming."""
    rng = np.random.default_rng(5)
    d = 70  # neither a multiple of 64 nor of 8
    x = rng.standard_normal((300, d)).astype(np.float32)
    codec = make_codec("binary", d).train(x)
    con = vd.connect(vss=False)
    load_table(con, "items", x)
    vd.save_codec(con, "b70", codec)
    vd.add_compressed_column(con, "items", "embedding", "b70", "bits", progress=False)
    assert con.execute("SELECT typeof(bits) FROM items LIMIT 1").fetchone() == ("UBIGINT[2]",)
    words = np.array(
        [r[0] for r in con.execute("SELECT bits FROM items ORDER BY id").fetchall()], np.uint64
    )
    codes = codec.encode(x)
    bits = np.unpackbits(codes, axis=1, bitorder="big")[:, :d]
    np.testing.assert_array_equal(words[:, 0] >> np.uint64(63), bits[:, 0])
    np.testing.assert_array_equal(words[:, 1] >> np.uint64(63), bits[:, 64])
    np.testing.assert_array_equal(words[:, 1] & np.uint64((1 << 58) - 1), 0)  # padding
    got = con.execute(
        "SELECT a.id, b.id, vecext.b70_distance(a.bits, b.bits) FROM items a, items b "
        "WHERE a.id < 20 AND b.id < 40 ORDER BY 1, 2"
    ).fetchall()
    H = np.array([r[2] for r in got], np.float32).reshape(20, 40)
    np.testing.assert_array_equal(H, hamming(codes[:20], codes[:40]))
    con.close()


@pytest.mark.parametrize(
    "name", ["pq_l2", "opq_l2", "bin_l2", "rbq_l2", "rbq_cos", "int8_ip", "half_cos"]
)
def test_paired_distances_every_path(xb, trained, name):
    """One query, a few distinct queries, and many: the same values as distances()."""
    codec = trained[name]
    rng = np.random.default_rng(3)
    codes = codec.encode(xb[:300])
    full = codec.distances(xb[:40], codes)
    for nq in (1, 5, 40):  # constant, grouped, row-wise
        qi = rng.integers(0, nq, 300)
        got = paired_distances(codec, xb[:40][qi], codes)
        close(got, full[qi, np.arange(300)])


def test_cross_join_with_distinct_queries(db, xb, trained):
    """Per-row queries (a join), so one UDF call sees many distinct queries."""
    db.execute(
        "CREATE OR REPLACE TABLE queries AS SELECT id AS qid, embedding AS v FROM items WHERE id < 20"
    )
    for name in ("pq_l2", "rbq_ip", "half_cos", "bin_cos"):
        codec = trained[name]
        rows = db.execute(
            "SELECT q.qid, i.id, vecext.distance(?, q.v, vecext.encode(?, i.embedding)) "
            "FROM queries q, items i WHERE i.id < 50 ORDER BY 1, 2",
            [name, name],
        ).fetchall()
        got = np.array([r[2] for r in rows], np.float32).reshape(20, 50)
        close(got, codec.distances(xb[:20], codec.encode(xb[:50])))


def test_nulls_give_null(db):
    assert db.execute("SELECT vecext.encode('pq_l2', NULL)").fetchone() == (None,)
    assert db.execute("SELECT vecext.pq_l2_encode(NULL)").fetchone() == (None,)
    assert db.execute("SELECT vecext.half_l2_decode(NULL)").fetchone() == (None,)
    row = db.execute(
        "SELECT vecext.distance('half_l2', embedding, NULL), "
        "vecext.pq_l2_distance(NULL, vecext.pq_l2_lut(embedding)) FROM items WHERE id = 3"
    ).fetchone()
    assert row == (None, None)
    # NULL rows among others keep their place
    got = db.execute(
        "SELECT vecext.encode('int8_l2', CASE WHEN id % 3 = 0 THEN NULL ELSE embedding::FLOAT[] END) "
        "FROM items WHERE id < 9 ORDER BY id"
    ).fetchall()
    assert [r[0] is None for r in got] == [i % 3 == 0 for i in range(9)]


def test_sql_errors_are_clear(db, xb):
    q = qparam(xb[0])
    with pytest.raises(duckdb.Error, match="dimension 3, expected 32"):
        db.execute("SELECT vecext.encode('pq_l2', [1, 2, 3])")
    with pytest.raises(duckdb.Error, match="NaN or infinite"):
        db.execute("SELECT vecext.half_l2_encode(?::FLOAT[])", [[float("nan")] + q[1:]])
    with pytest.raises(duckdb.Error, match="unknown codec 'nope'"):
        db.execute("SELECT vecext.encode('nope', ?::FLOAT[])", [q])
    with pytest.raises(duckdb.Error, match="lookup tables exist for pq codecs only"):
        db.execute("SELECT vecext.pq_lut('half_l2', ?::FLOAT[])", [q])
    with pytest.raises(duckdb.Error, match="8 bytes wide, expected 32"):
        # PQ codes given to an int8 codec: codes of another codec
        db.execute("SELECT vecext.decode('int8_l2', vecext.encode('pq_l2', ?::FLOAT[]))", [q])
