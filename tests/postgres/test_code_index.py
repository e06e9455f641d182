"""HNSW over code stores (vecext.postgres.code_index): built by create_vector_index on a
compressed column, found by the planner, searched with an exact rerank, calibrated,
filtered; checked against numpy brute force."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from tests.postgres.search_data import load, make_data
from vecext.errors import VecextError
from vecext.postgres import (
    add_compressed_column,
    calibrate,
    connect,
    create_vector_index,
    install,
    search,
    train_codec,
)
from vecext.postgres.index_build import VectorIndexError
from vecext.search import PlannerSettings
from vecext.search.calibrate import calibrate_index

N = 6_000
KINDS = [("binary", {}), ("rbq", {"bits": 2}), ("half", {"pretransform": "pca:16"})]


@pytest.fixture(scope="module")
def data():
    return make_data(seed=5)


@pytest.fixture(scope="module")
def env(pg_server_dsn: str, pg_template: str, data) -> Iterator[psycopg.Connection]:
    from tests.conftest import _create_db, _drop_db, with_dbname

    name = _create_db(pg_server_dsn, pg_template)
    conn = connect(with_dbname(pg_server_dsn, name), autocommit=True)
    install(conn)
    load(conn, "items", data, n=N)
    conn.execute("CREATE INDEX items_cat ON items (cat)")
    conn.execute("VACUUM ANALYZE items")
    for kind, params in KINDS:
        train_codec(conn, f"ci_{kind}", "items", "embedding", kind, metric="cosine", **params)
        add_compressed_column(conn, "items", "embedding", f"ci_{kind}", f"e_{kind}", progress=False)
        calibrate(conn, "items", f"e_{kind}")
    yield conn
    conn.close()
    _drop_db(pg_server_dsn, name)


def _recall(data, got, q, mask=None) -> float:
    m = np.arange(len(data.xb)) < N
    truth = data.truth(q, 10, m if mask is None else m & mask)
    return len(set(np.asarray(got).tolist()) & set(truth.tolist())) / max(1, len(truth))


@pytest.mark.parametrize(("kind", "params"), KINDS)
def test_index_over_a_code_store_is_built_found_and_searched(env, data, kind, params) -> None:
    ix = create_vector_index(env, "items", f"e_{kind}", metric="cosine")
    assert ix.schema == "vecext" and ix.table.startswith("store_") and ix.method == "hnsw"
    found = search(env, "items", "embedding", data.xq[0], 10, strategy="hnsw", using=ix.name)
    assert found.plan.params["index"] == ix.name
    (am,) = env.execute(
        "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
        "WHERE c.oid = to_regclass(%s)",
        [f"vecext.{ix.name}"],
    ).fetchone()
    assert am == "hnsw"
    # inside a caller's transaction (its statement in a savepoint of its own, the query's
    # code sent as in a pipeline: half codes as a binary real[]): the same rows
    env.execute("BEGIN")
    try:
        again = search(env, "items", "embedding", data.xq[0], 10, strategy="hnsw", using=ix.name)
        assert env.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    finally:
        env.execute("ROLLBACK")
    np.testing.assert_array_equal(again.ids, found.ids)
    np.testing.assert_array_equal(again.distances, found.distances)
    # bit codes (binary, rbq's sign plane) build with a wider beam than pgvector's 64:
    # their Hamming distances tie often (CODE_HNSW_EF_CONSTRUCTION)
    (options,) = env.execute(
        "SELECT reloptions FROM pg_class WHERE oid = to_regclass(%s)", [f"vecext.{ix.name}"]
    ).fetchone()
    assert f"ef_construction={200 if kind in ('binary', 'rbq') else 64}" in options
    recs = []
    for q in data.xq:
        r = search(env, "items", "embedding", q, 10, strategy="hnsw", using=ix.name)
        assert r.plan.params["index"] == ix.name and len(r.ids) == 10
        # exact distances, ascending
        assert np.all(np.diff(r.distances) >= -1e-6)
        recs.append(_recall(data, r.ids, q))
    assert np.mean(recs) >= 0.9, (kind, np.mean(recs))
    # filtered: joined from the table by primary key, k rows, every one matching (no
    # iterative scan through a code index: a walk short of k rows falls back to exact)
    for cat in ("a", "b"):
        mask = data.cat == cat
        recs = []
        for q in data.xq[:8]:
            r = search(
                env,
                "items",
                "embedding",
                q,
                10,
                strategy="hnsw",
                using=ix.name,
                filter={"cat": cat},
            )
            assert len(r.ids) == 10 and set(data.cat[np.asarray(r.ids)]) == {cat}
            recs.append(_recall(data, r.ids, q, mask))
        assert np.mean(recs) >= 0.85, (kind, cat, np.mean(recs))


def test_ef_construction_given_is_kept_and_checked(env) -> None:
    ix = create_vector_index(env, "items", "e_binary", name="ci_efc48", m=8, ef_construction=48)
    (options,) = env.execute(
        "SELECT reloptions FROM pg_class WHERE oid = to_regclass(%s)", [f"vecext.{ix.name}"]
    ).fetchone()
    assert set(options) == {"m=8", "ef_construction=48"}
    env.execute("DROP INDEX vecext.ci_efc48")
    with pytest.raises(VectorIndexError, match="ef_construction must be at least 2 \\* m"):
        create_vector_index(env, "items", "e_binary", name="ci_bad", m=16, ef_construction=20)


def test_calibration_of_a_code_index_sets_ef(env, data) -> None:
    name = next(
        n for n in (f"items_e_{kind}_hnsw" for kind, _ in KINDS)
        if env.execute("SELECT to_regclass(%s)", [f"vecext.{n}"]).fetchone()[0]
    )  # fmt: skip
    rec = calibrate_index(env, "items", name, n_queries=30)
    curve = rec["ef_search"]
    assert curve and all(0.0 <= float(v) <= 1.0 for v in curve.values())
    r = search(env, "items", "embedding", data.xq[0], 10, strategy="hnsw", using=name)
    # the planner read the fresh calibration (the stamp saw the comment change)
    assert "table facts and catalog rows: read from the catalog" in r.plan.steps


def test_int8_and_table_columns_are_refused(env) -> None:
    train_codec(env, "ci_int8", "items", "embedding", "int8", metric="cosine")
    add_compressed_column(env, "items", "embedding", "ci_int8", "e_int8", progress=False)
    with pytest.raises(VecextError, match="cannot index"):
        create_vector_index(env, "items", "e_int8")
    with pytest.raises(VecextError, match="has no column 'nope'"):
        create_vector_index(env, "items", "nope")


def test_a_selective_filter_is_not_walked_iteratively(env, data) -> None:
    name = "items_e_binary_hnsw"
    if not env.execute("SELECT to_regclass(%s)", [f"vecext.{name}"]).fetchone()[0]:
        create_vector_index(env, "items", "e_binary")
    r = search(
        env, "items", "embedding", data.xq[1], 10, filter={"cat": "b"}, using=name,
        strategy="hnsw",
    )  # fmt: skip
    assert "iterative_scan" not in r.plan.params and len(r.ids) == 10
    mask = data.cat == "b"
    assert _recall(data, r.ids, data.xq[1], mask) >= 0.9


@pytest.mark.parametrize("kind", ["binary", "rbq"])
def test_rerank_depth_is_a_setting(env, data, kind) -> None:
    # PlannerSettings.code_index_rerank: the best N walked candidates by code distance
    # are reranked (at most ef_search); rows and distances stay exact
    name = f"items_e_{kind}_hnsw"
    if not env.execute("SELECT to_regclass(%s)", [f"vecext.{name}"]).fetchone()[0]:
        create_vector_index(env, "items", f"e_{kind}")
    xb = data.xb[:N].astype(np.float64)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    for depth, want, k in ((20, 20, 10), (5_000, 100, 10), (20, 20, 5)):
        s = PlannerSettings(
            hnsw_ef_floor=100, max_ef_search=100, hnsw_calibrated_floor=False,
            code_index_rerank=depth,
        )  # fmt: skip
        for q in data.xq[:5]:
            r = search(env, "items", "embedding", q, k, strategy="hnsw", using=name, settings=s)
            assert r.plan.params["rerank"] == want and r.plan.params["ef_search"] == 100
            assert len(r.ids) == k and f"rerank={want}" in r.explain()
            exact = 1 - xb[np.asarray(r.ids)] @ (q / np.linalg.norm(q))
            np.testing.assert_allclose(r.distances, exact, atol=1e-5)
            assert np.all(np.diff(r.distances) >= -1e-6)
    # without the setting: every walked candidate (one-level codes), at least 4 k of
    # them after the 2-bit re-score (the calibrated depth)
    plain = PlannerSettings(hnsw_ef_floor=100, max_ef_search=100, hnsw_calibrated_floor=False)
    r = search(
        env, "items", "embedding", data.xq[0], 10, strategy="hnsw", using=name, settings=plain
    )
    rerank = r.plan.params["rerank"]
    assert rerank == 100 if kind == "binary" else 40 <= rerank <= 100


def test_the_code_scan_ranks_every_code_beside_a_code_index(env, data) -> None:
    """strategy="compressed" ranks *every* row by its code, also when the code store has
    an HNSW index: PostgreSQL must not answer the scan's ORDER BY code <~> q LIMIT n with
    an index walk (ef_search 40 returned 40 candidates, recall 0.69 at 1M)."""
    name = "items_e_binary_hnsw"
    if not env.execute("SELECT to_regclass(%s)", [f"vecext.{name}"]).fetchone()[0]:
        create_vector_index(env, "items", "e_binary")
    for q in data.xq[:5]:
        r = search(env, "items", "embedding", q, 10, strategy="compressed", using="e_binary")
        planned = int(r.plan.params["rerank"])
        assert planned > 40 and int(r.plan.params["reranked"]) >= planned, r.explain()
        assert _recall(data, r.ids, q) >= 0.9


def test_drop_vector_index_finds_an_index_over_a_code_store(env) -> None:
    from vecext.postgres import drop_vector_index

    ix = create_vector_index(env, "items", "e_binary", name="ci_drop_me", m=4, ef_construction=8)
    assert drop_vector_index(env, "items", ix.name) is True
    assert env.execute("SELECT to_regclass('vecext.ci_drop_me')").fetchone() == (None,)
    assert drop_vector_index(env, "items", ix.name, missing_ok=True) is False
    with pytest.raises(VectorIndexError, match="has no index named 'ci_drop_me'"):
        drop_vector_index(env, "items", ix.name)
    # the store's own btrees are not vector indexes: refused, left in place
    (key,) = env.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = (SELECT vecext.code_store('items', 'e_binary')) AND i.indisprimary"
    ).fetchone()
    with pytest.raises(VectorIndexError, match=f"has no index named '{key}'"):
        drop_vector_index(env, "items", key)
