"""DuckDB encode / decode / distance functions against the Python core, FAISS and numpy."""

from __future__ import annotations

import duckdb
import faiss
import numpy as np
import pytest

import vecext.duckdb as vd
from tests.duckdb.conftest import CODEC_SPECS, D, load_table, qparam
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


@pytest.mark.parametrize("name", NAMES)
def test_distances_equal_python(db, xb, xq, trained, name):
    codec = trained[name]
    ref = codec.distances(xq, codec.encode(xb))
    for i, q in enumerate(xq):
        close(macro_distances(db, name, codec, q), ref[i])
        gen = db.execute(
            "SELECT vecext.distance(?, ?::FLOAT[], vecext.encode(?, embedding)) "
            "FROM items ORDER BY id",
            [name, qparam(q), name],
        ).fetchall()
        close([r[0] for r in gen], ref[i])


def test_pq_lookup_sum_is_exact(db, xb, xq, trained):
    """The SQL lookup sum adds the same float32 table entries in the same order."""
    codec = trained["pq_cos"]
    ref = codec.distances(xq[:1], codec.encode(xb))[0]
    got = macro_distances(db, "pq_cos", codec, xq[0])
    np.testing.assert_array_equal(got, ref)
    lut = db.execute("SELECT vecext.pq_lut('pq_cos', ?::FLOAT[])", [qparam(xq[0])]).fetchone()[0]
    np.testing.assert_array_equal(np.array(lut, np.float32), codec.distance_table(xq[:1]).ravel())


def _faiss_pretransform(codec, index):
    """Wrap a FAISS index with the codec's OPQ rotation / PCA as a LinearTransform."""
    if codec.rotation is not None:  # y = rotation @ x
        lt = faiss.LinearTransform(codec.d, codec.d, False)
        faiss.copy_array_to_vector(codec.rotation.ravel(), lt.A)
    elif codec.pretransform is not None:  # y = P (x - mean) = P x - P mean
        pt = codec.pretransform
        lt = faiss.LinearTransform(codec.d, pt.d_out, True)
        faiss.copy_array_to_vector(pt.projection.ravel(), lt.A)
        faiss.copy_array_to_vector((-(pt.projection @ pt.mean)).astype(np.float32), lt.b)
    else:
        return index
    lt.is_trained = True
    lt.set_is_orthonormal()
    out = faiss.IndexPreTransform(lt, index)
    out.own_fields = False
    return out


@pytest.mark.parametrize("name", ["pq_l2", "pq_ip", "pq_cos", "opq_l2", "pq_pca", "pq_pca_ip"])
def test_pq_agrees_with_faiss_indexpq(db, xb, xq, trained, name):
    codec = trained[name]
    ip = codec.metric != "l2"
    pq_index = faiss.IndexPQ(
        codec.d_inner, codec.m, 8, faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2
    )
    faiss.copy_array_to_vector(codec.centroids.ravel(), pq_index.pq.centroids)
    pq_index.is_trained = True
    index = _faiss_pretransform(codec, pq_index)
    xb_in, xq_in = xb.copy(), xq.copy()
    if codec.metric == "cosine":
        faiss.normalize_L2(xb_in)
        faiss.normalize_L2(xq_in)
    index.add(xb_in)
    codes = faiss.vector_to_array(pq_index.codes).reshape(len(xb), codec.m)
    np.testing.assert_array_equal(sql_codes(db, f"c_{name}", codec), codes)
    Df, If = index.search(xq_in, 10)
    for i, q in enumerate(xq):
        got = macro_distances(db, name, codec, q)[If[i]]
        # FAISS: squared L2, or the inner product (larger = closer)
        want = (
            Df[i] if codec.metric == "l2" else (1 - Df[i] if codec.metric == "cosine" else -Df[i])
        )
        close(got, want)
    if codec.pretransform is None:
        # FAISS reconstruction (IndexPreTransform reverses the rotation); for PCA FAISS'
        # reverse A^T (y - b) differs from the PCA inverse y P + mean, so it is skipped
        dec = db.execute(f"SELECT vecext.{name}_decode(c_{name}) FROM items ORDER BY id").fetchall()
        close(np.array([r[0] for r in dec], np.float32), index.reconstruct_n(0, len(xb)), 1e-5)


@pytest.mark.parametrize("name", ["bin_l2", "bin_cos"])
def test_binary_agrees_with_faiss_indexbinaryflat(db, xb, xq, trained, name):
    codec = trained[name]
    codes = codec.encode(xb)
    index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    index.add(codes)
    Df, If = index.search(codec.encode(xq), 10)
    for i, q in enumerate(xq):
        got = macro_distances(db, name, codec, q)
        np.testing.assert_array_equal(got[If[i]], Df[i].astype(np.float32))


@pytest.mark.parametrize(
    "name, qtype", [("int8_l2", "QT_8bit"), ("int8_ip", "QT_8bit"), ("half_l2", "QT_fp16")]
)
def test_scalar_agrees_with_faiss_scalarquantizer(db, xb, xq, trained, name, qtype):
    codec = trained[name]
    metric = faiss.METRIC_L2 if codec.metric == "l2" else faiss.METRIC_INNER_PRODUCT
    index = faiss.IndexScalarQuantizer(D, getattr(faiss.ScalarQuantizer, qtype), metric)
    if codec.kind == "int8":
        faiss.copy_array_to_vector(np.concatenate([codec.vmin, codec.vdiff]), index.sq.trained)
    index.is_trained = True
    codes = sql_codes(db, f"c_{name}", codec)
    if codec.kind == "int8":
        np.testing.assert_array_equal(codes, index.sa_encode(xb))
    # (FAISS' own float16 rounding differs from IEEE round-to-nearest in ~0.02% of the
    # values by one unit; the codes are compared with the Python core elsewhere)
    index.add_sa_codes(codes)
    dec = db.execute(f"SELECT vecext.{name}_decode(c_{name}) FROM items ORDER BY id").fetchall()
    close(np.array([r[0] for r in dec], np.float32), index.reconstruct_n(0, len(xb)), 1e-6)
    Df, If = index.search(xq, 10)
    for i, q in enumerate(xq):
        got = macro_distances(db, name, codec, q)[If[i]]
        close(got, Df[i] if codec.metric == "l2" else -Df[i])


@pytest.mark.parametrize("name", ["rbq_l2", "rbq_ip", "rbq_cos", "half_cos", "half_mat"])
def test_decoded_metric_brute_force(db, xb, xq, trained, name):
    """rbq / half distances are the metric to the decoded vector (numpy brute force)."""
    codec = trained[name]
    xhat = codec.decode(codec.encode(xb)).astype(np.float64)
    for q in xq:
        q = q.astype(np.float64)
        if codec.metric == "l2":
            want = ((xhat - q) ** 2).sum(1)
        elif codec.metric == "ip":
            want = -(xhat @ q)
        else:
            want = 1 - xhat @ (q / np.linalg.norm(q))
        if codec.pretransform is not None:  # Matryoshka: the renormalised prefix
            k = codec.pretransform.d_out
            qk = q[:k] / np.linalg.norm(q[:k])
            want = 1 - xhat[:, :k] @ qk
        close(macro_distances(db, name, codec, q), want)


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


@pytest.mark.parametrize("name", NAMES)
def test_codec_group_equals_the_0_1_0_names(db, xb, xq, trained, name):
    """Catalog 0.3.0's vecext.codec_* give what the 0.1.0 names (now aliases) give, with
    the codes before the query in codec_distance, as in vecext.<codec>_distance."""
    codec = trained[name]
    q = qparam(xq[0])
    rows = db.execute(
        "SELECT vecext.codec_encode($n, embedding) = vecext.encode($n, embedding), "
        "vecext.codec_decode($n, vecext.codec_encode($n, embedding)) "
        "  = vecext.decode($n, vecext.encode($n, embedding)), "
        "vecext.codec_distance($n, vecext.codec_encode($n, embedding), $q::FLOAT[]), "
        "vecext.distance($n, $q::FLOAT[], vecext.encode($n, embedding)) "
        "FROM items ORDER BY id LIMIT 20",
        {"n": name, "q": q},
    ).fetchall()
    assert all(r[0] and r[1] and r[2] == r[3] for r in rows)
    close([r[2] for r in rows], codec.distances(xq[:1], codec.encode(xb[:20]))[0])
    if codec.kind == "pq":
        (same,) = db.execute(
            "SELECT vecext.codec_lut($n, $q::FLOAT[]) = vecext.pq_lut($n, $q::FLOAT[])",
            {"n": name, "q": q},
        ).fetchone()
        assert same
