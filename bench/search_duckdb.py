"""Benchmark of the DuckDB search strategies (a benchmark, not a timed test).

    /work/venv/bin/python bench/search_duckdb.py [--data DIR] [--limit-queries N] [--k K]
                                                 [--json FILE] [--filters F ...] [--db FILE]

Data: ``../shared/data/wordnet-minilm`` (117,659 x 384 MiniLM embeddings, cosine;
``pos`` / ``lexname`` attributes; the ``dev`` queries, a seeded sample of
``--limit-queries`` of them as in ``vecext bench``). One in-memory DuckDB holds
the table, a PQ column (M = 48, cosine) with IVF lists (4 sqrt(n) lists), a
binary column (centred, 384 bits) -- both calibrated -- and a VSS HNSW index at
VSS's defaults. Trained codecs and calibrations are cached like ``vecext bench``
does (``$VECEXT_BENCH_CACHE``).

For every filter (none, ``pos=r``, ``lexname=noun.animal``, ``pos=v``,
``lexname=verb.weather``) and method it reports recall@k against the exact
filtered top-k (numpy), the fewest rows any query got, the share of queries with
``min(k, matching)`` rows, p50 latency and QPS (one client, after a warm-up of 20
queries), and the strategies the searches ended with:

* ``exact``: ``search(strategy="exact")``;
* ``vss-hnsw``: VSS's own ``ORDER BY array_cosine_distance(...) LIMIT k`` with the
  filter in WHERE, VSS defaults (not through vecext: its rows are what VSS gives);
* ``vecext-hnsw``: ``search(strategy="hnsw")``: the same index, widened for the
  filter, with the k-rows guarantee (exact fallback);
* ``vecext-pq`` / ``vecext-binary``: two-stage search on the codes;
* ``vecext-ivfpq``: IVF lists + PQ codes;
* ``vecext-auto``: the planner's choice.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

import vecext.duckdb as vd
from vecext import evaluation
from vecext.datasets import load_dataset
from vecext.search import search
from vecext.search.filters import describe, parse_cli_filters
from vecext.tools.bench import where
from vecext.tools.bench.duck_methods import load_table
from vecext.tools.bench.duck_vecext import ensure_codes, ensure_hnsw, ensure_lists
from vecext.tools.bench.runner import limit_queries
from vecext.tools.bench.truth import exact_topk

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wordnet-minilm"
FILTERS = ["", "pos=r", "lexname=noun.animal", "pos=v", "lexname=verb.weather"]
METHODS = [
    "exact",
    "vss-hnsw",
    "vecext-hnsw",
    "vecext-pq",
    "vecext-ivfpq",
    "vecext-binary",
    "vecext-auto",
]
TABLE = "wordnet"
WARMUP = 20
console = Console(stderr=True)


class Task:
    """A console line per finished build step (``vecext bench``'s ``ctx.task`` shape)."""

    def __call__(self, description: str, total: float | None = None) -> Any:
        return self._Step(description)

    class _Step:
        def __init__(self, description: str) -> None:
            self.description = description

        def __enter__(self) -> Any:
            self.start = time.perf_counter()
            return lambda *a, **kw: None

        def __exit__(self, *exc: Any) -> None:
            console.print(f"  {self.description}: {time.perf_counter() - self.start:.1f} s")


def searcher(con: Any, method: str, pred: Any, k: int, d: int) -> Any:
    """``q -> (ids, complete, strategy)`` for one method and filter."""
    if method == "vss-hnsw":
        body, params = where.duck_where(pred)
        sql = (
            f"SELECT id FROM {TABLE} {body} "
            f"ORDER BY array_cosine_distance(embedding, ?::FLOAT[{d}]) LIMIT {int(k)}"
        )

        def run_vss(q: np.ndarray) -> tuple[np.ndarray, bool, str]:
            rows = con.execute(sql, [*params, q.tolist()]).fetchall()
            return np.array([r[0] for r in rows], dtype=np.int64), True, "hnsw (VSS)"

        return run_vss
    strategy, using = {
        "exact": ("exact", None),
        "vecext-hnsw": ("hnsw", None),
        "vecext-pq": ("compressed", "embedding_pq"),
        "vecext-ivfpq": ("ivf", "embedding_pq"),
        "vecext-binary": ("compressed", "embedding_binary"),
        "vecext-auto": ("auto", None),
    }[method]

    def run(q: np.ndarray) -> tuple[np.ndarray, bool, str]:
        r = search(con, TABLE, "embedding", q, k, strategy=strategy, filter=pred, using=using)
        return np.asarray(r.ids, dtype=np.int64), r.complete, r.strategy

    return run


def measure(fn: Any, xq: np.ndarray, truth: np.ndarray, k: int, expected: int) -> dict[str, Any]:
    for q in xq[:WARMUP]:
        fn(q)
    nq = xq.shape[0]
    I = np.full((nq, k), -1, dtype=np.int64)
    lat = np.empty(nq)
    counts = np.empty(nq, dtype=np.int64)
    used: collections.Counter[str] = collections.Counter()
    wall = time.perf_counter()
    for i, q in enumerate(xq):
        t0 = time.perf_counter()
        ids, _, strategy = fn(q)
        lat[i] = time.perf_counter() - t0
        I[i, : ids.size] = ids
        counts[i] = ids.size
        used[strategy] += 1
    wall = time.perf_counter() - wall
    return {
        "recall_at_k": evaluation.recall_at_k(I, truth, k),
        "min_rows_returned": int(counts.min()),
        "complete_fraction": float(np.mean(counts == expected)),
        "p50_ms": float(np.percentile(lat, 50) * 1e3),
        "qps": nq / wall,
        "strategies": dict(used.most_common()),
    }


def markdown(results: list[dict[str, Any]], k: int, name: str, nq: int) -> str:
    """The results as a markdown table (for the issue note)."""
    lines = [
        f"DuckDB search on {name}, {nq} dev queries, recall@{k} against exact filtered top-{k}",
        "",
        f"| filter | rows | method | recall@{k} | min rows | p50 ms | QPS | strategies run |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ran = ", ".join(f"{s} {c}" for s, c in r["strategies"].items())
        lines.append(
            f"| {r['filter']} | {r['matching']:,} | {r['method']} | {r['recall_at_k']:.4f} | "
            f"{r['min_rows_returned']} | {r['p50_ms']:.1f} | {r['qps']:.1f} | {ran} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--limit-queries", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--filters", nargs="*", default=FILTERS, help="COLUMN=VALUE; '' = none")
    ap.add_argument("--methods", nargs="*", default=METHODS, choices=METHODS)
    ap.add_argument("--db", default=":memory:", help="DuckDB file (reused when it exists)")
    args = ap.parse_args(argv)
    k = args.k

    ds, _ = limit_queries(load_dataset(args.data, "dev"), args.limit_queries)
    n, d = ds.xb.shape
    console.print(f"[bold]{ds.name}[/bold]: {n:,} x {d}, {ds.xq.shape[0]} dev queries, k={k}")
    con = vd.connect(args.db)
    task = Task()
    builds: dict[str, float] = {"load": 0.0}
    (have,) = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [TABLE]
    ).fetchone()  # type: ignore[misc]
    if not have:
        builds["load"] = load_table(con, TABLE, ds.xb, ds.attrs, task)
    builds["pq codes"] = ensure_codes(con, ds.name, TABLE, "pq", task)[1]
    builds["ivf lists"] = ensure_lists(con, ds.name, TABLE, "embedding_pq", task)
    builds["binary codes"] = ensure_codes(con, ds.name, TABLE, "binary", task)[1]
    builds["vss hnsw"] = ensure_hnsw(con, TABLE, task)
    cal = {
        c: json.loads(r)
        for c, r in con.execute(
            "SELECT code_column, calibration FROM vecext.compressed_columns"
        ).fetchall()
    }
    console.print("build seconds: " + ", ".join(f"{k_}={v:.1f}" for k_, v in builds.items()))

    results: list[dict[str, Any]] = []
    for spec in args.filters:
        pred = where.coerce(parse_cli_filters([spec]) if spec else None, ds.attrs)
        keep = where.filter_mask(pred, ds.attrs)
        matching = int(keep.sum())
        _, truth = exact_topk(ds.xb, ds.xq, k, keep)
        label = describe(pred) if pred is not None else "none"
        console.print(f"[bold]filter {label}[/bold]: {matching:,} rows ({matching / n:.2%})")
        for method in args.methods:
            fn = searcher(con, method, pred, k, d)
            row = {"filter": label, "matching": matching, "method": method}
            row.update(measure(fn, ds.xq, truth, k, min(k, matching)))
            results.append(row)
            console.print(
                f"  {method:14s} recall@{k} {row['recall_at_k']:.4f}  min rows "
                f"{row['min_rows_returned']:2d}  p50 {row['p50_ms']:7.1f} ms  "
                f"{row['qps']:6.1f} QPS  {row['strategies']}"
            )

    print(markdown(results, k, ds.name, int(ds.xq.shape[0])))
    if args.json:
        doc = {
            "dataset": ds.name,
            "n": n,
            "d": d,
            "nq": int(ds.xq.shape[0]),
            "k": k,
            "build_s": builds,
            "calibration": cal,
            "results": results,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
