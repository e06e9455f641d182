"""Relevance adapters in the catalog of both backends: round trip, versions, errors."""

from __future__ import annotations

import numpy as np
import pytest

import vecext.duckdb as vd
from tests.relevance.conftest import make_retrieved
from vecext.errors import CatalogError
from vecext.postgres import install
from vecext.relevance import RelevanceError, make_relevance


@pytest.fixture(scope="module")
def data():
    return make_retrieved(nq=120, d=16, N=30, seed=3)


@pytest.fixture(scope="module")
def fitted(data):
    r = data
    return {
        spec: make_relevance(spec).fit(r.xq, r.S, r.Y, r.n_relevant)
        for spec in ("cosine-adapter:lam=0.01", "cosine-adapter:lam=0.01,features=top1+mean10",
                     "platt", "fixed")
    }  # fmt: skip


@pytest.fixture(params=["postgres", "duckdb-memory", "duckdb-file"])
def catalog(request, tmp_path):
    """(module of save/load/list/drop, a fresh database with the catalog)."""
    if request.param == "postgres":
        from vecext.postgres import relevance as mod

        conn = request.getfixturevalue("pg_conn")
        install(conn)
        yield mod, conn
        return
    from vecext.duckdb import relevance as mod

    target = ":memory:" if request.param == "duckdb-memory" else str(tmp_path / "rel.duckdb")
    con = vd.connect(target, vss=False)
    yield mod, con
    con.close()


def test_round_trip_gives_identical_scores(catalog, fitted, data):
    mod, db = catalog
    for i, m in enumerate(fitted.values()):
        name = f"rel_{i}"
        info = mod.save_adapter(db, name, m)
        assert (info.method, info.dim, info.threshold) == (m.name, m.d, m.threshold)
        assert info.fingerprint == m.to_state().fingerprint()
        assert info.features == tuple(getattr(m, "features", ()))
        back = mod.load_adapter(db, name, fingerprint=info.fingerprint)
        assert type(back) is type(m) and back.threshold == m.threshold
        np.testing.assert_array_equal(back.score(data.xq, data.S), m.score(data.xq, data.S))
        assert back.to_state().fingerprint() == info.fingerprint
    assert [a.name for a in mod.list_adapters(db)] == [f"rel_{i}" for i in range(len(fitted))]


def test_duckdb_file_keeps_adapters_and_macros(tmp_path, fitted, data):
    from vecext.duckdb.relevance import load_adapter, save_adapter

    m = fitted["cosine-adapter:lam=0.01"]
    path = tmp_path / "keep.duckdb"
    con = vd.connect(path, vss=False)
    save_adapter(con, "kept", m)
    con.close()
    con = vd.connect(path, vss=False)
    back = load_adapter(con, "kept")
    s = float(data.S[0, 0])
    (got,) = con.execute(
        "SELECT vecext.relevance_score('kept', ?::FLOAT[16], ?)", [data.xq[0].tolist(), s]
    ).fetchone()
    con.close()
    assert got == pytest.approx(float(back.score(data.xq[:1], data.S[:1, :1])[0, 0]), abs=1e-6)


def test_same_rows_and_fingerprint_in_both_backends(pg_conn, fitted):
    from vecext.duckdb.relevance import save_adapter as duck_save
    from vecext.postgres.relevance import save_adapter as pg_save

    install(pg_conn)
    con = vd.connect(vss=False)
    m = fitted["cosine-adapter:lam=0.01,features=top1+mean10"]
    assert pg_save(pg_conn, "same", m) == duck_save(con, "same", m)
    pg_rows = pg_conn.execute(
        "SELECT array_name, dtype, shape, data FROM vecext.relevance_arrays ORDER BY 1"
    ).fetchall()
    duck_rows = con.execute(
        "SELECT array_name, dtype, shape, data FROM vecext.relevance_arrays ORDER BY 1"
    ).fetchall()
    assert [(a, d, list(s), bytes(b)) for a, d, s, b in pg_rows] == [
        (a, d, list(s), bytes(b)) for a, d, s, b in duck_rows
    ]
    con.close()


def test_versions_replace_and_drop(catalog, fitted, data):
    mod, db = catalog
    r = data
    m1 = fitted["cosine-adapter:lam=0.01"]
    m2 = make_relevance("cosine-adapter:lam=0.1").fit(r.xq, r.S, r.Y, r.n_relevant)
    fp1 = mod.save_adapter(db, "rel", m1).fingerprint
    assert mod.save_adapter(db, "rel", m1).fingerprint == fp1  # the same version: no-op
    with pytest.raises(CatalogError, match=f"already exists \\(version {fp1}.*replace=True"):
        mod.save_adapter(db, "rel", m2)
    fp2 = mod.save_adapter(db, "rel", m2, replace=True).fingerprint
    assert fp2 != fp1 and mod.load_adapter(db, "rel").to_state().fingerprint() == fp2
    with pytest.raises(CatalogError, match=f"version {fp2} in the catalog, not the expected"):
        mod.load_adapter(db, "rel", fingerprint=fp1)
    assert mod.drop_adapter(db, "rel") is True
    assert mod.drop_adapter(db, "rel", missing_ok=True) is False
    with pytest.raises(RelevanceError, match="unknown relevance adapter 'rel'"):
        mod.drop_adapter(db, "rel")
    with pytest.raises(
        RelevanceError, match=r"unknown relevance adapter 'rel'; known adapters: \(none\)"
    ):
        mod.load_adapter(db, "rel")
    # no arrays are left behind (DuckDB has no ON DELETE CASCADE)
    (n,) = db.execute("SELECT count(*) FROM vecext.relevance_arrays").fetchone()
    assert n == 0


def test_tampered_rows_are_refused(catalog, fitted):
    mod, db = catalog
    mod.save_adapter(db, "rel", fitted["cosine-adapter:lam=0.01"])
    params = db.execute(
        "SELECT params FROM vecext.relevance_adapters WHERE name = 'rel'"
    ).fetchone()[0]
    import json

    p = json.loads(params) if isinstance(params, str) else dict(params)
    p["c_a"] += 1.0
    sql = "UPDATE vecext.relevance_adapters SET params = %s WHERE name = 'rel'"
    if mod.__name__.startswith("vecext.duckdb"):
        sql = sql.replace("%s", "?")
    db.execute(sql, [json.dumps(p)])
    with pytest.raises(CatalogError, match="inconsistent: its state hashes to"):
        mod.load_adapter(db, "rel")


def test_bad_names_dimension_and_unfitted(catalog, fitted):
    mod, db = catalog
    m = fitted["cosine-adapter:lam=0.01"]
    for bad in ("Rel", "1rel", "rel-x", "", "x" * 49):
        with pytest.raises(ValueError, match="invalid relevance adapter name"):
            mod.save_adapter(db, bad, m)
    with pytest.raises(RuntimeError, match="not fitted"):
        mod.save_adapter(db, "rel", make_relevance("cosine-adapter"))
    mod.save_adapter(db, "rel", m)
    with pytest.raises(
        RelevanceError, match="trained on dimension 16, it was asked for dimension 8"
    ):
        mod.load_adapter(db, "rel", dim=8)
    assert mod.load_adapter(db, "rel", dim=16).d == 16
    # query-independent methods have no dimension
    mod.save_adapter(db, "rel_platt", fitted["platt"])
    assert mod.load_adapter(db, "rel_platt", dim=8).d is None
    # the Python method refuses a query of another dimension too
    with pytest.raises(
        RelevanceError, match="query dimension 8 does not match the adapter's dimension 16"
    ):
        mod.load_adapter(db, "rel").score(np.ones((1, 8)), np.ones((1, 3)) * 0.5)


def test_relevance_core_imports_no_database_driver():
    import subprocess
    import sys

    code = (
        "import sys, vecext.relevance, vecext.catalog.adapters, vecext.search.threshold\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'psycopg', 'psycopg2', 'duckdb', 'sqlalchemy', 'alembic', 'pgvector'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
