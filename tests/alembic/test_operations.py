"""vecext's Alembic operations run directly on a MigrationContext: from_file codecs,
expression indexes (CONCURRENTLY), reverses, and the bad-input cases."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from vecext.alembic import (
    AddCompressedColumnOp,
    CreateCodecOp,
    CreateVectorIndexOp,
    DropCodecOp,
    DropCompressedColumnOp,
    DropVectorIndexOp,
    MigrationError,
)
from vecext.codecs import dump_state, make_codec
from vecext.postgres.connection import sqlalchemy_url

D = 8


@pytest.fixture
def table(pg_catalog, pg_dsn):
    rng = np.random.default_rng(3)
    xb = rng.standard_normal((300, D)).astype(np.float32)
    pg_catalog.execute(f"CREATE TABLE docs (id int PRIMARY KEY, title text, embedding vector({D}))")
    with pg_catalog.cursor() as cur:
        cur.executemany(
            "INSERT INTO docs VALUES (%s, %s, %s::vector)",
            [(i, f"t{i}", "[" + ",".join(map(repr, v.tolist())) + "]") for i, v in enumerate(xb)],
        )
    return xb


@pytest.fixture
def migrate(pg_dsn) -> Iterator[contextlib.AbstractContextManager[Operations]]:
    engine = sa.create_engine(sqlalchemy_url(pg_dsn), poolclass=sa.pool.NullPool)

    @contextlib.contextmanager
    def step() -> Iterator[Operations]:
        """One migration: its own transaction, as Alembic runs a revision."""
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn)
            with ctx.begin_transaction():
                yield Operations(ctx)

    yield step
    engine.dispose()


def vectors(dsn: str) -> list[tuple[int, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT id, embedding::text FROM docs ORDER BY id").fetchall()


def test_codec_from_file_column_and_indexes_then_reverse(table, migrate, pg_dsn, tmp_path):
    codec = make_codec("binary", D, "cosine").train(table)
    path = tmp_path / "docs_bin.npz"
    path.write_bytes(dump_state(codec.to_state()))
    before = vectors(pg_dsn)
    with migrate() as op:
        op.create_codec("docs_bin", from_file=str(path), table="docs", column="embedding")
        # the in-table layout, as a model's compressed_column() makes it
        name = op.add_compressed_column(
            "docs", "embedding", "docs_bin", "embedding_bits", batch_size=64, layout="table"
        )
        assert name == "embedding_bits"
        op.create_vector_index("docs_bits_hnsw", "docs", "embedding", storage="bit", m=8)
        op.create_vector_index(
            "docs_half_ivf",
            "docs",
            "embedding",
            method="ivfflat",
            storage="halfvec",
            metric="l2",
            lists=4,
            concurrently=True,
        )
    with psycopg.connect(pg_dsn) as conn:
        codes = conn.execute("SELECT embedding_bits::text FROM docs ORDER BY id").fetchall()
        packed = np.packbits(
            np.array([[c == "1" for c in r[0]] for r in codes]), axis=1, bitorder="big"
        )
        np.testing.assert_array_equal(packed, codec.encode(table))
        defs = dict(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'docs'"
            ).fetchall()
        )
    assert (
        "binary_quantize(embedding)" in defs["docs_bits_hnsw"]
        and "bit_hamming_ops" in defs["docs_bits_hnsw"]
    )
    assert "halfvec(8)" in defs["docs_half_ivf"] and "halfvec_l2_ops" in defs["docs_half_ivf"]

    # the reverses, as autogenerate would write them for a downgrade
    add = AddCompressedColumnOp("docs", "embedding", "docs_bin", "embedding_bits")
    idx = CreateVectorIndexOp(
        "docs_half_ivf",
        "docs",
        "embedding",
        method="ivfflat",
        storage="halfvec",
        metric="l2",
        options={"lists": 4},
    )
    assert isinstance(add.reverse(), DropCompressedColumnOp)
    assert isinstance(idx.reverse(), DropVectorIndexOp)
    assert isinstance(add.reverse().reverse(), AddCompressedColumnOp)
    with migrate() as op:
        op.invoke(idx.reverse())
        op.drop_vector_index("docs_bits_hnsw", concurrently=True)
        op.invoke(add.reverse())
        op.drop_codec("docs_bin")
    assert vectors(pg_dsn) == before
    with psycopg.connect(pg_dsn) as conn:
        cols = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'docs'"
            )
        ]
        assert sorted(cols) == ["embedding", "id", "title"]
        assert conn.execute("SELECT count(*) FROM vecext.codecs").fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'docs'"
        ).fetchone() == (1,)


def test_bad_input_gives_clear_errors(table, migrate, pg_dsn):
    before = vectors(pg_dsn)

    def fails(match: str, action) -> None:
        """``action(op)`` in its own migration raises MigrationError matching ``match``."""
        with pytest.raises(MigrationError, match=match), migrate() as op:
            action(op)

    # a codec that does not exist
    fails(
        r"codec 'nope' does not exist .*codecs there: none.*op.create_codec",
        lambda op: op.add_compressed_column("docs", "embedding", "nope", "embedding_codes"),
    )
    # a source column of the wrong type, a missing column or table, a bad parameter
    fails(
        r"docs.title has type text.*vector\(d\)",
        lambda op: op.create_codec("docs_pq", table="docs", column="title", kind="pq", m=2),
    )
    fails(
        r"column 'missing' does not exist in table docs",
        lambda op: op.create_codec("docs_pq", table="docs", column="missing", kind="pq", m=2),
    )
    fails(
        r"table 'nowhere' does not exist",
        lambda op: op.create_codec("docs_pq", table="nowhere", column="embedding", kind="pq", m=2),
    )
    fails(
        r"unknown parameter 'mm'",
        lambda op: op.create_codec("docs_pq", table="docs", column="embedding", kind="pq", mm=2),
    )
    with pytest.raises(MigrationError, match="needs from_file=, or table=, column= and kind="):
        CreateCodecOp("docs_pq", table="docs")
    with migrate() as op:
        op.create_codec("docs_int8", table="docs", column="embedding", kind="int8", metric="l2")
        op.add_compressed_column("docs", "embedding", "docs_int8", "embedding_i8")
    fails(
        r"docs.title has type text",
        lambda op: op.add_compressed_column("docs", "title", "docs_int8", "title_i8"),
    )
    # a downgrade never drops the source vectors, even when asked to by mistake
    fails(
        r"docs.embedding \(vector\(8\)\) is not a vecext compressed column",
        lambda op: op.drop_compressed_column("docs", "embedding"),
    )
    fails(
        r"still used by compressed column\(s\) public.docs.embedding_i8",
        lambda op: op.drop_codec("docs_int8"),
    )
    fails(
        "docs_pkey' is a btree index, not a vector index",
        lambda op: op.drop_vector_index("docs_pkey"),
    )
    with pytest.raises(MigrationError, match="unknown option 'ef'"):
        CreateVectorIndexOp("i", "docs", "embedding", options={"ef": 3})
    # drops written without what they remove cannot be reversed by autogenerate
    with pytest.raises(MigrationError, match="cannot be reversed"):
        DropCodecOp("docs_int8").reverse()
    with pytest.raises(MigrationError, match="cannot be reversed"):
        DropCompressedColumnOp("docs", "embedding_i8").reverse()
    assert vectors(pg_dsn) == before


def test_drop_compressed_column_drops_its_ivf_lists(table, migrate, pg_dsn, pg_catalog):
    """IVF lists added to a compressed column go with it in the downgrade, and the
    codec can be dropped after: no list column, trigger or centroids are left."""
    from vecext.postgres import add_ivf_lists, orphaned_ivf_lists

    before = vectors(pg_dsn)
    with migrate() as op:
        op.create_codec("docs_pq", table="docs", column="embedding", kind="pq", m=2, niter=4)
        op.add_compressed_column("docs", "embedding", "docs_pq", "embedding_pq")
    lists = add_ivf_lists(pg_catalog, "docs", "embedding", 4, niter=4)
    with migrate() as op:
        op.drop_compressed_column("docs", "embedding_pq")
        op.drop_codec("docs_pq")
    assert vectors(pg_dsn) == before
    assert orphaned_ivf_lists(pg_catalog) == []
    cols = pg_catalog.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'docs'"
    ).fetchall()
    assert sorted(r[0] for r in cols) == ["embedding", "id", "title"]
    assert pg_catalog.execute("SELECT count(*) FROM vecext.codecs").fetchone() == (0,)
    assert not pg_catalog.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'docs'::regclass AND NOT tgisinternal"
    ).fetchall()
    # a code-store column keeps its lists in its store (catalog 0.5.0): gone with it
    assert lists.store is not None and lists.list_column == "list"
    assert pg_catalog.execute("SELECT to_regclass(%s)", [f"vecext.{lists.store}"]).fetchone() == (
        None,
    )


def _size(conn) -> tuple[int, int]:
    conn.execute("CHECKPOINT")
    return conn.execute(
        "SELECT pg_total_relation_size('docs'), relfilenode FROM pg_class "
        "WHERE oid = 'docs'::regclass"
    ).fetchone()


def test_layout_without_layout_argument(table, pg_dsn, pg_catalog):
    """``op.add_compressed_column`` without ``layout=``: a code store, unless the migration's
    target_metadata maps the code column as a column of the table (what migrations
    generated before vecext wrote ``layout=`` came from)."""
    from vecext.postgres import compressed_column

    engine = sa.create_engine(sqlalchemy_url(pg_dsn), poolclass=sa.pool.NullPool)
    md = sa.MetaData()
    sa.Table(
        "docs", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("title", sa.Text),
        sa.Column("embedding", sa.LargeBinary), sa.Column("embedding_t", sa.LargeBinary),
    )  # fmt: skip
    before = _size(pg_catalog)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn)  # no model
            with ctx.begin_transaction():
                op = Operations(ctx)
                op.create_codec("docs_bin", table="docs", column="embedding", kind="binary")
                op.add_compressed_column("docs", "embedding", "docs_bin", "embedding_s")
        assert _size(pg_catalog) == before  # the table is not touched
        assert compressed_column(pg_catalog, "docs", "embedding_s").layout == "store"
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"target_metadata": md})
            with ctx.begin_transaction():
                op = Operations(ctx)
                op.add_compressed_column("docs", "embedding", "docs_bin", "embedding_t")
                # the model does not map this one: a store
                op.add_compressed_column("docs", "embedding", "docs_bin", "embedding_u")
        assert compressed_column(pg_catalog, "docs", "embedding_t").layout == "table"
        assert compressed_column(pg_catalog, "docs", "embedding_u").layout == "store"
        n = pg_catalog.execute("SELECT count(embedding_t) FROM docs").fetchone()[0]
        assert n == len(table)

        def fails(match: str, action) -> None:
            with pytest.raises(MigrationError, match=match), engine.connect() as conn:
                ctx = MigrationContext.configure(conn)
                with ctx.begin_transaction():
                    action(Operations(ctx))

        # an unknown codec, a layout that is neither, a column of the other layout
        fails(
            r"codec 'nope' does not exist .*codecs there: docs_bin",
            lambda op: op.add_compressed_column(
                "docs", "embedding", "nope", "embedding_x", layout="store"
            ),
        )
        fails(
            "layout must be 'store' or 'table', got 'heap'",
            lambda op: op.add_compressed_column("docs", "embedding", "docs_bin", layout="heap"),
        )
        fails(
            r"docs.embedding_s is already a compressed column of layout 'store', not 'table'",
            lambda op: op.add_compressed_column(
                "docs", "embedding", "docs_bin", "embedding_s", layout="table"
            ),
        )
        # the downgrade of a store drop re-adds a store
        drop = DropCompressedColumnOp(
            "docs", "embedding_s", source_column="embedding", codec="docs_bin", layout="store"
        )
        assert drop.reverse().layout == "store"
        assert drop.reverse().reverse().layout == "store"
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn)
            with ctx.begin_transaction():
                op = Operations(ctx)
                for name in ("embedding_s", "embedding_t", "embedding_u"):
                    op.drop_compressed_column("docs", name)
                op.drop_codec("docs_bin")
        assert pg_catalog.execute("SELECT count(*) FROM vecext.compressed_columns").fetchone() == (
            0,
        )
    finally:
        engine.dispose()


def test_vector_index_on_a_compressed_column_in_a_code_store(table, migrate, pg_dsn, tmp_path):
    """op.create_vector_index on a compressed column whose codes live in a code store
    builds pgvector's HNSW over the codes (the table is not touched); its reverse and a
    drop by name alone find it in schema vecext."""
    from vecext.postgres import connect, search

    codec = make_codec("binary", D, "cosine").train(table)
    path = tmp_path / "docs_bin.npz"
    path.write_bytes(dump_state(codec.to_state()))
    with migrate() as op:
        op.create_codec("docs_bin", from_file=str(path), table="docs", column="embedding")
        op.add_compressed_column("docs", "embedding", "docs_bin", "embedding_bits", layout="store")

    def store_indexes() -> dict[str, str]:
        with psycopg.connect(pg_dsn) as conn:
            return dict(
                conn.execute(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'vecext' "
                    "AND tablename = (SELECT 'store_' || id FROM vecext.compressed_columns "
                    "WHERE code_column = 'embedding_bits') AND indexdef LIKE '%USING hnsw%'"
                ).fetchall()
            )

    with migrate() as op:
        op.create_vector_index("docs_bits_hnsw", "docs", "embedding_bits", m=8)
    defs = store_indexes()
    assert list(defs) == ["docs_bits_hnsw"] and "bit_hamming_ops" in defs["docs_bits_hnsw"]
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'docs'"
        ).fetchone() == (1,)  # the table's primary key only
    with connect(pg_dsn, autocommit=True) as conn:
        r = search(conn, "docs", "embedding", table[0], 5, strategy="hnsw", using="docs_bits_hnsw")
        assert r.plan.params["index"] == "docs_bits_hnsw" and r.ids[0] == 0
    idx = CreateVectorIndexOp("docs_bits_hnsw", "docs", "embedding_bits", options={"m": 8})
    with migrate() as op:
        op.invoke(idx.reverse())  # names the table: found over its code store
    assert store_indexes() == {}
    with migrate() as op:
        op.invoke(idx)
        op.drop_vector_index("docs_bits_hnsw")  # by name alone
    assert store_indexes() == {}
    with (
        pytest.raises(MigrationError, match="embedding_bits is a compressed column: its code"),
        migrate() as op,
    ):
        op.create_vector_index("docs_bits_ivf", "docs", "embedding_bits", method="ivfflat")
    with (
        pytest.raises(MigrationError, match="column 'embedding_nope' does not exist"),
        migrate() as op,
    ):
        op.create_vector_index("docs_nope", "docs", "embedding_nope")
    with (
        pytest.raises(MigrationError, match="index 'docs_bits_hnsw' does not exist"),
        migrate() as op,
    ):
        op.drop_vector_index("docs_bits_hnsw")
