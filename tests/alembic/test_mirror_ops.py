"""Mirrored filter columns through Alembic operations (catalog 0.6.0):
``op.add_compressed_column(..., mirror=)``, ``op.mirror_columns`` and
``op.unmirror_columns`` run on a MigrationContext against the embedded server, their
reverses, their rendering, and the bad-input cases."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import psycopg
import pytest
from alembic.autogenerate.render import renderers

from tests.alembic.test_operations import D, migrate  # noqa: F401  (the fixture)
from tests.postgres.test_pg_mirrors import assert_mirrored
from vecext.alembic import (
    AddCompressedColumnOp,
    DropCompressedColumnOp,
    MigrationError,
    MirrorColumnsOp,
    UnmirrorColumnsOp,
)
from vecext.postgres import mirrored_columns


@pytest.fixture
def docs(pg_catalog):
    xb = np.random.default_rng(7).standard_normal((300, D)).astype(np.float32)
    pg_catalog.execute(
        f"CREATE TABLE docs (id int PRIMARY KEY, cat text, n int, embedding vector({D}))"
    )
    with pg_catalog.cursor() as cur:
        cur.executemany(
            "INSERT INTO docs VALUES (%s, %s, %s, %s::vector)",
            [
                (i, "ab"[i % 2], i % 5, "[" + ",".join(map(repr, v.tolist())) + "]")
                for i, v in enumerate(xb)
            ],
        )
    return xb


def render(op) -> str:
    ctx = SimpleNamespace(imports=set())
    out = renderers.dispatch(op)(ctx, op)
    assert ctx.imports == {"import vecext.alembic"}
    return out


def test_mirror_ops_upgrade_downgrade(docs, migrate, pg_catalog):  # noqa: F811
    conn = pg_catalog
    with migrate() as op:
        op.create_codec("docs_bin", table="docs", column="embedding", kind="binary")
        name = op.add_compressed_column(
            "docs", "embedding", "docs_bin", "e", batch_size=64, layout="store", mirror=["cat"]
        )
        assert name == "e"
    # the backfill wrote the codes and the mirrored values together
    assert mirrored_columns(conn, "docs", "e") == ["cat"]
    assert assert_mirrored(conn, "docs", "e", ["cat"]) == 300

    with migrate() as op:
        assert op.mirror_columns("docs", "e", ["n"], batch_size=50) == ["cat", "n"]
    assert assert_mirrored(conn, "docs", "e", ["cat", "n"]) == 300
    # writes after the migration keep them current (the store's trigger)
    conn.execute("UPDATE docs SET n = 99, cat = 'z' WHERE id < 10")
    assert assert_mirrored(conn, "docs", "e", ["cat", "n"]) == 300

    # the reverses, as a downgrade runs them
    mirror = MirrorColumnsOp("docs", "e", ["n"], batch_size=50)
    assert isinstance(mirror.reverse(), UnmirrorColumnsOp)
    assert mirror.reverse().reverse().columns == ["n"]
    with migrate() as op:
        assert op.invoke(mirror.reverse()) == ["cat"]
    assert mirrored_columns(conn, "docs", "e") == ["cat"]
    with migrate() as op:
        assert op.invoke(mirror.reverse().reverse()) == ["cat", "n"]
    assert assert_mirrored(conn, "docs", "e", ["cat", "n"]) == 300

    # the drop's reverse re-adds the store with its mirrors
    add = AddCompressedColumnOp(
        "docs", "embedding", "docs_bin", "e", layout="store", mirror=["cat", "n"]
    )
    drop = add.reverse()
    assert isinstance(drop, DropCompressedColumnOp) and drop.mirror == ["cat", "n"]
    with migrate() as op:
        op.invoke(drop)
    assert conn.execute("SELECT count(*) FROM vecext.compressed_columns").fetchone() == (0,)
    with migrate() as op:
        assert op.invoke(drop.reverse()) == "e"
    assert assert_mirrored(conn, "docs", "e", ["cat", "n"]) == 300


def test_rendering():
    assert render(MirrorColumnsOp("items", "embedding_pq", ["category"])) == (
        "op.mirror_columns('items', 'embedding_pq', ['category'])"
    )
    assert render(UnmirrorColumnsOp("items", "e", "category", schema="app", batch_size=64)) == (
        "op.unmirror_columns('items', 'e', ['category'], schema='app', batch_size=64)"
    )
    add = AddCompressedColumnOp(
        "items", "embedding", "items_pq", "e", layout="store", mirror=["category", "tenant"]
    )
    assert render(add) == (
        "op.add_compressed_column('items', 'embedding', 'items_pq', 'e', layout='store', "
        "mirror=['category', 'tenant'])"
    )
    assert render(add.reverse()) == (
        "op.drop_compressed_column('items', 'e', source_column='embedding', "
        "codec='items_pq', layout='store', mirror=['category', 'tenant'])"
    )
    # no mirror=: written as before
    plain = AddCompressedColumnOp("items", "embedding", "items_pq", "e", layout="store")
    assert "mirror" not in render(plain) and "mirror" not in render(plain.reverse())


def test_tenant_column_is_mirrored_by_add_compressed_column(docs, migrate, pg_catalog):  # noqa: F811
    from vecext.postgres import declare_tenant_column

    declare_tenant_column(pg_catalog, "docs", "cat")
    with migrate() as op:
        op.create_codec("docs_bin", table="docs", column="embedding", kind="binary")
        op.add_compressed_column("docs", "embedding", "docs_bin", "e", layout="store")
        op.add_compressed_column(
            "docs", "embedding", "docs_bin", "e2", layout="store", mirror=["n"]
        )
    assert mirrored_columns(pg_catalog, "docs", "e") == ["cat"]
    assert mirrored_columns(pg_catalog, "docs", "e2") == ["n", "cat"]
    assert assert_mirrored(pg_catalog, "docs", "e2", ["n", "cat"]) == 300


def test_bad_input(docs, migrate, pg_catalog, pg_dsn):  # noqa: F811
    # caught when the operation is made
    with pytest.raises(MigrationError, match=r"mirror_columns\('docs', 'e'\): name at least"):
        MirrorColumnsOp("docs", "e", [])
    with pytest.raises(MigrationError, match="cat named twice"):
        UnmirrorColumnsOp("docs", "e", ["cat", "cat"])
    with pytest.raises(MigrationError, match="batch_size must be a positive integer"):
        MirrorColumnsOp("docs", "e", ["cat"], batch_size=0)
    with pytest.raises(MigrationError, match=r"docs.e: mirror= needs layout='store'"):
        AddCompressedColumnOp("docs", "embedding", "c", "e", layout="table", mirror=["cat"])

    with migrate() as op:
        op.create_codec("docs_bin", table="docs", column="embedding", kind="binary")
        op.add_compressed_column("docs", "embedding", "docs_bin", "t", layout="table")
        op.add_compressed_column("docs", "embedding", "docs_bin", "e", layout="store")
    # caught when the migration runs, naming the problem
    with (
        pytest.raises(MigrationError, match=r"table public.docs has no column 'nope' to mirror"),
        migrate() as op,
    ):
        op.mirror_columns("docs", "e", ["nope"])
    with (
        pytest.raises(MigrationError, match=r"public.docs.embedding is the vector column of e"),
        migrate() as op,
    ):
        op.mirror_columns("docs", "e", "embedding")
    with (
        pytest.raises(MigrationError, match=r"keeps its codes in the table \(layout 'table'\)"),
        migrate() as op,
    ):
        op.mirror_columns("docs", "t", ["cat"])
    with (
        pytest.raises(
            MigrationError, match=r"public.docs.e does not mirror cat \(it mirrors: nothing"
        ),
        migrate() as op,
    ):
        op.unmirror_columns("docs", "e", ["cat"])
    assert mirrored_columns(pg_catalog, "docs", "e") == []
    # a bad mirror= of a new column: the whole step is undone, the column is not left
    with (
        pytest.raises(MigrationError, match=r"table public.docs has no column 'nope' to mirror"),
        migrate() as op,
    ):
        op.add_compressed_column(
            "docs", "embedding", "docs_bin", "e3", layout="store", mirror=["nope"]
        )
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute(
            "SELECT count(*) FROM vecext.compressed_columns WHERE code_column = 'e3'"
        ).fetchone() == (0,)
    # mirror= on a layout 'table' column the migration finds there (a resumed add)
    with (
        pytest.raises(MigrationError, match=r"docs.t has layout 'table'; only a code store"),
        migrate() as op,
    ):
        op.add_compressed_column("docs", "embedding", "docs_bin", "t", mirror=["cat"])


def test_schema_qualified_table(pg_catalog, migrate):  # noqa: F811
    conn = pg_catalog
    conn.execute(
        f"CREATE SCHEMA app; CREATE TABLE app.docs (id int PRIMARY KEY, cat text, e vector({D}))"
    )
    xb = np.random.default_rng(8).standard_normal((100, D)).astype(np.float32)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO app.docs VALUES (%s, %s, %s::vector)",
            [
                (i, "xyz"[i % 3], "[" + ",".join(map(repr, v.tolist())) + "]")
                for i, v in enumerate(xb)
            ],
        )
    with migrate() as op:
        op.create_codec("app_bin", table="docs", column="e", kind="binary", schema="app")
        op.add_compressed_column("docs", "e", "app_bin", "e_bits", layout="store", schema="app")
        assert op.mirror_columns("docs", "e_bits", ["cat"], schema="app") == ["cat"]
    assert mirrored_columns(conn, "app.docs", "e_bits") == ["cat"]
    with migrate() as op:
        assert op.unmirror_columns("docs", "e_bits", "cat", schema="app") == []
    assert mirrored_columns(conn, "app.docs", "e_bits") == []
