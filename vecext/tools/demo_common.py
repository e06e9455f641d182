"""What both halves of ``vecext demo`` share: the data, the ground truth, the timed
searches through :func:`vecext.search.search`, and the result table."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vecext.codecs import Codec
from vecext.datasets import load_dataset, synthetic_embeddings, synthetic_queries
from vecext.relevance import RelevanceMethod, make_relevance
from vecext.search.api import search
from vecext.search.filters import Eq, Predicate

TABLE = "vecext_demo_items"
#: the demo's codecs, and the code columns made with them
PQ, BITS = "demo_pq", "demo_bits"
PQ_COLUMN, BITS_COLUMN = "embedding_pq", "embedding_bits"


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


@dataclass
class Workload:
    """The searches to run on each backend, with their exact answers."""

    data: DemoData
    filters: list[tuple[str, Predicate | None]]
    truths: dict[str, list[np.ndarray]]  # filter label -> exact top-k ids per query
    expected: dict[str, int]  # filter label -> rows a complete answer has
    k: int
    pq: Codec
    bits: Codec


#: one searched variant: (name, search keyword arguments, bytes per vector, storage)
Variant = tuple[str, dict[str, Any], int, str]


def make_data(n: int, d: int, nq: int, seed: int, dataset: str | None) -> DemoData:
    """Generated embeddings by default; a dataset directory (shared layout) when given."""
    if dataset:
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
    out: list[tuple[str, Predicate]] = [
        (f"filter {frac[values == broad][0]:.1%}", Eq("category", str(broad)))
    ]
    if narrow != broad:
        out.append((f"filter {frac[values == narrow][0]:.2%}", Eq("category", str(narrow))))
    return out


def add_codes(api: ModuleType, conn: Any, w: Workload, **ivf_options: Any) -> float:
    """Save the demo's codecs through the backend module ``api`` (``vecext.postgres``
    or ``vecext.duckdb``: the same verbs), add their code columns and IVF lists and
    calibrate both columns; seconds taken after the codecs were saved."""
    api.save_codec(conn, PQ, w.pq)  # the very codecs the other backend uses
    api.save_codec(conn, BITS, w.bits)
    t0 = time.perf_counter()
    api.add_compressed_column(conn, TABLE, "embedding", PQ, PQ_COLUMN)
    api.add_compressed_column(conn, TABLE, "embedding", BITS, BITS_COLUMN)
    api.add_ivf_lists(conn, TABLE, "embedding", code_column=PQ_COLUMN, **ivf_options)
    api.calibrate(conn, TABLE, PQ_COLUMN, k=w.k, n_queries=50)
    api.calibrate(conn, TABLE, BITS_COLUMN, k=w.k, n_queries=50)
    return time.perf_counter() - t0


def variants(w: Workload, storage: Callable[[str], str]) -> list[Variant]:
    """The searches of each backend; ``storage(column)`` says how much a column takes."""
    d = w.data.xb.shape[1]
    pq, bits = w.pq.code_size, w.bits.code_size
    return [
        ("exact", {"strategy": "exact"}, 4 * d, storage("embedding")),
        ("pq", {"strategy": "compressed", "using": PQ_COLUMN}, pq, storage(PQ_COLUMN)),
        ("binary", {"strategy": "compressed", "using": BITS_COLUMN}, bits, storage(BITS_COLUMN)),
        ("ivf-pq", {"strategy": "ivf", "using": PQ_COLUMN}, pq, storage(PQ_COLUMN)),
        ("auto", {}, 0, "-"),
    ]


def time_searches(
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


def run_searches(demo: Demo, backend: str, conn: Any, w: Workload, todo: list[Variant]) -> None:
    """Every variant under every filter, then the thresholded search; rows into ``demo``."""
    for label, pred in w.filters:
        for name, kwargs, bpv, storage in todo:

            def run(q: np.ndarray, kwargs: dict[str, Any] = kwargs, pred: Any = pred) -> Any:
                return search(
                    conn, TABLE, "embedding", q, w.k, metric="cosine", filter=pred, **kwargs
                )

            ids, times, results = time_searches(run, w.data.xq)
            strategies = sorted({r.strategy for r in results})
            demo.rows.append(
                Row(
                    backend,
                    f"{label}",
                    f"{name} -> {'/'.join(strategies)}",
                    bpv,
                    storage,
                    recall(ids, w.truths[label]),
                    float(np.median(times)),
                    f"{min(len(i) for i in ids)}/{w.expected[label]}",
                )
            )
    threshold_search(demo, backend, conn, w.data)


def train_relevance(data: DemoData) -> RelevanceMethod | None:
    """A Cosine Adapter trained on half of the demo queries (None if too few labels)."""
    half = len(data.xq) // 2
    if half < 5:
        return None
    xq = data.xq[:half]
    sims = xq @ data.xb.T
    top = np.argsort(-sims, axis=1)[:, :100]
    S = np.take_along_axis(sims, top, axis=1).astype(np.float32)
    Y = np.array([np.isin(t, rel) for t, rel in zip(top, data.qrels[:half], strict=True)])
    if not Y.any() or Y.all():
        return None
    n_rel = np.array([len(r) for r in data.qrels[:half]])
    return make_relevance("cosine-adapter").fit(xq, S, Y, n_rel)


def threshold_search(demo: Demo, backend: str, conn: Any, data: DemoData) -> None:
    """No fixed k: the calibrated score decides how many rows come back."""
    adapter = train_relevance(data)
    if adapter is None:
        return
    d = data.xb.shape[1]
    test = data.xq[len(data.xq) // 2 :]
    threshold = float(adapter.threshold)

    def run_t(q: np.ndarray) -> Any:
        return search(
            conn,
            TABLE,
            "embedding",
            q,
            metric="cosine",
            strategy="exact",
            min_relevance=threshold,
            relevance=adapter,
            max_results=100,
        )

    ids, times, _ = time_searches(run_t, test)
    rel = data.qrels[len(data.xq) // 2 :]
    hits = sum(len(np.intersect1d(i, r)) for i, r in zip(ids, rel, strict=True))
    returned = sum(len(i) for i in ids)
    n_rel = sum(len(r) for r in rel)
    p = hits / returned if returned else 0.0
    r_ = hits / n_rel if n_rel else 0.0
    demo.rows.append(
        Row(
            backend,
            f"score >= {threshold:.2f}",
            "cosine adapter -> exact",
            4 * d,
            "-",
            r_,
            float(np.median(times)),
            f"avg {returned / len(ids):.1f} ({min(len(i) for i in ids)}-{max(len(i) for i in ids)})",
            note=(
                f"threshold search: precision {p:.2f}, recall of the relevant rows {r_:.2f} "
                f"(recall column), rows per query vary with the query"
            ),
        )
    )


def fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def progress(console: Console) -> Progress:
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
