"""Codecs through the PostgreSQL catalog: round trips, replacing, versions, names,
training from a table, and the bad inputs of each."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from tests.postgres.conftest import clustered, fetch_codes, load_table, vector_text
from vecext.catalog.rows import codec_record
from vecext.codecs import CodecError, CodecVersionError, make_codec
from vecext.errors import CatalogError
from vecext.postgres import (
    add_compressed_column,
    codec_errors,
    drop_codec,
    drop_compressed_column,
    list_codecs,
    load_codec,
    save_codec,
    train_codec,
)

D = 16


def functions_of(conn, name: str) -> set[str]:
    rows = conn.execute(
        "SELECT proname FROM pg_proc WHERE pronamespace = 'vecext'::regnamespace "
        "AND proname LIKE %s",
        [name + "\\_%"],
    ).fetchall()
    return {r[0] for r in rows}


def test_round_trip_gives_identical_codes_and_fingerprint(pg_catalog):
    conn = pg_catalog
    xt = clustered(600, D, seed=30)
    for name, codec in {
        "rt_pq": make_codec(
            "pq", D, "cosine", m=4, niter=5, opq=True, opq_niter=3, pretransform="pca:8"
        ),
        "rt_rbq": make_codec("rbq", D, "ip", bits=3, pretransform="matryoshka:8"),
        "rt_i8": make_codec("int8", D, "l2", clip=0.02),
    }.items():
        codec.train(xt)
        info = save_codec(conn, name, codec)
        assert (info.name, info.kind, info.dim, info.fingerprint) == (
            name,
            codec.kind,
            D,
            codec.fingerprint,
        )
        back = load_codec(conn, name)
        assert back.fingerprint == codec.fingerprint
        np.testing.assert_array_equal(back.encode(xt), codec.encode(xt))
        # the rows are exactly catalog_rows' (same bytes as DuckDB's catalog)
        rec = codec_record(name, codec)
        rows = conn.execute(
            "SELECT array_name, dtype, shape, data FROM vecext.codec_arrays WHERE codec_name = %s "
            "ORDER BY array_name",
            [name],
        ).fetchall()
        assert [(r[0], r[1], list(r[2]), bytes(r[3])) for r in rows] == [
            (a.name, a.dtype, a.shape, a.data) for a in rec.arrays
        ]
        n_vec = conn.execute(
            "SELECT count(*) FROM vecext.codebook_vectors WHERE codec_name = %s", [name]
        ).fetchone()[0]
        assert n_vec == len(rec.vectors)
    centroid = conn.execute(
        "SELECT vec FROM vecext.codebook_vectors WHERE codec_name = 'rt_pq' "
        "AND part = 'centroids' AND sub = 2 AND idx = 7"
    ).fetchone()[0]
    np.testing.assert_array_equal(centroid.to_numpy(), load_codec(conn, "rt_pq").centroids[2, 7])
    assert [c.name for c in list_codecs(conn)] == ["rt_i8", "rt_pq", "rt_rbq"]
    assert (
        conn.execute("SELECT vecext.codec_fingerprint('rt_pq')").fetchone()[0]
        == load_codec(conn, "rt_pq").fingerprint
    )


def test_replace_retrain_and_versions(pg_catalog):
    conn = pg_catalog
    xt = clustered(600, D, seed=31)
    v1 = make_codec("pq", D, "l2", m=4, niter=5, seed=1).train(xt)
    v2 = make_codec("pq", D, "l2", m=4, niter=5, seed=2).train(xt)
    assert v1.fingerprint != v2.fingerprint
    save_codec(conn, "ver", v1)
    save_codec(conn, "ver", v1)  # the same version again: a no-op
    with pytest.raises(
        CatalogError,
        match=f"already exists \\(version {v1.fingerprint}, this codec is version {v2.fingerprint}\\); pass replace=True",
    ):
        save_codec(conn, "ver", v2)
    # no column uses it: re-training under the same name is allowed
    save_codec(conn, "ver", v2, replace=True)
    assert load_codec(conn, "ver").fingerprint == v2.fingerprint
    q = vector_text(xt[0])
    assert (
        bytes(conn.execute("SELECT vecext.encode('ver', %s::vector)", [q]).fetchone()[0])
        == v2.encode(xt[:1]).tobytes()
    )
    # codes recorded with the old version: load refuses to pair them
    with pytest.raises(
        CodecVersionError, match=f"version {v1.fingerprint}.*this codec is version {v2.fingerprint}"
    ):
        load_codec(conn, "ver", fingerprint=v1.fingerprint)
    # a column uses it now: replacing is refused, naming the column
    load_table(conn, "items", xt[:30])
    add_compressed_column(conn, "items", "embedding", "ver", "codes", progress=False)
    with pytest.raises(
        CatalogError,
        match=r"cannot replace codec 'ver': compressed columns public\.items\.codes hold codes of its version",
    ):
        save_codec(conn, "ver", v1, replace=True)
    with pytest.raises(
        CatalogError,
        match=r"cannot drop codec 'ver': compressed columns public\.items\.codes use it",
    ):
        drop_codec(conn, "ver")
    drop_compressed_column(conn, "items", "codes")
    # another kind under the same name: the PQ-only function goes away
    binary = make_codec("binary", D).train(xt)
    save_codec(conn, "ver", binary, replace=True)
    assert functions_of(conn, "ver") == {"ver_encode", "ver_decode", "ver_distance", "ver_prepare"}
    assert drop_codec(conn, "ver")
    assert functions_of(conn, "ver") == set()
    assert not drop_codec(conn, "ver", missing_ok=True)
    with pytest.raises(CodecError, match="unknown codec 'ver'"):
        drop_codec(conn, "ver")


def test_catalog_and_functions_of_different_versions_are_detected(pg_catalog):
    """Rows changed behind vecext's back (a restored dump, a hand edit): the generated
    functions no longer match; the generic SQL functions and load_codec say so."""
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
    with pytest.raises(
        CodecVersionError, match=f"arrays hash to {fp}, the catalog records ffffffffffffffff"
    ):
        load_codec(conn, "tamper")


def test_names_are_checked(pg_catalog):
    conn = pg_catalog
    codec = make_codec("half", D)
    for bad in ["Items", "x; DROP TABLE vecext.codecs", "a" * 49, "", "1abc"]:
        with pytest.raises(CodecError, match="invalid codec name"):
            save_codec(conn, bad, codec)
    with pytest.raises(CodecError, match="would create vecext.pq_lut"):
        save_codec(conn, "pq", make_codec("pq", D, m=4))
    with pytest.raises(CodecError, match="would create vecext.codec_encode"):
        save_codec(conn, "codec", codec)  # the codec group of catalog 0.3.0
    with pytest.raises(CodecError, match="not trained"):
        save_codec(conn, "untrained", make_codec("binary", D))
    with pytest.raises(CodecError, match="unknown codec 'nope'; known codecs: \\(none\\)"):
        load_codec(conn, "nope")
    with pytest.raises(psycopg.Error, match="unknown codec 'nope'"):
        conn.execute("SELECT vecext.decode('nope', '\\x00'::bytea)")
    assert conn.execute("SELECT count(*) FROM vecext.codecs").fetchone()[0] == 0


def test_train_codec_from_a_table_and_its_bad_inputs(pg_catalog):
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
    # bad inputs
    load_table(conn, "tiny", x[:100])
    with pytest.raises(CodecError, match="needs at least 256 training vectors, got 100"):
        train_codec(conn, "t_bad", "tiny", "embedding", "pq", m=4)
    with pytest.raises(CodecError, match="d=16 is not divisible by m=5"):
        train_codec(conn, "t_bad", "train_src", "embedding", "pq", m=5)
    with pytest.raises(CodecError, match="unknown codec kind 'pqq'"):
        train_codec(conn, "t_bad", "train_src", "embedding", "pqq")
    with pytest.raises(CodecError, match="unknown parameter 'foo' for codec 'pq'"):
        train_codec(conn, "t_bad", "train_src", "embedding", "pq", foo=1)
    with pytest.raises(CodecError, match="unknown metric 'hamming'"):
        train_codec(conn, "t_bad", "train_src", "embedding", "binary", metric="hamming")
    with pytest.raises(CatalogError, match="has no column 'nope'"):
        train_codec(conn, "t_bad", "train_src", "nope", "binary")
    assert [c.name for c in list_codecs(conn)] == ["t_pq"]
