"""``vecext demo``: what vecext does, end to end, on the embedded default.

One table of embeddings (generated with a realistic spectrum and cluster
structure, or read from a dataset directory) goes into PostgreSQL and DuckDB.
vecext trains one PQ and one binary codec on it, adds compressed columns and
indexes beside the vectors, then runs plain, filtered and thresholded searches
on both backends and prints a side-by-side table: bytes per vector, storage,
recall@10 against numpy brute force, latency and rows returned.
"""

from __future__ import annotations

import numpy as np
from rich.console import Console

from vecext.codecs import make_codec
from vecext.search.filters import Predicate, mask
from vecext.tools.demo_backends import duckdb_demo, postgres_demo
from vecext.tools.demo_common import (
    Demo,
    DemoData,
    Row,
    Workload,
    exact_topk,
    make_data,
    pick_filters,
    progress,
    show,
)

__all__ = ["Demo", "DemoData", "Row", "run_demo"]


def run_demo(
    *,
    n: int = 20_000,
    d: int = 384,
    nq: int = 30,
    k: int = 10,
    seed: int = 0,
    dsn: str | None = None,
    dataset: str | None = None,
    backends: tuple[str, ...] = ("postgres", "duckdb"),
    console: Console | None = None,
) -> Demo:
    """Run the demo on ``backends`` and print (and return) its table of results."""
    demo = Demo(console=console or Console())
    con = demo.console
    data = make_data(n, d, nq, seed, dataset)
    n, d = data.xb.shape
    pq_m = max(1, d // 8) if d % 8 == 0 else 1
    con.print(f"[bold]vecext demo[/]: {data.source}, {len(data.xq)} queries, k={k}")

    # train once in Python: the same codecs serve both databases
    rng = np.random.default_rng(seed)
    xt = data.xb[rng.choice(n, min(n, 20_000), replace=False)]
    with progress(con) as prog:
        t = prog.add_task("train PQ + binary codecs", total=2)
        pq = make_codec("pq", d=d, m=pq_m, metric="cosine").train(xt)
        prog.advance(t)
        bits = make_codec("binary", d=d, metric="cosine").train(xt)
        prog.advance(t)

    filters: list[tuple[str, Predicate | None]] = [("plain", None), *pick_filters(data.category)]
    cols = {"category": data.category}
    truths = {label: exact_topk(data.xb, data.xq, mask(pred, cols), k) for label, pred in filters}
    expected = {label: min(k, int(mask(pred, cols).sum())) for label, pred in filters}
    work = Workload(data, filters, truths, expected, k, pq, bits)

    if "postgres" in backends:
        postgres_demo(demo, work, dsn)
    if "duckdb" in backends:
        duckdb_demo(demo, work)
    show(demo)
    return demo
