"""Filter columns a model mirrors into a code store (``compressed(..., mirror=[...])``,
catalog 0.6.0): autogenerate writes ``add_compressed_column(..., mirror=[...])`` for a
new store, ``op.mirror_columns`` / ``op.unmirror_columns`` when the declaration and the
catalog differ, nothing once they agree (the declared tenant column, which vecext
mirrors on its own, included); upgrades and downgrades run on the embedded server."""

from __future__ import annotations

import textwrap

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa

from tests.alembic.test_autogenerate import MODELS_V1, D, _cmd, make_project, newest_revision, seed
from tests.alembic.test_autogenerate_store import stores, upgrade_part
from tests.postgres.test_pg_mirrors import assert_mirrored
from vecext.postgres import mirrored_columns

MODELS = (
    "from vecext.sqlalchemy import BinaryCodes, compressed\n"
    + MODELS_V1
    + """
    __table_args__ = (
        compressed("embedding_bits", "embedding", BinaryCodes({d}, codec="items_bin"){mirror}),{index}
    )
"""
)


def models(mirror: list[str] | None, *, tenant_index: bool = False) -> str:
    arg = "" if mirror is None else f", mirror={mirror!r}"
    # the btree a tenant column needs (declare_tenant_column makes one when the table
    # has none, which a model that does not declare it would drop)
    index = '\n        Index("items_category_idx", "category"),' if tenant_index else ""
    out = textwrap.dedent(MODELS.format(d=D, mirror=arg, index=index))
    return "from sqlalchemy import Index\n" + out


def mirrors(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return mirrored_columns(conn, "items", "embedding_bits")


def assert_noop(project) -> None:
    _cmd(project, "revision", autogenerate=True, message="noop")
    rev = newest_revision(project)
    assert "op." not in upgrade_part(rev), rev
    assert "op." not in rev.split("def downgrade")[1], rev
    _cmd(project, "upgrade", "head")


def test_mirrors_autogenerate_upgrade_downgrade(tmp_path, pg_catalog, pg_dsn):
    project, _env = make_project(tmp_path, pg_dsn, plugin=True)
    # schema vecext is reflected too: the btrees of mirrored columns in a store are
    # vecext's (autogenerate wrote op.drop_index for them in every revision before 1e4df46)
    env_py = project / "migrations" / "env.py"
    env_py.write_text(
        env_py.read_text().replace(
            "target_metadata=models.Base.metadata",
            "target_metadata=models.Base.metadata, include_schemas=True",
        )
    )
    path = project / "models.py"
    path.write_text(textwrap.dedent(MODELS_V1.format(d=D)))
    _cmd(project, "revision", autogenerate=True, message="items")
    _cmd(project, "upgrade", "head")
    seed(pg_dsn)

    # 1. a new store with a mirror: add_compressed_column(..., mirror=[...])
    path.write_text(models(["category"]))
    _cmd(project, "revision", autogenerate=True, message="store")
    rev = newest_revision(project)
    assert (
        "op.add_compressed_column('items', 'embedding', 'items_bin', 'embedding_bits', "
        "layout='store', mirror=['category'])" in upgrade_part(rev)
    )
    assert (
        "op.drop_compressed_column('items', 'embedding_bits', source_column='embedding', "
        "codec='items_bin', layout='store', mirror=['category'])" in rev.split("def downgrade")[1]
    )
    _cmd(project, "upgrade", "head")
    assert mirrors(pg_dsn) == ["category"]
    with psycopg.connect(pg_dsn) as conn:
        n = assert_mirrored(conn, "items", "embedding_bits", ["category"])
    assert n > 0
    assert_noop(project)

    # 2. the model no longer mirrors it: unmirror_columns, mirror_columns to go back
    path.write_text(models(None))
    _cmd(project, "revision", autogenerate=True, message="unmirror")
    rev = newest_revision(project)
    assert "op.unmirror_columns('items', 'embedding_bits', ['category'])" in upgrade_part(rev)
    assert (
        "op.mirror_columns('items', 'embedding_bits', ['category'])"
        in rev.split("def downgrade")[1]
    )
    assert "compressed_column" not in rev and "codec" not in rev
    _cmd(project, "upgrade", "head")
    assert mirrors(pg_dsn) == []
    assert_noop(project)
    _cmd(project, "downgrade", "-2")  # the no-op revision, then the unmirror
    assert mirrors(pg_dsn) == ["category"]
    with psycopg.connect(pg_dsn) as conn:
        assert assert_mirrored(conn, "items", "embedding_bits", ["category"]) == n
    _cmd(project, "upgrade", "head")
    assert mirrors(pg_dsn) == []

    # 3. mirrored again: mirror_columns fills the store's rows
    path.write_text(models(["category"]))
    _cmd(project, "revision", autogenerate=True, message="mirror")
    rev = newest_revision(project)
    assert "op.mirror_columns('items', 'embedding_bits', ['category'])" in upgrade_part(rev)
    _cmd(project, "upgrade", "head")
    with psycopg.connect(pg_dsn) as conn:
        assert assert_mirrored(conn, "items", "embedding_bits", ["category"]) == n
    assert_noop(project)

    # 4. downgrade base: the store and its mirrors go, the table stays
    _cmd(project, "downgrade", "base")
    assert stores_left(pg_dsn) == 0


def stores_left(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'vecext' AND c.relname LIKE 'store\\_%'"
        ).fetchone()
    return int(count)


def test_mirror_changes_and_tenant(tmp_path, pg_catalog, pg_dsn):
    project, _env = make_project(tmp_path, pg_dsn, plugin=True)
    path = project / "models.py"
    path.write_text(textwrap.dedent(MODELS_V1.format(d=D)))
    _cmd(project, "revision", autogenerate=True, message="items")
    _cmd(project, "upgrade", "head")
    seed(pg_dsn)
    path.write_text(models([], tenant_index=True))
    _cmd(project, "revision", autogenerate=True, message="store")
    assert "mirror" not in newest_revision(project)
    _cmd(project, "upgrade", "head")
    assert set(stores(pg_dsn)) == {"embedding_bits"} and mirrors(pg_dsn) == []

    # a declared tenant column is mirrored by vecext on its own: no unmirror for it
    from vecext.postgres import declare_tenant_column

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        declare_tenant_column(conn, "items", "category")
    assert mirrors(pg_dsn) == ["category"]
    assert_noop(project)
    path.write_text(models(["category"], tenant_index=True))  # declaring it changes nothing
    assert_noop(project)


def test_mirror_declarations_bad_input(tmp_path, pg_catalog, pg_dsn):
    from vecext.alembic import MigrationError
    from vecext.sqlalchemy import BinaryCodes, CodeTypeError, compressed

    codes = BinaryCodes(8, codec="b")
    with pytest.raises(CodeTypeError, match=r"compressed\('c'\): mirror= names pos twice"):
        compressed("c", "embedding", codes, mirror=["pos", "pos"])
    with pytest.raises(CodeTypeError, match=r"mirror= names the source column 'embedding'"):
        compressed("c", "embedding", codes, mirror=["embedding"])
    with pytest.raises(CodeTypeError, match=r"mirror= takes column names, got 3"):
        compressed("c", "embedding", codes, mirror=[3])
    store = compressed("c", "embedding", codes, mirror="pos")
    assert store.mirror == ("pos",)
    assert repr(store) == (
        "compressed('c', 'embedding', BinaryCodes(dim=8, codec='b'), mirror=['pos'])"
    )
    assert "mirror" not in store.spec  # not a codec parameter
    sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), store)

    project, _env = make_project(tmp_path, pg_dsn, plugin=True)
    path = project / "models.py"
    path.write_text(textwrap.dedent(MODELS_V1.format(d=D)))
    _cmd(project, "revision", autogenerate=True, message="items")
    _cmd(project, "upgrade", "head")
    path.write_text(models(["id"]))
    with pytest.raises(
        MigrationError, match=r"mirror= names id, the primary key: the code store is keyed by it"
    ):
        _cmd(project, "revision", autogenerate=True, message="key")
    path.write_text(models(["categroy"]))
    with pytest.raises(
        MigrationError,
        match=r"compressed\('embedding_bits'\) on table items: mirror= names categroy, not a "
        r"column of the table \(its columns: id, category, embedding\)",
    ):
        _cmd(project, "revision", autogenerate=True, message="typo")


def test_dropping_a_mirrored_column(tmp_path, pg_catalog, pg_dsn):
    """A new table with a mirrored store (its codec saved beforehand: there are no rows to
    train on yet), then the model drops a column of the table along with its mirror:
    unmirror_columns runs before drop_column (the store's trigger watches the column),
    and the downgrade adds the column back before mirroring it again."""
    from vecext.codecs import make_codec
    from vecext.postgres import save_codec

    xt = np.random.default_rng(11).standard_normal((200, D)).astype(np.float32)
    save_codec(pg_catalog, "items_bin", make_codec("binary", D, "cosine").train(xt))
    category = "    category: Mapped[str] = mapped_column(String(8))\n"
    lang = "    lang: Mapped[str] = mapped_column(String(8), nullable=True)\n"
    project, _env = make_project(tmp_path, pg_dsn, plugin=True)
    path = project / "models.py"
    path.write_text(models(["category", "lang"]).replace(category, category + lang))
    _cmd(project, "revision", autogenerate=True, message="items")
    rev = upgrade_part(newest_revision(project))
    # the declaration is an operation after create_table, not create_table(info=...)
    assert "info=" not in rev and "create_codec" not in rev
    assert rev.index("op.create_table('items'") < rev.index(
        "op.add_compressed_column('items', 'embedding', 'items_bin', 'embedding_bits', "
        "layout='store', mirror=['category', 'lang'])"
    )
    _cmd(project, "upgrade", "head")
    assert mirrors(pg_dsn) == ["category", "lang"]
    seed(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        assert assert_mirrored(conn, "items", "embedding_bits", ["category", "lang"]) > 0

    path.write_text(models(["category"]))
    _cmd(project, "revision", autogenerate=True, message="drop lang")
    rev = newest_revision(project)
    up, down = upgrade_part(rev), rev.split("def downgrade")[1]
    unmirror = "op.unmirror_columns('items', 'embedding_bits', ['lang'])"
    assert up.index(unmirror) < up.index("op.drop_column('items', 'lang')")
    mirror = "op.mirror_columns('items', 'embedding_bits', ['lang'])"
    assert down.index("op.add_column('items'") < down.index(mirror)
    _cmd(project, "upgrade", "head")
    assert mirrors(pg_dsn) == ["category"]
    assert_noop(project)
    _cmd(project, "downgrade", "-2")
    assert mirrors(pg_dsn) == ["category", "lang"]
