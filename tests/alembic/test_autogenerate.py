"""A real Alembic project in tmp_path: autogenerate renders vecext types and operations
with their imports; upgrade head / downgrade base run on the embedded server and a
downgrade leaves the source vectors intact."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from vecext.postgres.connection import sqlalchemy_url

ALEMBIC = str(Path(sys.executable).with_name("alembic"))
D = 16

ENV_PY = """
import importlib.util
from pathlib import Path

from alembic import context
from sqlalchemy import create_engine, pool
{imports}

spec = importlib.util.spec_from_file_location("models", Path(__file__).parent.parent / "models.py")
models = importlib.util.module_from_spec(spec)
spec.loader.exec_module(models)

url = context.config.get_main_option("sqlalchemy.url")
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=models.Base.metadata{configure})
    with context.begin_transaction():
        context.run_migrations()
"""

MODELS_V1 = """
from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from pgvector.sqlalchemy import Vector


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category: Mapped[str] = mapped_column(String(8))
    embedding = mapped_column(Vector({d}))
"""

MODELS_V2 = (
    "from vecext.sqlalchemy import BinaryCodes, PQCodes, compressed_column, vector_index\n"
    + MODELS_V1
    + """
    embedding_pq = compressed_column("embedding", PQCodes(m=4, codec="items_pq"), metric="l2", sample=500)
    embedding_bits = compressed_column("embedding", BinaryCodes({d}, codec="items_bin"))
    __table_args__ = (
        vector_index("items_embedding_hnsw", "embedding", metric="cosine", m=8, ef_construction=32),
    )
"""
)


def _cli(project: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """The real ``alembic`` command in a subprocess."""
    proc = subprocess.run(
        [ALEMBIC, *args],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    if proc.returncode != 0:
        raise AssertionError(f"alembic {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def _cmd(project: Path, name: str, *args: Any, **kw: Any) -> None:
    """An Alembic command in this process (what the CLI calls; saves ~4 s of imports)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(project / "alembic.ini"))
    cfg.set_main_option("script_location", str(project / "migrations"))
    getattr(command, name)(cfg, *args, **kw)


def make_project(tmp_path: Path, dsn: str, *, plugin: bool) -> tuple[Path, dict[str, str]]:
    from alembic import command
    from alembic.config import Config

    project = tmp_path / "proj"
    project.mkdir()
    cfg = Config(str(project / "alembic.ini"))
    command.init(cfg, str(project / "migrations"))
    ini = (project / "alembic.ini").read_text()
    url = sqlalchemy_url(dsn).replace("%", "%%")
    (project / "alembic.ini").write_text(ini.replace("driver://user:pass@localhost/dbname", url))
    env: dict[str, str] = {}
    if plugin:
        # what `pip install vecext` declares: the alembic.plugins entry point; env.py
        # itself never mentions vecext
        from importlib.metadata import entry_points

        eps = {ep.name: ep.value for ep in entry_points(group="alembic.plugins")}
        assert eps.get("vecext") == "vecext.alembic_plugin"
        imports = ""
        configure = ', autogenerate_plugins=["alembic.autogenerate.*", "vecext"]'
    else:
        imports = "import vecext.alembic"
        configure = ", render_item=vecext.alembic.render_item"
    (project / "migrations" / "env.py").write_text(
        ENV_PY.format(imports=imports, configure=configure)
    )
    return project, env


def newest_revision(project: Path) -> str:
    files = sorted((project / "migrations" / "versions").glob("*.py"), key=os.path.getmtime)
    return files[-1].read_text()


def seed(dsn: str, n: int = 600) -> np.ndarray:
    rng = np.random.default_rng(7)
    xb = rng.standard_normal((n, D)).astype(np.float32)
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO items (id, category, embedding) VALUES (%s, %s, %s::vector)",
            [
                (i, "ab"[i % 2], "[" + ",".join(map(str, v.tolist())) + "]")
                for i, v in enumerate(xb)
            ],
        )
    return xb


def vectors(dsn: str) -> list[tuple[int, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT id, embedding::text FROM items ORDER BY id").fetchall()


def columns(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'items'"
        ).fetchall()
    return {r[0] for r in rows}


def test_autogenerate_upgrade_downgrade(tmp_path, pg_catalog, pg_dsn):
    project, env = make_project(tmp_path, pg_dsn, plugin=False)
    models = project / "models.py"

    # 1. a table with a pgvector column: the type renders with its import
    models.write_text(textwrap.dedent(MODELS_V1.format(d=D)))
    _cmd(project, "revision", autogenerate=True, message="items")
    rev1 = newest_revision(project)
    assert "import pgvector.sqlalchemy" in rev1
    assert f"pgvector.sqlalchemy.VECTOR(dim={D})" in rev1
    _cmd(project, "upgrade", "head")
    xb = seed(pg_dsn)
    before = vectors(pg_dsn)

    # 2. a compressed column, a codec and a vector index: vecext operations
    models.write_text(textwrap.dedent(MODELS_V2.format(d=D)))
    _cmd(project, "revision", autogenerate=True, message="compress")
    rev2 = newest_revision(project)
    assert "import vecext.alembic" in rev2
    assert (
        "op.create_codec('items_pq', table='items', column='embedding', kind='pq', "
        "sample=500, metric='l2', m=4)" in rev2
    )
    assert "op.create_codec('items_bin', table='items', column='embedding', kind='binary'" in rev2
    # columns the model maps in the table: layout 'table', always written out
    assert (
        "op.add_compressed_column('items', 'embedding', 'items_pq', 'embedding_pq', "
        "layout='table')" in rev2
    )
    assert (
        "op.add_compressed_column('items', 'embedding', 'items_bin', 'embedding_bits', "
        "layout='table')" in rev2
    )
    assert (
        "op.create_vector_index('items_embedding_hnsw', 'items', 'embedding', method='hnsw', "
        "metric='cosine', m=8, ef_construction=32)" in rev2
    )
    assert (
        "op.drop_compressed_column('items', 'embedding_pq', source_column='embedding', "
        "codec='items_pq', layout='table')" in rev2
    )
    assert "op.drop_codec('items_pq'" in rev2
    assert "op.drop_vector_index('items_embedding_hnsw'" in rev2
    assert "op.add_column" not in rev2 and "op.create_index" not in rev2
    # codecs before the columns that use them, columns before indexes
    up = rev2.split("def upgrade")[1].split("def downgrade")[0]
    assert (
        up.index("create_codec('items_pq'")
        < up.index("add_compressed_column")
        < up.index("create_vector_index")
    )
    _cmd(project, "upgrade", "head")

    from vecext.postgres.codecs import load_codec

    with psycopg.connect(pg_dsn) as conn:
        pq = load_codec(conn, "items_pq")
        rows = conn.execute("SELECT embedding_pq FROM items ORDER BY id").fetchall()
        codes = np.frombuffer(b"".join(bytes(r[0]) for r in rows), np.uint8).reshape(len(rows), -1)
        np.testing.assert_array_equal(codes, pq.encode(xb))
        am = conn.execute(
            "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
            "WHERE c.relname = 'items_embedding_hnsw'"
        ).fetchone()
        assert am == ("hnsw",)

    # 3. nothing left to do: no spurious alterations of vecext columns or indexes
    _cmd(project, "revision", autogenerate=True, message="noop")
    rev3 = newest_revision(project)
    assert "op." not in rev3.split("def upgrade")[1].split("def downgrade")[0], rev3

    # 4. downgrade past the vecext revision: codes, codecs and the index go, vectors stay
    _cmd(project, "upgrade", "head")
    _cmd(project, "downgrade", "-2")
    assert columns(pg_dsn) == {"id", "category", "embedding"}
    assert vectors(pg_dsn) == before
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM vecext.codecs").fetchone() == (0,)
        assert conn.execute("SELECT to_regclass('items_embedding_hnsw')").fetchone() == (None,)
    _cmd(project, "upgrade", "head")
    assert columns(pg_dsn) == {"id", "category", "embedding", "embedding_pq", "embedding_bits"}
    _cmd(project, "downgrade", "base")
    assert columns(pg_dsn) == set()


def test_entry_point_cli_autogenerate_new_table(tmp_path, pg_catalog, pg_dsn):
    """The real `alembic` command, vecext reached only through the alembic.plugins entry
    point: a new table with compressed columns renders create_table without them, then
    the codecs, columns and index, each with its import."""
    project, env = make_project(tmp_path, pg_dsn, plugin=True)
    assert "import vecext" not in (project / "migrations" / "env.py").read_text()
    (project / "models.py").write_text(textwrap.dedent(MODELS_V2.format(d=D)))
    _cli(project, "revision", "--autogenerate", "-m", "items", env=env)
    rev = newest_revision(project)
    assert "import pgvector.sqlalchemy" in rev and "import vecext.alembic" in rev
    up = rev.split("def upgrade")[1].split("def downgrade")[0]
    assert f"sa.Column('embedding', pgvector.sqlalchemy.VECTOR(dim={D})" in up
    assert "embedding_pq" not in up.split("op.create_codec")[0]  # not in create_table
    assert (
        up.index("op.create_table('items'")
        < up.index("op.create_codec('items_pq'")
        < up.index(
            "op.add_compressed_column('items', 'embedding', 'items_pq', 'embedding_pq', "
            "layout='table')"
        )
        < up.index("op.create_vector_index('items_embedding_hnsw'")
    )
    down = rev.split("def downgrade")[1]
    assert (
        down.index("op.drop_vector_index")
        < down.index("op.drop_compressed_column")
        < down.index("op.drop_table('items')")
    )

    # the codec is trained on rows of the table: on a new, empty table that is a clear error
    from vecext.alembic import MigrationError

    with pytest.raises(MigrationError, match=r"items_pq.*load data first"):
        _cmd(project, "upgrade", "head")
    assert columns(pg_dsn) == set()  # the migration's transaction was rolled back
