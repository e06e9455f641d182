"""The SQL codec functions on every backend against the Python core, FAISS and numpy.

For every codec kind and metric: codes from ``vecext.codec_encode`` equal
``codec.encode``; ``vecext.codec_decode`` equals ``codec.decode``; the per-codec
``vecext.<codec>_distance(codes, <query side>)`` and the generic
``vecext.codec_distance(codec, codes, q)`` equal ``codec.distances`` and FAISS' search
distances (IndexPQ, IndexBinaryFlat, IndexScalarQuantizer); the 0.1.0 names give the
same. The SQL is the same text on both databases: only the vector parameter's cast
differs (what the codes are stored as is each backend's own business).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import faiss
import numpy as np
import pytest

from tests.conftest import clustered
from tests.contract.conftest import Fresh, floats
from vecext.codecs import Codec, make_codec
from vecext.codecs.kinds import codec_kind

D = 32
CODECS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "pq_l2": ("pq", "l2", {"m": 8}),
    "pq_ip": ("pq", "ip", {"m": 8}),
    "pq_cos": ("pq", "cosine", {"m": 8}),
    "pq_cos_opq": ("pq", "cosine", {"m": 8, "opq": True, "opq_niter": 5}),
    "pq_l2_pca": ("pq", "l2", {"m": 4, "pretransform": "pca:16"}),
    "pq_ip_pca": ("pq", "ip", {"m": 4, "pretransform": "pca:16"}),
    "bin_l2": ("binary", "l2", {}),
    "bin_cos": ("binary", "cosine", {}),
    "bin_cos_pca": ("binary", "cosine", {"pretransform": "pca:16"}),
    "bin_l2_exp": ("binary", "l2", {"pretransform": "expand:64"}),
    "bin_cos_exp": ("binary", "cosine", {"pretransform": "expand:80"}),
    "rbq_l2": ("rbq", "l2", {"bits": 2}),
    "rbq_ip": ("rbq", "ip", {"bits": 3}),
    "rbq_cos": ("rbq", "cosine", {"bits": 2}),
    "i8_l2": ("int8", "l2", {}),
    "i8_ip": ("int8", "ip", {}),
    "i8_ip_mat": ("int8", "ip", {"pretransform": "matryoshka:16"}),
    "i8_cos": ("int8", "cosine", {"clip": 0.01}),
    "half_l2": ("half", "l2", {}),
    "half_ip": ("half", "ip", {}),
    "half_cos_pca": ("half", "cosine", {"pretransform": "pca:16"}),
    "half_mat": ("half", "cosine", {"pretransform": "matryoshka:16"}),
}
NAMES = list(CODECS)


class Env:
    """One backend's database with every codec of :data:`CODECS` saved and the vectors
    ``xb`` in table ``xb (id, embedding)``."""

    def __init__(self, db: Fresh) -> None:
        self.db = db
        self.xt = clustered(1000, D, seed=1)
        self.xb = clustered(120, D, seed=2)
        self.xq = clustered(4, D, seed=3)
        self.codecs: dict[str, Codec] = {}
        db.load_table("xb", self.xb)
        for name, (kind, metric, params) in CODECS.items():
            extra = {"niter": 10} if kind == "pq" else {}
            codec = make_codec(kind, D, metric, **extra, **params).train(self.xt)
            db.api.save_codec(db.conn, name, codec)
            self.codecs[name] = codec

    def q(self, q: np.ndarray) -> tuple[str, Any]:
        return self.db.vector_param(q)

    def codes(self, name: str) -> np.ndarray:
        """``vecext.codec_encode`` of every row, as (n, code_size) uint8."""
        rows = self.db.sql("SELECT vecext.codec_encode(?, embedding) FROM xb ORDER BY id", [name])
        return np.array([np.frombuffer(bytes(r[0]), np.uint8) for r in rows])

    def decoded(self, name: str) -> np.ndarray:
        rows = self.db.sql(
            "SELECT vecext.codec_decode(?, vecext.codec_encode(?, embedding)) FROM xb ORDER BY id",
            [name, name],
        )
        return np.array([floats(r[0]) for r in rows], np.float32)

    def distances(self, name: str, xq: np.ndarray) -> np.ndarray:
        """(nq, n) from the per-codec function, its query side as its kind says (a lookup
        table or the query's codes made once per query, or the vector itself)."""
        side = codec_kind(self.codecs[name]).query_argument
        out = []
        for q in xq:
            cast, value = self.q(q)
            made = {"lut": f"vecext.{name}_lut({cast})", "codes": f"vecext.{name}_encode({cast})"}
            query = (
                f"WITH q AS (SELECT {made.get(side, cast)} AS arg) "
                f"SELECT vecext.{name}_distance(vecext.{name}_encode(xb.embedding), q.arg) "
                "FROM xb, q ORDER BY xb.id"
            )
            out.append([r[0] for r in self.db.sql(query, [value])])
        return np.array(out, dtype=np.float64)

    def generic_distances(self, name: str, xq: np.ndarray) -> np.ndarray:
        out = []
        for q in xq:
            cast, value = self.q(q)
            rows = self.db.sql(
                "SELECT vecext.codec_distance(?, vecext.codec_encode(?, embedding), "
                f"{cast}) FROM xb ORDER BY id",
                [name, name, value],
            )
            out.append([r[0] for r in rows])
        return np.array(out, dtype=np.float64)


@pytest.fixture(scope="module", params=["postgres", "duckdb"])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    """Each backend's database, made once per module (training is the slow part)."""
    import vecext.postgres as vp
    from tests.conftest import _create_db, _drop_db, with_dbname
    from tests.postgres.search_data import vector_text

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        if request.param == "postgres":
            server = request.getfixturevalue("pg_server_dsn")
            dbname = _create_db(server, request.getfixturevalue("pg_template"))
            conn = vp.connect(with_dbname(server, dbname), autocommit=True)
            vp.install(conn)
            db = Fresh(
                "postgres", conn, vp, None, lambda v: ("?::vector", vector_text(v)), "public"
            )
            try:
                yield Env(db)
            finally:
                conn.close()
                _drop_db(server, dbname)
        else:
            import vecext.duckdb as vd

            con = vd.connect(vss=False)
            db = Fresh(
                "duckdb", con, vd, None, lambda v: ("?::FLOAT[]", [float(x) for x in v]), "main"
            )
            try:
                yield Env(db)
            finally:
                con.close()
    finally:
        faiss.omp_set_num_threads(before)


def close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-4) -> None:
    """Relative agreement; the absolute floor (1e-5 of the largest value) covers
    distances near 0, where ||q||^2 - 2<q,x> + ||x||^2 cancels."""
    want = np.asarray(want, np.float64)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-5 * max(np.abs(want).max(), 1e-30))


def inner(codec: Codec, x: np.ndarray) -> np.ndarray:
    """What the quantiser sees: normalised (cosine), pretransformed, OPQ-rotated."""
    x = np.asarray(x, np.float32)
    if codec.metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    if codec.pretransform is not None:
        x = codec.pretransform.apply(x)
    if getattr(codec, "rotation", None) is not None:
        x = x @ codec.rotation.T
    return np.ascontiguousarray(x, np.float32)


@pytest.mark.parametrize("name", NAMES)
def test_encode_and_decode_equal_python(env: Env, name: str) -> None:
    codec = env.codecs[name]
    got, want = env.codes(name), codec.encode(env.xb)
    same = (got == want).all(axis=1)
    if codec.pretransform is None or env.db.name == "duckdb":
        assert same.all(), f"{(~same).sum()} rows differ"
    else:
        # PostgreSQL sums a PCA projection in another order, which can move a value
        # across a rounding boundary (float16 / a sign): a few rows, whose decodes agree
        assert same.mean() >= 0.95
        np.testing.assert_allclose(codec.decode(got), codec.decode(want), rtol=2e-3, atol=2e-3)
    dec = codec.decode(got)
    np.testing.assert_allclose(env.decoded(name), dec, rtol=1e-5, atol=1e-5 * np.abs(dec).max())


@pytest.mark.parametrize("name", NAMES)
def test_distances_equal_python(env: Env, name: str) -> None:
    codec = env.codecs[name]
    want = codec.distances(env.xq, env.codes(name))
    close(env.distances(name, env.xq), want)
    close(env.generic_distances(name, env.xq[:2]), want[:2])


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("pq")])
def test_pq_agrees_with_faiss_indexpq(env: Env, name: str) -> None:
    """FAISS IndexPQ with the same centroids, on the quantiser's view of the data:
    the same codes, ADC distances for its top-k, lookup tables and reconstruction."""
    codec = env.codecs[name]
    metric = faiss.METRIC_L2 if codec.inner_metric == "l2" else faiss.METRIC_INNER_PRODUCT
    index = faiss.IndexPQ(codec.d_inner, codec.m, 8, metric)
    faiss.copy_array_to_vector(codec.centroids.ravel(), index.pq.centroids)
    index.is_trained = True
    index.add(inner(codec, env.xb))
    codes = env.codes(name)
    assert (faiss.vector_to_array(index.codes).reshape(-1, codec.m) == codes).mean() >= 0.995
    Df, If = index.search(inner(codec, env.xq), 10)
    if codec.inner_metric != "l2":
        Df = -Df + codec.distance_offset  # similarity -> vecext distance
    close(np.take_along_axis(env.distances(name, env.xq), If, axis=1), Df)
    luts = []
    for q in env.xq:
        cast, value = env.q(q)
        luts.append(floats(env.db.sql(f"SELECT vecext.codec_lut(?, {cast})", [name, value])[0][0]))
    close(np.array(luts), codec.distance_table(env.xq).reshape(len(env.xq), -1))
    if codec.pretransform is None and codec.rotation is None:
        np.testing.assert_array_equal(env.decoded(name)[:10], index.reconstruct_n(0, 10))


@pytest.mark.parametrize("name", ["bin_l2", "bin_cos", "bin_cos_pca", "bin_l2_exp", "bin_cos_exp"])
def test_binary_agrees_with_faiss_indexbinaryflat(env: Env, name: str) -> None:
    codec = env.codecs[name]
    index = faiss.IndexBinaryFlat(codec.code_size * 8)
    index.add(env.codes(name))
    Df, If = index.search(codec.encode(env.xq), 10)
    got = np.take_along_axis(env.distances(name, env.xq), If, axis=1)
    np.testing.assert_array_equal(got, Df)


@pytest.mark.parametrize(
    ("name", "qtype"),
    [("i8_l2", "QT_8bit"), ("i8_ip", "QT_8bit"), ("half_l2", "QT_fp16"), ("half_ip", "QT_fp16")],
)
def test_scalar_agrees_with_faiss_scalarquantizer(env: Env, name: str, qtype: str) -> None:
    codec = env.codecs[name]
    metric = faiss.METRIC_L2 if codec.metric == "l2" else faiss.METRIC_INNER_PRODUCT
    index = faiss.IndexScalarQuantizer(D, getattr(faiss.ScalarQuantizer, qtype), metric)
    index.is_trained = True
    codes = env.codes(name)
    if codec.kind == "int8":
        faiss.copy_array_to_vector(np.concatenate([codec.vmin, codec.vdiff]), index.sq.trained)
        np.testing.assert_array_equal(codes, index.sa_encode(env.xb))
    # (FAISS' own float16 encoder may round a value to the neighbouring half: the codes
    # are compared with the Python core above, and FAISS decodes and ranks ours)
    index.add_sa_codes(codes)
    close(env.decoded(name), index.reconstruct_n(0, len(env.xb)), 1e-6)
    Df, If = index.search(env.xq, 10)
    got = np.take_along_axis(env.distances(name, env.xq), If, axis=1)
    close(got, Df if codec.metric == "l2" else -Df)


@pytest.mark.parametrize("name", ["rbq_l2", "rbq_ip", "rbq_cos", "half_mat"])
def test_decoded_metric_brute_force(env: Env, name: str) -> None:
    """rbq / half distances are the metric to the decoded vector (numpy brute force)."""
    codec = env.codecs[name]
    xhat = codec.decode(env.codes(name)).astype(np.float64)
    q = env.xq.astype(np.float64)
    if codec.pretransform is not None:  # Matryoshka: the renormalised prefix
        k = codec.pretransform.d_out
        qk = q[:, :k] / np.linalg.norm(q[:, :k], axis=1, keepdims=True)
        want = 1 - qk @ xhat[:, :k].T
    elif codec.metric == "l2":
        want = ((q[:, None, :] - xhat[None]) ** 2).sum(-1)
    elif codec.metric == "ip":
        want = -(q @ xhat.T)
    else:
        want = 1 - (q / np.linalg.norm(q, axis=1, keepdims=True)) @ xhat.T
    close(env.distances(name, env.xq), want)


@pytest.mark.parametrize("name", NAMES)
def test_codec_group_equals_the_0_1_0_names(env: Env, name: str) -> None:
    """Catalog 0.3.0's vecext.codec_* give what the 0.1.0 names (now aliases) give, with
    the codes before the query in codec_distance, as in vecext.<codec>_distance."""
    cast, value = env.q(env.xq[0])
    rows = env.db.sql(
        f"""SELECT vecext.codec_encode(?, embedding) = vecext.encode(?, embedding),
                   vecext.codec_decode(?, vecext.codec_encode(?, embedding))
                     = vecext.decode(?, vecext.encode(?, embedding)),
                   vecext.codec_distance(?, vecext.codec_encode(?, embedding), {cast}),
                   vecext.distance(?, {cast}, vecext.encode(?, embedding))
            FROM xb WHERE id < 20 ORDER BY id""",
        [*[name] * 6, name, name, value, name, value, name],
    )  # fmt: skip
    assert len(rows) == 20 and all(r[0] and r[1] and r[2] == r[3] for r in rows)
    codec = env.codecs[name]
    close([r[2] for r in rows], codec.distances(env.xq[:1], env.codes(name)[:20])[0])
    if codec.kind == "pq":
        (same,) = env.db.sql(
            f"SELECT vecext.codec_lut(?, {cast}) = vecext.pq_lut(?, {cast})",
            [name, value, name, value],
        )
        assert same == (True,)
