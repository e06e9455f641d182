"""Codecs in the PostgreSQL catalog, what only PostgreSQL does: errors raised inside SQL
functions map to vecext errors, and training samples rows as ``read_vectors`` does.
(Round trips, saving again, replacing, dropping, versions, names and training errors
on every backend: ``tests/contract/test_codecs.py``.)"""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from tests.postgres.conftest import clustered, fetch_codes, load_table, vector_text
from vecext.codecs import CodecVersionError, make_codec
from vecext.postgres import codec_errors, load_codec, save_codec, train_codec

D = 16


def test_sql_errors_of_another_version_map_to_vecext_errors(pg_catalog):
    """Rows changed behind vecext's back (a restored dump, a hand edit): the generated
    functions no longer match; the generic SQL functions say so with vecext's SQLSTATE."""
    conn = pg_catalog
    xt = clustered(300, D, seed=32)
    codec = make_codec("binary", D).train(xt)
    save_codec(conn, "tamper", codec)
    fp = codec.fingerprint
    conn.execute("UPDATE vecext.codecs SET fingerprint = 'ffffffffffffffff' WHERE name = 'tamper'")
    q = vector_text(xt[0])
    msg = f"holds version ffffffffffffffff but its SQL functions were made for version {fp}"
    with pytest.raises(CodecVersionError, match=msg), codec_errors():
        conn.execute(
            "SELECT vecext.distance('tamper', %s::vector, %s)", [q, codec.encode(xt[:1]).tobytes()]
        )
    with pytest.raises(psycopg.Error) as info:
        conn.execute("SELECT vecext.encode('tamper', %s::vector)", [q])
    assert info.value.sqlstate == "VX001"


def test_train_codec_samples_like_read_vectors(pg_catalog):
    conn = pg_catalog
    x = clustered(1200, D, seed=33)
    load_table(conn, "train_src", x)
    conn.execute("ANALYZE train_src")
    # 300 of 1200 rows: a repeatable Bernoulli sample
    a = train_codec(conn, "t_pq", "train_src", "embedding", "pq", sample=300, seed=5, m=4, niter=5)
    b = make_codec("pq", D, "l2", m=4, niter=5)
    from vecext.postgres.columns import read_vectors, resolve_column

    xs = read_vectors(conn, resolve_column(conn, "train_src", "embedding"), sample=300, seed=5)
    assert 200 <= len(xs) <= 300
    assert b.train(xs).fingerprint == a.fingerprint
    assert load_codec(conn, "t_pq").fingerprint == a.fingerprint
    got = fetch_codes(
        conn, "SELECT vecext.encode('t_pq', embedding) FROM train_src ORDER BY id LIMIT 50"
    )
    np.testing.assert_array_equal(got, a.encode(x[:50]))
