"""The ``vecext`` command."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vecext.errors import VecextError

app = typer.Typer(
    help="vecext: compressed vector columns, filtered ANN and relevance thresholds "
    "for PostgreSQL (pgvector) and DuckDB.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# piped output (CI logs, files) gets a width that fits the result tables
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)

DsnOption = Annotated[
    str | None,
    typer.Option("--dsn", help="PostgreSQL DSN (default: $VECEXT_DSN, else the embedded server)."),
]


def _fail(exc: Exception) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(code=1)


@app.command()
def info(
    dsn: DsnOption = None,
    duckdb_path: Annotated[
        str | None, typer.Option("--duckdb", help="Also report on this DuckDB file's catalog.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Versions of vecext, PostgreSQL, pgvector, DuckDB, VSS and FAISS, and where things live."""
    from vecext.tools.info import collect

    report = collect(dsn, duckdb_path)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        table = Table(title="vecext info", show_header=False)
        table.add_column("item", style="bold")
        table.add_column("value")
        for key, value in report.rows:
            table.add_row(key, value)
        console.print(table)
        for msg in report.errors:
            err_console.print(f"[bold red]error:[/] {msg}")
    if report.errors:
        raise typer.Exit(code=1)


@app.command()
def install(
    dsn: DsnOption = None,
    duckdb_path: Annotated[
        str | None,
        typer.Option("--duckdb", help="Install into this DuckDB file instead of PostgreSQL."),
    ] = None,
) -> None:
    """Install or upgrade the vecext catalog (idempotent, one transaction)."""
    try:
        if duckdb_path:
            import duckdb

            from vecext.duckdb.catalog import install as duck_install

            con = duckdb.connect(duckdb_path)
            try:
                result = duck_install(con)
            finally:
                con.close()
            where = duckdb_path
        else:
            from vecext.postgres import catalog, connection

            with connection.connect(dsn) as conn:
                result = catalog.install(conn)
                where = connection.describe_target(connection.resolve_dsn(dsn))
    except VecextError as exc:
        raise _fail(exc) from exc
    if result.changed:
        console.print(
            f"vecext catalog {result.previous or '(none)'} -> {result.current} in {where}: "
            f"applied {', '.join(result.applied)}"
        )
    else:
        console.print(f"vecext catalog already at {result.current} in {where}: nothing to do")


@app.command()
def demo(
    n: Annotated[int, typer.Option(help="Rows of generated embeddings.")] = 20_000,
    d: Annotated[int, typer.Option(help="Dimension of generated embeddings.")] = 384,
    queries: Annotated[int, typer.Option("--queries", help="Queries to run.")] = 30,
    k: Annotated[int, typer.Option(help="Rows per search.")] = 10,
    dataset: Annotated[
        str | None,
        typer.Option(help="A dataset directory (shared layout) instead of generated data."),
    ] = None,
    backend: Annotated[
        list[str] | None, typer.Option("--backend", help="postgres and/or duckdb (default both).")
    ] = None,
    dsn: DsnOption = None,
    seed: int = 0,
) -> None:
    """The main job: compressed columns, filtered and thresholded search on both backends."""
    from vecext.tools.demo import run_demo

    chosen = tuple(backend or ("postgres", "duckdb"))
    bad = [b for b in chosen if b not in ("postgres", "duckdb")]
    if bad:
        raise _fail(ValueError(f"unknown backend(s) {bad}: use postgres and/or duckdb"))
    try:
        run_demo(
            n=n,
            d=d,
            nq=queries,
            k=k,
            seed=seed,
            dsn=dsn,
            dataset=dataset,
            backends=chosen,
            console=console,
        )
    except VecextError as exc:
        raise _fail(exc) from exc


@app.command()
def stop() -> None:
    """Stop the embedded PostgreSQL server (it is otherwise left running for reuse)."""
    from vecext.postgres.embedded import default_datadir, stop_embedded

    if stop_embedded():
        console.print(f"stopped the embedded server in {default_datadir()}")
    else:
        console.print("the embedded server is not running")


@app.command()
def bench(
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            help="Dataset directory (docs.f16.npy, docs.parquet, queries_NAME.f16.npy, "
            "qrels_NAME.tsv) or a spec such as synthetic:n=1000000,d=768.",
        ),
    ],
    queries: Annotated[str, typer.Option("--queries", help="Query set NAME.")],
    backend: Annotated[str, typer.Option("--backend", help="postgres, duckdb or faiss.")],
    methods: Annotated[
        str, typer.Option("--methods", help="Comma-separated methods, e.g. exact,pgvector-hnsw.")
    ],
    json_out: Annotated[str, typer.Option("--json", help="Write the results here (JSON).")],
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
) -> None:
    """Compare search methods on one backend: recall, rows returned, latency, size, build time."""
    from vecext.search.filters import FilterError
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
    )
    try:
        run = run_bench(config, console=err_console)
    except (BenchError, FilterError, VecextError, FileNotFoundError, ValueError) as exc:
        raise _fail(exc) from exc
    write_json(run.doc, json_out)
    if plot_out:
        plot([run.doc], plot_out)
    nq = run.doc["results"][0]["params"]["nq"] if run.doc["results"] else 0
    title = (
        f"vecext bench: {run.doc['dataset']} (n={run.doc['n']:,}, d={run.doc['d']}, {nq} queries)"
    )
    # a wide table: not squeezed into 80 columns when stdout is not a terminal
    out = console if console.is_terminal else Console(width=200)
    out.print(results_table(run.doc["results"], title=title))
    for r in run.doc["results"]:
        if "note" in r["params"]:
            console.print(f"[dim]{r['backend']}/{r['method']}: {r['params']['note']}[/]")
    console.print(f"wrote {json_out}" + (f" and {plot_out}" if plot_out else ""))


@app.command()
def advise(
    table: Annotated[str, typer.Option("--table", help="Table (optionally schema.table).")],
    column: Annotated[str, typer.Option("--column", help="Its vector column.")],
    budget: Annotated[
        int, typer.Option("--budget", help="Memory budget: bytes per vector for the codes.")
    ],
    recall: Annotated[
        float, typer.Option("--recall", help="Recall@k target after the exact rerank.")
    ] = 0.95,
    k: Annotated[int, typer.Option("--k", help="Rows per search.")] = 10,
    sample: Annotated[int, typer.Option("--sample", help="Base vectors to sample.")] = 20_000,
    queries: Annotated[
        int, typer.Option("--queries", help="Sampled rows held out as queries.")
    ] = 200,
    query_file: Annotated[
        str | None,
        typer.Option("--query-file", help="Real queries (.npy, (nq, d)) instead of held-out rows."),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            help="cosine, l2 or ip (default: the metric of an HNSW index on the column, "
            "else cosine).",
        ),
    ] = None,
    candidates: Annotated[
        list[str] | None,
        typer.Option(
            "--candidate",
            help="Codec to try instead of the defaults (repeatable), e.g. pq:m=32,opq=true "
            "or int8:pretransform=pca:192.",
        ),
    ] = None,
    train_size: Annotated[
        int, typer.Option("--train-size", help="Base vectors each codec trains on.")
    ] = 10_000,
    dsn: DsnOption = None,
    duckdb_path: Annotated[
        str | None,
        typer.Option("--duckdb", help="Read the table from this DuckDB file instead."),
    ] = None,
    json_out: Annotated[
        str | None, typer.Option("--json", help="Also write the advice here.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample and the split.")] = 0,
) -> None:
    """Which codec for your memory budget: train candidates on a sample, measure them on
    held-out queries, recommend one. Read-only."""
    from pathlib import Path

    import numpy as np

    from vecext.tools import advise as adv

    try:
        chosen = [adv.parse_candidate(c) for c in candidates] if candidates else None
        xq = None
        if query_file is not None:
            try:
                xq = np.load(query_file, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise adv.AdviseError(f"cannot read queries from {query_file}: {exc}") from None
        if metric is not None and metric not in ("cosine", "l2", "ip"):
            raise adv.AdviseError(f"unknown metric {metric!r}; use cosine, l2 or ip")
        wanted = sample if xq is not None else sample + queries
        with err_console.status(f"reading a sample of {table}.{column}"):
            if duckdb_path:
                import duckdb

                if not Path(duckdb_path).exists():
                    raise adv.AdviseError(f"DuckDB file {duckdb_path} does not exist")
                con = duckdb.connect(duckdb_path, read_only=True)
                try:
                    found = adv.duckdb_metric(con, table, column)
                    x, rows = adv.read_duckdb(con, table, column, sample=wanted, seed=seed)
                finally:
                    con.close()
                source = f"duckdb {duckdb_path}: {table}.{column}"
            else:
                from vecext.postgres import connection

                with connection.connect(dsn) as conn:
                    found = adv.postgres_metric(conn, table, column)
                    x, rows = adv.read_postgres(conn, table, column, sample=wanted, seed=seed)
                source = f"postgres {table}.{column}"
        chosen_metric = metric or found or "cosine"
        metric_source = (
            "given" if metric else ("from the column's HNSW index" if found else "default")
        )
        with err_console.status("training candidate codecs") as status:
            advice = adv.advise_vectors(
                x,
                budget=budget,
                recall=recall,
                metric=chosen_metric,
                k=k,
                n_queries=queries,
                queries=xq,
                rows=rows,
                candidates=chosen,
                train_size=train_size,
                seed=seed,
                source=source,
                metric_source=metric_source,
                progress=status.update,
            )
    except (VecextError, ValueError) as exc:
        raise _fail(exc) from exc
    if json_out:
        Path(json_out).write_text(json.dumps(advice.as_dict(), indent=2))
    out = console if console.is_terminal else Console(width=200)
    out.print(advice_table(advice))
    if advice.skipped:
        out.print(f"skipped: {'; '.join(advice.skipped)}")
    out.print(
        ("[bold]recommended:[/] " if advice.recommended else "[bold]no recommendation:[/] ")
        + advice.reason
    )
    best = advice.best()
    if best is not None:
        args = "".join(f", {key}={value!r}" for key, value in best.params.items())
        suffix = "".join(str(v) for k, v in best.params.items() if k in ("m", "bits"))
        name = f"{column}_{best.kind}{suffix}"
        mod, conn_name = ("vecext.duckdb", "con") if duckdb_path else ("vecext.postgres", "conn")
        out.print(
            f"apply it: {mod}.train_codec({conn_name}, {name!r}, {table!r}, {column!r}, "
            f"{best.kind!r}, metric={advice.metric!r}{args}), then "
            f"add_compressed_column({conn_name}, {table!r}, {column!r}, {name!r})"
        )
    if json_out:
        out.print(f"wrote {json_out}")


def advice_table(advice: Any) -> Table:
    table = Table(
        title=f"vecext advise: {advice.source} ({advice.rows:,} rows, d={advice.d}, "
        f"{advice.metric} {advice.metric_source}; budget {advice.budget} B/vector; "
        f"recall@{advice.k} target {advice.recall_target:g}; sample {advice.n_base:,} rows, "
        f"{advice.query_source})"
    )
    for col in (
        "codec",
        "B/vector",
        "x smaller",
        f"recall@{advice.k} codes only",
        "rerank depth (sample)",
        "depth ~ n^a",
        "est. rerank rows (table)",
        "est. MB read/query",
        "x less than exact",
        "train s",
        "encode vec/s",
        "codes MB (table)",
        "verdict",
    ):
        table.add_column(col, justify="left" if col in ("codec", "verdict") else "right")
    for m in advice.measurements:
        style = "bold green" if m.verdict == "recommended" else None
        table.add_row(
            m.label,
            f"{m.bytes_per_vector}",
            f"{m.compression:.1f}",
            f"{m.recall_codes:.3f}",
            f"{m.rerank_depth:,} ({m.rerank_fraction:.2%})",
            f"a={m.depth_growth:.2f}",
            f"{m.rerank_depth_table:,}",
            f"{m.est_bytes_per_query / 1e6:,.1f}",
            f"{m.vs_exact:.1f}",
            f"{m.train_s:.1f}",
            f"{m.encode_per_s:,.0f}",
            f"{m.storage_bytes_table / 1e6:,.1f}",
            m.verdict,
            style=style,
        )
    table.add_row(
        "[dim]float32 (exact)[/]",
        f"[dim]{4 * advice.d}[/]",
        "[dim]1.0[/]",
        "[dim]1.000[/]",
        "",
        "",
        "",
        f"[dim]{advice.exact_bytes_per_query / 1e6:,.1f}[/]",
        "[dim]1.0[/]",
        "",
        "",
        f"[dim]{advice.exact_bytes_per_query / 1e6:,.1f}[/]",
        "[dim]reference[/]",
    )
    return table


#: the keys of each ``results`` entry of ``vecext eval-relevance --json``
EVAL_RESULT_KEYS = (
    "method",
    "threshold",
    "precision",
    "recall",
    "f1",
    "pr_auc",
    "avg_results_per_query",
)


def split_method_specs(text: str) -> list[str]:
    """``"fixed,platt,cosine-adapter:features=mean10,lam=0.1"`` -> three specs: a
    comma-separated item that is only an option (``key=value``, no ``:``) belongs to
    the spec before it."""
    specs: list[str] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        if specs and "=" in item and ":" not in item:
            specs[-1] += "," + item
        else:
            specs.append(item)
    return specs


@app.command("eval-relevance")
def eval_relevance(
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            help="Dataset directory (docs.f16.npy, docs.parquet, queries_NAME.f16.npy, "
            "qrels_NAME.tsv) or a spec such as synthetic:n=20000,d=64.",
        ),
    ],
    train: Annotated[str, typer.Option("--train", help="Query set NAME to train on.")],
    test: Annotated[
        str,
        typer.Option(
            "--test", help="Query set NAME to report on (= --train: a seeded 50/50 split)."
        ),
    ],
    methods: Annotated[
        str,
        typer.Option(
            "--methods",
            help="Comma-separated method specs, e.g. fixed,platt,cosine-adapter or "
            "cosine-adapter:features=mean10,lam=0.1.",
        ),
    ],
    json_out: Annotated[str, typer.Option("--json", help="Write the results here (JSON).")],
    top_n: Annotated[
        int, typer.Option("--top-n", help="Candidates per query (exact cosine top N).")
    ] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the 50/50 query split.")] = 0,
) -> None:
    """Train relevance methods on one query set and report precision, recall and F1 on another.

    Each method's threshold is the one that maximises micro-F1 on the training
    queries; recall counts every relevant document of the test queries, also those
    outside their top N.
    """
    from pathlib import Path

    from vecext.relevance.evaluate import eval_relevance as run_eval

    specs = split_method_specs(methods)
    if top_n < 1:
        raise _fail(ValueError(f"--top-n must be positive, got {top_n}"))
    try:
        with err_console.status(
            f"exact top-{top_n} search, then training {len(specs)} method(s) on {train!r}"
        ):
            report = run_eval(dataset, train, test, specs, top_n=top_n, seed=seed)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(exc) from exc
    details = [
        {"method": r["method"], **{k: v for k, v in r.items() if k not in EVAL_RESULT_KEYS}}
        for r in report["results"]
    ]
    doc = {
        "results": [{k: r[k] for k in EVAL_RESULT_KEYS} for r in report["results"]],
        **{k: v for k, v in report.items() if k != "results"},
        "details": details,
    }
    Path(json_out).write_text(json.dumps(doc, indent=2))
    out = console if console.is_terminal else Console(width=200)
    n_tr, n_te = report["n_train_queries"], report["n_test_queries"]
    table = Table(
        title=f"relevance thresholds: {dataset} (train {train}: {n_tr} queries, "
        f"test {test}: {n_te} queries, top {report['top_n']})"
    )
    table.add_column("method")
    for col in ("threshold", "precision", "recall", "F1", "PR-AUC", "results/query"):
        table.add_column(col, justify="right")
    for r in report["results"]:
        table.add_row(
            r["method"],
            f"{r['threshold']:.4f}",
            f"{r['precision']:.3f}",
            f"{r['recall']:.3f}",
            f"{r['f1']:.3f}",
            f"{r['pr_auc']:.3f}",
            f"{r['avg_results_per_query']:.2f}",
        )
    o = report["oracle"]
    table.add_row(
        "[dim](per-query oracle)[/]",
        "",
        f"[dim]{o['precision']:.3f}[/]",
        f"[dim]{o['recall']:.3f}[/]",
        f"[dim]{o['f1']:.3f}[/]",
        "",
        f"[dim]{o['avg_results_per_query']:.2f}[/]",
    )
    out.print(table)
    if report["split"]:
        out.print(f"train = test = {train!r}: split 50/50 by {report['split']['how']}")
    out.print(
        f"{report['coverage']:.1%} of the test queries' relevant documents are in their top "
        f"{report['top_n']} (the recall ceiling); wrote {json_out}"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
