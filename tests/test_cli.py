from __future__ import annotations

import json

from typer.testing import CliRunner

from vecext.tools.cli import app

runner = CliRunner()


def test_info_reports_versions(pg_dsn):
    result = runner.invoke(app, ["info", "--dsn", pg_dsn, "--json"])
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)["items"]
    assert items["postgresql"].split(".")[0].isdigit()
    assert items["pgvector"].startswith("0.")
    assert items["duckdb"] == "1.5.5"
    assert items["duckdb vss"].startswith("loaded")
    assert "not installed" in items["postgres catalog"]


def test_install_then_info(pg_dsn):
    first = runner.invoke(app, ["install", "--dsn", pg_dsn])
    assert first.exit_code == 0, first.output
    assert (
        "applied vecext--0.1.0.sql, vecext--0.1.0--0.2.0.sql, vecext--0.2.0--0.3.0.sql, "
        "vecext--0.3.0--0.4.0.sql" in " ".join(first.stdout.split())
    )
    second = runner.invoke(app, ["install", "--dsn", pg_dsn])
    assert "nothing to do" in second.stdout
    info = runner.invoke(app, ["info", "--dsn", pg_dsn, "--json"])
    assert json.loads(info.stdout)["items"]["postgres catalog"] == "installed, version 0.6.0"


def test_unreachable_dsn_is_a_clear_error():
    result = runner.invoke(app, ["install", "--dsn", "postgresql://x@127.0.0.1:1/db"])
    assert result.exit_code == 1
    assert "127.0.0.1:1" in result.output


def test_install_into_duckdb_file(tmp_path):
    path = tmp_path / "x.duckdb"
    result = runner.invoke(app, ["install", "--duckdb", str(path)])
    assert result.exit_code == 0, result.output
    import vecext.duckdb as vd

    con = vd.connect(path)
    assert vd.installed_version(con) == "0.6.0"
    con.close()
