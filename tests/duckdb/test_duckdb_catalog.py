from __future__ import annotations

import duckdb
import pytest

import vecext.duckdb as vd
from vecext.errors import CatalogError


def test_connect_installs_catalog(duck):
    assert vd.installed_version(duck) == "0.3.0"
    tables = {
        r[0]
        for r in duck.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'vecext'"
        ).fetchall()
    }
    assert {
        "codecs",
        "codec_arrays",
        "codebook_vectors",
        "compressed_columns",
        "relevance_adapters",
        "relevance_arrays",
        "installed_version",
        "install_history",
    } <= tables
    assert duck.execute("SELECT vecext.vecext_version()").fetchone() == ("0.3.0",)


def test_same_catalog_tables_as_postgres(pg_catalog, duck):
    pg = pg_catalog.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'vecext' ORDER BY 1, 2"
    ).fetchall()
    dk = duck.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'vecext' ORDER BY 1, 2"
    ).fetchall()
    assert pg == dk


def test_reinstall_is_a_no_op(duck):
    result = vd.install(duck)
    assert not result.changed and result.current == "0.3.0"
    assert duck.execute(
        "SELECT script, version FROM vecext.install_history ORDER BY 1"
    ).fetchall() == [
        ("vecext--0.1.0--0.2.0.sql", "0.2.0"),
        ("vecext--0.1.0.sql", "0.1.0"),
        ("vecext--0.2.0--0.3.0.sql", "0.3.0"),
    ]


def test_upgrade_from_0_1_0(tmp_path):
    """A database whose catalog vecext 0.1.0 installed is upgraded when vecext opens it,
    to the catalog a fresh install builds."""
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    first = vd.install(con, target="0.1.0")
    assert first.applied == ["vecext--0.1.0.sql"] and vd.installed_version(con) == "0.1.0"
    con.execute(
        "INSERT INTO vecext.tenant_columns (table_schema, table_name, tenant_column) "
        "VALUES ('main', 'docs', 'org')"
    )
    con.close()
    con = vd.connect(path)
    assert con.execute("SELECT vecext.vecext_version()").fetchone() == ("0.3.0",)
    kept = con.execute("SELECT table_name, tenant_column FROM vecext.tenant_columns")
    assert kept.fetchall() == [("docs", "org")]
    history = con.execute("SELECT script, version FROM vecext.install_history ORDER BY 1")
    assert history.fetchall() == [
        ("vecext--0.1.0--0.2.0.sql", "0.2.0"),
        ("vecext--0.1.0.sql", "0.1.0"),
        ("vecext--0.2.0--0.3.0.sql", "0.3.0"),
    ]
    assert not vd.install(con).changed
    con.close()


def test_refuses_newer_catalog(duck):
    duck.execute("UPDATE vecext.installed_version SET version = '3.0.0'")
    with pytest.raises(CatalogError, match="newer than this vecext"):
        vd.install(duck)


def test_catalog_persists_on_disk(tmp_path):
    path = tmp_path / "db.duckdb"
    con = vd.connect(path)
    con.execute(
        "INSERT INTO vecext.codecs (name, kind, dim, metric, code_size, fingerprint) "
        "VALUES ('c1', 'pq', 8, 'l2', 2, 'abc')"
    )
    con.close()
    con = vd.connect(path)
    assert con.execute("SELECT name FROM vecext.codecs").fetchall() == [("c1",)]
    con.close()


def test_plain_connection_can_be_attached():
    con = duckdb.connect()
    assert vd.installed_version(con) is None
    with pytest.raises(CatalogError, match="not installed"):
        vd.require_catalog(con)
    vd.attach(con)
    assert vd.require_catalog(con) == "0.3.0"


def test_vss_loads_from_the_wheel(duck):
    status = vd.load_vss(duck, required=True)
    assert status.loaded
    assert vd.vss_extension_path() is not None
    duck.execute("CREATE TABLE t (id INTEGER, v FLOAT[3])")
    duck.execute("INSERT INTO t VALUES (1, [1, 0, 0]), (2, [0, 1, 0]), (3, [0.9, 0.1, 0])")
    duck.execute("SET hnsw_enable_experimental_persistence = true")
    duck.execute("CREATE INDEX t_hnsw ON t USING HNSW (v)")
    rows = duck.execute(
        "SELECT id FROM t ORDER BY array_distance(v, [1, 0, 0]::FLOAT[3]) LIMIT 2"
    ).fetchall()
    assert rows == [(1,), (3,)]


def test_vss_for_another_duckdb_version_is_reported(monkeypatch):
    from vecext.duckdb import vss

    assert vss.vss_extension_path("0.0.1") is None
    monkeypatch.setattr(vss, "vss_extension_path", lambda *a: None)
    monkeypatch.setattr(vss, "is_loaded", lambda con: False)
    con = duckdb.connect()
    status = vss.load_vss(con)
    # on this machine DuckDB cannot download VSS, so the wheel was the only way
    if not status.loaded:
        assert "ships VSS for v1.5.5" in status.reason or "not installed" in status.reason
        with pytest.raises(RuntimeError, match="VSS extension is not available"):
            vss.load_vss(con, required=True)


def test_database_named_like_the_schema_gets_a_clear_error(tmp_path):
    with pytest.raises(CatalogError, match="named 'vecext'"):
        vd.connect(tmp_path / "vecext.duckdb")


def test_read_only_database_opens_with_its_catalog(tmp_path):
    path = tmp_path / "ro.duckdb"
    vd.connect(path).close()
    con = vd.connect(path, read_only=True)
    assert con.execute("SELECT vecext.vecext_version()").fetchone() == ("0.3.0",)
    con.close()
