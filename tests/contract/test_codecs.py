"""Codecs through every backend's catalog: round trips (the same rows in both databases),
saving again, replacing, dropping, versions, names, and training from a table."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import clustered
from tests.contract.conftest import Fresh, floats
from vecext.catalog.rows import codec_record
from vecext.codecs import CodecError, CodecVersionError, make_codec
from vecext.errors import CatalogError

D = 16


def _encode_sql(db: Fresh, name: str, x: np.ndarray) -> bytes:
    """``vecext.encode(name, x)`` in SQL, as code bytes (DuckDB returns a list for
    UTINYINT layouts, PostgreSQL bytea)."""
    cast, value = db.vector_param(x)
    (got,) = db.sql(f"SELECT vecext.encode(?, {cast})", [name, value])[0]
    return bytes(got) if not isinstance(got, list) else bytes(np.array(got, np.uint8))


def test_round_trip_gives_identical_codes_rows_and_fingerprint(fresh: Fresh) -> None:
    db, api = fresh, fresh.api
    xt = clustered(600, D, seed=30)
    codecs = {
        "rt_pq": make_codec(
            "pq", D, "cosine", m=4, niter=5, opq=True, opq_niter=3, pretransform="pca:8"
        ),
        "rt_bin": make_codec("binary", D, "cosine"),
        "rt_rbq": make_codec("rbq", D, "ip", bits=3, pretransform="matryoshka:8"),
        "rt_i8": make_codec("int8", D, "l2", clip=0.02),
        "rt_half": make_codec("half", D, "cosine", pretransform="matryoshka:8"),
    }
    for name, codec in codecs.items():
        codec.train(xt)
        info = api.save_codec(db.conn, name, codec)
        assert (info.name, info.kind, info.dim, info.fingerprint) == (
            name,
            codec.kind,
            D,
            codec.fingerprint,
        )
        back = api.load_codec(db.conn, name)
        assert back.fingerprint == codec.fingerprint
        np.testing.assert_array_equal(back.encode(xt), codec.encode(xt))
        assert _encode_sql(db, name, xt[7]) == codec.encode(xt[7:8])[0].tobytes()
        # the rows are exactly codec_record's: the same bytes in every database
        rec = codec_record(name, codec)
        rows = db.sql(
            "SELECT array_name, dtype, shape, data FROM vecext.codec_arrays "
            "WHERE codec_name = ? ORDER BY array_name",
            [name],
        )
        assert [(r[0], r[1], list(r[2]), bytes(r[3])) for r in rows] == [
            (a.name, a.dtype, list(a.shape), a.data) for a in rec.arrays
        ]
        vecs = db.sql(
            "SELECT part, sub, idx, vec FROM vecext.codebook_vectors WHERE codec_name = ? "
            "ORDER BY part, sub, idx",
            [name],
        )
        want = sorted((v.part, v.sub, v.idx, v.vec.tolist()) for v in rec.vectors)
        assert [(p, s, i, floats(v)) for p, s, i, v in vecs] == want
        assert db.sql("SELECT vecext.codec_fingerprint(?)", [name]) == [(codec.fingerprint,)]
    assert [c.name for c in api.list_codecs(db.conn)] == sorted(codecs)
    assert {"rt_pq_encode", "rt_pq_distance", "rt_pq_lut"} <= db.functions("rt_pq")
    assert "rt_half_lut" not in db.functions("rt_half")  # lookup tables for PQ only


def test_save_again_replace_and_drop(fresh: Fresh) -> None:
    db, api = fresh, fresh.api
    xt = clustered(600, D, seed=31)
    v1 = make_codec("pq", D, "l2", m=4, niter=5, seed=1).train(xt)
    v2 = make_codec("pq", D, "l2", m=4, niter=5, seed=2).train(xt)
    assert v1.fingerprint != v2.fingerprint
    api.save_codec(db.conn, "ver", v1)
    api.save_codec(db.conn, "ver", v1)  # the same version again: a no-op
    with pytest.raises(
        CatalogError,
        match=rf"already exists \(version {v1.fingerprint}, this codec is version "
        rf"{v2.fingerprint}\); pass replace=True",
    ):
        api.save_codec(db.conn, "ver", v2)
    # no column uses it: re-training under the same name is allowed
    api.save_codec(db.conn, "ver", v2, replace=True)
    assert api.load_codec(db.conn, "ver").fingerprint == v2.fingerprint
    assert db.sql("SELECT vecext.codec_fingerprint('ver')") == [(v2.fingerprint,)]
    assert _encode_sql(db, "ver", xt[0]) == v2.encode(xt[:1])[0].tobytes()
    # codes recorded with the old version: load refuses to pair them
    with pytest.raises(
        CodecVersionError, match=f"version {v1.fingerprint}.*this codec is version {v2.fingerprint}"
    ):
        api.load_codec(db.conn, "ver", fingerprint=v1.fingerprint)
    # a column uses it now: replacing and dropping are refused, naming the column
    db.load_table("items", xt[:30])
    api.add_compressed_column(db.conn, "items", "embedding", "ver", "codes", progress=False)
    column = rf"compressed columns {db.schema}\.items\.codes"
    with pytest.raises(CatalogError, match=rf"cannot replace codec 'ver': {column} hold codes"):
        api.save_codec(db.conn, "ver", v1, replace=True)
    with pytest.raises(CatalogError, match=rf"cannot drop codec 'ver': {column} use it"):
        api.drop_codec(db.conn, "ver")
    api.drop_compressed_column(db.conn, "items", "codes")
    # another kind under the same name: the PQ-only lookup function goes away
    api.save_codec(db.conn, "ver", make_codec("binary", D).train(xt), replace=True)
    made = db.functions("ver")
    assert {"ver_encode", "ver_decode", "ver_distance"} <= made and "ver_lut" not in made
    assert api.drop_codec(db.conn, "ver")
    assert db.functions("ver") == set()
    for table, col in [
        ("codecs", "name"),
        ("codec_arrays", "codec_name"),
        ("codebook_vectors", "codec_name"),
    ]:
        assert db.sql(f"SELECT count(*) FROM vecext.{table} WHERE {col} = 'ver'") == [(0,)]
    assert not api.drop_codec(db.conn, "ver", missing_ok=True)
    with pytest.raises(CodecError, match="unknown codec 'ver'"):
        api.drop_codec(db.conn, "ver")


def test_other_versions_are_detected(fresh: Fresh) -> None:
    db, api = fresh, fresh.api
    xt = clustered(300, D, seed=32)
    codec = make_codec("binary", D).train(xt)
    api.save_codec(db.conn, "c", codec)
    other = "0123456789abcdef"
    with pytest.raises(CodecVersionError, match=f"{other}.*{codec.fingerprint}"):
        api.load_codec(db.conn, "c", fingerprint=other)
    # a catalog claiming another version (a restored dump, a hand edit): the SQL functions
    # refuse, naming that version, never silently encode with another one
    db.sql("UPDATE vecext.codecs SET fingerprint = ? WHERE name = 'c'", [other])
    with pytest.raises(Exception, match=f"version {other}"):
        _encode_sql(db, "c", xt[0])
    with pytest.raises(
        CodecVersionError, match=f"arrays hash to {codec.fingerprint}, the catalog records {other}"
    ):
        api.load_codec(db.conn, "c")


def test_names_are_checked(fresh: Fresh) -> None:
    db, api = fresh, fresh.api
    half = make_codec("half", D).train(clustered(50, D, seed=3))
    bad_names = [
        "Items",
        "Bad-Name",
        "x; DROP TABLE vecext.codecs",
        "x'; DROP TABLE vecext.codecs; --",
        'q"; DROP SCHEMA vecext; --',
        "a" * 49,
        "",
        "1abc",
    ]
    for bad in bad_names:
        with pytest.raises(CodecError, match="invalid codec name"):
            api.save_codec(db.conn, bad, half)
        with pytest.raises(CodecError, match="invalid codec name"):
            api.load_codec(db.conn, bad)
    with pytest.raises(CodecError, match=r"codec name 'pq' .*vecext\.pq_lut"):
        api.save_codec(db.conn, "pq", half)  # a generic function's name
    with pytest.raises(CodecError, match=r"codec name 'codec' .*vecext\.codec_encode"):
        api.save_codec(db.conn, "codec", half)  # the codec group of catalog 0.3.0
    with pytest.raises(CodecError, match="not trained"):
        api.save_codec(db.conn, "untrained", make_codec("binary", D))
    with pytest.raises(CodecError, match=r"unknown codec 'nope'; known codecs: \(none\)"):
        api.load_codec(db.conn, "nope")
    with pytest.raises(Exception, match="unknown codec 'nope'"):
        _encode_sql(db, "nope", np.ones(D, np.float32))
    assert db.sql("SELECT count(*) FROM vecext.codecs") == [(0,)]


def test_train_codec_from_a_table_and_its_bad_inputs(fresh: Fresh) -> None:
    db, api = fresh, fresh.api
    x = clustered(1200, D, seed=33)
    db.load_table("train_src", x)
    a = api.train_codec(
        db.conn, "t_pq", "train_src", "embedding", "pq", sample=300, seed=5, m=4, niter=5
    )
    assert api.codec_info(db.conn, "t_pq").fingerprint == a.fingerprint
    assert api.load_codec(db.conn, "t_pq").fingerprint == a.fingerprint
    assert _encode_sql(db, "t_pq", x[9]) == a.encode(x[9:10])[0].tobytes()
    # the same seed draws the same sample: the same codec
    again = api.train_codec(
        db.conn, "t_pq2", "train_src", "embedding", "pq", sample=300, seed=5, m=4, niter=5
    )
    assert again.fingerprint == a.fingerprint
    api.drop_codec(db.conn, "t_pq2")
    # bad inputs
    db.load_table("tiny", x[:100])
    with pytest.raises(CodecError, match="needs at least 256 training vectors, got 100"):
        api.train_codec(db.conn, "t_bad", "tiny", "embedding", "pq", m=4)
    with pytest.raises(CodecError, match="d=16 is not divisible by m=5"):
        api.train_codec(db.conn, "t_bad", "train_src", "embedding", "pq", m=5)
    with pytest.raises(CodecError, match="unknown codec kind 'pqq'"):
        api.train_codec(db.conn, "t_bad", "train_src", "embedding", "pqq")
    with pytest.raises(CodecError, match="unknown parameter 'foo' for codec 'pq'"):
        api.train_codec(db.conn, "t_bad", "train_src", "embedding", "pq", foo=1)
    with pytest.raises(CodecError, match="unknown metric 'hamming'"):
        api.train_codec(db.conn, "t_bad", "train_src", "embedding", "binary", metric="hamming")
    with pytest.raises(CatalogError, match="has no column 'nope'"):
        api.train_codec(db.conn, "t_bad", "train_src", "nope", "binary")
    with pytest.raises(CatalogError, match="'nope' does not exist"):
        api.train_codec(db.conn, "t_bad", "nope", "embedding", "half")
    with pytest.raises(CatalogError, match="already exists"):
        api.train_codec(db.conn, "t_pq", "train_src", "embedding", "pq", m=4)
    assert [c.name for c in api.list_codecs(db.conn)] == ["t_pq"]
