"""The query builder on a model whose compressed columns live in code stores
(``vecext.sqlalchemy.compressed``): the same ids and distances as vecext.search.search,
through the stores' codes and through HNSW indexes over them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from tests.conftest import clustered
from tests.sqlalchemy.conftest import _engine, vec_text
from vecext.search.api import search
from vecext.sqlalchemy import (
    BinaryCodes,
    HalfCodes,
    PQCodes,
    RBQCodes,
    Vector,
    VectorQueryError,
    compressed,
    declared_stores,
    vector_search,
)

D = 16
N = 800


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    tag: Mapped[int] = mapped_column()
    embedding = mapped_column(Vector(D))
    __table_args__ = (
        compressed("emb_pq", "embedding", PQCodes(m=4, codec="docs_pq"), metric="l2"),
        compressed("emb_bits", "embedding", BinaryCodes(D, codec="docs_bin")),
        compressed("emb_half", "embedding", HalfCodes(8, codec="docs_half"), pretransform="pca:8"),
        compressed("emb_rbq", "embedding", RBQCodes(D, bits=2, codec="docs_rbq")),
    )


@pytest.fixture(scope="module")
def store_db(pg_server_dsn: str, pg_template: str) -> Iterator[dict[str, Any]]:
    """``docs`` with four code stores made as the model declares them, and HNSW indexes
    over the binary, half and rbq stores."""
    from tests.conftest import _create_db, _drop_db, with_dbname
    from vecext.postgres import (
        add_compressed_column,
        connect,
        create_vector_index,
        install,
        train_codec,
    )

    name = _create_db(pg_server_dsn, pg_template)
    dsn = with_dbname(pg_server_dsn, name)
    conn = connect(dsn, autocommit=True)
    try:
        install(conn)
        conn.execute(f"CREATE TABLE docs (id int PRIMARY KEY, tag int, embedding vector({D}))")
        xb = clustered(N, D, seed=17)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO docs VALUES (%s, %s, %s::vector)",
                [(i, i % 4, vec_text(v)) for i, v in enumerate(xb)],
            )
        for store in declared_stores(Doc.__table__).values():
            train_codec(
                conn, store.codec, "docs", store.source, store.type.kind, metric=store.metric,
                **store.type.codec_params(), **store.params,
            )  # fmt: skip
            add_compressed_column(
                conn, "docs", store.source, store.codec, store.name, progress=False
            )
        conn.execute("ANALYZE docs")
        indexes = {
            col: create_vector_index(conn, "docs", col, metric="cosine").name
            for col in ("emb_bits", "emb_half", "emb_rbq")
        }
        layouts = conn.execute("SELECT DISTINCT layout FROM vecext.compressed_columns").fetchall()
        assert layouts == [("store",)]
        engine = _engine(dsn)
        yield {"conn": conn, "engine": engine, "indexes": indexes}
        engine.dispose()
    finally:
        conn.close()
        _drop_db(pg_server_dsn, name)


@pytest.fixture
def session(store_db) -> Iterator[Session]:
    with Session(store_db["engine"]) as s:
        yield s
        s.rollback()


@pytest.fixture
def q() -> np.ndarray:
    return clustered(1, D, seed=23)[0]


def same(got, ref) -> None:
    assert got.strategy == ref.strategy and len(ref) == 10
    np.testing.assert_array_equal(got.ids, ref.ids)
    np.testing.assert_array_equal(got.distances, ref.distances)


@pytest.mark.parametrize(
    ("using", "metric", "seed"),
    [("emb_pq", "l2", 23), ("emb_bits", "cosine", 26), ("emb_half", "cosine", 23)],
)
def test_compressed_through_a_store_equals_search(session, store_db, using, metric, seed):
    q = clustered(1, D, seed=seed)[0]
    vq = (
        vector_search(session, Doc.embedding, q)
        .where(Doc.tag != 1)
        .metric(metric)
        .strategy("compressed")
        .using(using)
        .limit(10)
    )
    assert "vecext.store_" in vq.explain()  # ranked by the store's codes
    ref = search(
        store_db["conn"], "docs", "embedding", q, 10, metric=metric, strategy="compressed",
        using=using, filter={"tag": [0, 2, 3]},
    )  # fmt: skip
    # one statement cannot deepen as search() does: a query whose best 10 were within
    # the first candidates (16 sign bits tie often)
    assert ref.plan.params["reranked"] == ref.plan.params["rerank"]
    same(vq.to_result(), ref)
    assert all(i % 4 != 1 for i in ref.ids)


@pytest.mark.parametrize("using", ["emb_bits", "emb_half"])
@pytest.mark.parametrize("filtered", [False, True])
def test_hnsw_over_a_store_equals_search(session, store_db, q, using, filtered):
    index = store_db["indexes"][using]
    vq = vector_search(session, Doc.embedding, q).strategy("hnsw").using(index).limit(10)
    kw: dict[str, Any] = {}
    if filtered:
        vq = vq.where(Doc.tag == 2)
        kw["filter"] = {"tag": 2}
    text = vq.explain()
    assert index in text and "SET LOCAL enable_sort = off" in text
    ref = search(store_db["conn"], "docs", "embedding", q, 10, strategy="hnsw", using=index, **kw)
    assert ref.plan.params["index"] == index
    same(vq.to_result(), ref)
    rows = vq.all()
    assert [r[0].id for r in rows] == ref.ids.tolist()
    if filtered:
        assert all(r[0].tag == 2 for r in rows)
    # the walk's enable_sort = off held for its statement only: the rest of the
    # caller's transaction sorts as before
    assert session.execute(sa.text("SHOW enable_sort")).scalar_one() == "on"


def test_hnsw_over_rbq_codes_is_refused_clearly(session, store_db, q):
    index = store_db["indexes"]["emb_rbq"]
    vq = vector_search(session, Doc.embedding, q).strategy("hnsw").using(index).limit(10)
    with pytest.raises(VectorQueryError, match=f"walks {index}, an HNSW index over rbq codes"):
        vq.all()


def test_orm_rows_do_not_carry_store_columns(session, store_db, q):
    assert set(Doc.__table__.c.keys()) == {"id", "tag", "embedding"}
    rows = vector_search(session, Doc.embedding, q).metric("l2").limit(3).all()
    assert len(rows) == 3 and all(isinstance(r[0], Doc) for r in rows)
    assert session.execute(sa.select(sa.func.count()).select_from(Doc)).scalar_one() == N
