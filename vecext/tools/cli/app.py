"""The ``vecext`` Typer application: every command, in the order ``--help`` lists them."""

from __future__ import annotations

import typer

from vecext.tools.cli.advise import advise
from vecext.tools.cli.bench import bench
from vecext.tools.cli.demo import demo
from vecext.tools.cli.relevance import eval_relevance
from vecext.tools.cli.server import info, install, stop, uninstall

app = typer.Typer(
    help="vecext: compressed vector columns, filtered ANN and relevance thresholds "
    "for PostgreSQL (pgvector) and DuckDB.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(info)
app.command()(install)
app.command()(uninstall)
app.command()(demo)
app.command()(stop)
app.command()(bench)
app.command()(advise)
app.command("eval-relevance")(eval_relevance)


def main() -> None:
    """Entry point of the ``vecext`` script."""
    app()
