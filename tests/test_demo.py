"""`vecext demo` end to end on the real databases (a small size)."""

from __future__ import annotations

from rich.console import Console
from typer.testing import CliRunner

from vecext.tools.cli import app
from vecext.tools.demo import run_demo


def test_demo_runs_on_both_backends(pg_dsn):
    demo = run_demo(n=3000, d=32, nq=12, k=10, dsn=pg_dsn, console=Console(width=160, record=True))
    by = {(r.backend, r.search, r.strategy.split(" ->")[0]): r for r in demo.rows}
    for backend in ("postgres", "duckdb"):
        plain = by[(backend, "plain", "exact")]
        assert plain.recall == 1.0 and plain.rows == "10/10"
        for method in ("pq", "binary", "ivf-pq", "auto"):
            row = by[(backend, "plain", method)]
            assert row.recall >= 0.8, (backend, method, row)
            assert row.rows == "10/10"
        # every filtered search returned every row it promised
        for r in demo.rows:
            if r.backend == backend and r.search.startswith("filter"):
                got, want = r.rows.split("/")
                assert got == want, r
        assert any(r.backend == backend and r.search.startswith("score >=") for r in demo.rows)
    text = demo.console.export_text()
    assert "recall" in text and "B/vector" in text


def test_demo_command_rejects_unknown_backend():
    result = CliRunner().invoke(app, ["demo", "--backend", "oracle"])
    assert result.exit_code == 1
    assert "unknown backend" in result.output
