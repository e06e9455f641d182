"""IVF lists in DuckDB, which has no triggers: ``refresh`` brings their list ids current
after inserts and updates, and names the fix when their columns are gone. (The life
every backend shares: ``tests/contract/test_ivf_lifecycle.py``.)"""

from __future__ import annotations

import numpy as np
import pytest

import vecext.duckdb as vd
from tests.duckdb.conftest import load_clustered_table
from vecext.duckdb.ivf import add_ivf_lists, refresh_lists
from vecext.errors import CatalogError

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


def _lists_of(con, lists, ids: list[int]) -> list[int | None]:
    got = dict(
        con.execute(
            f"SELECT id, {lists.list_column} FROM t WHERE list_contains(?, id)", [ids]
        ).fetchall()
    )
    return [got[i] for i in ids]


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

    # (that the IVF search finds them before and after: tests/contract/test_ivf_lifecycle.py)


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
