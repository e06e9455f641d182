"""IVF lists over their whole life in DuckDB: ``refresh`` brings their list ids
current after inserts and updates (DuckDB has no triggers), the IVF search finds
rows without a list id before that, and dropping the compressed column drops its
lists (list and hash columns, centroids); the source vectors are never touched."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import vecext.duckdb as vd
from tests.duckdb.conftest import load_clustered_table
from vecext.duckdb.ivf import add_ivf_lists, ivf_lists, refresh_lists
from vecext.errors import CatalogError
from vecext.search import search

N, D = 2_000, 16


@pytest.fixture
def table(vdb):
    """``t (id BIGINT PRIMARY KEY, v FLOAT[16], grp VARCHAR)``, clustered, in memory and on
    disk, with PQ codes ``v_pq`` (l2)."""
    x = load_clustered_table(vdb, N, D, seed=8, centers=10, groups=("a", "b"), every=2)
    vd.train_codec(vdb, "t_pq", "t", "v", "pq", metric="l2", m=4, niter=5)
    vd.add_compressed_column(vdb, "t", "v", "t_pq", "v_pq", progress=False)
    return vdb, x


def _checksum(con, where: str = "TRUE") -> str:
    return con.execute(
        f"SELECT md5(string_agg(id || ':' || v::VARCHAR, ',' ORDER BY id)) FROM t WHERE {where}"
    ).fetchone()[0]


def _columns(con) -> set[str]:
    return {r[0] for r in con.execute("DESCRIBE t").fetchall()}


def _codec_rows(con, name: str) -> tuple[int, int, int]:
    return con.execute(
        "SELECT (SELECT count(*) FROM vecext.codecs WHERE name = $n), "
        "(SELECT count(*) FROM vecext.codec_arrays WHERE codec_name = $n), "
        "(SELECT count(*) FROM vecext.codebook_vectors WHERE codec_name = $n)",
        {"n": name},
    ).fetchone()


def _truth(x: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    return np.argsort(((x.astype(np.float64) - q) ** 2).sum(1), kind="stable")[:k].tolist()


def _lists_of(con, lists, ids: list[int]) -> list[int | None]:
    got = dict(
        con.execute(
            f"SELECT id, {lists.list_column} FROM t WHERE list_contains(?, id)", [ids]
        ).fetchall()
    )
    return [got[i] for i in ids]


def test_dropping_a_compressed_column_drops_its_ivf_lists(table) -> None:
    con, x = table
    cols0 = _columns(con) - {"v_pq", "v_pq__vecext_hash"}
    before = _checksum(con)
    lists = add_ivf_lists(con, "t", "v", 8, niter=5)
    assert {lists.list_column, lists.hash_column} <= _columns(con)

    vd.drop_compressed_column(con, "t", "v_pq")

    assert _columns(con) == cols0
    assert _codec_rows(con, lists.codec_name) == (0, 0, 0)
    assert con.execute("SELECT count(*) FROM vecext.compressed_columns").fetchone() == (0,)
    assert _checksum(con) == before
    # the column and its lists can be added again under the same names
    vd.add_compressed_column(con, "t", "v", "t_pq", "v_pq", progress=False)
    again = add_ivf_lists(con, "t", "v", 8, niter=5)
    assert (again.list_column, again.codec_name) == (lists.list_column, lists.codec_name)
    r = search(con, "t", "v", x[3] + 0.01, 5, metric="l2", strategy="ivf")
    assert r.strategy == "ivf" and r.ids[0] == 3
    vd.drop_compressed_column(con, "t", "v_pq")
    assert _columns(con) == cols0 and _checksum(con) == before
    # the PQ codec is no longer used by anything: it can go
    vd.drop_codec(con, "t_pq")


def test_dropping_another_compressed_column_keeps_the_lists(table) -> None:
    con, x = table
    before = _checksum(con)
    vd.train_codec(con, "t_bin", "t", "v", "binary", metric="l2")
    vd.add_compressed_column(con, "t", "v", "t_bin", "v_bin", progress=False)
    lists = add_ivf_lists(con, "t", "v", 8, niter=5, code_column="v_pq")
    vd.drop_compressed_column(con, "t", "v_bin")
    assert ivf_lists(con, "t", "v_pq") == lists
    assert {lists.list_column, lists.hash_column} <= _columns(con)
    assert _codec_rows(con, lists.codec_name)[0] == 1
    assert _checksum(con) == before


def test_refresh_brings_list_ids_current(table) -> None:
    con, x = table
    lists = add_ivf_lists(con, "t", "v", 8, niter=5)
    coarse = vd.load_codec(con, lists.codec_name)
    far = (x[:4] * -1.5).astype(np.float32)
    con.execute(f"INSERT INTO t (id, v, grp) VALUES (50000, ?::FLOAT[{D}], 'a')", [far[0].tolist()])
    con.execute(f"INSERT INTO t (id, v, grp) VALUES (50001, ?::FLOAT[{D}], 'b')", [far[1].tolist()])
    con.execute(f"UPDATE t SET v = ?::FLOAT[{D}] WHERE id = 7", [far[2].tolist()])
    con.execute("UPDATE t SET v = NULL WHERE id = 8")
    old = _lists_of(con, lists, [7])[0]
    assert _lists_of(con, lists, [50000, 50001]) == [None, None]

    # before refresh: rows without a list id are candidates of every IVF search
    for rid, v in ((50000, far[0]), (50001, far[1])):
        r = search(con, "t", "v", v, 5, metric="l2", strategy="ivf")
        assert r.strategy == "ivf" and r.ids[0] == rid and len(r) == 5

    # one refresh re-encodes the codes and reassigns the lists of exactly those rows
    assert vd.refresh(con, "t", "v_pq", progress=False) == 4
    want = coarse.assign(far[:3]).tolist()
    assert _lists_of(con, lists, [50000, 50001, 7, 8]) == [*want, None]
    assert old is not None and vd.stale_rows(con, "t", "v_pq") == 0
    assert refresh_lists(con, "t", "v_pq") == 0
    every = con.execute("SELECT id, v FROM t WHERE v IS NOT NULL ORDER BY id").fetchall()
    xs = np.array([r[1] for r in every], dtype=np.float32)
    got = con.execute(f"SELECT {lists.list_column} FROM t WHERE v IS NOT NULL ORDER BY id")
    assert [r[0] for r in got.fetchall()] == coarse.assign(xs).tolist()

    # and the IVF search finds each row where its vector is now
    for rid, v in ((50000, far[0]), (50001, far[1]), (7, far[2])):
        r = search(con, "t", "v", v, 5, metric="l2", strategy="ivf")
        assert r.strategy == "ivf" and r.ids[0] == rid and len(r) == 5
    r = search(con, "t", "v", x[8], 5, metric="l2", strategy="ivf")
    assert 8 not in r.ids.tolist()
    # a filtered IVF search keeps returning k rows
    r = search(con, "t", "v", far[1], 10, metric="l2", strategy="ivf", filter={"grp": "b"})
    assert len(r) == 10 and r.ids[0] == 50001


def test_ivf_search_returns_k_rows_when_many_rows_have_no_list(table) -> None:
    """Rows inserted since the last refresh (no codes, no list) are all candidates."""
    con, x = table
    add_ivf_lists(con, "t", "v", 8, niter=5)
    new = (x[:300] + 0.05).astype(np.float32)
    src = pa.table(
        {
            "id": np.arange(60_000, 60_300, dtype=np.int64),
            "v": pa.FixedSizeListArray.from_arrays(pa.array(new.ravel()), D),
            "grp": ["c"] * 300,
        }
    )
    con.register("_new", src)
    con.execute("INSERT INTO t (id, v, grp) SELECT * FROM _new")
    con.unregister("_new")
    allx = np.concatenate([x, new])
    ids = np.concatenate([np.arange(N), np.arange(60_000, 60_300)])
    for i in (0, 17, 250):
        q = new[i] + 0.001
        r = search(con, "t", "v", q, 10, metric="l2", strategy="ivf")
        assert len(r) == 10 and r.ids[0] == 60_000 + i
        assert set(r.ids.tolist()) >= {int(ids[j]) for j in _truth(allx, q, 10)[:3]}
        # a filter matching only new rows: all of them are candidates
        r = search(con, "t", "v", q, 10, metric="l2", strategy="ivf", filter={"grp": "c"})
        assert len(r) == 10 and r.ids[0] == 60_000 + i


def test_refresh_names_the_fix_when_list_columns_are_gone(table) -> None:
    con, _ = table
    lists = add_ivf_lists(con, "t", "v", 8, niter=5)
    before = _checksum(con)
    con.execute(f"ALTER TABLE t DROP COLUMN {lists.hash_column}")
    with pytest.raises(CatalogError, match="drop_ivf_lists"):
        vd.refresh(con, "t", "v_pq", progress=False)
    # dropping the compressed column still clears everything
    vd.drop_compressed_column(con, "t", "v_pq")
    assert lists.list_column not in _columns(con)
    assert _codec_rows(con, lists.codec_name) == (0, 0, 0)
    assert _checksum(con) == before
