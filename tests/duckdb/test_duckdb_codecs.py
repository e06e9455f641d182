"""Codecs in the DuckDB catalog: round trips, macros, versions, the per-instance cache."""

from __future__ import annotations

import gc

import duckdb
import numpy as np
import pytest

import vecext.duckdb as vd
from tests.duckdb.conftest import D, clustered, load_table, qparam
from vecext.catalog.rows import codec_record
from vecext.codecs import CodecError, CodecVersionError, make_codec
from vecext.errors import CatalogError

ROUND_TRIP = ["pq_l2", "opq_l2", "pq_pca", "bin_cos", "rbq_ip", "int8_l2", "half_mat"]


def macros(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT function_name FROM duckdb_functions() WHERE schema_name = 'vecext' "
        "AND database_name = current_database()"
    ).fetchall()
    return {r[0] for r in rows}


def encode_sql(con, name, x) -> np.ndarray:
    row = con.execute(f"SELECT vecext.encode('{name}', ?::FLOAT[])", [qparam(x)]).fetchone()
    return np.frombuffer(row[0], np.uint8)


def test_catalog_round_trip(vdb, xb, trained):
    for name in ROUND_TRIP:
        info = vd.save_codec(vdb, name, trained[name])
        assert info.fingerprint == trained[name].fingerprint and info.dim == D
    assert [c.name for c in vd.list_codecs(vdb)] == sorted(ROUND_TRIP)
    assert vd.codec_info(vdb, "pq_l2").column_type == "UTINYINT[8]"
    assert vd.codec_info(vdb, "bin_cos").column_type == "UBIGINT[1]"
    assert vd.codec_info(vdb, "rbq_ip").column_type == "BLOB"
    for name in ROUND_TRIP:
        codec = trained[name]
        rec = codec_record(name, codec)
        arrays = vdb.execute(
            "SELECT array_name, dtype, shape, data FROM vecext.codec_arrays "
            "WHERE codec_name = ? ORDER BY array_name",
            [name],
        ).fetchall()
        assert arrays == [(a.name, a.dtype, a.shape, a.data) for a in rec.arrays]
        vecs = vdb.execute(
            "SELECT part, sub, idx, vec FROM vecext.codebook_vectors WHERE codec_name = ? "
            "ORDER BY part, sub, idx",
            [name],
        ).fetchall()
        want = sorted((v.part, v.sub, v.idx, v.vec.tolist()) for v in rec.vectors)
        assert [(p, s, i, list(v)) for p, s, i, v in vecs] == want
        loaded = vd.load_codec(vdb, name)
        assert loaded.fingerprint == codec.fingerprint
        state, want_state = loaded.to_state(), codec.to_state()
        assert state.params == want_state.params
        for k, a in want_state.arrays.items():
            np.testing.assert_array_equal(state.arrays[k], a)
        np.testing.assert_array_equal(loaded.encode(xb[:50]), codec.encode(xb[:50]))
        np.testing.assert_array_equal(encode_sql(vdb, name, xb[7]), codec.encode(xb[7:8])[0])
    assert {"pq_l2_lut", "pq_l2_distance", "half_mat_encode"} <= macros(vdb)
    assert "half_mat_lut" not in macros(vdb)  # lookup tables for PQ only


def test_reopened_file_has_codecs_and_macros(tmp_path, xb, xq, trained):
    path = tmp_path / "codes.duckdb"
    con = vd.connect(path, vss=False)
    load_table(con, "items", xb)
    for name in ("pq_l2", "bin_l2", "rbq_l2"):
        vd.save_codec(con, name, trained[name])
    vd.add_compressed_column(con, "items", "embedding", "pq_l2", "pq", progress=False)
    sql = "SELECT vecext.pq_l2_distance(pq, vecext.pq_l2_lut(?::FLOAT[])) FROM items ORDER BY id"
    before = [r[0] for r in con.execute(sql, [qparam(xq[0])]).fetchall()]
    con.close()

    plain = duckdb.connect(str(path))  # no vecext: the macros are stored, the UDFs are not
    with pytest.raises(duckdb.Error, match="vecext_udf_pq_lut"):
        plain.execute(sql, [qparam(xq[0])])
    plain.close()

    con = vd.connect(path, vss=False)
    assert [c.name for c in vd.list_codecs(con)] == ["bin_l2", "pq_l2", "rbq_l2"]
    assert [r[0] for r in con.execute(sql, [qparam(xq[0])]).fetchall()] == before
    np.testing.assert_array_equal(
        encode_sql(con, "rbq_l2", xb[3]), trained["rbq_l2"].encode(xb[3:4])[0]
    )
    assert vd.compressed_column(con, "items", "pq").status == "ready"
    con.close()

    plain = duckdb.connect(str(path))
    vd.attach(plain, vss=False)  # a user's own connection made a vecext one
    assert [r[0] for r in plain.execute(sql, [qparam(xq[0])]).fetchall()] == before
    plain.close()


def test_save_again_replace_and_drop(vdb, xb, trained):
    a = trained["pq_l2"]
    b = make_codec("pq", D, "l2", m=8, niter=10, seed=99).train(xb)
    assert a.fingerprint != b.fingerprint
    vd.save_codec(vdb, "c", a)
    vd.save_codec(vdb, "c", a)  # the same version again: only the macros are recreated
    with pytest.raises(CatalogError, match=f"already exists \\(version {a.fingerprint}"):
        vd.save_codec(vdb, "c", b)
    vd.save_codec(vdb, "c", b, replace=True)
    assert vdb.execute("SELECT vecext.codec_fingerprint('c')").fetchone() == (b.fingerprint,)
    got = vdb.execute("SELECT vecext.c_encode(?::FLOAT[])", [qparam(xb[0])]).fetchone()[0]
    np.testing.assert_array_equal(np.array(got, np.uint8), b.encode(xb[:1])[0])

    load_table(vdb, "items", xb[:300])
    vd.add_compressed_column(vdb, "items", "embedding", "c", "codes", progress=False)
    with pytest.raises(CatalogError, match="main.items.codes"):
        vd.save_codec(vdb, "c", a, replace=True)
    with pytest.raises(CatalogError, match="cannot drop codec 'c'.*main.items.codes"):
        vd.drop_codec(vdb, "c")
    vd.drop_compressed_column(vdb, "items", "codes")
    # another kind under the same name: the PQ-only lookup macro goes away
    vd.save_codec(vdb, "c", trained["half_l2"], replace=True)
    assert "c_lut" not in macros(vdb) and "c_distance" in macros(vdb)
    assert vd.drop_codec(vdb, "c")
    for table, col in [
        ("codecs", "name"),
        ("codec_arrays", "codec_name"),
        ("codebook_vectors", "codec_name"),
    ]:
        assert vdb.execute(f"SELECT count(*) FROM vecext.{table} WHERE {col} = 'c'").fetchone() == (
            0,
        )
    assert not {"c_encode", "c_decode", "c_distance"} & macros(vdb)
    assert not vd.drop_codec(vdb, "c", missing_ok=True)
    with pytest.raises(CodecError, match="unknown codec 'c'"):
        vd.drop_codec(vdb, "c")


def test_names_are_checked(vdb, trained):
    half = trained["half_l2"]
    with pytest.raises(CodecError, match="reserved"):
        vd.save_codec(vdb, "pq", half)  # vecext.pq_lut is a generic function
    with pytest.raises(CodecError, match="reserved: its function vecext.codec_encode"):
        vd.save_codec(vdb, "codec", half)  # so is vecext.codec_encode (catalog 0.3.0)
    for bad in ["Bad-Name", "x'; DROP TABLE vecext.codecs; --", 'q"; DROP SCHEMA vecext; --', ""]:
        with pytest.raises(CodecError, match="invalid codec name"):
            vd.save_codec(vdb, bad, half)
        with pytest.raises(CodecError, match="invalid codec name"):
            vd.load_codec(vdb, bad)
    assert vdb.execute("SELECT count(*) FROM vecext.codecs").fetchone() == (0,)
    with pytest.raises(CodecError, match="unknown codec 'nope'; known codecs: \\(none\\)"):
        vd.load_codec(vdb, "nope")
    # rows written by another tool under a reserved name get no macros on attach
    vd.save_codec(vdb, "h", half)
    vdb.execute(
        "INSERT INTO vecext.codecs SELECT 'pq', kind, dim, metric, code_size, params, "
        "fingerprint, format_version, created_at FROM vecext.codecs WHERE name = 'h'"
    )
    with pytest.warns(UserWarning, match="codec 'pq' not loaded: codec name 'pq' is reserved"):
        vd.attach(vdb, vss=False)
    assert "pq_encode" not in macros(vdb)
    definition = vdb.execute(
        "SELECT macro_definition FROM duckdb_functions() WHERE schema_name = 'vecext' "
        "AND function_name = 'pq_lut'"
    ).fetchone()[0]
    # still the generic alias (of vecext.codec_lut since catalog 0.3.0), not a codec's own
    assert "codec_lut(codec, q)" in definition


def test_other_versions_are_detected(vdb, xb, trained):
    codec = trained["pq_l2"]
    vd.save_codec(vdb, "c", codec)
    other = "0123456789abcdef"
    with pytest.raises(CodecVersionError, match=f"{other}.*{codec.fingerprint}"):
        vd.load_codec(vdb, "c", fingerprint=other)
    # arrays edited behind vecext's back no longer hash to the recorded fingerprint
    vdb.execute(
        "UPDATE vecext.codec_arrays SET data = ?::BLOB WHERE codec_name = 'c'",
        [bytes(len(codec.centroids.tobytes()))],
    )
    with pytest.raises(CodecVersionError, match=codec.fingerprint):
        vd.load_codec(vdb, "c")
    # a catalog claiming another version: the generic functions ask the cache for that
    # version, which is not loaded -- never silently the cached one
    vdb.execute("UPDATE vecext.codecs SET fingerprint = ? WHERE name = 'c'", [other])
    with pytest.raises(duckdb.Error, match=f"codec 'c' version {other} is not loaded"):
        vdb.execute("SELECT vecext.encode('c', ?::FLOAT[])", [qparam(xb[0])])


def test_databases_never_share_codecs(tmp_path, xb, trained):
    """Two databases hold different versions of a codec called 'c'; each answers
    with its own, and connections / cursors of one instance share its cache."""
    a, b = trained["pq_l2"], make_codec("pq", D, "l2", m=8, niter=10, seed=7).train(xb)
    con_a, con_b = vd.connect(vss=False), vd.connect(tmp_path / "b.duckdb", vss=False)
    vd.save_codec(con_a, "c", a)
    vd.save_codec(con_b, "c", b)
    for con, codec in [(con_a, a), (con_b, b), (con_a.cursor(), a)]:
        np.testing.assert_array_equal(encode_sql(con, "c", xb[5]), codec.encode(xb[5:6])[0])
    # a second connection to the same file in this process is the same instance
    con_b2 = vd.connect(tmp_path / "b.duckdb", vss=False)
    np.testing.assert_array_equal(encode_sql(con_b2, "c", xb[5]), b.encode(xb[5:6])[0])
    for con in (con_a, con_b, con_b2):
        con.close()


def test_train_codec_and_its_errors(vdb):
    x = clustered(400, 16, seed=3)
    load_table(vdb, "small", x)
    codec = vd.train_codec(vdb, "small_pq", "small", "embedding", "pq", m=4, niter=5, sample=300)
    assert vd.codec_info(vdb, "small_pq").fingerprint == codec.fingerprint
    vdb.execute("CREATE TABLE dbl AS SELECT id, embedding::DOUBLE[16] AS embedding FROM small")
    vd.train_codec(vdb, "dbl_bin", "dbl", "embedding", "binary")
    vdb.execute("CREATE TABLE tiny AS SELECT * FROM small WHERE id < 100")
    with pytest.raises(CodecError, match="at least 256 training vectors, got 100"):
        vd.train_codec(vdb, "t", "tiny", "embedding", "pq", m=4)
    with pytest.raises(CodecError, match="d=16 is not divisible by m=5"):
        vd.train_codec(vdb, "t", "small", "embedding", "pq", m=5)
    with pytest.raises(CodecError, match="unknown codec kind 'lsh'"):
        vd.train_codec(vdb, "t", "small", "embedding", "lsh")
    with pytest.raises(CodecError, match="unknown parameter 'bitz'"):
        vd.train_codec(vdb, "t", "small", "embedding", "rbq", bitz=2)
    with pytest.raises(CodecError, match="small.id is INTEGER, expected FLOAT\\[d\\]"):
        vd.train_codec(vdb, "t", "small", "id", "half")
    with pytest.raises(CatalogError, match="has no column 'nope'"):
        vd.train_codec(vdb, "t", "small", "nope", "half")
    with pytest.raises(CatalogError, match="table 'nope' does not exist"):
        vd.train_codec(vdb, "t", "nope", "embedding", "half")
    with pytest.raises(CatalogError, match="already exists"):
        vd.train_codec(vdb, "small_pq", "small", "embedding", "pq", m=4)
    nan_row = [0.0] * 15 + [float("nan")]
    vdb.execute("UPDATE small SET embedding = ?::FLOAT[16] WHERE id = 5", [nan_row])
    with pytest.raises(CodecError, match="NaN or infinite"):
        vd.train_codec(vdb, "t", "small", "embedding", "int8")
    assert [c.name for c in vd.list_codecs(vdb)] == ["dbl_bin", "small_pq"]


def test_udfs_outlive_the_connection_that_registered_them(tmp_path, trained, xb):
    """DuckDB registers a UDF for the whole instance but used to free it with the
    registering connection: another connection then crashed the process."""
    path = tmp_path / "shared.duckdb"
    first = vd.connect(path, vss=False)
    vd.save_codec(first, "h", trained["half_l2"])
    second = duckdb.connect(str(path))  # the same instance, not attached
    first.close()
    del first
    gc.collect()
    np.testing.assert_array_equal(
        encode_sql(second, "h", xb[0]), trained["half_l2"].encode(xb[:1])[0]
    )
    second.close()
