"""Fixtures for the DuckDB codec and compressed-column tests: seeded data, trained
codecs shared by a session (training is the slow part) and table loading via Arrow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import faiss
import numpy as np
import pyarrow as pa
import pytest

import vecext.duckdb as vd
from tests.conftest import clustered
from vecext.codecs import Codec, make_codec

D = 32


@pytest.fixture(scope="session", autouse=True)
def _faiss_single_thread() -> Iterator[None]:
    """One OpenMP thread: FAISS threads spinning on a loaded 2-core machine slow
    training down several times."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def load_clustered_table(
    con: duckdb.DuckDBPyConnection,
    n: int,
    d: int,
    *,
    seed: int,
    centers: int,
    groups: tuple[str, str],
    every: int,
) -> np.ndarray:
    """``t (id BIGINT PRIMARY KEY, v FLOAT[d], grp VARCHAR)`` of ``n`` clustered rows,
    shifted off the origin; ``grp`` is ``groups[0]`` on every ``every``-th row, else
    ``groups[1]``. Returns the vectors."""
    rng = np.random.default_rng(seed)
    c = 3.0 * rng.standard_normal((centers, d))
    x = (c[rng.integers(0, centers, n)] + rng.standard_normal((n, d)) + 1).astype(np.float32)
    src = pa.table(
        {
            "id": np.arange(n, dtype=np.int64),
            "v": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), d),
            "grp": np.where(np.arange(n) % every == 0, groups[0], groups[1]),
        }
    )
    con.execute(f"CREATE TABLE t (id BIGINT PRIMARY KEY, v FLOAT[{d}], grp VARCHAR)")
    con.register("_src", src)
    con.execute("INSERT INTO t SELECT * FROM _src")
    con.unregister("_src")
    return x


@pytest.fixture(params=["memory", "file"])
def vdb(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """Like ``duck`` (in memory and on disk) without loading VSS, which these tests do
    not use and which takes most of the connection time."""
    target = ":memory:" if request.param == "memory" else str(tmp_path / "test.duckdb")
    con = vd.connect(target, vss=False)
    yield con
    con.close()


@pytest.fixture(scope="session")
def xb() -> np.ndarray:
    return clustered(800, D, seed=1)


@pytest.fixture(scope="session")
def xq() -> np.ndarray:
    return clustered(4, D, seed=2)


def vectors_table(x: np.ndarray, ids: np.ndarray | None = None) -> pa.Table:
    ids = np.arange(len(x), dtype=np.int32) if ids is None else ids.astype(np.int32)
    values = pa.array(np.ascontiguousarray(x, np.float32).ravel())
    return pa.table({"id": ids, "embedding": pa.FixedSizeListArray.from_arrays(values, x.shape[1])})


def load_table(
    con: duckdb.DuckDBPyConnection, table: str, x: np.ndarray, *, ids: np.ndarray | None = None
) -> None:
    """``CREATE TABLE <table> (id INTEGER PRIMARY KEY, embedding FLOAT[d])`` from numpy."""
    con.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, embedding FLOAT[{x.shape[1]}])")
    con.register("_load_src", vectors_table(x, ids))
    con.execute(f"INSERT INTO {table} SELECT id, embedding FROM _load_src")
    con.unregister("_load_src")


def qparam(q: np.ndarray) -> list[float]:
    """A query as a bound parameter (``?::FLOAT[]``), exactly the float32 values."""
    return [float(v) for v in np.asarray(q, np.float32)]


#: name -> (kind, metric, params); trained once per session on ``xb``
CODEC_SPECS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "pq_l2": ("pq", "l2", {"m": 8, "niter": 10}),
    "pq_ip": ("pq", "ip", {"m": 8, "niter": 10}),
    "pq_cos": ("pq", "cosine", {"m": 8, "niter": 10}),
    "opq_l2": ("pq", "l2", {"m": 8, "opq": True, "niter": 10, "opq_niter": 5}),
    "pq_pca": ("pq", "l2", {"m": 4, "niter": 10, "pretransform": "pca:16"}),
    "pq_pca_ip": ("pq", "ip", {"m": 4, "niter": 10, "pretransform": "pca:16"}),
    "bin_l2": ("binary", "l2", {}),
    "bin_cos": ("binary", "cosine", {}),
    "rbq_l2": ("rbq", "l2", {"bits": 2}),
    "rbq_ip": ("rbq", "ip", {"bits": 3}),
    "rbq_cos": ("rbq", "cosine", {"bits": 2}),
    "int8_l2": ("int8", "l2", {}),
    "int8_ip": ("int8", "ip", {}),
    "half_l2": ("half", "l2", {}),
    "half_cos": ("half", "cosine", {}),
    "half_mat": ("half", "cosine", {"pretransform": "matryoshka:16"}),
}


class TrainedCodecs(dict):
    """``CODEC_SPECS`` trained on ``xb`` on first use (a module uses only some)."""

    def __init__(self, xb: np.ndarray) -> None:
        super().__init__()
        self.xb = xb

    def __missing__(self, name: str) -> Codec:
        kind, metric, params = CODEC_SPECS[name]
        codec = make_codec(kind, self.xb.shape[1], metric, **params).train(self.xb)
        self[name] = codec
        return codec


@pytest.fixture(scope="session")
def trained(xb: np.ndarray) -> TrainedCodecs:
    return TrainedCodecs(xb)


@pytest.fixture
def mem() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory vecext connection, for tests where storage does not matter."""
    con = vd.connect(vss=False)
    yield con
    con.close()


# -- search tests (tests/duckdb/test_search_*.py) ------------------------------------------

SEARCH_N, SEARCH_D = 20_000, 32
#: categorical attribute of skewed sizes: a 50%, b 10%, c 1%, d 0.1%, f 5 rows (< k), e rest
CAT_SIZES = {"a": 10_000, "b": 2_000, "c": 200, "d": 20, "f": 5}
SELECTIVITY = {"a": 0.5, "b": 0.1, "c": 0.01, "d": 0.001}


class SearchData:
    """20k x 32 seeded clustered vectors (not centred), ``cat``, queries near the data."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        centers = 2.0 * rng.standard_normal((40, SEARCH_D))
        labels = rng.integers(0, 40, SEARCH_N)
        noise = 0.8 * rng.standard_normal((SEARCH_N, SEARCH_D))
        self.xb = (centers[labels] + noise + 0.5).astype(np.float32)
        cat = [c for c, n in CAT_SIZES.items() for _ in range(n)]
        self.cat = np.array(cat + ["e"] * (SEARCH_N - len(cat)))
        rng.shuffle(self.cat)
        pick = rng.choice(SEARCH_N, 20, replace=False)
        self.xq = (self.xb[pick] + 0.3 * rng.standard_normal((20, SEARCH_D))).astype(np.float32)
        self.tenant = np.where(np.arange(SEARCH_N) % 10 == 0, "small", "big")
        self.tenant[:20] = "tiny"
        self.extra: dict[str, Any] = {}

    def truth(self, q: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Exact cosine top-k ids (float64 numpy brute force) among ``mask``."""
        xb = self.xb.astype(np.float64)
        xb /= np.linalg.norm(xb, axis=1, keepdims=True)
        dist = 1 - xb @ (q.astype(np.float64) / np.linalg.norm(q))
        if mask is not None:
            dist[~mask] = np.inf
        order = np.argsort(dist, kind="stable")[:k]
        return order[np.isfinite(dist[order])]

    def arrow(self) -> pa.Table:
        values = pa.array(self.xb.ravel())
        return pa.table(
            {
                "id": np.arange(SEARCH_N, dtype=np.int64),
                "embedding": pa.FixedSizeListArray.from_arrays(values, SEARCH_D),
                "cat": self.cat,
                "tenant": self.tenant,
            }
        )


def search_recall(ids: np.ndarray, truth: np.ndarray) -> float:
    if len(truth) == 0:
        return 1.0
    return len(set(np.asarray(ids).tolist()) & set(truth.tolist())) / len(truth)


def load_search_table(
    con: duckdb.DuckDBPyConnection, data: SearchData, table: str = "items"
) -> None:
    """``table (id BIGINT PRIMARY KEY, embedding FLOAT[32], cat VARCHAR, tenant VARCHAR)``."""
    con.execute(
        f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, embedding FLOAT[{SEARCH_D}], "
        "cat VARCHAR, tenant VARCHAR)"
    )
    con.register("_search_src", data.arrow())
    con.execute(f"INSERT INTO {table} SELECT id, embedding, cat, tenant FROM _search_src")
    con.unregister("_search_src")


@pytest.fixture(scope="session")
def search_env(
    duck_search_env: tuple[duckdb.DuckDBPyConnection, SearchData],
) -> tuple[duckdb.DuckDBPyConnection, SearchData]:
    return duck_search_env


def build_search_env(
    search_data: SearchData,
) -> Iterator[tuple[duckdb.DuckDBPyConnection, SearchData]]:
    """In-memory DuckDB with ``items`` fully equipped: PQ codes with IVF lists (both
    calibrated), binary codes (calibrated) and a VSS HNSW index, all for cosine; and
    ``plain`` (its first 2,000 rows, vectors only). (The
    session fixture is ``duck_search_env`` in ``tests/conftest.py``, shared with
    ``tests/contract/``.)"""
    import vecext.duckdb as vd
    from vecext.duckdb.calibration import calibrate
    from vecext.duckdb.indexes import create_vector_index
    from vecext.duckdb.ivf import add_ivf_lists

    con = vd.connect(":memory:")
    load_search_table(con, search_data)
    # ``plain``: the first 2,000 rows, vectors only (as in PostgreSQL's search table)
    con.execute(
        f"CREATE TABLE plain (id BIGINT PRIMARY KEY, embedding FLOAT[{SEARCH_D}], cat VARCHAR)"
    )
    con.execute("INSERT INTO plain SELECT id, embedding, cat FROM items WHERE id < 2000")
    vd.train_codec(con, "items_pq", "items", "embedding", "pq", metric="cosine", m=8, niter=10)
    vd.add_compressed_column(con, "items", "embedding", "items_pq", "emb_pq", progress=False)
    vd.train_codec(con, "items_bin", "items", "embedding", "binary", metric="cosine")
    vd.add_compressed_column(con, "items", "embedding", "items_bin", "emb_bin", progress=False)
    search_data.extra["ivf"] = add_ivf_lists(
        con, "items", "embedding", code_column="emb_pq", nlist=128, niter=10
    )
    search_data.extra["cal_pq"] = calibrate(con, "items", "emb_pq", n_queries=60)
    search_data.extra["cal_bin"] = calibrate(con, "items", "emb_bin", n_queries=60)
    # a lighter build than VSS's default ef_construction=128: searches still use defaults
    search_data.extra["hnsw"] = create_vector_index(
        con, "items", "embedding", metric="cosine", ef_construction=64
    )
    yield con, search_data
    con.close()
