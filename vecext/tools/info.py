"""What ``vecext info`` reports: versions and where things live."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy

import vecext
from vecext.errors import VecextError


@dataclass
class Report:
    rows: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, key: str, value: Any) -> None:
        self.rows.append((key, str(value)))

    def as_dict(self) -> dict[str, Any]:
        return {"items": dict(self.rows), "errors": self.errors, "warnings": self.warnings}


def collect(dsn: str | None = None, duckdb_path: str | None = None) -> Report:
    """What ``vecext info`` shows: versions, the PostgreSQL target, DuckDB and VSS."""
    report = Report()
    report.add("vecext", vecext.__version__)
    report.add("python", platform.python_version())
    report.add("numpy", numpy.__version__)
    report.add("faiss", getattr(faiss, "__version__", "unknown"))
    _postgres(report, dsn or os.environ.get("VECEXT_DSN"))
    _duckdb(report, duckdb_path)
    return report


def _postgres(report: Report, dsn: str | None) -> None:
    # the adapters are optional extras (vecext[postgres], vecext[duckdb]): each part
    # of the report imports its own when it runs
    from vecext.postgres import catalog, connection, pgvector
    from vecext.postgres.embedded import default_datadir, start_embedded
    from vecext.postgres.health import catalog_warnings

    try:
        if dsn:
            target = dsn
            report.add("postgres target", connection.describe_target(dsn))
        else:
            server = start_embedded()
            target = server.dsn
            report.add("postgres target", "embedded default")
            report.add("embedded data directory", server.datadir)
            report.add("embedded server log", server.log_file)
        with connection.connect(target) as conn:
            report.add("postgresql", conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
            report.add("pgvector", pgvector.installed_version(conn) or "not installed")
            cat = catalog.installed_version(conn)
            report.add(
                "postgres catalog",
                f"installed, version {cat}" if cat else "not installed (run `vecext install`)",
            )
            if cat:
                report.warnings += catalog_warnings(conn)
    except VecextError as exc:
        if not dsn:
            report.add("embedded data directory", default_datadir())
        report.errors.append(str(exc))
        report.add("postgresql", "unavailable")


def _duckdb(report: Report, path: str | None) -> None:
    import duckdb

    from vecext.duckdb import catalog as dcat
    from vecext.duckdb.vss import load_vss

    report.add("duckdb", duckdb.__version__)
    con = duckdb.connect(path or ":memory:")
    try:
        status = load_vss(con)
        if status.loaded:
            version = con.execute(
                "SELECT extension_version FROM duckdb_extensions() WHERE extension_name = 'vss'"
            ).fetchone()
            report.add("duckdb vss", f"loaded ({version[0] if version else '?'})")
        else:
            report.add("duckdb vss", f"not loaded: {status.reason}")
        if path:
            cat = dcat.installed_version(con)
            report.add("duckdb catalog", f"installed, version {cat}" if cat else "not installed")
    finally:
        con.close()
