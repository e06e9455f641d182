"""``vecext advise``: which codec for a memory budget, measured on a sample of the column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from vecext.errors import VecextError
from vecext.tools import advise as adv
from vecext.tools.cli.common import DsnOption, dim, err_console, fail, wide_console


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
            x, rows, found, source = adv.read_sample(
                table, column, sample=wanted, seed=seed, dsn=dsn, duckdb_path=duckdb_path
            )
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
        raise fail(exc) from exc
    if json_out:
        Path(json_out).write_text(json.dumps(advice.as_dict(), indent=2))
    out = wide_console()
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


def advice_table(advice: adv.Advice) -> Table:
    """The measured codecs as a table, with exact search as the reference row."""
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
    exact_mb = f"{advice.exact_bytes_per_query / 1e6:,.1f}"
    reference = ("float32 (exact)", f"{4 * advice.d}", "1.0", "1.000", "", "", "")
    table.add_row(*dim((*reference, exact_mb, "1.0", "", "", exact_mb, "reference")))
    return table
