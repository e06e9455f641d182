"""Roles and search_path (issue 13 items 1 and 2), with real roles and connections.

A writer with INSERT/UPDATE/DELETE on a table and nothing on schema vecext writes
through the code-store triggers (they run as the catalog's owner); a reader searches
once the owner ran vecext.grant_usage(reader), and gets a clear error before; neither
can change the catalog. With search_path = app (pgvector in public) and a user's
functions of pgvector's names earlier on the path, writes encode the same codes and
searches give the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from psycopg import conninfo, sql

from tests.postgres.conftest import clustered, load_table, store_codes, vector_text
from vecext.codecs import make_codec
from vecext.errors import CatalogError, VecextError
from vecext.postgres import (
    add_compressed_column,
    add_ivf_lists,
    calibrate,
    connect,
    create_vector_index,
    drop_codec,
    install,
    list_codecs,
    save_codec,
    search,
    train_codec,
)
from vecext.search.contracts import SearchError

D = 16


@pytest.fixture(scope="module")
def env(module_dsn: str) -> Iterator[dict]:
    """As the owner: the catalog, two codecs, ``items`` with binary and pq compressed
    columns, ``plain`` without, and the roles ``vx_reader`` / ``vx_writer``."""
    with connect(module_dsn, autocommit=True) as conn:
        install(conn)
        x = clustered(1500, D, seed=90)
        codecs = {
            "rl_bin": make_codec("binary", D, "cosine").train(x),
            "rl_pq": make_codec("pq", D, "cosine", m=4, niter=8).train(x),
        }
        for name, codec in codecs.items():
            save_codec(conn, name, codec)
        load_table(conn, "items", x)
        load_table(conn, "plain", x[:200])
        for name in codecs:
            add_compressed_column(conn, "items", "embedding", name, f"c_{name}", progress=False)
        for role in ("vx_reader", "vx_writer"):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute("GRANT SELECT ON items, plain TO vx_reader")
        conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON items TO vx_writer")
        yield {"dsn": module_dsn, "x": x, "codecs": codecs}
        for role in ("vx_reader", "vx_writer"):
            conn.execute("SELECT vecext.revoke_usage(%s)", [role])
        conn.execute("DROP OWNED BY vx_reader, vx_writer")
        conn.execute("DROP ROLE vx_reader")
        conn.execute("DROP ROLE vx_writer")


def as_role(dsn: str, role: str) -> psycopg.Connection:
    return connect(conninfo.make_conninfo(dsn, user=role), autocommit=True)


def test_a_writer_needs_nothing_from_vecext(env):
    with as_role(env["dsn"], "vx_writer") as w:
        assert w.execute("SELECT has_schema_privilege('vecext', 'USAGE')").fetchone() == (False,)
        y = clustered(20, D, seed=91)
        w.execute("INSERT INTO items VALUES (5000, %s)", [vector_text(y[0])])
        with w.cursor().copy("COPY items (id, embedding) FROM STDIN") as copy:
            for i in range(1, 10):
                copy.write_row((5000 + i, vector_text(y[i])))
        w.execute("UPDATE items SET embedding = %s WHERE id = 3", [vector_text(y[10])])
        w.execute("UPDATE items SET embedding = NULL WHERE id = 4")
        w.execute("DELETE FROM items WHERE id = 5")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            w.execute("INSERT INTO vecext.compressed_columns DEFAULT VALUES")
    with connect(env["dsn"], autocommit=True) as owner:
        codec = env["codecs"]["rl_bin"]
        keys, codes = store_codes(owner, "items", "c_rl_bin")
        got = dict(zip(keys, codes.tolist(), strict=True))
        assert 4 not in got and 5 not in got and len(keys) == 1500 + 10 - 2
        want = codec.encode(np.vstack([y[:10], y[10:11]]))
        for i, k in enumerate([*range(5000, 5010), 3]):
            assert got[k] == want[i].tolist()


def test_a_reader_searches_after_grant_usage_and_cannot_change_the_catalog(env):
    dsn, x = env["dsn"], env["x"]
    with (
        as_role(dsn, "vx_reader") as r,
        pytest.raises(SearchError, match=r"vecext\.grant_usage\('vx_reader'\)"),
    ):
        search(r, "plain", "embedding", x[1], 5)
    with connect(dsn, autocommit=True) as owner:
        owner.execute("SELECT vecext.grant_usage('vx_reader')")
        want = {
            s: search(owner, "items", "embedding", x[7], 5, strategy=s).ids.tolist()
            for s in ("exact", "compressed")
        }
    with as_role(dsn, "vx_reader") as r:
        assert r.execute("SELECT vecext.has_usage()").fetchone() == (True,)
        for s, ids in want.items():
            assert search(r, "items", "embedding", x[7], 5, strategy=s).ids.tolist() == ids
        assert search(r, "plain", "embedding", x[1], 3).ids[0] == 1
        for stmt in (
            "INSERT INTO vecext.codecs (name, kind, dim, metric, code_size, fingerprint) "
            "VALUES ('x', 'pq', 8, 'l2', 2, 'f')",
            "UPDATE vecext.compressed_columns SET status = 'backfilling'",
            "DELETE FROM vecext.codecs",
            "SELECT vecext.add_compressed_column('plain', 'embedding', 'rl_bin')",
            "SELECT vecext.grant_usage('vx_writer')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                r.execute(stmt)
        store = r.execute("SELECT vecext.code_store('items', 'c_rl_bin')::text").fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            r.execute(sql.SQL("DELETE FROM {}").format(sql.SQL(store)))
    # a compressed column added later is readable too (default privileges)
    with connect(dsn, autocommit=True) as owner:
        save_codec(owner, "rl_bin2", make_codec("binary", D, "l2").train(x))
        add_compressed_column(owner, "items", "embedding", "rl_bin2", "c_later", progress=False)
        later = search(
            owner,
            "items",
            "embedding",
            x[9],
            5,
            metric="l2",
            strategy="compressed",
            using="c_later",
        )
    with as_role(dsn, "vx_reader") as r:
        got = search(
            r, "items", "embedding", x[9], 5, metric="l2", strategy="compressed", using="c_later"
        )
        assert got.ids.tolist() == later.ids.tolist() and got.strategy == "compressed"


def test_search_path_without_pgvector_and_shadowing_functions(env):
    """search_path = app, pgvector in public, and app.l2_normalize / app.binary_quantize
    that would change every code: triggers, save_codec and search ignore them."""
    dsn, x = env["dsn"], env["x"]
    with connect(dsn, autocommit=True) as owner:
        owner.execute("CREATE SCHEMA IF NOT EXISTS app")
        owner.execute(
            "CREATE OR REPLACE FUNCTION app.l2_normalize(v public.vector) RETURNS public.vector "
            "LANGUAGE sql AS $$ SELECT v $$"
        )
        owner.execute(
            "CREATE OR REPLACE FUNCTION app.binary_quantize(v public.vector) RETURNS bit "
            "LANGUAGE sql AS $$ SELECT repeat('1', public.vector_dims(v))::bit varying $$"
        )
        want = search(owner, "items", "embedding", x[11], 5, strategy="compressed").ids.tolist()
        owner.execute("SET search_path = app")
        y = clustered(5, D, seed=92)
        owner.execute("INSERT INTO public.items VALUES (7000, %s)", [vector_text(y[0])])
        owner.execute("UPDATE public.items SET embedding = %s WHERE id = 8", [vector_text(y[1])])
        save_codec(owner, "rl_half", make_codec("half", D, "cosine"))
        for s in ("exact", "compressed"):
            got = search(owner, "public.items", "embedding", x[11], 5, strategy=s)
            assert got.ids.tolist() == want
        owner.execute("SET search_path = public")
        for name in ("rl_bin", "rl_pq"):
            keys, codes = store_codes(owner, "items", f"c_{name}", "pk IN (7000, 8)")
            assert keys == [8, 7000]
            assert (codes == env["codecs"][name].encode(y[[1, 0]])).all()
        # every vecext function runs with a pinned search_path (the procedure aside)
        unpinned = owner.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = "
            "'vecext'::regnamespace AND p.prokind = 'f' AND NOT coalesce(array_to_string("
            "p.proconfig, ',') LIKE '%search_path=pg_catalog, public, pg_temp%', false) "
            "ORDER BY 1"
        ).fetchall()
        assert [u[0] for u in unpinned] == ["vecext.rl_pq_distance(bytea,real[])"]


def test_catalog_verbs_of_a_non_owner_raise_a_vecext_error_naming_role_and_object(env):
    """A granted reader calling catalog-changing verbs gets a CatalogError (not psycopg's
    InsufficientPrivilege) naming the role, the denied object and grant_usage, with the
    driver's error chained; searches on the same connection keep working."""
    dsn, x = env["dsn"], env["x"]
    with connect(dsn, autocommit=True) as owner:
        owner.execute("SELECT vecext.grant_usage('vx_reader')")
        save_codec(owner, "rl_spare", make_codec("binary", D, "l2").train(x))
        want = search(owner, "items", "embedding", x[3], 5, strategy="compressed").ids.tolist()
    attempts = {
        "train_codec": lambda r: train_codec(r, "rl_new", "items", "embedding", "binary"),
        "add_compressed_column": lambda r: add_compressed_column(
            r, "plain", "embedding", "rl_bin", "c_x", progress=False
        ),
        "drop_codec": lambda r: drop_codec(r, "rl_spare"),
        "add_ivf_lists": lambda r: add_ivf_lists(r, "items", "embedding", 4, code_column="c_rl_pq"),
        "create_vector_index": lambda r: create_vector_index(r, "items", "c_rl_bin"),
        "calibrate": lambda r: calibrate(r, "items", "c_rl_bin", n_queries=10),
    }
    with as_role(dsn, "vx_reader") as r:
        for verb, call in attempts.items():
            with pytest.raises(CatalogError) as info:
                call(r)
            msg = str(info.value)
            assert isinstance(info.value, VecextError), verb
            assert not isinstance(info.value, psycopg.Error), verb
            assert isinstance(info.value.__cause__, psycopg.errors.InsufficientPrivilege), verb
            assert f"vecext.postgres.{verb}: role 'vx_reader'" in msg, msg
            assert "permission denied for" in msg or "must be owner of" in msg, msg
            assert "catalog's owner" in msg and "vecext.grant_usage('vx_reader')" in msg, msg
            got = search(r, "items", "embedding", x[3], 5, strategy="compressed")
            assert got.ids.tolist() == want, verb
    with connect(dsn, autocommit=True) as owner:  # nothing changed
        names = {c.name for c in list_codecs(owner)}
        assert "rl_spare" in names and "rl_new" not in names
