"""Compressed columns: add (Python and SQL), backfill (bulk and SQL), resume after a
failed batch with the source untouched, drop, storage sizes, and every bad input."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import psycopg
import pytest
from psycopg import sql

from tests.postgres.conftest import (
    clustered,
    load_table,
    store_codes,
    store_of,
    vector_text,
)
from vecext.codecs import CodecError, CodecVersionError, make_codec
from vecext.errors import CatalogError, VecextWarning
from vecext.postgres import (
    BackfillError,
    add_compressed_column,
    backfill,
    check_column_current,
    codec_errors,
    compressed_column,
    connect,
    drop_compressed_column,
    list_compressed_columns,
    save_codec,
)

D = 16


@pytest.fixture(scope="module")
def codecs(mconn):
    xt = clustered(800, D, seed=20)
    out = {
        "col_pq": make_codec("pq", D, "l2", m=4, niter=8).train(xt),
        "col_bin": make_codec("binary", D).train(xt),
        "col_half": make_codec("half", D),
    }
    for name, codec in out.items():
        save_codec(mconn, name, codec)
    return out


def checksum(conn, table: str, column: str = "embedding") -> str:
    q = sql.SQL("SELECT md5(string_agg({}::text, ',' ORDER BY id)) FROM {}").format(
        sql.Identifier(column), sql.Identifier(*table.split("."))
    )
    return conn.execute(q).fetchone()[0]


def test_python_path_backfills_with_copy_and_registers(mconn, codecs):
    x = clustered(2500, D, seed=21)
    load_table(mconn, "bulk", x, key_type="bigint")
    name = add_compressed_column(
        mconn, "bulk", "embedding", "col_pq", batch_size=700, progress=True
    )
    assert name == "embedding_col_pq"
    keys, got = store_codes(mconn, "bulk", name)
    assert keys == list(range(2500))
    np.testing.assert_array_equal(got, codecs["col_pq"].encode(x))
    cc = check_column_current(mconn, "bulk", name)
    assert (cc.status, cc.rows_encoded, cc.key_column, cc.backfill_position) == (
        "ready",
        2500,
        "id",
        None,
    )
    assert cc.codec_fingerprint == codecs["col_pq"].fingerprint
    # the trigger is there too
    mconn.execute("INSERT INTO bulk VALUES (99999, %s::vector)", [vector_text(x[0] * 2)])
    _, got = store_codes(mconn, "bulk", name, "pk = 99999")
    assert got.tobytes() == codecs["col_pq"].encode(x[:1] * 2).tobytes()


@pytest.mark.parametrize("codec", ["col_bin", "col_half"])
def test_python_backfill_of_bit_and_halfvec_columns(mconn, codecs, codec):
    x = clustered(300, D, seed=22)
    load_table(mconn, f"typed_{codec}", x)
    add_compressed_column(mconn, f"typed_{codec}", "embedding", codec, "codes", progress=False)
    _, got = store_codes(mconn, f"typed_{codec}", "codes")
    np.testing.assert_array_equal(got, codecs[codec].encode(x))


def test_sql_path_and_schema_qualified_quoted_names(mconn, codecs):
    """SQL functions with a schema-qualified table and identifiers that need quoting;
    the Python API takes the same names."""
    x = clustered(400, D, seed=23)
    mconn.execute('CREATE SCHEMA "App Data"')
    mconn.execute(f'CREATE TABLE "App Data"."My Items" (key text PRIMARY KEY, "Vec" vector({D}))')
    with mconn.cursor().copy('COPY "App Data"."My Items" FROM STDIN') as copy:
        for i, row in enumerate(x):
            copy.write_row((f"k{i:04d}", vector_text(row)))
    col = mconn.execute(
        """SELECT vecext.add_compressed_column('"App Data"."My Items"', 'Vec', 'col_pq', 'Codes!')"""
    ).fetchone()[0]
    assert col == "Codes!"
    mconn.execute("""CALL vecext.backfill('"App Data"."My Items"', 'Codes!', 150)""")
    keys, got = store_codes(mconn, '"App Data"."My Items"', "Codes!")
    assert keys == [f"k{i:04d}" for i in range(400)]
    np.testing.assert_array_equal(got, codecs["col_pq"].encode(x))
    cc = compressed_column(mconn, '"App Data"."My Items"', "Codes!")
    assert (cc.table.schema, cc.table.name, cc.status, cc.rows_encoded) == (
        "App Data",
        "My Items",
        "ready",
        400,
    )
    # Python path on the same table: text keys go through the per-row COPY path
    add_compressed_column(
        mconn, '"App Data"."My Items"', "Vec", "col_bin", "bits", batch_size=128, progress=False
    )
    _, bits = store_codes(mconn, '"App Data"."My Items"', "bits")
    stores = [
        store_of(mconn, '"App Data"."My Items"', c).as_string(mconn) for c in ("Codes!", "bits")
    ]
    np.testing.assert_array_equal(bits, codecs["col_bin"].encode(x))
    drop_compressed_column(mconn, '"App Data"."My Items"', "bits")
    mconn.execute("""SELECT vecext.drop_compressed_column('"App Data"."My Items"', 'Codes!')""")
    cols = [
        r[0]
        for r in mconn.execute(
            """SELECT attname FROM pg_attribute WHERE attrelid = '"App Data"."My Items"'::regclass
           AND attnum > 0 AND NOT attisdropped ORDER BY attnum"""
        ).fetchall()
    ]
    assert cols == ["key", "Vec"]
    assert (
        mconn.execute(
            """SELECT count(*) FROM pg_trigger WHERE tgrelid = '"App Data"."My Items"'::regclass"""
        ).fetchone()[0]
        == 0
    )
    assert all(c.table.name != "My Items" for c in list_compressed_columns(mconn))
    # the code stores went with them
    assert [mconn.execute("SELECT to_regclass(%s)", [s]).fetchone()[0] for s in stores] == [
        None,
        None,
    ]


def _lock_row(dsn: str, table: str, key: int, locked: threading.Event, release: threading.Event):
    with psycopg.connect(dsn) as other:
        other.execute(
            sql.SQL("SELECT 1 FROM {} WHERE id = %s FOR UPDATE").format(sql.Identifier(table)),
            [key],
        )
        locked.set()
        release.wait(30)


def test_failed_python_backfill_leaves_source_untouched_and_resumes(mconn, module_dsn, codecs):
    """A concurrent transaction holds a row lock: the batch that needs it times out.
    Earlier batches stay committed, the position is recorded, the source column is
    unchanged, and a second call finishes the job."""
    x = clustered(1000, D, seed=24)
    load_table(mconn, "resume_py", x)
    before = checksum(mconn, "resume_py")
    add_compressed_column(mconn, "resume_py", "embedding", "col_pq", "codes", backfill=False)
    locked, release = threading.Event(), threading.Event()
    t = threading.Thread(target=_lock_row, args=(module_dsn, "resume_py", 650, locked, release))
    t.start()
    locked.wait(10)
    conn = connect(module_dsn, autocommit=True)
    conn.execute("SET lock_timeout = '300ms'")
    try:
        with pytest.raises(
            BackfillError, match="after key '599'.*600 rows committed.*untouched.*lock timeout"
        ):
            backfill(conn, "resume_py", "codes", batch_size=200, progress=False)
    finally:
        release.set()
        t.join()
    cc = compressed_column(mconn, "resume_py", "codes")
    assert (cc.status, cc.backfill_position, cc.rows_encoded) == ("backfilling", "599", 600)
    assert len(store_codes(mconn, "resume_py", "codes")[0]) == 600
    assert checksum(mconn, "resume_py") == before
    assert backfill(conn, "resume_py", "codes", batch_size=200, progress=False) == 400
    conn.close()
    np.testing.assert_array_equal(
        store_codes(mconn, "resume_py", "codes")[1], codecs["col_pq"].encode(x)
    )
    assert checksum(mconn, "resume_py") == before
    assert compressed_column(mconn, "resume_py", "codes").rows_encoded == 1000


def test_failed_sql_backfill_resumes(mconn, module_dsn, codecs):
    x = clustered(600, D, seed=25)
    load_table(mconn, "resume_sql", x)
    before = checksum(mconn, "resume_sql")
    mconn.execute(
        "SELECT vecext.add_compressed_column('resume_sql', 'embedding', 'col_pq', 'codes')"
    )
    locked, release = threading.Event(), threading.Event()
    t = threading.Thread(target=_lock_row, args=(module_dsn, "resume_sql", 450, locked, release))
    t.start()
    locked.wait(10)
    conn = connect(module_dsn, autocommit=True)
    conn.execute("SET lock_timeout = '300ms'")
    try:
        with pytest.raises(psycopg.errors.LockNotAvailable):
            conn.execute("CALL vecext.backfill('resume_sql', 'codes', 100)")
    finally:
        release.set()
        t.join()
    cc = compressed_column(mconn, "resume_sql", "codes")
    assert (cc.backfill_position, cc.rows_encoded) == ("399", 400)
    assert checksum(mconn, "resume_sql") == before
    conn.execute("CALL vecext.backfill('resume_sql', 'codes', 100)")
    conn.close()
    np.testing.assert_array_equal(
        store_codes(mconn, "resume_sql", "codes")[1], codecs["col_pq"].encode(x)
    )
    assert compressed_column(mconn, "resume_sql", "codes").status == "ready"


def test_codec_error_in_a_batch_names_it_and_resumes_after_the_fix(mconn, codecs):
    """A value beyond the float16 range cannot be encoded by the half codec."""
    x = clustered(300, D, seed=26)
    x[170, 3] = 1e5
    load_table(mconn, "too_big", x)
    before = checksum(mconn, "too_big")
    with pytest.raises(BackfillError, match=r"after key '99'.*float16 range") as info:
        add_compressed_column(
            mconn, "too_big", "embedding", "col_half", "h", batch_size=100, progress=False
        )
    assert (info.value.position, info.value.rows_encoded) == ("99", 100)
    assert checksum(mconn, "too_big") == before
    # fixing the row fires the trigger (which encodes it); the backfill then completes
    x[170, 3] = 1.0
    mconn.execute("UPDATE too_big SET embedding = %s::vector WHERE id = 170", [vector_text(x[170])])
    assert backfill(mconn, "too_big", "h", batch_size=100, progress=False) == 199
    np.testing.assert_array_equal(
        store_codes(mconn, "too_big", "h")[1], codecs["col_half"].encode(x)
    )


def test_bad_inputs_have_clear_errors(mconn, codecs):
    mconn.execute(
        "CREATE TABLE bad (id int PRIMARY KEY, e8 vector(8), e16 vector(16), "
        "anyd vector, arr real[], other int)"
    )
    mconn.execute(f"CREATE TABLE nopk (embedding vector({D}))")
    cases = [
        (
            ("bad", "e8", "col_pq"),
            CodecError,
            r"public\.bad\.e8 has dimension 8 \(vector\(8\)\), but the codec expects dimension 16",
        ),
        (
            ("bad", "arr", "col_pq"),
            CodecError,
            r"public\.bad\.arr is real\[\], expected vector\(16\)",
        ),
        (
            ("bad", "anyd", "col_pq"),
            CodecError,
            r"public\.bad\.anyd is vector, expected vector\(16\)",
        ),
        (
            ("bad", "e16", "nope"),
            CodecError,
            r"unknown codec 'nope'; known codecs: col_bin, col_half, col_pq",
        ),
        (("bad", "missing", "col_pq"), CatalogError, r"table public\.bad has no column 'missing'"),
        (("no_such_table", "e16", "col_pq"), CatalogError, r"table 'no_such_table' does not exist"),
        (
            ("nopk", "embedding", "col_pq"),
            CatalogError,
            r"table public\.nopk needs a single-column primary key",
        ),
        (("bad", "e16", "col_pq", "other"), CatalogError, r"already has a column 'other'"),
    ]
    for args, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            add_compressed_column(mconn, *args, progress=False)
    with pytest.raises(CodecError, match="batch_size must be a positive integer"):
        add_compressed_column(mconn, "bad", "e16", "col_pq", batch_size=0)
    # the SQL function checks the same things
    for call, msg in [
        (
            "'bad', 'e8', 'col_pq'",
            "column bad.e8 has dimension 8 \\(vector\\(8\\)\\), but codec 'col_pq' expects dimension 16",
        ),
        (
            "'bad', 'arr', 'col_pq'",
            "column bad.arr is real\\[\\], but codec 'col_pq' needs vector\\(16\\)",
        ),
        ("'bad', 'e16', 'nope'", "unknown codec 'nope'"),
        ("'nopk', 'embedding', 'col_pq'", "table nopk needs a single-column primary key"),
        ("'bad', 'e16', 'col_pq', 'other'", "table bad already has a column other"),
    ]:
        with pytest.raises(psycopg.Error, match=msg):
            mconn.execute(f"SELECT vecext.add_compressed_column({call})")
    assert list(
        mconn.execute(
            "SELECT count(*) FROM vecext.compressed_columns k WHERE k.table_name IN ('bad', 'nopk')"
        ).fetchone()
    ) == [0]
    # NaN and infinities never reach the database: pgvector refuses them, the core too
    with pytest.raises(psycopg.errors.DataException, match="NaN not allowed in vector"):
        mconn.execute("SELECT '[1,NaN]'::vector")
    with pytest.raises(CodecError, match="NaN or infinite"):
        codecs["col_pq"].encode(np.full((1, D), np.inf, np.float32))
    with pytest.raises(CodecError, match="dimension 8, expected 16"):
        codecs["col_pq"].encode(np.zeros((1, 8), np.float32))


def test_codes_of_another_version_are_refused(mconn, codecs):
    x = clustered(50, D, seed=27)
    load_table(mconn, "stale", x)
    add_compressed_column(mconn, "stale", "embedding", "col_bin", "bits", progress=False)
    fp = codecs["col_bin"].fingerprint
    mconn.execute(
        "UPDATE vecext.compressed_columns SET codec_fingerprint = '0123456789abcdef', "
        "status = 'backfilling' WHERE table_name = 'stale'"
    )
    try:
        with pytest.raises(
            CodecVersionError, match=f"version 0123456789abcdef, but the catalog holds version {fp}"
        ):
            check_column_current(mconn, "stale", "bits")
        with pytest.raises(CodecVersionError, match="0123456789abcdef"):
            backfill(mconn, "stale", "bits", progress=False)
        with (
            pytest.raises(
                CodecVersionError, match=f"0123456789abcdef, but the catalog holds version {fp}"
            ),
            codec_errors(),
        ):
            mconn.execute("CALL vecext.backfill('stale', 'bits')")
    finally:
        mconn.execute(
            "UPDATE vecext.compressed_columns SET codec_fingerprint = %s WHERE table_name = 'stale'",
            [fp],
        )
    assert check_column_current(mconn, "stale", "bits").codec == "col_bin"


def test_injection_through_names_fails_safely(mconn, codecs):
    x = clustered(20, D, seed=28)
    load_table(mconn, "victim", x)
    evil = [
        ("victim; DROP TABLE victim; --", "embedding", "col_pq", None),
        ("victim", 'embedding"; DROP TABLE victim; --', "col_pq", None),
        ("victim", "embedding", "col_pq'; DROP TABLE victim; --", None),
    ]
    for table, column, codec, code in evil:
        with pytest.raises((CatalogError, CodecError)):
            add_compressed_column(mconn, table, column, codec, code, progress=False)
    # a hostile code column name is just a (quoted) name
    weird = 'c"); DROP TABLE victim; --'
    assert (
        add_compressed_column(mconn, "victim", "embedding", "col_pq", weird, progress=False)
        == weird
    )
    assert len(store_codes(mconn, "victim", weird)[0]) == 20
    with pytest.raises(psycopg.Error, match="unknown codec"):
        mconn.execute("SELECT vecext.encode('x''); DROP TABLE victim; --', '[1]'::vector)")
    with pytest.raises(psycopg.Error):
        mconn.execute(
            "SELECT vecext.add_compressed_column('victim; DROP TABLE victim', 'embedding', 'col_pq')"
        )
    assert mconn.execute("SELECT count(*) FROM victim").fetchone()[0] == 20


def test_storage_sizes_in_the_stores(pg_catalog):
    """A 384-d vector: pgvector stores 8 header bytes + 1536; PQ M=48 and binary
    codes store 48 bytes of payload (+ a 1-byte varlena header; bit adds its
    4-byte bit length), in their code stores; the user's table does not grow."""
    conn = pg_catalog
    d = 384
    xt = clustered(300, d, seed=29)
    save_codec(conn, "s_pq", make_codec("pq", d, "l2", m=48, niter=2).train(xt))
    save_codec(conn, "s_bin", make_codec("binary", d).train(xt))
    load_table(conn, "sizes", xt[:5])
    conn.execute("VACUUM ANALYZE sizes")
    size = conn.execute("SELECT pg_total_relation_size('sizes')").fetchone()[0]
    add_compressed_column(conn, "sizes", "embedding", "s_pq", "pq", progress=False)
    add_compressed_column(conn, "sizes", "embedding", "s_bin", "bits", progress=False)
    assert conn.execute("SELECT pg_total_relation_size('sizes')").fetchone()[0] == size
    row = conn.execute(
        sql.SQL(
            "SELECT pg_column_size(t.embedding), pg_column_size(p.code), length(p.code), "
            "pg_column_size(b.code), length(b.code), octet_length(b.code) FROM sizes t "
            "JOIN {} p ON p.pk = t.id JOIN {} b ON b.pk = t.id LIMIT 1"
        ).format(store_of(conn, "sizes", "pq"), store_of(conn, "sizes", "bits"))
    ).fetchone()
    vec_size, pq_size, pq_len, bit_size, bit_len, bit_octets = row
    assert vec_size == 8 + 4 * d == 1544
    assert (pq_size, pq_len) == (48 + 1, 48)
    assert (bit_len, bit_octets) == (384, 48)
    assert bit_size == 1 + 4 + 48


def test_non_autocommit_connections(mconn, module_dsn, codecs):
    """Batches commit on a non-autocommit connection too; inside the caller's open
    transaction a backfill is refused, and backfill=False joins that transaction."""
    x = clustered(300, D, seed=30)
    load_table(mconn, "txn", x)
    conn = connect(module_dsn)  # autocommit off
    try:
        add_compressed_column(
            conn, "txn", "embedding", "col_pq", "codes", batch_size=100, progress=False
        )
        # visible from another session: committed
        assert len(store_codes(mconn, "txn", "codes")[0]) == 300
        conn.execute("SELECT 1")  # opens a transaction
        with pytest.raises(CatalogError, match="outside a transaction block"):
            add_compressed_column(conn, "txn", "embedding", "col_bin", "bits", progress=False)
        add_compressed_column(conn, "txn", "embedding", "col_bin", "bits", backfill=False)
        conn.rollback()
        assert [c.code_column for c in list_compressed_columns(mconn) if c.table.name == "txn"] == [
            "codes"
        ]
    finally:
        conn.close()


def test_backfill_leaves_the_table_and_its_ann_index_alone(mconn, codecs):
    """The backfill writes the store only: no row of the table is updated, so an ANN
    index on it gets no new entries (catalog 0.3.0 updated every row and warned), and
    the table's size does not change."""
    x = clustered(400, D, seed=27)
    load_table(mconn, "indexed", x)
    mconn.execute("CREATE INDEX indexed_hnsw ON indexed USING hnsw (embedding vector_l2_ops)")
    mconn.execute("VACUUM ANALYZE indexed")
    before = checksum(mconn, "indexed")
    sizes = "SELECT pg_total_relation_size('indexed'), pg_relation_size('indexed_hnsw')"
    size = mconn.execute(sizes).fetchone()
    tuples = (
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'indexed'::regclass"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", VecextWarning)
        add_compressed_column(mconn, "indexed", "embedding", "col_bin", "codes", progress=False)
    assert checksum(mconn, "indexed") == before
    assert mconn.execute(sizes).fetchone() == size
    mconn.execute("SELECT pg_stat_force_next_flush()")  # this session's counts, now
    mconn.execute("SELECT pg_stat_clear_snapshot()")
    assert mconn.execute(tuples).fetchone() == (0, 0)
    assert len(store_codes(mconn, "indexed", "codes")[0]) == 400
