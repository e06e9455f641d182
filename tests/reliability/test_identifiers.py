"""Issue 13 item 7: one spelling of table names for every public function, both backends.

A table is ``name`` or ``schema.name`` (DuckDB: also ``database.schema.name``), each part
as stored or SQL-quoted, or a ``psycopg.sql.Identifier`` / tuple of parts. Before this,
``search()`` refused quoted names while ``train_codec`` & co. needed them, Alembic ops
quoted with ``json.dumps`` (``café``, ``it"s``, ``a\\b`` did not exist) and DuckDB's
``search()`` failed on a name with ``"`` and could not reach an ATTACHed database.
"""

from __future__ import annotations

import uuid
import warnings

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

import vecext.duckdb as vd
import vecext.postgres as vp
from tests.reliability.conftest import exact_ids, pg_load
from vecext.catalog.names import IdentifierError, parse_table, quote_ident
from vecext.errors import VecextError

D = 8
RNG = np.random.default_rng(7)
X = RNG.standard_normal((120, D)).astype(np.float32)
Q = RNG.standard_normal(D).astype(np.float32)

# names that are hard to spell: unicode, quotes, backslashes, dots, spaces, %
_alphabet = st.characters(
    codec="utf-8", exclude_characters="\x00", exclude_categories=("Cs", "Cc")
) | st.sampled_from(['"', "\\", ".", " ", "%", "'", "é", "ß", "😀", "$"])


def _pg_name(max_bytes: int = 63) -> st.SearchStrategy[str]:
    return (
        st.text(_alphabet, min_size=1, max_size=40)
        .map(
            lambda s: (
                s
                if len(s.encode()) <= max_bytes
                else s.encode()[:max_bytes].decode("utf-8", "ignore")
            )
        )
        .filter(lambda s: bool(s) and s.strip() == s)
    )


def spellings(parts: tuple[str, ...]) -> list[object]:
    """Every accepted spelling of a table: quoted text, tuple, and plain text when the
    parts need no quoting (no dot, no leading quote)."""
    out: list[object] = [".".join(quote_ident(p) for p in parts), parts]
    if all("." not in p and not p.startswith('"') for p in parts):
        out.append(".".join(parts))
    return out


# ---------------------------------------------------------------------------
# the parser


@given(st.lists(_pg_name(), min_size=1, max_size=3).map(tuple))
def test_quoted_text_round_trips(parts):
    assert parse_table(".".join(quote_ident(p) for p in parts), max_parts=3).parts == parts


def test_parser_spellings():
    assert parse_table('"my schema"."it""s"').parts == ("my schema", 'it"s')
    assert parse_table('app."MyItems"').parts == ("app", "MyItems")
    assert parse_table('it"s').parts == ('it"s',)
    assert parse_table("a\\b").parts == ("a\\b",)
    assert parse_table(sql.Identifier("a.b", "c")).parts == ("a.b", "c")
    assert parse_table("MyItems").candidates() == [("MyItems",), ("myitems",)]
    assert parse_table('"MyItems"').candidates() == [("MyItems",)]
    for bad in ['"open', "a..b", "a.", '"x"y', "", "a.b.c"]:
        with pytest.raises(IdentifierError):
            parse_table(bad)
    with pytest.raises(IdentifierError, match="at most 63 bytes"):
        vp.search(None, "é" * 32, "embedding", Q, 3) if False else parse_table(
            "é" * 32, max_bytes=63
        )


# ---------------------------------------------------------------------------
# PostgreSQL


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_pg_name(), min_size=1, max_size=2).map(tuple))
def test_pg_search_under_any_name(mconn, parts):
    if len(parts) == 2 and parts[0].lower().startswith("pg_"):
        parts = ("s" + parts[0], parts[1])  # pg_ schemas are reserved
    try:
        pg_load(mconn, parts, X)
    except Exception as exc:  # the name already exists (hypothesis repeats shapes)
        pytest.skip(f"table exists: {exc}")
    try:
        want = exact_ids(X, Q, 5)
        for spelled in spellings(parts) + [sql.Identifier(*parts)]:
            r = vp.search(mconn, spelled, "embedding", Q, 5, metric="l2", strategy="exact")
            assert list(r.ids) == list(want), spelled
    finally:
        mconn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(*parts)))


@pytest.mark.parametrize(
    "parts",
    [("MyItems",), ("café",), ('it"s',), ("a\\b",), ("my schema", 'it"s'), ("ü" * 31 + "x",)],
)
def test_pg_every_verb_under_hard_names(mconn, parts):
    """train_codec, add_compressed_column, calibrate, add_ivf_lists, create_vector_index,
    search (exact and compressed), drop_compressed_column: each spelling works."""
    pg_load(mconn, parts, X)
    try:
        for t in spellings(parts) + [sql.Identifier(*parts)]:
            tag = f"{uuid.uuid4().hex[:8]}"
            vp.train_codec(mconn, f"c{tag}", t, "embedding", "binary", metric="cosine")
            col = vp.add_compressed_column(
                mconn, t, "embedding", f"c{tag}", f"k{tag}", progress=False
            )
            assert vp.compressed_column(mconn, t, col).table.name == parts[-1]
            vp.calibrate(mconn, t, col)
            vp.add_ivf_lists(mconn, t, "embedding", 4, code_column=col)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                vp.create_vector_index(mconn, t, "embedding", name=f"ix{tag}")
            r = vp.search(mconn, t, "embedding", Q, 5, strategy="compressed", using=col)
            assert len(r.ids) == 5
            vp.drop_vector_index(mconn, t, f"ix{tag}")
            vp.drop_compressed_column(mconn, t, col)
            vp.drop_codec(mconn, f"c{tag}")
    finally:
        mconn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(*parts)))
        if len(parts) == 2:
            mconn.execute(sql.SQL("DROP SCHEMA {}").format(sql.Identifier(parts[0])))


def test_pg_names_longer_than_63_bytes_are_refused(mconn):
    with pytest.raises(VecextError, match="at most 63 bytes"):
        vp.search(mconn, "é" * 32, "embedding", Q, 3)
    with pytest.raises(VecextError, match="at most 63 bytes"):
        vp.train_codec(mconn, "c64", "x" * 64, "embedding", "binary")


def test_pg_unquoted_mixed_case_folds_like_sql(mconn):
    pg_load(mconn, ("items_fold",), X)
    try:
        r = vp.search(mconn, "Items_Fold", "embedding", Q, 3, metric="l2", strategy="exact")
        assert list(r.ids) == list(exact_ids(X, Q, 3))
        with pytest.raises(VecextError, match="does not exist"):
            vp.search(mconn, '"Items_Fold"', "embedding", Q, 3)
    finally:
        mconn.execute("DROP TABLE items_fold")


@pytest.mark.parametrize("name", ["café", 'it"s', "a\\b"])
def test_alembic_ops_under_hard_names(mconn, module_dsn, name):
    import sqlalchemy as sa
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    import vecext.alembic  # noqa: F401  (registers the operations)
    from vecext.postgres.connection import sqlalchemy_url

    pg_load(mconn, (name,), X)
    tag = uuid.uuid4().hex[:8]
    engine = sa.create_engine(sqlalchemy_url(module_dsn), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn)
            with ctx.begin_transaction():
                op = Operations(ctx)
                op.create_codec(f"a{tag}", table=name, column="embedding", kind="binary",
                                metric="cosine")  # fmt: skip
                col = op.add_compressed_column(
                    name, "embedding", f"a{tag}", f"k{tag}", layout="table"
                )
                # without layout= (and no model): a code store
                stored = op.add_compressed_column(name, "embedding", f"a{tag}", f"s{tag}")
                op.create_vector_index(f"ix{tag}", name, "embedding", m=8)
        assert vp.compressed_column(mconn, (name,), col).codec == f"a{tag}"
        n = mconn.execute(
            sql.SQL("SELECT count({}) FROM {}").format(sql.Identifier(col), sql.Identifier(name))
        ).fetchone()[0]
        assert n == len(X)
        store = vp.compressed_column(mconn, (name,), stored).store
        assert store is not None
        n = mconn.execute(sql.SQL("SELECT count(code) FROM {}").format(store)).fetchone()[0]
        assert n == len(X)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn)
            with ctx.begin_transaction():
                op = Operations(ctx)
                op.drop_vector_index(f"ix{tag}")
                op.drop_compressed_column(name, col)
                op.drop_compressed_column(name, stored)
                op.drop_codec(f"a{tag}")
    finally:
        engine.dispose()
        mconn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))


# ---------------------------------------------------------------------------
# DuckDB


def _duck_load(con: duckdb.DuckDBPyConnection, parts: tuple[str, ...], x: np.ndarray) -> str:
    full = ".".join(quote_ident(p) for p in parts)
    if len(parts) == 2:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(parts[0])}")
    con.execute(f"CREATE TABLE {full} (id INTEGER PRIMARY KEY, embedding FLOAT[{x.shape[1]}])")
    con.execute(
        f"INSERT INTO {full} SELECT i, e FROM (SELECT unnest(range(?)) AS i, "
        f"unnest(?::FLOAT[{x.shape[1]}][]) AS e)",
        [len(x), x.tolist()],
    )
    return full


@pytest.fixture(scope="module")
def dcon():
    con = vd.connect(":memory:")
    yield con
    con.close()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_pg_name(), min_size=1, max_size=2).map(tuple))
def test_duckdb_search_under_any_name(dcon, parts):
    try:
        full = _duck_load(dcon, parts, X)
    except duckdb.Error as exc:  # the name exists in another case (DuckDB folds case)
        pytest.skip(f"table exists: {exc}")
    try:
        want = exact_ids(X, Q, 5)
        for spelled in spellings(parts):
            r = vd.search(dcon, spelled, "embedding", Q, 5, metric="l2", strategy="exact")
            assert list(r.ids) == list(want), spelled
    finally:
        dcon.execute(f"DROP TABLE {full}")


@pytest.mark.parametrize(
    "parts", [("MyItems",), ("café",), ('it"s',), ("a\\b",), ("my schema", 'it"s')]
)
def test_duckdb_every_verb_under_hard_names(dcon, parts):
    full = _duck_load(dcon, parts, X)
    try:
        for t in spellings(parts):
            tag = uuid.uuid4().hex[:8]
            vd.train_codec(dcon, f"c{tag}", t, "embedding", "binary", metric="cosine")
            col = vd.add_compressed_column(dcon, t, "embedding", f"c{tag}", f"k{tag}")
            vd.calibrate(dcon, t, col)
            vd.add_ivf_lists(dcon, t, "embedding", 4, code_column=col)
            r = vd.search(dcon, t, "embedding", Q, 5, strategy="compressed", using=col)
            assert len(r.ids) == 5
            vd.drop_compressed_column(dcon, t, col)
            vd.drop_codec(dcon, f"c{tag}")
    finally:
        dcon.execute(f"DROP TABLE {full}")


def test_duckdb_search_reaches_attached_databases(tmp_path):
    con = vd.connect(":memory:")
    other = tmp_path / "other db.duckdb"
    con.execute(f"ATTACH '{other}' AS \"other db\"")
    con.execute('CREATE SCHEMA "other db"."s"')
    _duck_load(con, ("other db", "s", 'it"s'), X)
    _duck_load(con, ("other db", "main", "items"), X[::-1].copy())
    want = exact_ids(X, Q, 5)
    for t in ['"other db".s."it""s"', ("other db", "s", 'it"s')]:
        r = vd.search(con, t, "embedding", Q, 5, metric="l2")
        assert list(r.ids) == list(want)
    # a table of the same name in the current database, with codes: neither is mistaken
    # for the other (the catalog of the current database describes only its own tables)
    _duck_load(con, ("items",), X)
    vd.train_codec(con, "bits_here", "items", "embedding", "binary", metric="l2")
    vd.add_compressed_column(con, "items", "embedding", "bits_here")
    for _ in range(2):  # cached table facts too
        r = vd.search(con, '"other db".items', "embedding", Q, 5, metric="l2")
        assert list(r.ids) == list(exact_ids(X[::-1].copy(), Q, 5)) and r.strategy == "exact"
        r = vd.search(con, "items", "embedding", Q, 5, metric="l2", strategy="compressed")
        assert len(set(r.ids.tolist()) & set(exact_ids(X, Q, 5).tolist())) >= 4
    vd.train_codec(con, "cat", '"other db".items', "embedding", "binary", metric="cosine")
    with pytest.raises(VecextError, match="current database"):
        vd.add_compressed_column(con, '"other db".items', "embedding", "cat")
    con.close()
