"""Codecs in DuckDB, what only DuckDB does: column layouts, macros in reopened files, the
per-instance codec cache and its versions, DOUBLE columns. (Round trips, saving again,
replacing, dropping, versions, names and training errors on every backend:
``tests/contract/test_codecs.py``.)"""

from __future__ import annotations

import gc

import duckdb
import numpy as np
import pytest

import vecext.duckdb as vd
from tests.duckdb.conftest import D, clustered, load_table, qparam
from vecext.codecs import CodecError, CodecVersionError, make_codec


def macros(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT function_name FROM duckdb_functions() WHERE schema_name = 'vecext' "
        "AND database_name = current_database()"
    ).fetchall()
    return {r[0] for r in rows}


def encode_sql(con, name, x) -> np.ndarray:
    row = con.execute(f"SELECT vecext.encode('{name}', ?::FLOAT[])", [qparam(x)]).fetchone()
    return np.frombuffer(row[0], np.uint8)


def test_code_column_types_per_kind(vdb, trained):
    for name in ("pq_l2", "bin_cos", "rbq_ip"):
        vd.save_codec(vdb, name, trained[name])
    assert vd.codec_info(vdb, "pq_l2").column_type == "UTINYINT[8]"
    assert vd.codec_info(vdb, "bin_cos").column_type == "UBIGINT[1]"
    assert vd.codec_info(vdb, "rbq_ip").column_type == "BLOB"


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


def test_rows_under_a_reserved_name_get_no_macros(vdb, trained):
    half = trained["half_l2"]
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


def test_edited_arrays_and_unloaded_versions_are_detected(vdb, xb, trained):
    codec = trained["pq_l2"]
    vd.save_codec(vdb, "c", codec)
    # arrays edited behind vecext's back no longer hash to the recorded fingerprint
    vdb.execute(
        "UPDATE vecext.codec_arrays SET data = ?::BLOB WHERE codec_name = 'c'",
        [bytes(len(codec.centroids.tobytes()))],
    )
    with pytest.raises(CodecVersionError, match=codec.fingerprint):
        vd.load_codec(vdb, "c")
    # a catalog claiming another version: the generic functions ask the cache for that
    # version, which is not loaded -- never silently the cached one
    other = "0123456789abcdef"
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


def test_train_codec_from_double_columns_and_bad_rows(vdb):
    x = clustered(400, 16, seed=3)
    load_table(vdb, "small", x)
    vdb.execute("CREATE TABLE dbl AS SELECT id, embedding::DOUBLE[16] AS embedding FROM small")
    vd.train_codec(vdb, "dbl_bin", "dbl", "embedding", "binary")
    with pytest.raises(CodecError, match="small.id is INTEGER, expected FLOAT\\[d\\]"):
        vd.train_codec(vdb, "t", "small", "id", "half")
    nan_row = [0.0] * 15 + [float("nan")]
    vdb.execute("UPDATE small SET embedding = ?::FLOAT[16] WHERE id = 5", [nan_row])
    with pytest.raises(CodecError, match="NaN or infinite"):
        vd.train_codec(vdb, "t", "small", "embedding", "int8")
    assert [c.name for c in vd.list_codecs(vdb)] == ["dbl_bin"]


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
