"""SQL codec functions against the Python core, FAISS and numpy brute force.

Every codec kind and metric: codes from ``vecext.encode`` equal ``codec.encode``;
per-codec and generic distances equal ``codec.distances`` and FAISS' search
distances (IndexPQ, IndexBinaryFlat, IndexScalarQuantizer) within 1e-4 relative;
decode equals ``codec.decode`` and FAISS reconstruction.
"""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from psycopg import sql

from tests.postgres.conftest import clustered, fetch_codes, vector_text
from vecext.codecs import make_codec
from vecext.postgres import save_codec

D = 32
CODECS = {
    "pq_l2": ("pq", "l2", {"m": 8}),
    "pq_ip": ("pq", "ip", {"m": 8}),
    "pq_cos_opq": ("pq", "cosine", {"m": 8, "opq": True, "opq_niter": 5}),
    "pq_l2_pca": ("pq", "l2", {"m": 4, "pretransform": "pca:16"}),
    "bin_l2": ("binary", "l2", {}),
    "bin_cos_pca": ("binary", "cosine", {"pretransform": "pca:16"}),
    "rbq_l2": ("rbq", "l2", {"bits": 2}),
    "rbq_ip": ("rbq", "ip", {"bits": 3}),
    "rbq_cos": ("rbq", "cosine", {"bits": 2}),
    "i8_l2": ("int8", "l2", {}),
    "i8_ip_mat": ("int8", "ip", {"pretransform": "matryoshka:16"}),
    "i8_cos": ("int8", "cosine", {"clip": 0.01}),
    "half_l2": ("half", "l2", {}),
    "half_ip": ("half", "ip", {}),
    "half_cos_pca": ("half", "cosine", {"pretransform": "pca:16"}),
}


def close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-4) -> None:
    """Relative agreement; the absolute floor (1e-5 of the largest value) covers
    distances near 0, where the core's ||q||^2 - 2<q,x> + ||x||^2 cancels."""
    want = np.asarray(want, np.float64)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-5 * max(np.abs(want).max(), 1e-30))


@pytest.fixture(scope="module")
def data():
    xt = clustered(1000, D, seed=1)
    xb = clustered(120, D, seed=2)
    xq = clustered(4, D, seed=3)
    return xt, xb, xq


@pytest.fixture(scope="module")
def db(mconn, data):
    """Codecs saved, the database vectors in table ``xb``, and each codec's Python
    codes in ``codes_<name>`` (as the codec's column type)."""
    xt, xb, _ = data
    conn = mconn
    conn.execute(f"CREATE TABLE xb (id int PRIMARY KEY, v vector({D}))")
    with conn.cursor().copy("COPY xb FROM STDIN") as copy:
        for i, row in enumerate(xb):
            copy.write_row((i, vector_text(row)))
    codecs = {}
    for name, (kind, metric, params) in CODECS.items():
        codec = (
            make_codec(kind, D, metric, niter=10, **params)
            if kind == "pq"
            else make_codec(kind, D, metric, **params)
        )
        codec.train(xt)
        save_codec(conn, name, codec)
        codes = codec.encode(xb)
        t = sql.Identifier(f"codes_{name}")
        if kind == "binary":
            col, vals = (
                f"bit({codec.d_inner})",
                ["".join(map(str, np.unpackbits(c, count=codec.d_inner))) for c in codes],
            )
        elif kind == "half":
            col = f"halfvec({codec.d_inner})"
            vals = [vector_text(c.view("<f2").astype(np.float32)) for c in codes]
        else:
            col, vals = "bytea", [c.tobytes() for c in codes]
        conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, c {})").format(t, sql.SQL(col)))
        with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(t)) as copy:
            for i, v in enumerate(vals):
                copy.write_row((i, v))
        codecs[name] = (codec, codes)
    return conn, codecs


def inner(codec, x: np.ndarray) -> np.ndarray:
    """What the quantiser sees: normalised (cosine), pretransformed, OPQ-rotated."""
    x = np.asarray(x, np.float32)
    if codec.metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    if codec.pretransform is not None:
        x = codec.pretransform.apply(x)
    if getattr(codec, "rotation", None) is not None:
        x = x @ codec.rotation.T
    return np.ascontiguousarray(x, np.float32)


def sql_distances(conn, name: str, codec, xq: np.ndarray) -> np.ndarray:
    """(nq, n) distances from the per-codec SQL function over ``codes_<name>``."""
    f = sql.Identifier("vecext", f"{name}_distance")
    t = sql.Identifier(f"codes_{name}")
    out = []
    for q in xq:
        if codec.kind == "pq":
            lut = sql.Identifier("vecext", f"{name}_lut")
            query = sql.SQL(
                "WITH q AS MATERIALIZED (SELECT {}(%s::vector) AS lut) "
                "SELECT {}(c.c, q.lut) FROM {} c, q ORDER BY c.id"
            ).format(lut, f, t)
        elif codec.kind == "binary":
            enc = sql.Identifier("vecext", f"{name}_encode")
            query = sql.SQL("SELECT {}(c.c, {}(%s::vector)) FROM {} c ORDER BY c.id").format(
                f, enc, t
            )
        else:
            query = sql.SQL("SELECT {}(c.c, %s::vector) FROM {} c ORDER BY c.id").format(f, t)
        out.append([r[0] for r in conn.execute(query, [vector_text(q)]).fetchall()])
    return np.array(out, dtype=np.float64)


@pytest.mark.parametrize("name", list(CODECS))
def test_sql_encode_equals_python(db, name):
    conn, codecs = db
    codec, codes = codecs[name]
    got = fetch_codes(conn, "SELECT vecext.encode(%s, v) FROM xb ORDER BY id", [name])
    same = (got == codes).all(axis=1)
    if codec.pretransform is None:
        assert same.all(), f"{(~same).sum()} rows differ"
    else:
        # a PCA projection summed in another order can move a value across a rounding
        # boundary (float16 / a sign): allow a few rows, whose decodes must agree
        assert same.mean() >= 0.95
        np.testing.assert_allclose(codec.decode(got), codec.decode(codes), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("name", list(CODECS))
def test_sql_distances_equal_python(db, data, name):
    conn, codecs = db
    codec, codes = codecs[name]
    xq = data[2]
    want = codec.distances(xq, codes)
    close(sql_distances(conn, name, codec, xq), want)
    # the generic function, on a few codes
    generic = [
        [
            conn.execute(
                "SELECT vecext.distance(%s, %s::vector, %s)", [name, vector_text(q), c.tobytes()]
            ).fetchone()[0]
            for c in codes[:10]
        ]
        for q in xq[:2]
    ]
    close(np.array(generic), want[:2, :10])


@pytest.mark.parametrize("name", list(CODECS))
def test_sql_decode_equals_python(db, name):
    conn, codecs = db
    codec, codes = codecs[name]
    want = codec.decode(codes[:20])
    got = np.array(
        [
            conn.execute("SELECT vecext.decode(%s, %s)", [name, c.tobytes()])
            .fetchone()[0]
            .to_numpy()
            for c in codes[:20]
        ]
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    # the per-codec function on the column type
    f = sql.Identifier("vecext", f"{name}_decode")
    rows = conn.execute(
        sql.SQL("SELECT {}(c) FROM {} WHERE id < 20 ORDER BY id").format(
            f, sql.Identifier(f"codes_{name}")
        )
    ).fetchall()
    np.testing.assert_allclose(
        np.array([r[0].to_numpy() for r in rows]), want, rtol=1e-5, atol=1e-5 * np.abs(want).max()
    )


@pytest.mark.parametrize("name", [n for n in CODECS if n.startswith("pq")])
def test_pq_against_faiss_indexpq(db, data, name):
    """FAISS IndexPQ with the same centroids, on the quantiser's view of the data:
    same codes, same ADC distances for its top-k, same reconstruction."""
    conn, codecs = db
    codec, codes = codecs[name]
    _, xb, xq = data
    metric = faiss.METRIC_L2 if codec.inner_metric == "l2" else faiss.METRIC_INNER_PRODUCT
    index = faiss.IndexPQ(codec.d_inner, codec.m, 8, metric)
    faiss.copy_array_to_vector(codec.centroids.ravel(), index.pq.centroids)
    index.is_trained = True
    index.add(inner(codec, xb))
    assert (faiss.vector_to_array(index.codes).reshape(-1, codec.m) == codes).mean() >= 0.995
    Df, If = index.search(inner(codec, xq), 10)
    if codec.inner_metric != "l2":
        Df = -Df + codec.distance_offset  # similarity -> vecext distance
    got = sql_distances(conn, name, codec, xq)
    close(np.take_along_axis(got, If, axis=1), Df)
    # the lookup tables themselves
    lut = np.array(
        [
            conn.execute("SELECT vecext.pq_lut(%s, %s::vector)", [name, vector_text(q)]).fetchone()[
                0
            ]
            for q in xq
        ]
    )
    close(lut, codec.distance_table(xq).reshape(len(xq), -1))
    # reconstruction, in the quantiser's space (FAISS) and the input space (core)
    if codec.pretransform is None and codec.rotation is None:
        rec = np.array(
            [
                conn.execute("SELECT vecext.decode(%s, %s)", [name, c.tobytes()])
                .fetchone()[0]
                .to_numpy()
                for c in codes[:10]
            ]
        )
        np.testing.assert_array_equal(rec, index.reconstruct_n(0, 10))


@pytest.mark.parametrize("name", ["bin_l2", "bin_cos_pca"])
def test_binary_against_faiss_indexbinaryflat(db, data, name):
    conn, codecs = db
    codec, codes = codecs[name]
    xq = data[2]
    index = faiss.IndexBinaryFlat(codec.code_size * 8)
    index.add(codes)
    Df, If = index.search(codec.encode(xq), 10)
    got = sql_distances(conn, name, codec, xq)
    np.testing.assert_array_equal(np.take_along_axis(got, If, axis=1), Df)


@pytest.mark.parametrize(
    "name, qtype",
    [("i8_l2", "QT_8bit"), ("half_l2", "QT_fp16"), ("half_ip", "QT_fp16")],
)
def test_scalar_against_faiss_scalarquantizer(db, data, name, qtype):
    conn, codecs = db
    codec, codes = codecs[name]
    _, xb, xq = data
    metric = faiss.METRIC_L2 if codec.metric == "l2" else faiss.METRIC_INNER_PRODUCT
    index = faiss.IndexScalarQuantizer(D, getattr(faiss.ScalarQuantizer, qtype), metric)
    if qtype == "QT_8bit":
        faiss.copy_array_to_vector(np.concatenate([codec.vmin, codec.vdiff]), index.sq.trained)
        index.is_trained = True
    else:
        index.train(xb)
    index.add(xb)
    Df, If = index.search(xq, 10)
    if metric == faiss.METRIC_INNER_PRODUCT:
        Df = -Df
    got = sql_distances(conn, name, codec, xq)
    close(np.take_along_axis(got, If, axis=1), Df)
    f = sql.Identifier("vecext", f"{name}_decode")
    rec = conn.execute(
        sql.SQL("SELECT {}(c) FROM {} WHERE id < 10 ORDER BY id").format(
            f, sql.Identifier(f"codes_{name}")
        )
    ).fetchall()
    # QT_8bit decodes bit for bit; FAISS' own fp16 encoder may round a value to the
    # neighbouring half (SQL equals the core's numpy rounding exactly, see above)
    tol = 1e-6 if qtype == "QT_8bit" else 2.0**-10
    np.testing.assert_allclose(
        np.array([r[0].to_numpy() for r in rec]), index.reconstruct_n(0, 10), rtol=tol, atol=1e-6
    )


def test_rbq_distances_are_exact_on_decoded_vectors(db, data):
    """rbq estimates are metric values on the decoded vectors: numpy brute force."""
    conn, codecs = db
    xq = data[2]
    for name in ("rbq_l2", "rbq_ip"):
        codec, codes = codecs[name]
        xr = codec.decode(codes).astype(np.float64)
        q = xq.astype(np.float64)
        if codec.metric == "l2":
            want = ((q[:, None, :] - xr[None]) ** 2).sum(-1)
        else:
            want = -(q @ xr.T)
        close(sql_distances(conn, name, codec, xq), want)


def test_function_properties_and_pq_distance_inlines(db):
    """IMMUTABLE / PARALLEL SAFE / STRICT, and the planner inlines the PQ lookup sum."""
    conn, _ = db
    rows = conn.execute(
        """SELECT proname, provolatile, proparallel, proisstrict FROM pg_proc
           WHERE pronamespace = 'vecext'::regnamespace AND proname = ANY(%s)""",
        [[f"pq_l2_{s}" for s in ("encode", "decode", "distance", "lut", "prepare")]],
    ).fetchall()
    assert {r[0] for r in rows} == {
        f"pq_l2_{s}" for s in ("encode", "decode", "distance", "lut", "prepare")
    }
    assert all(r[1:] == ("i", "s", True) for r in rows)
    plan = conn.execute(
        "EXPLAIN VERBOSE WITH q AS MATERIALIZED (SELECT vecext.pq_l2_lut(v) AS lut FROM xb WHERE id = 0) "
        "SELECT c.id FROM codes_pq_l2 c, q ORDER BY vecext.pq_l2_distance(c.c, q.lut) LIMIT 3"
    ).fetchall()
    text = "\n".join(r[0] for r in plan)
    assert "get_byte(c.c, 7)" in text and "pq_l2_distance" not in text


def test_functions_work_with_vecext_first_on_the_search_path(db):
    """vecext.encode / decode must not capture the built-in encode / decode."""
    conn, codecs = db
    conn.execute("SET search_path = vecext, public")
    try:
        for name in ("pq_l2", "i8_l2", "rbq_l2", "half_l2", "bin_l2"):
            codec, codes = codecs[name]
            got = fetch_codes(
                conn, "SELECT encode(%s, v) FROM public.xb WHERE id < 5 ORDER BY id", [name]
            )
            np.testing.assert_array_equal(got, codes[:5])
            back = conn.execute("SELECT decode(%s, %s)", [name, codes[0].tobytes()]).fetchone()[0]
            np.testing.assert_allclose(back.to_numpy(), codec.decode(codes[:1])[0], rtol=1e-6)
        assert conn.execute("SELECT pg_catalog.encode('\\x01'::bytea, 'hex')").fetchone()[0] == "01"
    finally:
        conn.execute("RESET search_path")


@pytest.mark.parametrize("name", list(CODECS))
def test_codec_group_equals_the_0_1_0_names(db, data, name):
    """Catalog 0.3.0's vecext.codec_* give what the 0.1.0 names (now aliases) give, with
    the codes before the query in codec_distance, as in vecext.<codec>_distance."""
    conn, codecs = db
    codec, codes = codecs[name]
    q, c = vector_text(data[2][0]), codes[0].tobytes()
    row = conn.execute(
        """SELECT vecext.codec_encode(%(n)s, %(q)s::vector) = vecext.encode(%(n)s, %(q)s::vector),
                  vecext.codec_decode(%(n)s, %(c)s) = vecext.decode(%(n)s, %(c)s),
                  vecext.codec_distance(%(n)s, %(c)s, %(q)s::vector),
                  vecext.distance(%(n)s, %(q)s::vector, %(c)s)""",
        {"n": name, "q": q, "c": c},
    ).fetchone()
    assert row[:2] == (True, True) and row[2] == row[3]
    close(np.array([row[2]]), codec.distances(data[2][:1], codes[:1])[0])
    if codec.kind == "pq":
        luts = conn.execute(
            "SELECT vecext.codec_lut(%(n)s, %(q)s::vector) = vecext.pq_lut(%(n)s, %(q)s::vector)",
            {"n": name, "q": q},
        ).fetchone()
        assert luts == (True,)
