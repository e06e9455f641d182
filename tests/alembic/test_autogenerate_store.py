"""Compressed columns a model declares with ``vecext.sqlalchemy.compressed`` (code stores):
autogenerate writes ``op.add_compressed_column(..., layout="store")``, the upgrade leaves
the user's table as it was, a second autogenerate writes nothing (also with
``include_schemas=True``, which reflects schema ``vecext``), the ORM query builder
searches the stores like ``vecext.search.search``, and downgrades drop them."""

from __future__ import annotations

import importlib.util
import os
import textwrap

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa

from tests.alembic.test_autogenerate import (
    MODELS_V1,
    D,
    _cmd,
    columns,
    make_project,
    newest_revision,
    seed,
    vectors,
)
from vecext.postgres.connection import sqlalchemy_url

MODELS_STORE = (
    "from vecext.sqlalchemy import BinaryCodes, PQCodes, compressed\n"
    + MODELS_V1
    + """
    __table_args__ = (
        compressed("embedding_bits", "embedding", BinaryCodes({d}, codec="items_bin")),
        compressed(
            "embedding_pq", "embedding", PQCodes(m=4, codec="items_pq"), metric="l2", sample=500
        ),
    )
"""
)

#: the same model without the PQ store
MODELS_STORE_BITS = (
    "from vecext.sqlalchemy import BinaryCodes, compressed\n"
    + MODELS_V1
    + """
    __table_args__ = (
        compressed("embedding_bits", "embedding", BinaryCodes({d}, codec="items_bin")),
    )
"""
)


def upgrade_part(rev: str) -> str:
    return rev.split("def upgrade")[1].split("def downgrade")[0]


def table_facts(dsn: str) -> tuple[int, int]:
    """(pg_total_relation_size, relfilenode) of ``items``: a rewrite changes the second,
    an UPDATE of every row the first."""
    with psycopg.connect(dsn) as conn:
        conn.execute("CHECKPOINT")
        row = conn.execute(
            "SELECT pg_total_relation_size('items'), relfilenode FROM pg_class "
            "WHERE oid = 'items'::regclass"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def stores(dsn: str) -> dict[str, str]:
    """code column -> its code store (layout 'store' rows of the catalog for ``items``)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT code_column, vecext.code_store('items', code_column)::text "
            "FROM vecext.compressed_columns WHERE table_oid = 'items'::regclass "
            "AND layout = 'store' ORDER BY code_column"
        ).fetchall()
    return {r[0]: r[1] for r in rows}


def load_models(project):
    spec = importlib.util.spec_from_file_location(f"models_{id(project)}", project / "models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_store_columns_autogenerate_upgrade_search_downgrade(tmp_path, pg_catalog, pg_dsn):
    project, _env = make_project(tmp_path, pg_dsn, plugin=False)
    env_py = project / "migrations" / "env.py"
    # schema vecext is reflected too: its catalog tables and code stores are not the model's
    env_py.write_text(
        env_py.read_text().replace("target_metadata=models.Base.metadata", "target_metadata="
                                   "models.Base.metadata, include_schemas=True")
    )  # fmt: skip
    assert "include_schemas=True" in env_py.read_text()
    models = project / "models.py"
    models.write_text(textwrap.dedent(MODELS_V1.format(d=D)))
    _cmd(project, "revision", autogenerate=True, message="items")
    _cmd(project, "upgrade", "head")
    xb = seed(pg_dsn)
    before_vectors = vectors(pg_dsn)
    before = table_facts(pg_dsn)

    # 1. two code stores declared on the table: codecs, then layout='store' columns
    models.write_text(textwrap.dedent(MODELS_STORE.format(d=D)))
    _cmd(project, "revision", autogenerate=True, message="stores")
    rev = newest_revision(project)
    up = upgrade_part(rev)
    add_bits = (
        "op.add_compressed_column('items', 'embedding', 'items_bin', 'embedding_bits', "
        "layout='store')"
    )
    add_pq = (
        "op.add_compressed_column('items', 'embedding', 'items_pq', 'embedding_pq', layout='store')"
    )
    assert add_bits in up and add_pq in up
    assert "op.create_codec('items_bin', table='items', column='embedding', kind='binary'" in up
    assert (
        "op.create_codec('items_pq', table='items', column='embedding', kind='pq', "
        "sample=500, metric='l2', m=4)" in up
    )
    assert up.index("op.create_codec('items_pq'") < up.index(add_pq)
    assert "op.add_column" not in rev and "op.drop_table" not in rev
    down = rev.split("def downgrade")[1]
    assert (
        "op.drop_compressed_column('items', 'embedding_pq', source_column='embedding', "
        "codec='items_pq', layout='store')" in down
    )
    assert down.index("op.drop_compressed_column('items', 'embedding_pq'") < down.index(
        "op.drop_codec('items_pq'"
    )

    # 2. the upgrade fills the stores and leaves the table alone
    _cmd(project, "upgrade", "head")
    assert columns(pg_dsn) == {"id", "category", "embedding"}
    assert table_facts(pg_dsn) == before
    made = stores(pg_dsn)
    assert set(made) == {"embedding_bits", "embedding_pq"}
    assert all(s.startswith("vecext.store_") for s in made.values())
    from vecext.postgres.codecs import load_codec

    with psycopg.connect(pg_dsn) as conn:
        pq = load_codec(conn, "items_pq")
        rows = conn.execute(f"SELECT code FROM {made['embedding_pq']} ORDER BY pk").fetchall()
        codes = np.frombuffer(b"".join(bytes(r[0]) for r in rows), np.uint8).reshape(len(rows), -1)
        np.testing.assert_array_equal(codes, pq.encode(xb))
        binary = load_codec(conn, "items_bin")
        rows = conn.execute(
            f"SELECT code::text FROM {made['embedding_bits']} ORDER BY pk"
        ).fetchall()
        bits = np.packbits(np.array([[c == "1" for c in r[0]] for r in rows]), axis=1)
        np.testing.assert_array_equal(bits, binary.encode(xb))

    # 3. model and catalog agree: nothing to write, and schema vecext is not dropped
    _cmd(project, "revision", autogenerate=True, message="noop")
    noop = newest_revision(project)
    assert "op." not in upgrade_part(noop), noop
    assert "op." not in noop.split("def downgrade")[1], noop
    _cmd(project, "upgrade", "head")

    # 4. the ORM query builder searches the stores: the same rows as vecext.search.search
    from sqlalchemy.orm import Session

    from vecext.search.api import search
    from vecext.sqlalchemy import vector_search

    Item = load_models(project).Item
    q = np.random.default_rng(5).standard_normal(D).astype(np.float32)
    engine = sa.create_engine(sqlalchemy_url(pg_dsn), poolclass=sa.pool.NullPool)
    try:
        with Session(engine) as session, psycopg.connect(pg_dsn, autocommit=True) as conn:
            for using, metric in (("embedding_pq", "l2"), ("embedding_bits", "cosine")):
                vq = (
                    vector_search(session, Item.embedding, q)
                    .where(Item.category == "a")
                    .metric(metric)
                    .strategy("compressed")
                    .using(using)
                    .limit(10)
                )
                assert made[using] in vq.explain()  # ranked by the store's codes
                got = vq.to_result()
                ref = search(
                    conn, "items", "embedding", q, 10, metric=metric, strategy="compressed",
                    using=using, filter={"category": "a"},
                )  # fmt: skip
                assert ref.strategy == got.strategy == "compressed" and len(ref) == 10
                np.testing.assert_array_equal(got.ids, ref.ids)
                np.testing.assert_array_equal(got.distances, ref.distances)
                assert all(i % 2 == 0 for i in got.ids)  # category 'a'
                rows = vq.all()
                assert [r[0].id for r in rows] == ref.ids.tolist()
    finally:
        engine.dispose()

    # 5. a store the model no longer declares is dropped (its codec stays)
    models.write_text(textwrap.dedent(MODELS_STORE_BITS.format(d=D)))
    _cmd(project, "revision", autogenerate=True, message="drop pq")
    rev = newest_revision(project)
    assert (
        "op.drop_compressed_column('items', 'embedding_pq', source_column='embedding', "
        "codec='items_pq', layout='store')" in upgrade_part(rev)
    )
    assert add_pq in rev.split("def downgrade")[1]
    assert "drop_codec" not in rev and "embedding_bits" not in rev
    _cmd(project, "upgrade", "head")
    assert set(stores(pg_dsn)) == {"embedding_bits"}
    _cmd(project, "downgrade", "-1")
    assert set(stores(pg_dsn)) == {"embedding_bits", "embedding_pq"}

    # 6. downgrade past the stores: stores, catalog rows and codecs go, the table stays
    _cmd(project, "downgrade", "-2")
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM vecext.compressed_columns").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM vecext.codecs").fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'vecext' AND c.relname LIKE 'store\\_%'"
        ).fetchone() == (0,)
    assert columns(pg_dsn) == {"id", "category", "embedding"}
    assert vectors(pg_dsn) == before_vectors
    assert table_facts(pg_dsn) == before


def test_store_declarations_bad_input(tmp_path, pg_catalog, pg_dsn):
    from vecext.alembic import MigrationError
    from vecext.sqlalchemy import BinaryCodes, CodeTypeError, PQCodes, compressed

    # caught where the model is declared
    with pytest.raises(CodeTypeError, match=r"compressed\('c'\): .* is not a vecext code type"):
        compressed("c", "embedding", sa.LargeBinary())
    with pytest.raises(CodeTypeError, match=r"compressed\('c'\): PQCodes needs the codec's name"):
        compressed("c", "embedding", PQCodes(m=4))
    md = sa.MetaData()
    cols = (sa.Column("id", sa.Integer, primary_key=True), sa.Column("embedding", sa.LargeBinary))
    with pytest.raises(sa.exc.ArgumentError, match="table t has a column of that name"):
        sa.Table("t", md, *cols, compressed("embedding", "embedding", BinaryCodes(8, codec="b")))
    with pytest.raises(sa.exc.ArgumentError, match="declared twice on table u"):
        sa.Table(
            "u", md, sa.Column("id", sa.Integer, primary_key=True),
            compressed("c", "embedding", BinaryCodes(8, codec="b")),
            compressed("c", "embedding", BinaryCodes(8, codec="b")),
        )  # fmt: skip

    # caught by autogenerate: a source column the table does not have
    project, _env = make_project(tmp_path, pg_dsn, plugin=False)
    models = project / "models.py"
    models.write_text(textwrap.dedent(MODELS_V1.format(d=D)))
    _cmd(project, "revision", autogenerate=True, message="items")
    _cmd(project, "upgrade", "head")
    typo = MODELS_STORE_BITS.replace('"embedding", BinaryCodes', '"embeding", BinaryCodes')
    models.write_text(textwrap.dedent(typo.format(d=D)))
    with pytest.raises(
        MigrationError,
        match=r"compressed\('embedding_bits'\) on table items: source column 'embeding' is not "
        r"a column of the table \(its columns: id, category, embedding\)",
    ):
        _cmd(project, "revision", autogenerate=True, message="typo")


MODELS_TABLE_BITS = (
    "from vecext.sqlalchemy import BinaryCodes, compressed_column\n"
    + MODELS_V1
    + """
    embedding_bits = compressed_column("embedding", BinaryCodes({d}, codec="items_bin"))
"""
)


def test_moving_a_column_from_the_table_to_a_store(tmp_path, pg_catalog, pg_dsn):
    """A model that declares an in-table code column as compressed(...) instead: the
    table column is dropped, then the store added (same codec, no new create_codec)."""
    project, _env = make_project(tmp_path, pg_dsn, plugin=True)
    models = project / "models.py"
    models.write_text(textwrap.dedent(MODELS_V1.format(d=D)))
    _cmd(project, "revision", autogenerate=True, message="items")
    _cmd(project, "upgrade", "head")
    seed(pg_dsn)
    models.write_text(textwrap.dedent(MODELS_TABLE_BITS.format(d=D)))
    _cmd(project, "revision", autogenerate=True, message="bits in the table")
    _cmd(project, "upgrade", "head")
    assert columns(pg_dsn) == {"id", "category", "embedding", "embedding_bits"}

    models.write_text(textwrap.dedent(MODELS_STORE_BITS.format(d=D)))
    _cmd(project, "revision", autogenerate=True, message="bits in a store")
    rev = newest_revision(project)
    up = upgrade_part(rev)
    drop = (
        "op.drop_compressed_column('items', 'embedding_bits', source_column='embedding', "
        "codec='items_bin', layout='table')"
    )
    add = (
        "op.add_compressed_column('items', 'embedding', 'items_bin', 'embedding_bits', "
        "layout='store')"
    )
    assert up.index(drop) < up.index(add)
    assert "create_codec" not in rev and "drop_codec" not in rev
    down = rev.split("def downgrade")[1]
    assert down.index("layout='store'") < down.index("layout='table'")
    _cmd(project, "upgrade", "head")
    assert columns(pg_dsn) == {"id", "category", "embedding"}
    assert set(stores(pg_dsn)) == {"embedding_bits"}
    _cmd(project, "downgrade", "-1")
    assert columns(pg_dsn) == {"id", "category", "embedding", "embedding_bits"}
    assert stores(pg_dsn) == {}


#: the environment's hooks, defined in models.py and passed to context.configure
HOOKS = {
    # the usual rule that keeps Alembic from dropping what the model does not map
    "unmapped": """
def include_object(obj, name, type_, reflected, compare_to):
    if type_ == "column" and reflected and compare_to is None:
        if name == "embedding_ext":  # the store, offered as a column of its table
            assert obj.table.name == "items" and obj.info["vecext"] == {
                "layout": "store", "source_column": "embedding", "codec": "items_ext"}
        return False
    return True
""",
    "by_name": """
def include_name(name, type_, parent_names):
    return not (type_ == "column" and name == "embedding_ext"
                and parent_names["table_name"] == "items")
""",
    "declared": """
from vecext.sqlalchemy import CompressedStore


def include_object(obj, name, type_, reflected, compare_to):
    if type_ == "column" and not reflected and name == "embedding_bits":
        assert isinstance(obj, CompressedStore) and compare_to is None
        return False
    return True
""",
}


def test_store_hooks_include_object_and_include_name(tmp_path, pg_catalog, pg_dsn):
    """A code store made outside Alembic is offered to the environment's include_name and
    include_object as a column of its table: the usual rule for unmapped columns keeps
    autogenerate from dropping it; a declared store the hook refuses is not added."""
    project, _env = make_project(tmp_path, pg_dsn, plugin=False)
    env_py = project / "migrations" / "env.py"
    env_py.write_text(
        env_py.read_text().replace(
            "target_metadata=models.Base.metadata",
            "target_metadata=models.Base.metadata, "
            "**{k: getattr(models, k) for k in ('include_object', 'include_name') "
            "if hasattr(models, k)}",
        )
    )
    models = project / "models.py"
    models.write_text(textwrap.dedent(MODELS_V1.format(d=D)))
    _cmd(project, "revision", autogenerate=True, message="items")
    _cmd(project, "upgrade", "head")
    seed(pg_dsn)
    from vecext.postgres import add_compressed_column
    from vecext.postgres.codecs import train_codec

    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # the store Alembic did not make
        train_codec(conn, "items_ext", "items", "embedding", "binary", metric="cosine")
        add_compressed_column(conn, "items", "embedding", "items_ext", "embedding_ext",
                              progress=False)  # fmt: skip
        from vecext.postgres import create_vector_index

        create_vector_index(conn, "items", "embedding_ext", name="items_ext_hnsw", m=4)
    assert set(stores(pg_dsn)) == {"embedding_ext"}

    def autogenerate(hook: str | None, body: str = MODELS_V1) -> str:
        text = textwrap.dedent(body.format(d=D)) + (textwrap.dedent(HOOKS[hook]) if hook else "")
        models.write_text(text)
        _cmd(project, "revision", autogenerate=True, message=hook or "no hooks")
        files = sorted((project / "migrations" / "versions").glob("*.py"), key=os.path.getmtime)
        rev = files[-1].read_text()
        files[-1].unlink()  # never upgraded: the database stays at head for the next one
        return upgrade_part(rev)

    drop = "op.drop_compressed_column('items', 'embedding_ext'"
    up = autogenerate(None)  # no hook: the model is the truth; the store's index goes first
    assert up.index("op.drop_vector_index('items_ext_hnsw', table='items'") < up.index(drop)
    assert "op." not in autogenerate("unmapped")
    assert "op." not in autogenerate("by_name")
    up = autogenerate("declared", MODELS_STORE_BITS)
    assert "embedding_bits" not in up and "items_bin" not in up
    assert drop in up  # the declared hook lets other unmapped columns go
    assert "embedding_bits" in autogenerate(None, MODELS_STORE_BITS)
    assert set(stores(pg_dsn)) == {"embedding_ext"}  # nothing was upgraded


#: the binary store with an HNSW index over its codes ({index}: code_index's arguments)
MODELS_STORE_INDEX = (
    "from vecext.sqlalchemy import BinaryCodes, code_index, compressed\n"
    + MODELS_V1
    + """
    __table_args__ = (
        compressed("embedding_bits", "embedding", BinaryCodes({d}, codec="items_bin")),
        code_index({index}),
    )
"""
)


def store_index_options(dsn: str) -> dict[str, list[str]]:
    """HNSW indexes over the code stores of ``items`` -> their reloptions."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT ic.relname, ic.reloptions FROM vecext.compressed_columns k "
            "JOIN pg_class s ON s.relname = 'store_' || k.id "
            "AND s.relnamespace = 'vecext'::regnamespace "
            "JOIN pg_index i ON i.indrelid = s.oid JOIN pg_class ic ON ic.oid = i.indexrelid "
            "JOIN pg_am am ON am.oid = ic.relam "
            "WHERE k.table_oid = 'items'::regclass AND am.amname = 'hnsw'"
        ).fetchall()
    return {r[0]: sorted(r[1] or []) for r in rows}


def test_code_index_autogenerate_upgrade_downgrade(tmp_path, pg_catalog, pg_dsn):
    """code_index(...) declares pgvector's HNSW over a store's codes: autogenerate builds
    it after the store, then nothing; other options rebuild it, and an index or store the
    model drops goes, the index first; every downgrade builds it again as it was."""
    project, _env = make_project(tmp_path, pg_dsn, plugin=True)
    models = project / "models.py"
    models.write_text(textwrap.dedent(MODELS_V1.format(d=D)))
    _cmd(project, "revision", autogenerate=True, message="items")
    _cmd(project, "upgrade", "head")
    seed(pg_dsn)

    def revise(body: str, message: str, index: str = "") -> str:
        models.write_text(textwrap.dedent(body.format(d=D, index=index)))
        _cmd(project, "revision", autogenerate=True, message=message)
        return newest_revision(project)

    rev = revise(MODELS_STORE_INDEX, "store and index", "'items_bits_hnsw', 'embedding_bits', m=8")
    up = upgrade_part(rev)
    create = (
        "op.create_vector_index('items_bits_hnsw', 'items', 'embedding_bits', method='hnsw', "
        "metric='cosine', m=8)"
    )
    assert create in up and up.index("op.add_compressed_column(") < up.index(create)
    down = rev.split("def downgrade")[1]
    assert down.index("op.drop_vector_index('items_bits_hnsw'") < down.index(
        "op.drop_compressed_column("
    )
    _cmd(project, "upgrade", "head")
    assert store_index_options(pg_dsn) == {"items_bits_hnsw": ["ef_construction=200", "m=8"]}
    from vecext.postgres import connect, search

    q = np.random.default_rng(1).standard_normal(D).astype(np.float32)
    with connect(pg_dsn, autocommit=True) as conn:
        r = search(conn, "items", "embedding", q, 10, strategy="hnsw", using="items_bits_hnsw")
        assert r.plan.params["index"] == "items_bits_hnsw" and len(r.ids) == 10

    # as declared: nothing to write
    rev = revise(MODELS_STORE_INDEX, "noop", "'items_bits_hnsw', 'embedding_bits', m=8")
    assert "op." not in upgrade_part(rev) and "op." not in rev.split("def downgrade")[1]
    _cmd(project, "upgrade", "head")

    # another m: built again (the downgrade builds the m-8 one back)
    rev = revise(MODELS_STORE_INDEX, "m 12", "'items_bits_hnsw', 'embedding_bits', m=12")
    up = upgrade_part(rev)
    drop = "op.drop_vector_index('items_bits_hnsw', table='items', column='embedding_bits'"
    assert up.index(drop) < up.index("op.create_vector_index('items_bits_hnsw'")
    assert "m=12" in up and "add_compressed_column" not in rev
    _cmd(project, "upgrade", "head")
    assert store_index_options(pg_dsn) == {"items_bits_hnsw": ["ef_construction=200", "m=12"]}
    _cmd(project, "downgrade", "-1")
    assert store_index_options(pg_dsn) == {"items_bits_hnsw": ["ef_construction=200", "m=8"]}
    _cmd(project, "upgrade", "head")

    # the store and its index no longer declared: the index goes first, then the store
    rev = revise(MODELS_V1, "no store")
    up = upgrade_part(rev)
    assert up.index(drop) < up.index("op.drop_compressed_column('items', 'embedding_bits'")
    _cmd(project, "upgrade", "head")
    assert store_index_options(pg_dsn) == {} and stores(pg_dsn) == {}
    _cmd(project, "downgrade", "-1")
    assert store_index_options(pg_dsn) == {"items_bits_hnsw": ["ef_construction=200", "m=12"]}

    # a code_index naming no store of the table
    _cmd(project, "upgrade", "head")
    models.write_text(
        textwrap.dedent(
            MODELS_STORE_INDEX.format(d=D, index="'items_x_hnsw', 'embedding_pq'")
        )
    )
    with pytest.raises(Exception, match="'embedding_pq' is not a compressed\\(...\\) store of "
                       "the table \\(its stores: embedding_bits\\)"):  # fmt: skip
        _cmd(project, "revision", autogenerate=True, message="bad")
