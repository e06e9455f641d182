"""Mirroring from SQL alone (catalog 0.6.0): ``vecext.mirror_columns`` and
``vecext.unmirror_columns`` leave a code store exactly as ``vecext.postgres.mirror_columns``
and ``unmirror_columns`` do (store columns and their types and collations, btrees, the
trigger's arguments and columns, IVF lists included, the catalog record), the values
follow every write, and bad input is refused with an error naming the problem."""

from __future__ import annotations

import psycopg
import pytest

from tests.postgres.test_pg_mirrors import assert_mirrored, codec, make_table  # noqa: F401
from vecext.postgres import (
    add_compressed_column,
    add_ivf_lists,
    mirror_columns,
    mirrored_columns,
    unmirror_columns,
)
from vecext.postgres.columns import compressed_column


def setup(conn: psycopg.Connection, table: str, *, lists: bool) -> None:
    make_table(conn, table)
    conn.execute(f'ALTER TABLE {table} ADD COLUMN tag text COLLATE "C"')
    conn.execute(f"UPDATE {table} SET tag = 't' || (id % 3)")
    add_compressed_column(conn, table, "embedding", "mir_bin", "e", progress=False)
    if lists:
        add_ivf_lists(conn, table, "embedding", 4, niter=5)


def facts(conn: psycopg.Connection, table: str) -> dict[str, object]:
    """What mirroring makes, with the table's and the store's names taken out."""
    cc = compressed_column(conn, table, "e")
    store = str(cc.store_name)

    def plain(text: str) -> str:
        text = text.replace(store, "S").replace(f"public.{table}", "T")
        return text.replace(cc.ivf_codec, "I") if cc.ivf_codec else text

    (trigger,) = conn.execute(
        "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t WHERE t.tgrelid = %s::regclass "
        "AND t.tgname = %s",
        [table, store],
    ).fetchone()
    columns = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attcollation FROM "
        "pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT "
        "a.attisdropped ORDER BY a.attnum",
        [f"vecext.{store}"],
    ).fetchall()
    indexes = [
        plain(r[0])
        for r in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'vecext' AND tablename = %s "
            "ORDER BY indexname",
            [store],
        )
    ]
    (attnums,) = conn.execute(
        "SELECT mirror_attnums FROM vecext.compressed_columns WHERE id = %s", [cc.id]
    ).fetchone()
    return {"trigger": plain(trigger), "columns": columns, "indexes": indexes, "attnums": attnums}


def sql_mirror(conn: psycopg.Connection, fn: str, table: str, columns: list[str]) -> list[str]:
    (got,) = conn.execute(f"SELECT vecext.{fn}(%s, 'e', %s::name[])", [table, columns]).fetchone()
    return list(got)


@pytest.mark.parametrize("lists", [False, True], ids=["codes", "ivf_lists"])
def test_sql_mirroring_is_the_python_mirroring(mconn, codec, lists):  # noqa: F811
    conn = mconn
    py, sq = f"msp_{int(lists)}", f"mss_{int(lists)}"
    for t in (py, sq):
        setup(conn, t, lists=lists)
    assert facts(conn, py) == facts(conn, sq)

    assert mirror_columns(conn, py, "e", ["pos", "tag"]) == ["pos", "tag"]
    assert sql_mirror(conn, "mirror_columns", sq, ["pos", "tag"]) == ["pos", "tag"]
    assert facts(conn, py) == facts(conn, sq)
    assert facts(conn, sq)["columns"][-1][2] != 0  # tag's collation "C" in the store
    assert mirrored_columns(conn, sq, "e") == ["pos", "tag"]
    assert assert_mirrored(conn, sq, "e", ["pos", "tag"]) == 300

    # columns mirrored already are left alone; the new one is added after them
    assert mirror_columns(conn, py, "e", ["tag", "score"]) == ["pos", "tag", "score"]
    assert sql_mirror(conn, "mirror_columns", sq, ["tag", "score"]) == ["pos", "tag", "score"]
    assert facts(conn, py) == facts(conn, sq)

    # the store's trigger keeps them current
    conn.execute(
        f"UPDATE {sq} SET pos = 'x', tag = NULL WHERE id < 20; DELETE FROM {sq} WHERE id > 290;"
        f"INSERT INTO {sq} (id, embedding, pos, score, tag) "
        f"SELECT id + 1000, embedding, 'y', 1.5, 'new' FROM {sq} WHERE id < 5"
    )
    assert assert_mirrored(conn, sq, "e", ["pos", "tag", "score"]) == 300 - 9 + 5

    assert unmirror_columns(conn, py, "e", ["tag"]) == ["pos", "score"]
    assert sql_mirror(conn, "unmirror_columns", sq, ["tag"]) == ["pos", "score"]
    assert facts(conn, py) == facts(conn, sq)
    assert unmirror_columns(conn, py, "e", ["pos", "score"]) == []
    assert sql_mirror(conn, "unmirror_columns", sq, ["pos", "score"]) == []
    assert facts(conn, py) == facts(conn, sq)
    assert facts(conn, sq)["attnums"] is None


def test_sql_mirroring_bad_input(mconn, codec):  # noqa: F811
    conn = mconn
    make_table(conn, "msb")
    add_compressed_column(conn, "msb", "embedding", "mir_bin", "e", progress=False)
    add_compressed_column(conn, "msb", "embedding", "mir_bin", "t", layout="table", progress=False)
    cases = [
        ("mirror_columns", "e", ["nope"], r"table msb has no column nope to mirror"),
        ("mirror_columns", "e", [], r"mirror_columns of msb.e: name at least one column"),
        ("mirror_columns", "e", ["pos", "pos"], r"mirror_columns of msb.e: pos named twice"),
        ("mirror_columns", "e", ["embedding"], r"msb.embedding is the vector column of e"),
        ("mirror_columns", "e", ["id"], r"msb.id is the primary key column of e"),
        ("mirror_columns", "t", ["pos"], r"msb.t keeps its codes in the table"),
        ("mirror_columns", "x", ["pos"], r"msb.x is not a vecext compressed column"),
        ("unmirror_columns", "e", ["pos"], r"msb.e does not mirror pos \(it mirrors: nothing\)"),
    ]
    for fn, code, columns, message in cases:
        with pytest.raises(psycopg.Error, match=message):
            conn.execute(f"SELECT vecext.{fn}('msb', %s, %s::name[])", [code, columns])
    conn.execute("ALTER TABLE msb ADD COLUMN v vector(3)")
    with pytest.raises(psycopg.Error, match=r"msb.v is vector\(3\): vector columns are not"):
        conn.execute("SELECT vecext.mirror_columns('msb', 'e', ARRAY['v'])")
    # a refused call changes nothing
    assert mirrored_columns(conn, "msb", "e") == []
    assert sql_mirror(conn, "mirror_columns", "msb", ["pos"]) == ["pos"]
    with pytest.raises(psycopg.Error, match=r"msb.e does not mirror note \(it mirrors: pos\)"):
        conn.execute("SELECT vecext.unmirror_columns('msb', 'e', ARRAY['note', 'pos'])")
    assert mirrored_columns(conn, "msb", "e") == ["pos"]


def test_sql_mirroring_before_the_backfill_fills_in_batches(mconn, codec):  # noqa: F811
    # the SQL-only way for a large table: mirror while the store is still empty (no
    # UPDATE, no long lock), then CALL vecext.backfill, which writes the mirrored values
    # with the codes in committed batches
    conn, t = mconn, "msf"
    make_table(conn, t)
    conn.execute("SELECT vecext.add_compressed_column(%s, 'embedding', 'mir_bin', 'e')", [t])
    assert sql_mirror(conn, "mirror_columns", t, ["pos", "score"]) == ["pos", "score"]
    store = compressed_column(conn, t, "e").store_name
    assert conn.execute(f"SELECT count(*) FROM vecext.{store}").fetchone() == (0,)
    conn.execute("CALL vecext.backfill(%s, 'e', 40)", [t])
    assert assert_mirrored(conn, t, "e", ["pos", "score"]) == 300
    assert mirrored_columns(conn, t, "e") == ["pos", "score"]
