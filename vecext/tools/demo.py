"""``vecext demo``: what vecext does, end to end, on the embedded default.

One table of embeddings (generated with a realistic spectrum and cluster
structure, or read from a dataset directory) goes into PostgreSQL and DuckDB.
vecext trains one PQ and one binary codec on it, adds compressed columns and
indexes beside the vectors, then runs plain, filtered and thresholded searches
on both backends and prints a side-by-side table: bytes per vector, storage,
recall@10 against numpy brute force, latency and rows returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vecext.search.filters import Eq, Predicate, describe, mask

TABLE = "vecext_demo_items"


@dataclass
class DemoData:
    xb: np.ndarray  # (n, d) float32, unit norm
    category: np.ndarray  # (n,) str attribute for filters
    xq: np.ndarray  # (nq, d) float32
    qrels: list[np.ndarray]  # relevant doc rows per query (for the relevance adapter)
    source: str


@dataclass
class Row:
    backend: str
    search: str
    strategy: str
    bytes_per_vector: int
    storage: str
    recall: float
    p50_ms: float
    rows: str  # rows returned: "min/expected" for top-k, "avg (min-max)" for thresholds
    note: str = ""


@dataclass
class Demo:
    rows: list[Row] = field(default_factory=list)
    console: Console = field(default_factory=Console)


def make_data(n: int, d: int, nq: int, seed: int, dataset: str | None) -> DemoData:
    """Generated embeddings by default; a dataset directory (shared layout) when given."""
    if dataset:
        from vecext.datasets import load_dataset

        ds = load_dataset(dataset, "dev")
        take = min(n, ds.xb.shape[0])
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(ds.xb.shape[0], take, replace=False))
        column = "lexname" if "lexname" in ds.attrs.column_names else ds.attrs.column_names[1]
        cat = np.asarray(ds.attrs.column(column).to_pylist(), dtype=object)[rows]
        keep = {int(r): i for i, r in enumerate(rows)}
        qsel = [i for i, rel in enumerate(ds.qrels) if any(int(r) in keep for r in rel)][:nq]
        qrels = [np.array([keep[int(r)] for r in ds.qrels[i] if int(r) in keep]) for i in qsel]
        return DemoData(
            ds.xb[rows], cat.astype(str), ds.xq[qsel], qrels, f"{dataset} ({take} rows)"
        )
    from vecext.datasets import synthetic_embeddings, synthetic_queries

    data = synthetic_embeddings(n, d, seed=seed)
    queries = synthetic_queries(data, nq, seed=seed + 1)
    category = np.array([f"c{int(c):02d}" for c in data.category])
    return DemoData(data.xb, category, queries.xq, list(queries.qrels), f"generated, {n} x {d}")


def exact_topk(xb: np.ndarray, xq: np.ndarray, keep: np.ndarray, k: int) -> list[np.ndarray]:
    """Ground truth: exact cosine top-k among rows passing the filter (ids = row numbers)."""
    idx = np.flatnonzero(keep)
    sims = xq @ xb[idx].T
    out = []
    for s in sims:
        top = np.argsort(-s, kind="stable")[:k]
        out.append(idx[top])
    return out


def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    vals = [len(np.intersect1d(f, t)) / max(len(t), 1) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(vals)) if vals else 1.0


def pick_filters(category: np.ndarray) -> list[tuple[str, Predicate]]:
    """A broad (~10%) and a narrow (~1% or less) category filter from the data itself."""
    values, counts = np.unique(category, return_counts=True)
    frac = counts / counts.sum()
    broad = values[int(np.argmin(np.abs(frac - 0.10)))]
    narrow = values[int(np.argmin(np.abs(frac - 0.005)))]
    out = [(f"filter {frac[values == broad][0]:.1%}", Eq("category", str(broad)))]
    if narrow != broad:
        out.append((f"filter {frac[values == narrow][0]:.2%}", Eq("category", str(narrow))))
    return out


def _time_searches(
    run: Callable[[np.ndarray], Any], xq: np.ndarray
) -> tuple[list[np.ndarray], list[float], list[Any]]:
    ids, times, results = [], [], []
    run(xq[0])  # warm-up: plans, caches
    for q in xq:
        t0 = time.perf_counter()
        res = run(q)
        times.append((time.perf_counter() - t0) * 1000)
        ids.append(np.asarray(res.ids, dtype=np.int64))
        results.append(res)
    return ids, times, results


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


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
    demo = Demo(console=console or Console())
    con = demo.console
    data = make_data(n, d, nq, seed, dataset)
    n, d = data.xb.shape
    pq_m = max(1, d // 8) if d % 8 == 0 else 1
    con.print(f"[bold]vecext demo[/]: {data.source}, {len(data.xq)} queries, k={k}")

    # train once in Python: the same codecs serve both databases
    from vecext.codecs import make_codec

    rng = np.random.default_rng(seed)
    xt = data.xb[rng.choice(n, min(n, 20_000), replace=False)]
    with _progress(con) as prog:
        t = prog.add_task("train PQ + binary codecs", total=2)
        pq = make_codec("pq", d=d, m=pq_m, metric="cosine").train(xt)
        prog.advance(t)
        bits = make_codec("binary", d=d, metric="cosine").train(xt)
        prog.advance(t)

    filters: list[tuple[str, Predicate | None]] = [("plain", None), *pick_filters(data.category)]
    cols = {"category": data.category}
    truths = {label: exact_topk(data.xb, data.xq, mask(pred, cols), k) for label, pred in filters}
    expected = {label: min(k, int(mask(pred, cols).sum())) for label, pred in filters}

    if "postgres" in backends:
        from vecext.tools.demo_backends import postgres_demo

        postgres_demo(demo, data, pq, bits, filters, truths, expected, k, dsn)
    if "duckdb" in backends:
        from vecext.tools.demo_backends import duckdb_demo

        duckdb_demo(demo, data, pq, bits, filters, truths, expected, k)
    show(demo)
    return demo


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def show(demo: Demo) -> None:
    table = Table(title="vecext demo (recall@10 against numpy brute force)")
    left = ("backend", "search", "method -> ran")
    for col in (*left, "B/vector", "storage", "recall", "p50 ms", "rows"):
        table.add_column(col, justify="left" if col in left else "right")
    for r in demo.rows:
        table.add_row(
            r.backend,
            r.search,
            r.strategy,
            str(r.bytes_per_vector) if r.bytes_per_vector else "-",
            r.storage,
            f"{r.recall:.3f}",
            f"{r.p50_ms:.1f}",
            r.rows,
        )
    demo.console.print(table)
    for r in demo.rows:
        if r.note:
            demo.console.print(f"{r.backend}, {r.search}: {r.note}")


__all__ = ["Demo", "DemoData", "Row", "describe", "run_demo"]
