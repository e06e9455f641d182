"""Filtered searches over a code store that mirrors the filter columns (catalog 0.6.0):
the same rows as the join to the user's table and as numpy brute force, for the code
scan, IVF lists in the store and the walk through a code-store index; explain() says
where the filter runs; filters the store cannot evaluate join as before; a reader with
grant_usage only searches it too; the planner picks the code scan for a selective
filter on mirrored columns and still returns k rows."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from psycopg import conninfo, sql

from tests.postgres.conftest import clustered, load_table
from vecext.codecs import make_codec
from vecext.postgres import (
    add_compressed_column,
    add_ivf_lists,
    connect,
    create_vector_index,
    declare_tenant_column,
    mirror_columns,
    save_codec,
    search,
)
from vecext.search.settings import PlannerSettings

D = 16
N = 6000
POS = np.array(["n", "v", "a", "r"])


@pytest.fixture(scope="module")
def env(module_dsn: str) -> Iterator[dict]:
    """Tables ``ms_m`` (filter columns mirrored) and ``ms_j`` (not): the same rows, a
    binary column with IVF lists and an HNSW index over its store each."""
    rng = np.random.default_rng(5)
    x = clustered(N, D, seed=95)
    pos = POS[rng.choice(4, N, p=[0.6, 0.25, 0.1, 0.05])]
    cat = rng.integers(0, 50, N)
    with connect(module_dsn, autocommit=True) as conn:
        codec = make_codec("binary", D, "cosine").train(x)
        save_codec(conn, "ms_bin", codec)
        for t in ("ms_m", "ms_j"):
            load_table(conn, t, x)
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN pos text, ADD COLUMN cat int").format(
                    sql.Identifier(t)
                )
            )
            conn.execute(
                sql.SQL(
                    "UPDATE {} t SET pos = u.p, cat = u.c FROM unnest(%s::text[], %s::int[]) "
                    "WITH ORDINALITY u(p, c, i) WHERE t.id = u.i - 1"
                ).format(sql.Identifier(t)),
                [pos.tolist(), cat.tolist()],
            )
            add_compressed_column(conn, t, "embedding", "ms_bin", "e", progress=False)
            add_ivf_lists(conn, t, "embedding", nlist=16, code_column="e")
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(t)))
        mirror_columns(conn, "ms_m", "e", ["pos", "cat"])
        yield {"dsn": module_dsn, "x": x, "pos": pos, "cat": cat}


def truth(env: dict, q: np.ndarray, mask: np.ndarray, k: int) -> set[int]:
    x = env["x"]
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = 1 - xn @ (q / np.linalg.norm(q))
    d[~mask] = np.inf
    order = np.argsort(d, kind="stable")[:k]
    return {int(i) for i in order if np.isfinite(d[i])}


FILTERS = [
    ({"pos": "r"}, lambda e: e["pos"] == "r"),
    ({"pos": ["a", "r"], "cat": (10, 30)}, lambda e: np.isin(e["pos"], ["a", "r"]) & (e["cat"] >= 10) & (e["cat"] <= 30)),
    ({"cat": 7}, lambda e: e["cat"] == 7),
]  # fmt: skip


@pytest.mark.parametrize("strategy", ["compressed", "ivf"])
def test_mirrored_filter_gives_the_join_rows_and_brute_force(env, strategy):
    x, k = env["x"], 10
    with connect(env["dsn"], autocommit=True) as conn:
        got_recall = []
        for flt, mask_of in FILTERS:
            mask = mask_of(env)
            for qi in (3, 101, 2222, 4711):
                q = x[qi] + 0.01
                rm = search(conn, "ms_m", "embedding", q, k, strategy=strategy, filter=flt)
                rj = search(conn, "ms_j", "embedding", q, k, strategy=strategy, filter=flt)
                assert rm.ids.tolist() == rj.ids.tolist(), (flt, qi)
                assert np.allclose(rm.distances, rj.distances)
                want = truth(env, q, mask, k)
                assert len(rm.ids) == len(want)
                assert all(mask[i] for i in rm.ids)
                got_recall.append(len(want & set(rm.ids.tolist())) / max(len(want), 1))
        assert np.mean(got_recall) >= 0.95


def test_walk_through_a_code_store_index_filters_on_the_store(env):
    x = env["x"]
    with connect(env["dsn"], autocommit=True) as conn:
        for t in ("ms_m", "ms_j"):
            create_vector_index(conn, t, "e")
        s = PlannerSettings(code_index_rerank=200)
        for qi in (5, 77):
            args = dict(strategy="hnsw", filter={"pos": "n"}, settings=s)
            rm = search(conn, "ms_m", "embedding", x[qi], 10, **args)
            rj = search(conn, "ms_j", "embedding", x[qi], 10, **args)
            assert rm.ids.tolist() == rj.ids.tolist()
            assert "filter runs on code store" in rm.plan.explain()
            assert "filter runs on code store" not in rj.plan.explain()
        conn.execute("DROP INDEX vecext." + _store_index(conn, "ms_m"))
        conn.execute("DROP INDEX vecext." + _store_index(conn, "ms_j"))


def _store_index(conn: psycopg.Connection, table: str) -> str:
    (name,) = conn.execute(
        "SELECT i.indexname FROM pg_indexes i JOIN vecext.compressed_columns k "
        "ON i.tablename = vecext.store_name(k.id) WHERE k.table_oid = %s::regclass "
        "AND i.indexdef LIKE '%%hnsw%%'",
        [table],
    ).fetchone()
    return str(name)


def test_explain_and_filters_the_store_cannot_evaluate(env):
    x = env["x"]
    with connect(env["dsn"], autocommit=True) as conn:
        r = search(conn, "ms_m", "embedding", x[1], 10, strategy="compressed", filter={"pos": "r"})
        assert "filter runs on code store" in r.plan.explain()
        # a column that is not mirrored: joined, same rows as the table without mirrors
        conn.execute("ALTER TABLE ms_m ADD COLUMN extra int DEFAULT 1")
        conn.execute("ALTER TABLE ms_j ADD COLUMN extra int DEFAULT 1")
        for flt in ({"pos": "r", "extra": 1},):
            rm = search(conn, "ms_m", "embedding", x[1], 10, strategy="compressed", filter=flt)
            rj = search(conn, "ms_j", "embedding", x[1], 10, strategy="compressed", filter=flt)
            assert "filter runs on code store" not in rm.plan.explain()
            assert rm.ids.tolist() == rj.ids.tolist()
        from sqlalchemy import column

        expr = column("pos") == "r"
        rm = search(conn, "ms_m", "embedding", x[1], 10, strategy="compressed", filter=expr)
        assert "filter runs on code store" not in rm.plan.explain()
        assert rm.ids.tolist() == r.ids.tolist()


def test_planner_scans_codes_for_a_selective_mirrored_filter(env):
    x, k = env["x"], 10
    with connect(env["dsn"], autocommit=True) as conn:
        # ~30% of 6000 rows match: above a lowered exact limit for mirrored filters
        s = PlannerSettings(exact_max_rows_mirrored=500)
        mask = np.isin(env["pos"], ["v", "r"])
        r = search(conn, "ms_m", "embedding", x[9], k, filter={"pos": ["v", "r"]}, settings=s)
        assert r.strategy.startswith(("compressed", "ivf")), r.plan.explain()
        assert "filter runs on code store" in r.plan.explain()
        assert len(r.ids) == k and all(mask[i] for i in r.ids)
        # the table without mirrors scans exactly at this selectivity
        r = search(conn, "ms_j", "embedding", x[9], k, filter={"pos": ["v", "r"]}, settings=s)
        assert r.strategy == "exact"
        # a filter with fewer matches than k: every match, through the guarantee
        few = {"pos": "r", "cat": 3}
        n = int(((env["pos"] == "r") & (env["cat"] == 3)).sum())
        r = search(conn, "ms_m", "embedding", x[9], 50, filter=few, strategy="compressed")
        assert len(r.ids) == min(50, n)


def test_a_reader_with_grant_usage_searches_the_mirrored_store(env):
    x = env["x"]
    with connect(env["dsn"], autocommit=True) as owner:
        owner.execute("DROP ROLE IF EXISTS ms_reader")
        owner.execute("CREATE ROLE ms_reader LOGIN")
        owner.execute("GRANT SELECT ON ms_m TO ms_reader")
        owner.execute("SELECT vecext.grant_usage('ms_reader')")
        want = search(
            owner, "ms_m", "embedding", x[4], 10, strategy="compressed", filter={"pos": "v"}
        )
        try:
            with connect(
                conninfo.make_conninfo(env["dsn"], user="ms_reader"), autocommit=True
            ) as r:
                got = search(
                    r, "ms_m", "embedding", x[4], 10, strategy="compressed", filter={"pos": "v"}
                )
                assert got.ids.tolist() == want.ids.tolist()
                assert "filter runs on code store" in got.plan.explain()
        finally:
            owner.execute("SELECT vecext.revoke_usage('ms_reader')")
            owner.execute("DROP OWNED BY ms_reader")
            owner.execute("DROP ROLE ms_reader")


def test_tenant_search_filters_on_the_store(env, module_dsn):
    x = env["x"]
    with connect(module_dsn, autocommit=True) as conn:
        load_table(conn, "ms_t", x[:3000])
        conn.execute("ALTER TABLE ms_t ADD COLUMN org int")
        conn.execute("UPDATE ms_t SET org = id % 3")
        add_compressed_column(conn, "ms_t", "embedding", "ms_bin", "e", progress=False)
        declare_tenant_column(conn, "ms_t", "org")
        r = search(conn, "ms_t", "embedding", x[30], 10, tenant=1, strategy="compressed")
        assert "filter runs on code store" in r.plan.explain()
        assert len(r.ids) == 10 and all(i % 3 == 1 for i in r.ids)
        e = search(conn, "ms_t", "embedding", x[30], 10, tenant=1, strategy="exact")
        assert len(set(e.ids.tolist()) & set(r.ids.tolist())) >= 9
