"""vecext's DuckDB methods plug into ``vecext bench`` and keep their promises there."""

from __future__ import annotations

from vecext.tools.bench.registry import available_methods
from vecext.tools.bench.runner import BenchConfig, run_bench

OURS = ["vecext-pq", "vecext-ivfpq", "vecext-binary", "vecext-auto"]


def test_methods_are_registered_for_duckdb() -> None:
    have = {name for name, backend in available_methods("duckdb")}
    assert set(OURS) <= have


def test_bench_run_returns_k_rows_with_high_recall(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VECEXT_BENCH_CACHE", str(tmp_path / "cache"))
    config = BenchConfig(
        dataset="synthetic:n=2000,d=32,nq=10",
        queries="dev",
        backend="duckdb",
        methods=["exact", *OURS],
        filters=["category=1"],
    )
    rows = {r["method"]: r for r in run_bench(config).doc["results"]}
    assert rows["exact"]["recall_at_k"] == 1.0
    for name in OURS:
        assert rows[name]["complete_fraction"] == 1.0, name
        assert rows[name]["recall_at_k"] >= 0.9, (name, rows[name]["recall_at_k"])
    # trained codecs are cached on disk for the next run (a fresh in-memory database)
    cached = list((tmp_path / "cache").rglob("*.npz"))
    assert len(cached) == 3  # pq, binary, ivf
