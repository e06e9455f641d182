"""PostgreSQL's SQL codec functions, what only PostgreSQL has: per-codec decode over
each storage type (bytea, ``bit(d)``, ``halfvec(d)``), function properties (IMMUTABLE,
PARALLEL SAFE, STRICT; the PQ lookup sum inlined) and ``vecext`` first on the
search_path. (Every codec kind and metric against the Python core, FAISS and numpy on
every backend: ``tests/contract/test_sql_functions.py``.)"""

from __future__ import annotations

import numpy as np
import pytest
from psycopg import sql

from tests.postgres.conftest import clustered, fetch_codes, vector_text
from vecext.codecs import make_codec
from vecext.postgres import save_codec

D = 32
CODECS = {
    "pq_l2": ("pq", "l2", {"m": 8}),
    "bin_l2": ("binary", "l2", {}),
    "rbq_l2": ("rbq", "l2", {"bits": 2}),
    "i8_l2": ("int8", "l2", {}),
    "half_l2": ("half", "l2", {}),
    "half_cos_pca": ("half", "cosine", {"pretransform": "pca:16"}),
}


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
