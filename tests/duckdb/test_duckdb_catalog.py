"""The DuckDB catalog: installed by connect(), the same tables as PostgreSQL's, kept on
disk, attached to plain connections, VSS from the wheel. (Installing, reinstalling,
refusing newer catalogs and upgrading from 0.1.0 on every backend:
``tests/contract/test_catalog.py``.)"""

from __future__ import annotations

import duckdb
import pytest

import vecext.duckdb as vd
from vecext.errors import CatalogError


def test_connect_installs_catalog(duck):
    assert vd.installed_version(duck) == "0.6.0"
    assert duck.execute("SELECT vecext.vecext_version()").fetchone() == ("0.6.0",)


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


def test_connect_upgrades_a_0_1_0_file(tmp_path):
    """A database whose catalog vecext 0.1.0 installed is upgraded when vecext opens it
    (what the upgrade gives: tests/contract/test_catalog.py)."""
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    vd.install(con, target="0.1.0")
    con.close()
    con = vd.connect(path)
    assert con.execute("SELECT vecext.vecext_version()").fetchone() == ("0.6.0",)
    assert not vd.install(con).changed
    con.close()


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
    assert vd.require_catalog(con) == "0.6.0"


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
    assert con.execute("SELECT vecext.vecext_version()").fetchone() == ("0.6.0",)
    con.close()
