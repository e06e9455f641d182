"""Catalog 0.5.0 -> 0.6.0 with existing code stores: they keep working unchanged (codes
and IVF lists kept current by the new trigger with the old arguments), mirroring is
refused before the upgrade and works after it (IVF lists and mirrors in one trigger);
the downgrade is refused while a store mirrors columns."""

from __future__ import annotations

import numpy as np
import pytest
from psycopg import sql

from tests.postgres.conftest import clustered, load_table, store_codes, vector_text
from tests.postgres.test_pg_mirrors import assert_mirrored
from vecext.codecs import make_codec
from vecext.errors import CatalogError
from vecext.postgres import (
    add_compressed_column,
    add_ivf_lists,
    connect,
    drop_compressed_column,
    install,
    ivf_lists,
    load_codec,
    mirror_columns,
    save_codec,
    search,
)
from vecext.postgres.catalog import installed_version, revert_script

D = 16


def test_upgrade_keeps_stores_then_mirrors_with_lists(pg_dsn) -> None:
    conn = connect(pg_dsn, autocommit=True)
    try:
        assert install(conn, target="0.5.0").current == "0.5.0"
        x = clustered(900, D, seed=120)
        codec = make_codec("binary", D, "cosine").train(x)
        save_codec(conn, "up_bin", codec)
        load_table(conn, "up_m", x)
        conn.execute("ALTER TABLE up_m ADD COLUMN pos text")
        conn.execute("UPDATE up_m SET pos = (ARRAY['n','v','r'])[1 + id % 3]")
        add_compressed_column(conn, "up_m", "embedding", "up_bin", "e", progress=False)
        add_ivf_lists(conn, "up_m", "embedding", 6, code_column="e", niter=5)
        with pytest.raises(CatalogError, match="version 0.5.0.*need 0.6.0"):
            mirror_columns(conn, "up_m", "e", ["pos"])

        up = install(conn)
        assert (up.previous, up.current) == ("0.5.0", "0.6.0")
        # the old trigger (5 arguments) under the new function: codes and lists current
        far = -2 * x[3]
        conn.execute("INSERT INTO up_m (id, embedding, pos) VALUES (5000, %s, 'r')",
                     [vector_text(far)])  # fmt: skip
        conn.execute("UPDATE up_m SET embedding = %s WHERE id = 4", [vector_text(x[5])])
        keys, codes = store_codes(conn, "up_m", "e")
        got = dict(zip(keys, codes.tolist(), strict=True))
        assert got[5000] == codec.encode(far[None, :])[0].tolist()
        assert got[4] == codec.encode(x[5:6])[0].tolist()
        lists = ivf_lists(conn, "up_m", "e")
        assert lists is not None and lists.store is not None
        coarse = load_codec(conn, lists.codec_name)
        (lid,) = conn.execute(
            sql.SQL("SELECT list FROM {} WHERE pk = 5000").format(
                sql.Identifier("vecext", lists.store)
            )
        ).fetchone()
        assert lid == int(coarse.assign(far[None, :])[0])

        # mirrors beside the lists: one trigger keeps both
        mirror_columns(conn, "up_m", "e", ["pos"])
        (args,) = conn.execute(
            "SELECT tgnargs FROM pg_trigger WHERE tgrelid = 'up_m'::regclass AND tgname = %s",
            [lists.store],
        ).fetchone()
        assert args == 6
        far2 = -2 * x[8]
        conn.execute("INSERT INTO up_m (id, embedding, pos) VALUES (5001, %s, 'v')",
                     [vector_text(far2)])  # fmt: skip
        conn.execute("UPDATE up_m SET pos = 'n' WHERE id % 7 = 0")
        assert_mirrored(conn, "up_m", "e", ["pos"])
        (lid,) = conn.execute(
            sql.SQL("SELECT list FROM {} WHERE pk = 5001").format(
                sql.Identifier("vecext", lists.store)
            )
        ).fetchone()
        assert lid == int(coarse.assign(far2[None, :])[0])
        r = search(conn, "up_m", "embedding", far2, 3, strategy="ivf", filter={"pos": "v"})
        assert r.ids[0] == 5001 and "filter runs on code store" in r.plan.explain()

        # the downgrade is refused while a store mirrors columns, then allowed
        refused = r"0.6.0 cannot be downgraded.*public\.up_m\.e"
        with pytest.raises(CatalogError, match=refused), conn.transaction():
            revert_script(conn, "vecext--0.5.0--0.6.0.sql")
        assert installed_version(conn) == "0.6.0"
        drop_compressed_column(conn, "up_m", "e")
        with conn.transaction():
            assert revert_script(conn, "vecext--0.5.0--0.6.0.sql")
        assert installed_version(conn) == "0.5.0"
        # 0.5.0's trigger function is back (SECURITY DEFINER, pinned search_path)
        (secdef, cfg) = conn.execute(
            "SELECT prosecdef, proconfig FROM pg_proc WHERE oid = 'vecext.store_trigger'::regproc"
        ).fetchone()
        assert secdef and any(c.startswith("search_path=pg_catalog") for c in cfg)
        add_compressed_column(conn, "up_m", "embedding", "up_bin", "e", progress=False)
        conn.execute("UPDATE up_m SET embedding = %s WHERE id = 9", [vector_text(x[1])])
        keys, codes = store_codes(conn, "up_m", "e", "pk = 9")
        assert np.array_equal(codes[0], codec.encode(x[1:2])[0])
    finally:
        conn.close()


def test_upgraded_function_keeps_its_settings(pg_catalog) -> None:
    (secdef, cfg) = pg_catalog.execute(
        "SELECT prosecdef, proconfig FROM pg_proc WHERE oid = 'vecext.store_trigger'::regproc"
    ).fetchone()
    assert secdef and len(cfg) == 1 and cfg[0].startswith("search_path=pg_catalog, ")
    assert cfg[0].endswith(", pg_temp")
