"""The SQL reference (vecext/sqlapi.py) against PostgreSQL: every example runs, and
the functions in schema ``vecext`` are exactly the documented ones, with the
documented arguments and results.

The fixture is the one the reference describes: ``doc_items (id int primary key,
embedding vector(16))`` with 600 seeded rows, codecs ``doc_pq`` (pq, m=4, l2),
``doc_bin`` (binary) and ``doc_half`` (half), ``embedding_pq`` (doc_pq)
backfilled, and the relevance adapter ``doc_rel``. It is built once and cloned (CREATE DATABASE ... TEMPLATE) for each
example, since some examples change it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import _create_db, _drop_db, with_dbname
from tests.postgres.conftest import clustered, load_table
from tests.relevance.sql_data import doc_adapter
from vecext import sqlapi
from vecext.codecs import make_codec
from vecext.postgres import add_compressed_column, connect, install, save_codec
from vecext.postgres.relevance import save_adapter

PG_FUNCTIONS = [f for f in sqlapi.FUNCTIONS if sqlapi.PG in f.backends]
CODECS = ("doc_pq", "doc_bin", "doc_half")


@pytest.fixture(scope="module")
def fixture_db(pg_server_dsn: str, pg_template: str) -> Iterator[str]:
    name = _create_db(pg_server_dsn, pg_template)
    with connect(with_dbname(pg_server_dsn, name), autocommit=True) as conn:
        install(conn)
        x = clustered(600, 16, seed=40)
        load_table(conn, "doc_items", x)
        save_codec(conn, "doc_pq", make_codec("pq", 16, "l2", m=4, niter=8).train(x))
        save_codec(conn, "doc_bin", make_codec("binary", 16).train(x))
        save_codec(conn, "doc_half", make_codec("half", 16))
        add_compressed_column(
            conn, "doc_items", "embedding", "doc_pq", "embedding_pq", progress=False
        )
        save_adapter(conn, "doc_rel", doc_adapter(x))
    yield name
    _drop_db(pg_server_dsn, name)


@pytest.fixture
def example_conn(pg_server_dsn: str, fixture_db: str) -> Iterator[psycopg.Connection]:
    """A fresh copy of the fixture database."""
    name = _create_db(pg_server_dsn, fixture_db)
    conn = connect(with_dbname(pg_server_dsn, name), autocommit=True)
    yield conn
    conn.close()
    _drop_db(pg_server_dsn, name)


@pytest.mark.parametrize("fn", PG_FUNCTIONS, ids=[f.name for f in PG_FUNCTIONS])
def test_example_runs(example_conn, fn):
    cur = example_conn.execute(fn.example)
    if cur.description is not None:
        rows = cur.fetchall()
        assert rows, f"{fn.name}: the example returned no rows"
        assert all(v is not None for row in rows for v in row), f"{fn.name}: NULL in {rows}"


def _normalise(args: str) -> str:
    """``code_column name DEFAULT NULL::name`` -> ``code_column name DEFAULT NULL``;
    ``IN tbl regclass`` (a procedure's argument mode) -> ``tbl regclass``."""
    args = re.sub(r"(^|, )IN ", r"\1", args)
    return re.sub(r"::[a-z ]+", "", args).strip()


def test_registered_functions_are_the_documented_ones(fixture_db, pg_server_dsn):
    with connect(with_dbname(pg_server_dsn, fixture_db), autocommit=True) as conn:
        rows = conn.execute(
            """SELECT p.proname, pg_get_function_arguments(p.oid), p.prokind,
                      pg_get_function_result(p.oid)
               FROM pg_proc p WHERE p.pronamespace = 'vecext'::regnamespace"""
        ).fetchall()
    registered: dict[str, tuple[str, str]] = {}
    per_codec: dict[str, set[str]] = {c: set() for c in CODECS}
    for proname, args, kind, result in rows:
        codec = next((c for c in CODECS if proname.startswith(c + "_")), None)
        if codec is not None:
            per_codec[codec].add(proname[len(codec) + 1 :])
            registered["vecext.{codec}_" + proname[len(codec) + 1 :]] = ("", "")
        else:
            registered["vecext." + proname] = (args, "procedure" if kind == "p" else result)
    documented = {f.name: f for f in PG_FUNCTIONS}
    assert set(registered) == set(documented)
    # generic functions: the documented arguments and result
    for name, (args, result) in registered.items():
        if documented[name].per_codec:
            continue
        doc_args, doc_result = documented[name].signature.split(" -> ")
        assert _normalise(args) == doc_args.strip("()"), name
        assert result == doc_result, name
    # every codec gets encode / decode / distance / prepare; only PQ a lookup table
    base = {"encode", "decode", "distance", "prepare"}
    assert per_codec == {"doc_pq": base | {"lut"}, "doc_bin": base, "doc_half": base}
