"""Compressed columns in DuckDB: backfill, refresh of stale rows, bad input, injection."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import vecext.duckdb as vd
from tests.duckdb.conftest import D, load_table, vectors_table
from vecext.codecs import CodecError, CodecVersionError
from vecext.duckdb._arrow import code_layout, codes_from_arrow
from vecext.errors import CatalogError


def column_codes(con, table: str, column: str, codec) -> tuple[np.ndarray, np.ndarray]:
    """``(codes of the non-NULL rows, ids)`` ordered by id."""
    t = con.execute(f'SELECT id, "{column}" AS c FROM {table} ORDER BY id').to_arrow_table()
    staged = pa.types.is_binary(t.column("c").type)  # a PQ / binary column being backfilled
    layout = "blob" if staged else code_layout(codec)
    codes, valid = codes_from_arrow(t.column("c"), layout, codec.code_size, column)
    return codes, np.asarray(t.column("id"))[valid]


def embeddings(con, table: str = "items") -> np.ndarray:
    """``[id, vector...]`` rows (NaN compares equal with ``np.testing``)."""
    t = con.execute(f"SELECT id, embedding FROM {table} ORDER BY id").to_arrow_table()
    x = np.asarray(t.column("embedding").combine_chunks().flatten()).reshape(t.num_rows, -1)
    return np.column_stack([np.asarray(t.column("id"), np.float64), x])


def _items(con, xb, trained):
    load_table(con, "items", xb[:500])
    for name in ("pq_l2", "bin_l2", "rbq_l2", "half_l2"):
        vd.save_codec(con, name, trained[name])
    return con


@pytest.fixture
def items(vdb, xb, trained):
    """``items`` with 500 rows and four codecs, in memory and on disk."""
    return _items(vdb, xb, trained)


@pytest.fixture
def items_mem(mem, xb, trained):
    """The same in memory only (for checks where storage plays no part)."""
    return _items(mem, xb, trained)


def test_add_compressed_column_codes_equal_python(items, xb, trained):
    con = items
    got = vd.add_compressed_column(
        con, "items", "embedding", "pq_l2", batch_size=128, progress=False
    )
    assert got == "embedding_pq_l2"  # <source>_<codec>, as in PostgreSQL
    vd.add_compressed_column(con, "items", "embedding", "bin_l2", "bits", progress=False)
    vd.add_compressed_column(con, "items", "embedding", "rbq_l2", "rbq", progress=False)
    types = dict(
        con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'items'"
        ).fetchall()
    )
    assert types["embedding_pq_l2"] == "UTINYINT[8]"
    assert types["bits"] == "UBIGINT[1]"
    assert types["rbq"] == "BLOB"
    assert types["bits__vecext_hash"] == "UBIGINT"
    for col, name in [("embedding_pq_l2", "pq_l2"), ("bits", "bin_l2"), ("rbq", "rbq_l2")]:
        codec = trained[name]
        codes, ids = column_codes(con, "items", col, codec)
        np.testing.assert_array_equal(ids, np.arange(500))
        np.testing.assert_array_equal(codes, codec.encode(xb[:500]))
        cc = vd.compressed_column(con, "items", col)
        assert (cc.status, cc.rows_encoded, cc.key_column, cc.codec) == ("ready", 500, "id", name)
        assert cc.codec_fingerprint == codec.fingerprint
    assert vd.stale_rows(con, "items", "bits") == 0
    assert [c.code_column for c in vd.list_compressed_columns(con)] == [
        "bits",
        "embedding_pq_l2",
        "rbq",
    ]


def test_refresh_reencodes_exactly_the_stale_rows(items, xb, trained):
    con, codec = items, trained["pq_l2"]
    vd.add_compressed_column(con, "items", "embedding", "pq_l2", "pq", progress=False)
    changed = {3: xb[600], 17: xb[601], 250: xb[602]}
    for i, v in changed.items():
        con.execute("UPDATE items SET embedding = ?::FLOAT[32] WHERE id = ?", [v.tolist(), i])
    con.execute("UPDATE items SET embedding = embedding WHERE id = 40")  # same vector: current
    con.register("new", vectors_table(xb[700:702], np.array([900, 901])))
    con.execute("INSERT INTO items (id, embedding) SELECT id, embedding FROM new")
    con.unregister("new")
    con.execute("UPDATE items SET embedding = NULL WHERE id = 60")
    con.execute("UPDATE items SET pq = NULL WHERE id = 70")  # codes missing
    # a wrong code whose hash still matches its vector: proves untouched rows stay as they are
    con.execute("UPDATE items SET pq = [1, 2, 3, 4, 5, 6, 7, 8] WHERE id = 5")
    assert vd.stale_rows(con, "items", "pq") == 7
    assert vd.refresh(con, "items", "pq", batch_size=2, progress=False) == 7
    assert vd.stale_rows(con, "items", "pq") == 0
    codes, ids = column_codes(con, "items", "pq", codec)
    want = xb[:500].copy()
    for i, v in changed.items():
        want[i] = v
    expected = dict(zip(range(500), codec.encode(want), strict=True))
    expected.update(zip([900, 901], codec.encode(xb[700:702]), strict=True))
    expected[5] = np.arange(1, 9, dtype=np.uint8)
    del expected[60]  # NULL vector -> NULL codes
    assert ids.tolist() == sorted(expected)
    np.testing.assert_array_equal(codes, np.array([expected[i] for i in ids.tolist()]))
    assert vd.refresh(con, "items", "pq", progress=False) == 0
    assert vd.compressed_column(con, "items", "pq").rows_encoded == 507


def test_failed_backfill_leaves_source_untouched_and_resumes(vdb, xb, trained):
    con, codec = vdb, trained["pq_l2"]
    x = xb[:600].copy()
    x[450, 4] = np.nan
    x[520, 0] = np.inf
    load_table(con, "items", x)
    vd.save_codec(con, "pq_l2", codec)
    before = embeddings(con)
    with pytest.raises(CodecError, match="the row with id = 450 has NaN or infinite values"):
        vd.add_compressed_column(
            con, "items", "embedding", "pq_l2", "pq", batch_size=100, progress=False
        )
    np.testing.assert_array_equal(embeddings(con), before)
    cc = vd.compressed_column(con, "items", "pq")
    assert cc.status == "backfilling" and cc.rows_encoded == 400  # committed batches stay
    assert column_type(con, "pq") == "BLOB"  # staged until every row is encoded
    codes, ids = column_codes(con, "items", "pq", codec)
    np.testing.assert_array_equal(codes, codec.encode(x[ids]))
    x[450] = xb[450]
    con.execute("UPDATE items SET embedding = ?::FLOAT[32] WHERE id = 450", [x[450].tolist()])
    before = embeddings(con)
    with pytest.raises(CodecError, match="the row with id = 520"):
        vd.refresh(con, "items", "pq", batch_size=100, progress=False)
    np.testing.assert_array_equal(embeddings(con), before)
    assert vd.compressed_column(con, "items", "pq").rows_encoded == 500
    x[520] = xb[520]
    con.execute("UPDATE items SET embedding = ?::FLOAT[32] WHERE id = 520", [x[520].tolist()])
    assert vd.backfill(con, "items", "pq", progress=False) == 100  # the rest, nothing twice
    codes, ids = column_codes(con, "items", "pq", codec)
    np.testing.assert_array_equal(ids, np.arange(600))
    np.testing.assert_array_equal(codes, codec.encode(x))
    assert vd.compressed_column(con, "items", "pq").status == "ready"
    assert column_type(con, "pq") == "UTINYINT[8]"


def column_type(con, column: str, table: str = "items") -> str:
    return con.execute(
        "SELECT data_type FROM duckdb_columns() WHERE table_name = ? AND column_name = ?",
        [table, column],
    ).fetchone()[0]


def test_table_with_an_index_gets_the_list_type_at_once(items_mem, xb, trained):
    """DuckDB cannot ALTER a column of an indexed table: no staging, row updates."""
    con, codec = items_mem, trained["bin_l2"]
    con.execute("CREATE INDEX items_id ON items (id)")
    vd.add_compressed_column(con, "items", "embedding", "bin_l2", "bits", progress=False)
    assert column_type(con, "bits") == "UBIGINT[1]"
    codes, _ = column_codes(con, "items", "bits", codec)
    np.testing.assert_array_equal(codes, codec.encode(xb[:500]))
    con.execute("UPDATE items SET embedding = ?::FLOAT[32] WHERE id = 9", [xb[700].tolist()])
    assert vd.refresh(con, "items", "bits", progress=False) == 1
    with pytest.raises(CatalogError, match="while it has indexes \\(items_id\\)"):
        vd.drop_compressed_column(con, "items", "bits")
    con.execute("DROP INDEX items_id")
    vd.drop_compressed_column(con, "items", "bits")


def test_refresh_joins_the_callers_transaction(items_mem, xb, trained):
    con = items_mem
    vd.add_compressed_column(con, "items", "embedding", "half_l2", "h", progress=False)
    before, _ = column_codes(con, "items", "h", trained["half_l2"])
    con.execute("BEGIN TRANSACTION")
    con.execute("UPDATE items SET embedding = ?::FLOAT[32] WHERE id = 1", [xb[600].tolist()])
    assert vd.refresh(con, "items", "h", progress=False) == 1
    con.execute("ROLLBACK")
    after, _ = column_codes(con, "items", "h", trained["half_l2"])
    np.testing.assert_array_equal(after, before)
    assert vd.stale_rows(con, "items", "h") == 0


def test_bad_input_gets_clear_errors(items_mem):
    con = items_mem
    con.execute("CREATE TABLE other (id INTEGER, small FLOAT[16], lst FLOAT[], n INTEGER)")
    with pytest.raises(
        CodecError, match="other.small has dimension 16, but codec 'pq_l2' expects dimension 32"
    ):
        vd.add_compressed_column(con, "other", "small", "pq_l2")
    with pytest.raises(CodecError, match="other.lst is FLOAT\\[\\], expected FLOAT\\[d\\]"):
        vd.add_compressed_column(con, "other", "lst", "pq_l2")
    with pytest.raises(CodecError, match="other.n is INTEGER"):
        vd.add_compressed_column(con, "other", "n", "pq_l2")
    with pytest.raises(CodecError, match="unknown codec 'nope'; known codecs: bin_l2, half_l2"):
        vd.add_compressed_column(con, "items", "embedding", "nope")
    with pytest.raises(CatalogError, match="has no column 'vec'"):
        vd.add_compressed_column(con, "items", "vec", "pq_l2")
    with pytest.raises(CatalogError, match="table 'missing' does not exist"):
        vd.add_compressed_column(con, "missing", "embedding", "pq_l2")
    with pytest.raises(CatalogError, match="already has a column 'id'"):
        vd.add_compressed_column(con, "items", "embedding", "pq_l2", "id")
    with pytest.raises(CodecError, match="batch_size must be a positive integer"):
        vd.add_compressed_column(con, "items", "embedding", "pq_l2", batch_size=0)
    with pytest.raises(CatalogError, match="items.embedding is not a vecext compressed column"):
        vd.refresh(con, "items", "embedding")
    vd.add_compressed_column(con, "items", "embedding", "pq_l2", "pq", progress=False)
    with pytest.raises(CatalogError, match="compressed column of codec 'pq_l2'.*refresh"):
        vd.add_compressed_column(con, "items", "embedding", "pq_l2", "pq")


def test_codes_of_another_version_are_detected(items_mem, trained):
    con = items_mem
    vd.add_compressed_column(con, "items", "embedding", "pq_l2", "pq", progress=False)
    other, fp = "00112233aabbccdd", trained["pq_l2"].fingerprint
    con.execute("UPDATE vecext.compressed_columns SET codec_fingerprint = ?", [other])
    for call in (vd.refresh, vd.check_column_current):
        with pytest.raises(CodecVersionError, match=f"version {other}.*version {fp}"):
            call(con, "items", "pq")


def test_injection_attempts_fail_safely(items_mem):
    con = items_mem
    attempts = [
        ("items; DROP TABLE items; --", "embedding", "pq_l2", CatalogError),
        ('items"; DROP TABLE items; --', "embedding", "pq_l2", CatalogError),
        ("items", 'embedding"; DROP TABLE items; --', "pq_l2", CatalogError),
        ("items", "embedding", "pq_l2'; DROP TABLE items; --", CodecError),
        ("items", "embedding", "pq_l2", CatalogError),  # (code column below)
    ]
    for table, column, codec, err in attempts[:4]:
        with pytest.raises(err):
            vd.add_compressed_column(con, table, column, codec, progress=False)
    with pytest.raises(CatalogError):
        vd.refresh(con, "items", 'x" = NULL; DROP TABLE items; --')
    assert con.execute("SELECT count(*) FROM items").fetchone() == (500,)
    # an odd but legal column name is quoted, not interpreted
    weird = 'codes "x"; DROP TABLE items; --'
    assert (
        vd.add_compressed_column(con, "items", "embedding", "bin_l2", weird, progress=False)
        == weird
    )
    assert con.execute(
        f'SELECT count("{weird.replace(chr(34), chr(34) * 2)}") FROM items'
    ).fetchone() == (500,)
    vd.drop_compressed_column(con, "items", weird)
    assert con.execute("SELECT count(*) FROM items").fetchone() == (500,)
    assert vd.list_compressed_columns(con) == []


def test_drop_compressed_column_keeps_the_source(items_mem):
    con = items_mem
    before = embeddings(con)
    vd.add_compressed_column(con, "items", "embedding", "rbq_l2", "r", progress=False)
    vd.drop_compressed_column(con, "items", "r")
    cols = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'items'"
        ).fetchall()
    ]
    assert cols == ["id", "embedding"]
    np.testing.assert_array_equal(embeddings(con), before)
    assert vd.drop_codec(con, "rbq_l2")  # no longer used


def test_double_source_in_another_schema(mem, xb, trained):
    con = mem
    con.execute("CREATE SCHEMA app")
    load_table(con, "app.docs", xb[:300])
    con.execute(f"ALTER TABLE app.docs ALTER embedding TYPE DOUBLE[{D}]")
    vd.save_codec(con, "int8_l2", trained["int8_l2"])
    vd.add_compressed_column(con, "app.docs", "embedding", "int8_l2", "q8", progress=False)
    codes, _ = column_codes(con, "app.docs", "q8", trained["int8_l2"])
    np.testing.assert_array_equal(codes, trained["int8_l2"].encode(xb[:300].astype(np.float64)))
    assert vd.compressed_column(con, "app.docs", "q8").table.schema == "app"
