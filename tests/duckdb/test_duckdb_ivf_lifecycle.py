"""IVF lists in DuckDB: dropping the compressed column drops its lists (list and hash
columns, centroids); the source vectors are never touched."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import vecext.duckdb as vd
from vecext.duckdb.ivf import add_ivf_lists, ivf_lists
from vecext.duckdb.search import search

N, D = 2_000, 16


@pytest.fixture
def table(vdb):
    """``t (id BIGINT PRIMARY KEY, v FLOAT[16], grp VARCHAR)``, clustered, in memory and on
    disk, with PQ codes ``v_pq`` (l2)."""
    rng = np.random.default_rng(8)
    centers = 3.0 * rng.standard_normal((10, D))
    x = (centers[rng.integers(0, 10, N)] + rng.standard_normal((N, D)) + 1).astype(np.float32)
    src = pa.table(
        {
            "id": np.arange(N, dtype=np.int64),
            "v": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), D),
            "grp": np.where(np.arange(N) % 2 == 0, "a", "b"),
        }
    )
    vdb.execute(f"CREATE TABLE t (id BIGINT PRIMARY KEY, v FLOAT[{D}], grp VARCHAR)")
    vdb.register("_src", src)
    vdb.execute("INSERT INTO t SELECT * FROM _src")
    vdb.unregister("_src")
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
