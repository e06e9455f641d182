"""What the ``vecext`` commands share: the consoles, the common options, errors."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Annotated, Any

import typer
from rich.console import Console

# piped output (CI logs, files) gets a width that fits the result tables
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)

DsnOption = Annotated[
    str | None,
    typer.Option("--dsn", help="PostgreSQL DSN (default: $VECEXT_DSN, else the embedded server)."),
]


def fail(exc: Exception) -> typer.Exit:
    """Print ``exc`` as the command's error; raise the returned exit (code 1)."""
    err_console.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(code=1)


def wide_console() -> Console:
    """The console for a wide result table: not squeezed into 80 columns when stdout
    is not a terminal."""
    return console if console.is_terminal else Console(width=200)


def dataset_option(example: str) -> Any:
    """The ``--dataset`` option; ``example`` is a synthetic spec shown in its help."""
    return typer.Option(
        "--dataset",
        help="Dataset directory (docs.f16.npy, docs.parquet, queries_NAME.f16.npy, "
        f"qrels_NAME.tsv) or a spec such as {example}.",
    )


JsonOutOption = Annotated[str, typer.Option("--json", help="Write the results here (JSON).")]


def dim(cells: Iterable[str]) -> list[str]:
    """Table cells in the dim style of a reference row (empty cells stay empty)."""
    return [f"[dim]{c}[/]" if c else c for c in cells]
