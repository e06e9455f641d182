"""``vecext eval-relevance``: relevance thresholds trained on one query set, scored on another."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from vecext.relevance.evaluate import eval_relevance as run_eval
from vecext.tools.cli.common import (
    JsonOutOption,
    dataset_option,
    dim,
    err_console,
    fail,
    wide_console,
)

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


def eval_relevance(
    dataset: Annotated[str, dataset_option("synthetic:n=20000,d=64")],
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
    json_out: JsonOutOption,
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
    specs = split_method_specs(methods)
    if top_n < 1:
        raise fail(ValueError(f"--top-n must be positive, got {top_n}"))
    try:
        with err_console.status(
            f"exact top-{top_n} search, then training {len(specs)} method(s) on {train!r}"
        ):
            report = run_eval(dataset, train, test, specs, top_n=top_n, seed=seed)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(exc) from exc
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
    out = wide_console()
    n_tr, n_te, o = report["n_train_queries"], report["n_test_queries"], report["oracle"]
    table = Table(
        title=f"relevance thresholds: {dataset} (train {train}: {n_tr} queries, "
        f"test {test}: {n_te} queries, top {report['top_n']})"
    )
    table.add_column("method")
    for col in ("threshold", "precision", "recall", "F1", "PR-AUC", "results/query"):
        table.add_column(col, justify="right")
    for r in report["results"]:
        table.add_row(r["method"], *_cells(r))
    # the oracle has no threshold of its own and no ranking to draw a curve from
    table.add_row(*dim(["(per-query oracle)", *_cells(o)]))
    out.print(table)
    if report["split"]:
        out.print(f"train = test = {train!r}: split 50/50 by {report['split']['how']}")
    out.print(
        f"{report['coverage']:.1%} of the test queries' relevant documents are in their top "
        f"{report['top_n']} (the recall ceiling); wrote {json_out}"
    )


#: the table's number columns: result key and format
_COLUMNS = (
    ("threshold", ".4f"),
    ("precision", ".3f"),
    ("recall", ".3f"),
    ("f1", ".3f"),
    ("pr_auc", ".3f"),
    ("avg_results_per_query", ".2f"),
)


def _cells(r: dict[str, Any]) -> list[str]:
    """The number cells of one table row; empty where ``r`` has no such value."""
    return [format(r[key], fmt) if key in r else "" for key, fmt in _COLUMNS]
