"""The vecext catalog on every backend: installed by one transaction of scripts, a no-op
when current, upgraded step by step from 0.1.0 to what a fresh install builds, and
refused when newer than this vecext."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from tests.contract.conftest import Db
from vecext.catalog import scripts
from vecext.errors import CatalogError


def chain(backend: str) -> list[tuple[str, str]]:
    """(script, version it installs) from the first release's base script to the
    latest, read from the script names: ``vecext--0.1.0.sql``, then each
    ``vecext--<from>--<to>.sql`` whose ``from`` is the version reached so far."""
    names = sorted(p.name for p in scripts.scripts_dir(backend).glob("vecext--*.sql"))
    steps = {n.split("--")[1]: n for n in names if n.count("--") == 2}
    out, version = [("vecext--0.1.0.sql", "0.1.0")], "0.1.0"
    while version in steps:
        script = steps[version]
        version = script.removesuffix(".sql").split("--")[2]
        out.append((script, version))
    return out


@pytest.fixture(params=["postgres", "duckdb"])
def bare(request: pytest.FixtureRequest) -> Iterator[Db]:
    """A database of each backend without the vecext catalog."""
    if request.param == "postgres":
        import vecext.postgres as vp

        yield Db("postgres", request.getfixturevalue("pg_conn"), vp, None, None)  # type: ignore[arg-type]
    else:
        import vecext.duckdb as vd

        con = duckdb.connect()
        yield Db("duckdb", con, vd, None, None)  # type: ignore[arg-type]
        con.close()


def snapshot(db: Db) -> dict[str, Any]:
    """Everything the catalog defines: tables and columns, functions, version, history."""
    if db.name == "postgres":
        functions = """SELECT p.proname, pg_get_function_identity_arguments(p.oid), p.prosrc
                       FROM pg_proc p WHERE p.pronamespace = 'vecext'::regnamespace"""
    else:
        functions = """SELECT function_name, parameters::VARCHAR, macro_definition
                       FROM duckdb_functions() WHERE schema_name = 'vecext'
                       AND database_name = current_database()"""
    return {
        "columns": sorted(
            db.sql(
                "SELECT table_name, column_name, data_type, is_nullable "
                "FROM information_schema.columns WHERE table_schema = 'vecext'"
            )
        ),
        "functions": sorted(db.sql(functions)),
        "version": db.sql("SELECT version FROM vecext.installed_version"),
        "history": sorted(db.sql("SELECT script, version FROM vecext.install_history")),
    }


def test_install_creates_the_catalog(bare: Db) -> None:
    db, api = bare, bare.api
    assert api.installed_version(db.conn) is None
    with pytest.raises(CatalogError, match="not installed"):
        api.require_catalog(db.conn)
    result = api.install(db.conn)
    steps = chain(db.name)
    latest = steps[-1][1]
    assert result.previous is None and result.changed and len(steps) >= 3
    assert result.current == scripts.latest_version(db.name) == latest
    # the base script of the first release, then the upgrade chain
    assert result.applied == [script for script, _ in steps]
    tables = {r[0] for r in snapshot(db)["columns"]}
    assert {
        "codecs",
        "codec_arrays",
        "codebook_vectors",
        "compressed_columns",
        "tenant_columns",
        "relevance_adapters",
        "relevance_arrays",
        "installed_version",
        "install_history",
    } <= tables
    if db.name == "duckdb":  # DuckDB's SQL functions are macros that attach() creates
        db.api.attach(db.conn, vss=False)
    assert db.sql("SELECT vecext.vecext_version()") == [(latest,)]
    assert api.require_catalog(db.conn) == latest
    assert snapshot(db)["history"] == sorted(steps)


def test_reinstall_changes_nothing(bare: Db) -> None:
    db, api = bare, bare.api
    api.install(db.conn)
    before = snapshot(db)
    again = api.install(db.conn)
    assert not again.changed and again.applied == []
    assert again.current == scripts.latest_version(db.name)
    assert snapshot(db) == before


def test_refuses_a_newer_catalog(bare: Db) -> None:
    db, api = bare, bare.api
    api.install(db.conn)
    db.sql("UPDATE vecext.installed_version SET version = '9.0.0'")
    before = snapshot(db)
    with pytest.raises(CatalogError, match=r"9\.0\.0.*newer than this vecext"):
        api.install(db.conn)
    assert snapshot(db) == before


def test_upgrade_from_0_1_0_gives_the_fresh_catalog(bare: Db) -> None:
    """A catalog installed by vecext 0.1.0 upgrades to the catalog a fresh install
    builds: the same tables and functions, each script recorded once, rows kept."""
    db, api = bare, bare.api
    steps = [script for script, _ in chain(db.name)]
    latest = scripts.latest_version(db.name)
    first = api.install(db.conn, target="0.1.0")
    assert first.applied == steps[:1] and first.current == "0.1.0"
    assert api.installed_version(db.conn) == "0.1.0"
    db.sql(
        "INSERT INTO vecext.tenant_columns (table_schema, table_name, tenant_column) "
        "VALUES ('app', 'docs', 'org')"
    )
    up = api.install(db.conn)
    assert (up.previous, up.current) == ("0.1.0", latest) and up.applied == steps[1:]
    kept = db.sql("SELECT table_schema, table_name, tenant_column FROM vecext.tenant_columns")
    assert kept == [("app", "docs", "org")]
    db.sql("DELETE FROM vecext.tenant_columns")
    upgraded = snapshot(db)
    db.sql("DROP SCHEMA vecext CASCADE")
    api.install(db.conn)
    assert snapshot(db) == upgraded
    # there is no way back through install(): an older target is refused
    newer = rf"version {re.escape(latest)}, newer than this vecext \(0\.1\.0\)"
    with pytest.raises(CatalogError, match=newer):
        api.install(db.conn, target="0.1.0")
