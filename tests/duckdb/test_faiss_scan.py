"""The FAISS candidate stage (vecext.duckdb.scan) against the SQL macro stage, stale rows,
filters, IVF lists and the code cache (vecext.duckdb.codeset)."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pytest

import vecext.duckdb as vd
from vecext.duckdb import codeset, scan
from vecext.duckdb.backend import DuckDBBackend
from vecext.search import search
from vecext.search.contracts import Request, Stage
from vecext.search.filters import parse_filter
from vecext.search.planner import Plan

from .conftest import clustered

N, D = 3000, 32
#: kind, metric, params of one compressed column each
KINDS = {
    "pq": ("pq", "l2", {"m": 8, "niter": 8}),
    "pq_cos": ("pq", "cosine", {"m": 8, "niter": 8, "opq": True, "opq_niter": 3}),
    "pq_ip": ("pq", "ip", {"m": 4, "niter": 8, "pretransform": "pca:16"}),
    "binary": ("binary", "cosine", {}),
    "int8": ("int8", "l2", {}),
    "half": ("half", "ip", {}),
    "rbq": ("rbq", "cosine", {"bits": 2}),
}


def _exact64(x: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    """Every row's exact distance to the float32 query, computed in float64."""
    x64 = x.astype(np.float64)
    q64 = np.asarray(q, np.float32).astype(np.float64)
    if metric == "l2":
        return np.sqrt(((x64 - q64) ** 2).sum(axis=1))
    if metric == "ip":
        return -(x64 @ q64)
    return 1.0 - (x64 @ q64) / (np.linalg.norm(x64, axis=1) * np.linalg.norm(q64))


@pytest.fixture(autouse=True)
def _through_the_codes(monkeypatch) -> None:
    """These tests check the code scan itself: no exact shortcut on small tables."""
    monkeypatch.setattr(scan, "SMALL_EXACT_FLOATS", 0)


@pytest.fixture(scope="module")
def env() -> Iterator[tuple[duckdb.DuckDBPyConnection, np.ndarray]]:
    con = vd.connect(vss=False)
    x = clustered(N, D, seed=5)
    grp = np.where(np.arange(N) % 7 == 0, "a", "b")
    con.execute(f"CREATE TABLE t (id BIGINT PRIMARY KEY, v FLOAT[{D}], grp VARCHAR)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?)",
        [[i, x[i].tolist(), str(grp[i])] for i in range(N)],
    )
    for name, (kind, metric, params) in KINDS.items():
        vd.train_codec(con, f"c_{name}", "t", "v", kind, metric=metric, **params)
        vd.add_compressed_column(con, "t", "v", f"c_{name}", f"v_{name}", progress=False)
    vd.add_ivf_lists(con, "t", "v", 16, code_column="v_pq", list_column="v_list")
    yield con, x
    con.close()
    scan.set_candidate_scan("faiss")


def _stage(con, name: str, q: np.ndarray, depth: int, filt=None, lists=None, metric=None):
    metric = metric or KINDS[name][1]
    be = DuckDBBackend(con)
    info = be.table_info("t", "v", metric)
    code = info.codes[f"v_{name}"]
    req = Request("t", "v", q, 10, metric, parse_filter(filt))
    plan = Plan("compressed", "test", n_rows=N, est_matching=N, k=10)
    return be.candidates(info, req, plan, Stage(code, depth, depth, lists)), plan


def _code_dist(con, name: str, x: np.ndarray, q: np.ndarray) -> np.ndarray:
    codec = vd.load_codec(con, f"c_{name}")
    return codec.distances(q[None], codec.encode(x))[0]


@pytest.mark.parametrize("name", sorted(KINDS))
@pytest.mark.parametrize("filt", [None, {"grp": "a"}])
def test_faiss_stage_ranks_the_same_rows_as_the_sql_macros(env, name, filt) -> None:
    con, x = env
    depth = 60
    for qi in range(3):
        q = x[qi * 101] + 0.05
        scan.set_candidate_scan("sql")
        sql, _ = _stage(con, name, q, depth, filt)
        scan.set_candidate_scan("faiss")
        fast, plan = _stage(con, name, q, depth, filt)
        assert any("FAISS scanned" in s for s in plan.steps)
        # the depth best by code distance, ties at the boundary aside
        cd = _code_dist(con, name, x, q)
        mask = np.ones(N, bool) if filt is None else (np.arange(N) % 7 == 0)
        thr = np.sort(cd[mask])[depth - 1]
        eps = 1e-4 * max(1.0, abs(float(thr)))
        for got in (sql.ids, fast.ids):
            got = np.array(got)
            assert len(got) == depth
            assert mask[got].all()
            assert (cd[got] <= thr + eps).all()
            must = np.flatnonzero(mask & (cd < thr - eps))
            assert np.isin(must, got).all()
        # and both rerank exactly: the FAISS stage from the vector cache in float64,
        # the SQL macros with DuckDB's functions, which accumulate in float32
        ref = _exact64(x, q, KINDS[name][1])
        for i, d in zip(fast.ids, fast.dist, strict=True):
            assert abs(d - ref[i]) <= 1e-9 * max(1.0, abs(ref[i]))
        for i, d in zip(sql.ids, sql.dist, strict=True):
            assert abs(d - ref[i]) <= 1e-6 * max(1.0, abs(ref[i]))


@pytest.mark.parametrize("name", ["pq", "binary", "int8"])
def test_searches_return_the_same_ids_on_both_paths(env, name) -> None:
    con, x = env
    metric = KINDS[name][1]
    for filt in (None, {"grp": "a"}):
        for qi in range(4):
            q = x[qi * 37] + 0.1
            scan.set_candidate_scan("sql")
            a = search(con, "t", "v", q, 10, metric=metric, filter=filt, strategy="compressed",
                       using=f"v_{name}")  # fmt: skip
            scan.set_candidate_scan("faiss")
            b = search(con, "t", "v", q, 10, metric=metric, filter=filt, strategy="compressed",
                       using=f"v_{name}")  # fmt: skip
            assert list(a.ids) == list(b.ids)
            # the exact distances: float64 from the vector cache (returned as float32),
            # DuckDB's float32 functions on the SQL path
            ref = _exact64(x, q, metric)
            np.testing.assert_allclose(b.distances, ref[b.ids], rtol=2e-7, atol=1e-12)
            np.testing.assert_allclose(a.distances, ref[a.ids], rtol=1e-6, atol=1e-6)


def test_ivf_stage_scans_only_the_probed_lists(env) -> None:
    con, x = env
    q = x[11]
    be = DuckDBBackend(con)
    info = be.table_info("t", "v", "l2")
    code = info.codes["v_pq"]
    req = Request("t", "v", q, 10, "l2", None)
    order = be.probe_order(info, req, code)
    lists = np.asarray(con.execute("SELECT v_list FROM t ORDER BY id").fetchnumpy()["v_list"])
    for filt in (None, {"grp": "a"}):
        mask = np.ones(N, bool) if filt is None else (np.arange(N) % 7 == 0)
        probed = order[:3]
        out = {}
        for how in ("sql", "faiss"):
            scan.set_candidate_scan(how)
            out[how], _ = _stage(con, "pq", q, 40, filt, lists=probed)
        scan.set_candidate_scan("faiss")
        inside = np.isin(lists, probed) & mask
        assert out["faiss"].rows_read == out["sql"].rows_read == int(inside.sum())
        assert inside[np.array(out["faiss"].ids)].all()
        assert set(out["faiss"].ids) == set(out["sql"].ids) or len(out["faiss"].ids) == 40


def test_stale_rows_are_found_without_refresh(env) -> None:
    """A vector updated (or inserted) without refresh() is returned first when it equals
    the query: rows above the refresh mark are always reranked (issue 13, item 5)."""
    con, x = env
    q = (x[2500] * -3.0).astype(np.float32)  # far from every stored vector
    for name in ("pq", "binary", "int8"):
        before = search(con, "t", "v", q, 10, metric=KINDS[name][1], strategy="compressed",
                        using=f"v_{name}")  # fmt: skip
        assert 17 not in set(before.ids)
    con.execute("UPDATE t SET v = ? WHERE id = 17", [q.tolist()])
    con.execute("INSERT INTO t (id, v, grp) VALUES (?, ?, 'a')", [N + 1, (q + 0.001).tolist()])
    try:
        for name in ("pq", "binary", "int8"):
            r = search(con, "t", "v", q, 10, metric=KINDS[name][1], strategy="compressed",
                       using=f"v_{name}")  # fmt: skip
            assert list(r.ids[:2]) == [17, N + 1], name
        r = search(con, "t", "v", q, 10, metric="l2", strategy="ivf", using="v_pq")
        assert list(r.ids[:2]) == [17, N + 1]
        # under a filter the stale row is still found, and filtered out when it fails
        r = search(con, "t", "v", q, 5, metric="l2", filter={"grp": "a"}, strategy="compressed",
                   using="v_pq")  # fmt: skip
        assert 17 not in set(r.ids) and r.ids[0] == N + 1  # row 17 is in group b (17 % 7 != 0)
    finally:
        con.execute("UPDATE t SET v = ? WHERE id = 17", [x[17].tolist()])
        con.execute("DELETE FROM t WHERE id = ?", [N + 1])
        for name in KINDS:
            vd.refresh(con, "t", f"v_{name}", progress=False)


def test_refresh_records_a_mark_and_the_cache_follows_writes(env) -> None:
    con, x = env
    position = con.execute(
        "SELECT backfill_position FROM vecext.compressed_columns WHERE code_column = 'v_pq'"
    ).fetchone()[0]
    mark = codeset.parse_mark(position)
    assert mark is not None
    assert mark == con.execute("SELECT max(rowid) FROM t").fetchone()[0]
    codeset.clear()
    q = x[40]
    r1, plan = _stage(con, "pq", q, 20)
    col = codeset.Column(DuckDBBackend(con).table_info("t", "v", "l2").ref, "v_pq", "v", "id",
                         "v_list")  # fmt: skip

    def current() -> codeset.CodeSet:  # as a search finds it: the catalog state, then codes
        version = DuckDBBackend(con).table_info("t", "v", "l2").codes["v_pq"].version
        return codeset.code_set(con, col, 8, version)

    first = current()
    assert current() is first  # warm: no reload
    # a vecext write (refresh after an update) reloads
    con.execute("UPDATE t SET v = ? WHERE id = 40", [(x[40] + 0.5).tolist()])
    assert current() is first  # a user write: rows above the mark
    vd.refresh(con, "t", "v_pq", progress=False)
    second = current()
    assert second is not first and second.mark > first.mark
    con.execute("UPDATE t SET v = ? WHERE id = 40", [x[40].tolist()])
    vd.refresh(con, "t", "v_pq", progress=False)


def test_deleted_and_renumbered_rows(tmp_path) -> None:
    """Deleted rows leave the results; a checkpoint that compacts row groups (rowids
    renumbered) makes the cache distrust the mark and hash-check instead."""
    con = vd.connect(str(tmp_path / "r.duckdb"), vss=False)
    n = 150_000
    x = clustered(n, 8, seed=3)
    con.execute("CREATE TABLE r (id BIGINT, v FLOAT[8])")  # no index: DuckDB vacuums
    src = pa.table(
        {"id": np.arange(n), "v": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 8)}
    )
    con.register("src", src)
    con.execute("INSERT INTO r SELECT * FROM src")
    vd.train_codec(con, "rb", "r", "v", "binary", metric="l2", sample=5000)
    vd.add_compressed_column(con, "r", "v", "rb", "v_b", progress=False)
    con.execute("CHECKPOINT")
    q = (x[5] * 5).astype(np.float32)
    r = search(con, "r", "v", q, 5, metric="l2", strategy="compressed")
    con.execute("DELETE FROM r WHERE id = ?", [int(r.ids[0])])
    r2 = search(con, "r", "v", q, 5, metric="l2", strategy="compressed")
    assert r.ids[0] not in set(r2.ids) and list(r2.ids[:4]) == list(r.ids[1:5])
    # an update without refresh, then many deletes and a compacting checkpoint
    con.execute("UPDATE r SET v = ? WHERE id = 149999", [q.tolist()])
    con.execute("DELETE FROM r WHERE id < 100000")
    con.execute("CHECKPOINT")
    assert con.execute("SELECT max(rowid) FROM r").fetchone()[0] < 100_000  # renumbered
    got = search(con, "r", "v", q, 5, metric="l2", strategy="compressed")
    assert got.ids[0] == 149999
    assert codeset._distrusted  # the mark was found wrong, the vectors hash-checked
    con.close()


def test_bad_scan_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="faiss"):
        vd.set_candidate_scan("gpu")
    with pytest.raises(ValueError, match="positive"):
        vd.set_faiss_threads(0)


def _child_scan(out, codec, codes, q) -> None:  # type: ignore[no-untyped-def]
    _, top = scan._scan(codec, q, codes, 5)  # arguments inherited by fork, not pickled
    out.put(top.tolist())


def test_split_scan_matches_one_thread_and_survives_fork() -> None:
    """A scan over more than SPLIT_ABOVE codes split over two threads finds the same rows
    as one thread, and a forked child (whose copy of the pool has no threads) still scans."""
    import multiprocessing as mp

    from vecext.codecs import make_codec

    x = clustered(2000, 16, seed=9)
    codec = make_codec("pq", 16, "l2", m=8, niter=5).train(x)
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (scan.SPLIT_ABOVE + 5000, 8), dtype=np.uint8)
    q = x[0]
    try:
        scan.set_faiss_threads(1)
        d1, i1 = scan._scan(codec, q, codes, 50)
        scan.set_faiss_threads(2)
        d2, i2 = scan._scan(codec, q, codes, 50)
        np.testing.assert_allclose(d1, d2, rtol=1e-6)
        assert set(i1[d1 < d1[-1]]) == set(i2[d2 < d2[-1]])  # ties at the boundary aside
        ctx = mp.get_context("fork")
        box = ctx.Queue()
        child = ctx.Process(target=_child_scan, args=(box, codec, codes, q))
        child.start()
        try:
            got = box.get(timeout=60)  # a child whose pool has no threads never answers
            child.join(10)
        finally:
            if child.is_alive():
                child.kill()
        assert child.exitcode == 0
        assert got == i2[:5].tolist()
    finally:
        scan.set_faiss_threads(2)


def test_a_small_table_is_ranked_exactly(env, monkeypatch) -> None:
    """Below SMALL_EXACT_FLOATS the stage ranks the cached vectors exactly: the same rows
    as the exact strategy, with and without a filter, and the plan says so."""
    monkeypatch.setattr(scan, "SMALL_EXACT_FLOATS", 10**9)
    con, x = env
    for filt in (None, {"grp": "a"}):
        q = x[77] + 0.05
        r = search(con, "t", "v", q, 10, metric="l2", filter=filt, strategy="compressed",
                   using="v_pq")  # fmt: skip
        e = search(con, "t", "v", q, 10, metric="l2", filter=filt, strategy="exact")
        assert r.strategy == "compressed" and list(r.ids) == list(e.ids)
        assert any("ranked exactly from the vector cache" in s for s in r.plan.steps)
