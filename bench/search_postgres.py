"""Filtered search on PostgreSQL: vecext's strategies against pgvector HNSW and exact.

Runs the ``vecext bench`` harness (:mod:`vecext.tools.bench`) once per filter setting on
wordnet-minilm (117,659 x 384, cosine) with the dev queries, and prints one table:
recall@10 against the exact filtered top-10, the fewest rows any query got, the
share of complete answers, p50 latency and QPS (one client), per method and filter.

Methods: ``vecext-exact`` (index scans off, bitmap scans of the attribute
indexes allowed; the harness's ``exact`` refuses those), ``pgvector-hnsw`` (m 16, ef_construction 64,
ef_search 40, no iterative scan: pgvector's defaults), and vecext's ``vecext-pq``,
``vecext-binary``, ``vecext-ivfpq`` and ``vecext-auto`` at vecext's defaults
(recall target 0.95, depths and probes from each column's calibration; see
:mod:`vecext.tools.bench.pg_vecext`). Set-up (table, codes, lists, indexes) is built on
the first run and reused by later ones.

    python bench/search_postgres.py [--dataset DIR] [--limit-queries 200] [--dsn DSN]
                                    [--json OUT.json] [--calibrate-on-queries N]

``--calibrate-on-queries N`` (off by default) first recalibrates the codes and the HNSW
index on N held-out dev queries, as a query log would: results are then NOT vecext at
its defaults. ``vecext bench`` (and this script without the option) recalibrates a
table calibrated that way on its own rows before measuring.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console

import vecext.tools.bench.pg_vecext  # noqa: F401  (registers the vecext-* methods)
from vecext.datasets import load_dataset
from vecext.postgres import calibrate, calibrate_index, connect
from vecext.tools.bench import BenchConfig, pg_store, run_bench
from vecext.tools.bench.report import write_json
from vecext.tools.bench.runner import LIMIT_SEED

FILTERS: list[list[str]] = [
    [],
    ["pos=r"],
    ["lexname=noun.animal"],
    ["pos=v"],
    ["lexname=verb.weather"],
]
METHODS = [
    "vecext-exact",
    "pgvector-hnsw",
    "vecext-pq",
    "vecext-binary",
    "vecext-ivfpq",
    "vecext-auto",
]


def markdown_table(results: list[dict], k: int, dataset: str) -> str:
    """The results as a Markdown table, one row per (filter, method)."""
    head = (
        f"filtered top-{k} on {dataset}, PostgreSQL\n\n"
        "| filter | selectivity | method | recall@10 | min rows | complete | p50 ms | QPS | plan |\n"
        "|---|---:|---|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for r in results:
        plan = r["params"].get("last_plan") or {}
        shown = ", ".join(
            f"{key}={v}" for key, v in plan.items()
            if key in ("strategy", "rerank", "reranked", "nprobe", "ef_search")
        )  # fmt: skip
        lines.append(
            f"| {r['filter'] or '-'} | {r['selectivity']:.2%} | {r['method']} | "
            f"{r['recall_at_k']:.3f} | {r['min_rows_returned']} | {r['complete_fraction']:.0%} | "
            f"{r['p50_ms']:.1f} | {r['qps']:.1f} | {shown} |"
        )
    return head + "\n".join(lines)


def calibrate_on_queries(args: argparse.Namespace, n: int, console: Console) -> None:
    """Recalibrate the codes and the HNSW index of a built benchmark table on ``n``
    dev queries that are not among the measured ones (as with a query log)."""
    ds = load_dataset(args.dataset, args.queries)
    nq = ds.xq.shape[0]
    measured = np.random.default_rng(LIMIT_SEED).choice(nq, size=args.limit_queries, replace=False)
    rest = np.setdiff1d(np.arange(nq), measured)
    xq = ds.xq[np.random.default_rng(1).choice(rest, size=min(n, rest.size), replace=False)]
    table = pg_store.table_name(ds.name)
    with connect(args.dsn, autocommit=True) as conn:
        for column in ("embedding_pq", "embedding_binary"):
            console.print(f"calibrating {table}.{column} on {len(xq)} held-out queries")
            calibrate(conn, table, column, queries=xq)
        console.print(f"calibrating {table}_hnsw on {len(xq)} held-out queries")
        calibrate_index(conn, table, f"{table}_hnsw", queries=xq)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="/work/shared/data/wordnet-minilm")
    ap.add_argument("--queries", default="dev")
    ap.add_argument("--limit-queries", type=int, default=200)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--dsn", default=None)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--json", default=None, help="write all results here")
    ap.add_argument(
        "--filters", default=None, help="which filter settings, e.g. 0,2 (0 = no filter)"
    )
    ap.add_argument("--append", action="store_true", help="add to the results in --json")
    ap.add_argument(
        "--calibrate-on-queries",
        type=int,
        default=0,
        metavar="N",
        help="first recalibrate the built table's codes and HNSW index on N dev queries "
        "that are not measured (what a query log gives); needs a previous run's set-up",
    )
    args = ap.parse_args(argv)
    console = Console(stderr=True)
    if args.calibrate_on_queries:
        calibrate_on_queries(args, args.calibrate_on_queries, console)
    results, machine = [], None
    if args.append and args.json and Path(args.json).exists():
        results = json.loads(Path(args.json).read_text())["results"]
    chosen = FILTERS if args.filters is None else [FILTERS[int(i)] for i in args.filters.split(",")]
    for filters in chosen:
        start = time.perf_counter()
        run = run_bench(
            BenchConfig(
                dataset=args.dataset,
                queries=args.queries,
                backend="postgres",
                methods=args.methods.split(","),
                k=args.k,
                filters=filters,
                limit_queries=args.limit_queries,
                dsn=args.dsn,
            ),
            console=console,
        )
        machine = run.doc["machine"]
        results += run.doc["results"]
        console.print(f"{filters or 'no filter'}: {time.perf_counter() - start:.0f} s")
        if args.json:  # after every filter: a long run keeps what it measured
            write_json({**run.doc, "results": results}, args.json)
    print(markdown_table(results, args.k, Path(args.dataset).name))
    if machine:
        console.print(json.dumps(machine)[:300])
    return 0


if __name__ == "__main__":
    sys.exit(main())
