"""``vecext bench``: search methods compared on one backend."""

from __future__ import annotations

from typing import Annotated

import typer

from vecext.errors import VecextError
from vecext.search.filters import FilterError
from vecext.tools.cli.common import (
    DsnOption,
    JsonOutOption,
    console,
    dataset_option,
    err_console,
    fail,
    wide_console,
)


def bench(
    dataset: Annotated[str, dataset_option("synthetic:n=1000000,d=768")],
    queries: Annotated[str, typer.Option("--queries", help="Query set NAME.")],
    backend: Annotated[str, typer.Option("--backend", help="postgres, duckdb or faiss.")],
    methods: Annotated[
        str, typer.Option("--methods", help="Comma-separated methods, e.g. exact,pgvector-hnsw.")
    ],
    json_out: JsonOutOption,
    k: Annotated[int, typer.Option("--k", help="Rows per query.")] = 10,
    filters: Annotated[
        list[str] | None,
        typer.Option("--filter", help="COLUMN=VALUE (repeatable; ANDed). A|B: IN; LO..HI: range."),
    ] = None,
    limit_queries: Annotated[
        int | None,
        typer.Option("--limit-queries", help="Use a seeded random sample of N queries."),
    ] = None,
    dsn: DsnOption = None,
    plot_out: Annotated[
        str | None, typer.Option("--plot", help="Also draw recall against QPS into this PNG.")
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Reload the Postgres table and rebuild its indexes.")
    ] = False,
    interleave: Annotated[
        bool,
        typer.Option(
            "--interleave",
            help="Time all methods in one pass, query by query in a shuffled order "
            "(QPS from summed latencies): fair ratios on a machine with other load.",
        ),
    ] = False,
) -> None:
    """Compare search methods on one backend: recall, rows returned, latency, size, build time."""
    # the harness loads both database drivers (the bench's peers need them): an
    # optional extra, imported when the command runs
    from vecext.tools.bench import BenchConfig, BenchError, run_bench
    from vecext.tools.bench.report import plot, results_table, write_json

    config = BenchConfig(
        dataset=dataset,
        queries=queries,
        backend=backend,
        methods=methods.split(","),
        k=k,
        filters=list(filters or []),
        limit_queries=limit_queries,
        dsn=dsn,
        rebuild=rebuild,
        interleave=interleave,
    )
    try:
        run = run_bench(config, console=err_console)
    except (BenchError, FilterError, VecextError, FileNotFoundError, ValueError) as exc:
        raise fail(exc) from exc
    write_json(run.doc, json_out)
    if plot_out:
        plot([run.doc], plot_out)
    nq = run.doc["results"][0]["params"]["nq"] if run.doc["results"] else 0
    title = (
        f"vecext bench: {run.doc['dataset']} (n={run.doc['n']:,}, d={run.doc['d']}, {nq} queries)"
    )
    wide_console().print(results_table(run.doc["results"], title=title))
    for r in run.doc["results"]:
        if "note" in r["params"]:
            console.print(f"[dim]{r['backend']}/{r['method']}: {r['params']['note']}[/]")
    console.print(f"wrote {json_out}" + (f" and {plot_out}" if plot_out else ""))
