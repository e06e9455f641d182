"""``vecext demo``: the main job on both backends, end to end."""

from __future__ import annotations

from typing import Annotated

import typer

from vecext.errors import VecextError
from vecext.tools.cli.common import DsnOption, console, fail
from vecext.tools.demo import run_demo


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
    chosen = tuple(backend or ("postgres", "duckdb"))
    bad = [b for b in chosen if b not in ("postgres", "duckdb")]
    if bad:
        raise fail(ValueError(f"unknown backend(s) {bad}: use postgres and/or duckdb"))
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
        raise fail(exc) from exc
