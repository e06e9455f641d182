"""The query builder's results equal vecext.search.search's for the same request."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.sqlalchemy.conftest import Category, D, Item
from vecext.search.api import search
from vecext.sqlalchemy import VectorQuery, VectorQueryError, vector_search


@pytest.fixture(scope="module")
def shared_engine(shared_db):
    from tests.sqlalchemy.conftest import _engine

    eng = _engine(shared_db["dsn"])
    yield eng
    eng.dispose()


@pytest.fixture
def items_db(shared_db):
    return shared_db


@pytest.fixture
def pg_catalog(shared_db):
    return shared_db["conn"]


@pytest.fixture
def engine(shared_engine):
    return shared_engine


@pytest.fixture
def session(shared_engine):
    with Session(shared_engine) as s:
        yield s
        s.rollback()


@pytest.fixture
def q() -> np.ndarray:
    return np.random.default_rng(21).standard_normal(D).astype(np.float32)


def assert_same(builder_result, ref) -> None:
    np.testing.assert_array_equal(builder_result.ids, ref.ids)
    np.testing.assert_array_equal(builder_result.distances, ref.distances)


@pytest.mark.parametrize(
    ("strategy", "metric", "using"),
    [
        ("exact", "cosine", None),
        ("exact", "l2", None),
        ("compressed", "l2", None),  # PQ candidates, exact rerank
        ("compressed", "l2", "embedding_half"),
        ("compressed", "cosine", None),  # binary (Hamming) candidates
    ],
)
def test_builder_equals_search_with_a_filter(
    session, items_db, pg_catalog, q, strategy, metric, using
):
    vq = (
        vector_search(session, Item.embedding, q)
        .where(Item.category_id != 0)
        .where(Item.id < 500)  # where() twice = AND
        .metric(metric)
        .strategy(strategy)
        .limit(10)
    )
    if using:
        vq = vq.using(using)
    got = vq.to_result()
    ref = search(
        pg_catalog,
        "items",
        "embedding",
        q,
        10,
        metric=metric,
        strategy=strategy,
        using=using,
        filter=sa.and_(Item.category_id != 0, Item.id < 500),
    )
    assert ref.strategy == strategy and got.strategy == strategy
    assert len(ref) == 10
    assert_same(got, ref)
    assert got.rows_scanned == ref.rows_scanned
    assert all(i % 3 != 0 and i < 500 for i in got.ids)
    # the compressed plan really ranked by codes: its candidate stage is in the SQL
    if strategy == "compressed":
        assert "vx_candidates" in vq.explain()


def test_compressed_without_rerank_gives_code_distances(session, items_db, q):
    codec = items_db["codecs"]["items_pq"]
    xb = items_db["xb"]
    got = (
        vector_search(session, Item.embedding, q).metric("l2").strategy("compressed")
        .rerank(False).limit(5).to_result()
    )  # fmt: skip
    est = codec.distances(q[None], codec.encode(xb))[0]
    np.testing.assert_allclose(got.distances, np.sort(est)[:5], rtol=1e-5)


def test_select_composes_with_a_user_join(session, items_db, pg_catalog, q):
    stmt = (
        vector_search(session, Item.embedding, q)
        .where(Item.category_id.in_([1, 2]))
        .metric("l2")
        .strategy("compressed")
        .limit(8)
        .to_select()
        .join(Category, Category.id == Item.category_id)
        .add_columns(Category.label)
    )
    rows = session.execute(stmt).all()
    ref = search(
        pg_catalog,
        "items",
        "embedding",
        q,
        8,
        metric="l2",
        strategy="compressed",
        filter={"category_id": [1, 2]},
    )
    assert [r[0].id for r in rows] == ref.ids.tolist()
    np.testing.assert_array_equal(np.array([r[1] for r in rows], np.float32), ref.distances)
    assert [r[2] for r in rows] == [{1: "one", 2: "two"}[r[0].category_id] for r in rows]


def test_auto_plan_explain_and_core_table(session, engine, items_db, pg_catalog, q):
    vq = vector_search(session, Item.embedding, q).metric("l2").limit(3)
    text = vq.explain()
    assert text.startswith("strategy: exact")  # 600 rows: an exact scan is cheap
    assert "ORDER BY" in text
    ref = search(pg_catalog, "items", "embedding", q, 3, metric="l2")
    assert_same(vq.to_result(), ref)
    with engine.connect() as conn:  # Core: a Table column and a Connection
        rows = VectorQuery(Item.__table__.c.embedding, q, bind=conn).metric("l2").limit(3).to_list()
    assert [r["id"] for r in rows] == ref.ids.tolist()
    assert set(rows[0]) >= {"id", "embedding", "embedding_pq", "distance"}


def test_hnsw_plan_sets_its_search_settings(session, items_db, pg_catalog, q):
    from vecext.postgres.indexes import create_vector_index, drop_vector_index

    ix = create_vector_index(pg_catalog, "items", "embedding", metric="cosine", m=8)
    try:
        vq = vector_search(session, Item.embedding, q).strategy("hnsw").limit(5)
        assert "SET LOCAL hnsw.ef_search" in vq.explain()
        # to_select(): issued on the session's connection, for its transaction (the
        # Select is executed later, by the caller)
        session.execute(vq.to_select()).all()
        ef = session.execute(sa.text("SHOW hnsw.ef_search")).scalar_one()
        assert int(ef) == vq._plan()[1].params["ef_search"] != 77
        session.rollback()
        # all(): the settings hold for its statements only; the caller's own SET LOCAL
        # (and the default of a setting it did not set) are back afterwards
        session.execute(sa.text("SET LOCAL hnsw.ef_search = 77"))
        rows = vq.all()
        assert len(rows) == 5
        assert session.execute(sa.text("SHOW hnsw.ef_search")).scalar_one() == "77"
        assert session.execute(sa.text("SHOW hnsw.iterative_scan")).scalar_one() == "off"
        session.rollback()
        vq.all()
        assert session.execute(sa.text("SHOW hnsw.ef_search")).scalar_one() == "40"
    finally:
        session.rollback()
        drop_vector_index(pg_catalog, ix.name)


def test_min_relevance_needs_an_adapter_and_bounds_distances(session, items_db, q):
    vq = vector_search(session, Item.embedding, q).limit(50).min_relevance(0.25)
    with pytest.raises(VectorQueryError, match="no relevance adapter: pass adapter="):
        vq.all()
    from vecext.relevance import FixedThreshold

    adapter = FixedThreshold(0.0)
    rows = vector_search(session, Item.embedding, q).limit(50).min_relevance(0.25, adapter).all()
    xb = items_db["xb"]
    cos = xb @ q / (np.linalg.norm(xb, axis=1) * np.linalg.norm(q))
    expected = min(50, int((cos >= 0.25 - 1e-6).sum()))
    assert len(rows) == expected
    assert all(d <= 0.75 + 1e-6 for _, d in rows)


def test_bad_requests(session, items_db, q):
    with pytest.raises(VectorQueryError, match="unknown metric"):
        vector_search(session, Item.embedding, q).metric("dot")
    with pytest.raises(VectorQueryError, match="IVF plans run through"):
        vector_search(session, Item.embedding, q).strategy("ivf")
    with pytest.raises(ValueError, match="dimension 3, column items.embedding has dimension 16"):
        vector_search(session, Item.embedding, [1.0, 2.0, 3.0]).all()
    with pytest.raises(VectorQueryError, match="no session or connection"):
        VectorQuery(Item.embedding, q).all()
    with pytest.raises(VectorQueryError, match="no code column or index named 'nope'"):
        vector_search(session, Item.embedding, q).using("nope").all()
    with pytest.raises(ValueError, match="needs an HNSW index"):
        vector_search(session, Item.embedding, q).strategy("hnsw").all()
