"""Filters compile to bound parameters; injection through values or names fails safely."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from psycopg import sql

from vecext.duckdb.filters import compile_filter as duck_compile
from vecext.duckdb.filters import table_columns as duck_columns
from vecext.postgres.filters import compile_filter as pg_compile
from vecext.postgres.filters import table_columns as pg_columns
from vecext.postgres.filters import table_identifier
from vecext.search.filters import (
    And,
    Eq,
    FilterError,
    In,
    Range,
    check_columns,
    combine,
    describe,
    mask,
    parse_cli_filters,
    parse_filter,
)

EVIL = "x'); DROP TABLE items; --"


@pytest.fixture
def pg_items(pg_conn):
    pg_conn.execute(
        "CREATE TABLE items (id int primary key, pos text, year int, embedding vector(2))"
    )
    pg_conn.execute(
        "INSERT INTO items SELECT i, CASE WHEN i % 3 = 0 THEN 'n' ELSE 'v' END, 2000 + i % 20, "
        "'[1,1]' FROM generate_series(1, 300) i"
    )
    pg_conn.execute("INSERT INTO items VALUES (1000, %s, 1990, '[0,0]')", [EVIL])
    return pg_conn


@pytest.fixture
def duck_items(duck):
    duck.execute("CREATE TABLE items (id INTEGER, pos VARCHAR, year INTEGER)")
    duck.execute(
        "INSERT INTO items SELECT i, CASE WHEN i % 3 = 0 THEN 'n' ELSE 'v' END, 2000 + i % 20 "
        "FROM range(1, 301) t(i)"
    )
    duck.execute("INSERT INTO items VALUES (1000, ?, 1990)", [EVIL])
    return duck


FILTERS = [
    ({"pos": "n"}, 100),
    ({"pos": ["n", "v"]}, 300),
    ({"year": (2005, 2009)}, 75),
    ({"pos": "n", "year": (2005, 2009)}, 25),
    (Range("year", hi=2002, inclusive=False), 31),
    ({"pos": EVIL}, 1),
    (parse_cli_filters(["pos=n|v", "year=2000..2001"]), 30),
]


@pytest.mark.parametrize(("spec", "expected"), FILTERS)
def test_postgres_counts(pg_items, spec, expected):
    where, params = pg_compile(parse_filter(spec))
    q = sql.SQL("SELECT count(*) FROM items WHERE {}").format(where)
    assert pg_items.execute(q, params).fetchone()[0] == expected
    assert pg_items.execute("SELECT count(*) FROM items").fetchone()[0] == 301


@pytest.mark.parametrize(("spec", "expected"), FILTERS)
def test_duckdb_counts(duck_items, spec, expected):
    where, params = duck_compile(parse_filter(spec))
    assert (
        duck_items.execute(f"SELECT count(*) FROM items WHERE {where}", params).fetchone()[0]
        == expected
    )


@pytest.mark.parametrize(("spec", "expected"), FILTERS)
def test_numpy_mask_agrees(spec, expected):
    ids = np.arange(1, 301)
    cols = {
        "pos": np.array(["n" if i % 3 == 0 else "v" for i in ids] + [EVIL], dtype=object),
        "year": np.concatenate([2000 + ids % 20, [1990]]),
    }
    assert int(mask(parse_filter(spec), cols).sum()) == expected


def test_sqlalchemy_expressions_bind_values(pg_items, duck_items):
    t = sa.table("items", sa.column("pos"), sa.column("year"))
    expr = sa.and_(t.c.pos == EVIL, t.c.year < 2000)
    where, params = pg_compile(parse_filter(expr))
    assert EVIL in params
    q = sql.SQL("SELECT count(*) FROM items WHERE {}").format(where)
    assert pg_items.execute(q, params).fetchone()[0] == 1
    where, params = duck_compile(parse_filter(t.c.pos.in_(["n", EVIL])))
    assert (
        duck_items.execute(f"SELECT count(*) FROM items WHERE {where}", params).fetchone()[0] == 101
    )


def test_unknown_column_is_named(pg_items, duck_items):
    for cols in (pg_columns(pg_items, "items"), duck_columns(duck_items, "items")):
        with pytest.raises(FilterError, match=r"'colour'.*do not exist in table items"):
            check_columns(parse_filter({"colour": "red"}), cols, "items")


def test_injection_through_identifiers_is_inert(pg_items, duck_items):
    evil_col = 'pos" = pos; DROP TABLE items; --'
    where, params = pg_compile(Eq(evil_col, "n"))
    q = sql.SQL("SELECT count(*) FROM items WHERE {}").format(where)
    import psycopg

    with pytest.raises(psycopg.errors.UndefinedColumn):
        pg_items.execute(q, params)
    assert pg_items.execute("SELECT count(*) FROM items").fetchone()[0] == 301
    where, params = duck_compile(Eq(evil_col, "n"))
    import duckdb

    with pytest.raises(duckdb.BinderException):
        duck_items.execute(f"SELECT count(*) FROM items WHERE {where}", params)
    assert duck_items.execute("SELECT count(*) FROM items").fetchone()[0] == 301
    with pytest.raises(FilterError, match="does not exist"):
        pg_columns(pg_items, "items; DROP TABLE items")
    assert table_identifier("app.items").as_string(pg_items) == '"app"."items"'


def test_combining_and_describing():
    f = combine({"pos": "n"}, In("lexname", ("a", "b")), None)
    assert isinstance(f, And) and len(f.parts) == 2
    assert describe(f) == "pos = 'n' AND lexname IN ('a', 'b')"
    with pytest.raises(FilterError, match="COLUMN=VALUE"):
        parse_cli_filters(["pos"])
    with pytest.raises(FilterError, match="no values"):
        In("pos", ())
    with pytest.raises(FilterError, match="no bounds"):
        Range("year")


def test_placeholder_characters_in_identifiers_stay_names(pg_conn, duck):
    """A ``%`` (psycopg's placeholder) or ``?`` (DuckDB's) inside a column name is part
    of the quoted name, not a parameter."""
    pg_conn.execute('CREATE TABLE pct (id int, "a%sb" text, "c%" int)')
    pg_conn.execute("INSERT INTO pct VALUES (1, 'x', 5), (2, 'y', 6), (3, 'x', 7)")
    where, params = pg_compile(parse_filter({"a%sb": "x", "c%": (6, 9)}))
    q = sql.SQL("SELECT count(*) FROM pct WHERE {}").format(where)
    assert pg_conn.execute(q, params).fetchone()[0] == 1
    where, params = pg_compile(parse_filter({"a%sb": ["x", "y"]}), alias="pct")
    q = sql.SQL("SELECT count(*) FROM pct WHERE {}").format(where)
    assert pg_conn.execute(q, params).fetchone()[0] == 3
    duck.execute('CREATE TABLE qm (id INTEGER, "a?b" VARCHAR, "c{}" INTEGER)')
    duck.execute("INSERT INTO qm VALUES (1, 'x', 5), (2, 'y', 6), (3, 'x', 7)")
    where, params = duck_compile(parse_filter({"a?b": ["x"], "c{}": (6, 9)}))
    assert duck.execute(f"SELECT count(*) FROM qm WHERE {where}", params).fetchone()[0] == 1


def test_one_compiler_for_both_dialects_and_the_bench():
    from vecext.search.sqlfilter import compile_filter
    from vecext.tools.bench.where import duck_condition, pg_condition

    pred = parse_filter({"pos": "n", "tag": ["a", "b"], "year": (2000, 2010)})
    text, params = duck_compile(pred)
    assert text == '("pos" = ?) AND ("tag" IN (?, ?)) AND ("year" >= ? AND "year" <= ?)'
    assert params == ["n", "a", "b", 2000, 2010]
    assert duck_condition(pred) == (text, params)
    composed, pg_params = pg_compile(pred)
    assert pg_params == ["n", ["a", "b"], 2000, 2010]
    assert pg_condition(pred)[1] == pg_params
    assert str(pg_condition(pred)[0]) == str(composed)
    with pytest.raises(FilterError, match="cannot compile filter"):
        compile_filter(object(), None)  # type: ignore[arg-type]
