"""Codes/s of vecext's DuckDB candidate stage against FAISS on the same codes (not a test).

For PQ (M = d / 8) and binary codes of a dataset's vectors, one query at a time:

* ``faiss.IndexPQ`` / ``faiss.IndexBinaryFlat`` search (k = depth) over the codes: the
  ceiling the issue compares against;
* ``Codec.scan`` (what :mod:`vecext.duckdb.scan` calls on the cached codes);
* the whole FAISS candidate stage in DuckDB (``DuckDBBackend.candidates``: cache check,
  rows written since the refresh, scan, rerank of ``depth`` rows by primary key), and
  the same stage without its rerank (``depth`` = k, no deepening), cache warm.

Usage::

    python bench/faiss_stage.py --data ../shared/data/wordnet-minilm [--queries 50] [--depth 320]
    python bench/faiss_stage.py --synthetic 1000000x768
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa

import vecext.duckdb as vd
from vecext.codecs import make_codec
from vecext.duckdb.backend import DuckDBBackend
from vecext.search import search
from vecext.search.contracts import Request, Stage
from vecext.search.planner import Plan


def _rate(n: int, times: list[float]) -> str:
    t = float(np.median(times))
    return f"{t * 1e3:8.2f} ms  {n / t / 1e6:8.1f} M codes/s"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path)
    ap.add_argument("--synthetic", default="200000x384")
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--depth", type=int, default=320)
    a = ap.parse_args()
    if a.data:
        xb = np.load(a.data / "docs.f16.npy").astype(np.float32)
        xq = np.load(a.data / "queries_dev.f16.npy").astype(np.float32)[: a.queries]
    else:
        n, d = (int(v) for v in a.synthetic.split("x"))
        rng = np.random.default_rng(0)
        xb = rng.standard_normal((n, d), dtype=np.float32)
        xq = xb[: a.queries] + 0.1
    n, d = xb.shape
    con = vd.connect(vss=False)
    src = pa.table(
        {"id": np.arange(n), "v": pa.FixedSizeListArray.from_arrays(pa.array(xb.ravel()), d)}
    )
    con.register("src", src)
    con.execute(f"CREATE TABLE t (id BIGINT PRIMARY KEY, v FLOAT[{d}])")
    con.execute("INSERT INTO t SELECT * FROM src")
    con.unregister("src")
    print(
        f"{n:,} x {d}, {len(xq)} queries, depth {a.depth}, faiss threads {faiss.omp_get_max_threads()}"
    )
    for kind, params in (("pq", {"m": d // 8}), ("binary", {})):
        codec = make_codec(kind, d, "cosine", **params).train(xb[:50_000])
        vd.save_codec(con, f"c_{kind}", codec)
        vd.add_compressed_column(con, "t", "v", f"c_{kind}", f"v_{kind}", progress=False)
        codes = codec.encode(xb)
        if kind == "pq":
            index = faiss.IndexPQ(codec.d_inner, codec.m, 8, faiss.METRIC_INNER_PRODUCT)
            faiss.copy_array_to_vector(codec.centroids.ravel(), index.pq.centroids)
            faiss.copy_array_to_vector(codes.ravel(), index.codes)
            index.ntotal = n
            index.is_trained = True
        else:
            index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
            index.add(codes)
        be = DuckDBBackend(con)
        info = be.table_info("t", "v", "cosine")
        code = info.codes[f"v_{kind}"]
        rows: dict[str, list[float]] = {"faiss": [], "scan": [], "stage": [], "stage-rerank": []}
        for q in xq:
            fquery = codec.encode(q[None]) if kind == "binary" else (q / np.linalg.norm(q))[None]
            for name in rows:
                t0 = time.perf_counter()
                if name == "faiss":
                    index.search(np.ascontiguousarray(fquery), a.depth)
                elif name == "scan":
                    codec.scan(q, codes, a.depth)
                else:
                    _stage(be, info, code, q, a.depth if name == "stage" else 10)
                rows[name].append(time.perf_counter() - t0)
        for name, times in rows.items():
            print(f"{kind:7s} {name:14s} {_rate(n, times[1:])}")
    # whole searches (cosine, k = 10): exact scan against the FAISS two-stage path
    for strategy, using in (("exact", None), ("compressed", "v_pq"), ("compressed", "v_binary")):
        times = []
        for q in xq:
            t0 = time.perf_counter()
            search(con, "t", "v", q, 10, strategy=strategy, using=using)
            times.append(time.perf_counter() - t0)
        print(f"search {strategy:10s} {using or '':9s} first {times[0] * 1e3:8.1f} ms, "
              f"p50 after {float(np.median(times[1:])) * 1e3:8.1f} ms")  # fmt: skip


def _stage(be, info, code, q, depth):  # type: ignore[no-untyped-def]
    req = Request("t", "v", q, 10, "cosine", None)
    plan = Plan("compressed", "bench", n_rows=info.caps.n_rows, est_matching=info.caps.n_rows, k=10)
    return be.candidates(info, req, plan, Stage(code, depth, depth))


if __name__ == "__main__":
    main()
