"""A small seeded table with PQ, binary and half codes kept by vecext triggers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from vecext.sqlalchemy import BinaryCodes, HalfCodes, PQCodes, Vector, compressed_column

D = 16
N = 600


class Base(DeclarativeBase):
    pass


class Category(Base):
    __tablename__ = "categories"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(16))


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    category_id: Mapped[int] = mapped_column(sa.ForeignKey("categories.id"))
    embedding = mapped_column(Vector(D))
    embedding_pq = compressed_column("embedding", PQCodes(m=4, codec="items_pq"))
    embedding_bits = compressed_column("embedding", BinaryCodes(D, codec="items_bin"))
    embedding_half = compressed_column("embedding", HalfCodes(D, codec="items_half"))


def vec_text(v: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def make_xb() -> np.ndarray:
    rng = np.random.default_rng(11)
    return rng.standard_normal((N, D)).astype(np.float32)


@pytest.fixture
def xb() -> np.ndarray:
    return make_xb()


def seed_items(conn: Any, xb: np.ndarray) -> dict[str, Any]:
    """Create and fill ``categories`` and ``items``, train the codecs, add the columns."""
    from vecext.postgres.codecs import train_codec
    from vecext.postgres.columns import add_compressed_column

    conn.execute("CREATE TABLE categories (id int PRIMARY KEY, label varchar(16))")
    conn.execute(
        f"CREATE TABLE items (id int PRIMARY KEY, category_id int REFERENCES categories, "
        f"embedding vector({D}))"
    )
    conn.execute("INSERT INTO categories VALUES (0, 'zero'), (1, 'one'), (2, 'two')")
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO items VALUES (%s, %s, %s::vector)",
            [(i, i % 3, vec_text(v)) for i, v in enumerate(xb)],
        )
    codecs = {
        "items_pq": train_codec(conn, "items_pq", "items", "embedding", "pq", metric="l2", m=4),
        "items_bin": train_codec(
            conn, "items_bin", "items", "embedding", "binary", metric="cosine"
        ),
        "items_half": train_codec(conn, "items_half", "items", "embedding", "half", metric="l2"),
    }
    for name, col in (
        ("items_pq", "embedding_pq"),
        ("items_bin", "embedding_bits"),
        ("items_half", "embedding_half"),
    ):
        # the model declares the code columns: the in-table layout
        add_compressed_column(conn, "items", "embedding", name, col, progress=False, layout="table")
    return {"codecs": codecs, "xb": xb}


@pytest.fixture
def items_db(pg_catalog: Any, xb: np.ndarray) -> dict[str, Any]:
    """A fresh database per test (for tests that write)."""
    return seed_items(pg_catalog, xb)


@pytest.fixture(scope="module")
def shared_db(pg_server_dsn: str, pg_template: str) -> Iterator[dict[str, Any]]:
    """One seeded database for a module of read-only tests (seeding takes seconds)."""
    from tests.conftest import _create_db, _drop_db, with_dbname
    from vecext.postgres import connect, install

    name = _create_db(pg_server_dsn, pg_template)
    dsn = with_dbname(pg_server_dsn, name)
    conn = connect(dsn, autocommit=True)
    try:
        install(conn)
        out = seed_items(conn, make_xb())
        out.update(dsn=dsn, conn=conn)
        yield out
    finally:
        conn.close()
        _drop_db(pg_server_dsn, name)


def _engine(dsn: str) -> sa.Engine:
    from vecext.postgres.connection import sqlalchemy_url

    return sa.create_engine(sqlalchemy_url(dsn), poolclass=sa.pool.NullPool)


@pytest.fixture
def engine(pg_dsn: str) -> Iterator[sa.Engine]:
    eng = _engine(pg_dsn)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: sa.Engine, items_db: dict[str, Any]) -> Iterator[Session]:
    with Session(engine) as s:
        yield s
