"""Benchmark output: the JSON document, a rich table and a recall-versus-QPS plot."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.table import Table

#: Top-level keys of the JSON document, in order.
DOC_KEYS = ("dataset", "n", "d", "machine", "results")

#: Keys of each result, in order (the contract of ``vecext bench --json``).
RESULT_KEYS = (
    "backend",
    "method",
    "params",
    "k",
    "filter",
    "selectivity",
    "recall_at_k",
    "ndcg_at_10",
    "min_rows_returned",
    "complete_fraction",
    "p50_ms",
    "p95_ms",
    "first_ms",
    "qps",
    "bytes_per_vector",
    "storage_bytes",
    "build_s",
    "disk_bytes_per_row",
)


def _clean(obj: Any) -> Any:
    """JSON-ready: NaN and infinities become ``null``, numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(doc: dict[str, Any], path: str | Path) -> None:
    """Write ``doc`` as strict JSON (no NaN)."""
    Path(path).write_text(
        json.dumps(_clean(doc), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def results_table(results: Iterable[dict[str, Any]], title: str = "vecext bench") -> Table:
    table = Table(title=title)
    for name, justify in (
        ("backend", "left"),
        ("method", "left"),
        ("filter", "left"),
        ("sel.", "right"),
        ("recall@k", "right"),
        ("nDCG@10", "right"),
        ("min rows", "right"),
        ("complete", "right"),
        ("p50 ms", "right"),
        ("p95 ms", "right"),
        ("first ms", "right"),
        ("QPS", "right"),
        ("B/vec", "right"),
        ("storage MB", "right"),
        ("build s", "right"),
        ("disk B/row", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in results:
        table.add_row(
            r["backend"],
            r["method"],
            r["filter"] or "none",
            _fmt(r["selectivity"], ".2%"),
            _fmt(r["recall_at_k"], ".3f"),
            _fmt(r["ndcg_at_10"], ".3f"),
            str(r["min_rows_returned"]),
            _fmt(r["complete_fraction"], ".2f"),
            _fmt(r["p50_ms"], ".2f"),
            _fmt(r["p95_ms"], ".2f"),
            _fmt(r.get("first_ms"), ".1f"),
            _fmt(r["qps"], ",.0f"),
            _fmt(r["bytes_per_vector"], "g"),
            _fmt(r["storage_bytes"] / 1e6 if r["storage_bytes"] is not None else None, ",.1f"),
            _fmt(r["build_s"], ".1f"),
            _fmt(r.get("disk_bytes_per_row"), ",.0f"),
        )
    return table


def plot(docs: Iterable[dict[str, Any]], path: str | Path, title: str | None = None) -> None:
    """Recall@k (x) against queries per second (y, log scale), one point per result."""
    # matplotlib is the optional extra vecext[bench], and slow to import: loaded here
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs = list(docs)
    filters = {r["filter"] for doc in docs for r in doc["results"]}
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=120)
    markers = {"postgres": "o", "duckdb": "s", "faiss": "^"}
    for doc in docs:
        for r in doc["results"]:
            if r["recall_at_k"] is None or not r["qps"]:
                continue
            label = f"{r['backend']}/{r['method']}"
            if len(filters) > 1:
                label += f" [{r['filter'] or 'no filter'}]"
            ax.scatter(
                r["recall_at_k"],
                r["qps"],
                marker=markers.get(r["backend"], "x"),
                s=60,
                label=f"{label}: {r['min_rows_returned']} min rows",
            )
    ax.set_yscale("log")
    ax.set_xlabel("recall@k (overlap with exact filtered top-k)")
    ax.set_ylabel("queries per second (single client, log scale)")
    if title is None and docs:
        r0 = docs[0]["results"][0] if docs[0]["results"] else {}
        title = (
            f"{docs[0]['dataset']} (n={docs[0]['n']:,}, d={docs[0]['d']}), "
            f"k={r0.get('k')}, filter: {r0.get('filter') or 'none'}"
        )
    fig.suptitle(title or "vecext bench", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_xlim(left=min(0.0, ax.get_xlim()[0]), right=1.05)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
