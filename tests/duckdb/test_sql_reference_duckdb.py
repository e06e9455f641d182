"""The SQL reference (vecext/sqlapi.py) against DuckDB: every example runs, and the
functions in schema ``vecext`` are exactly the documented ones.

The fixture is the one the reference describes: ``doc_items (id INTEGER PRIMARY KEY,
embedding FLOAT[16])`` with 600 seeded rows, codecs ``doc_pq`` (pq, m=4, l2),
``doc_bin`` (binary) and ``doc_half`` (half), ``embedding_pq`` (doc_pq) filled,
and the relevance adapter ``doc_rel``.
The internal ``vecext_udf_*`` UDFs are not API (and live outside schema ``vecext``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import duckdb
import pytest

import vecext.duckdb as vd
from tests.duckdb.conftest import clustered, load_table
from tests.relevance.sql_data import doc_adapter
from vecext import sqlapi
from vecext.codecs import make_codec
from vecext.duckdb.relevance import save_adapter

DUCK_FUNCTIONS = [f for f in sqlapi.FUNCTIONS if sqlapi.DUCK in f.backends]
CODECS = ("doc_pq", "doc_bin", "doc_half")


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    con = vd.connect(tmp_path_factory.mktemp("sqlref") / "doc.duckdb", vss=False)
    x = clustered(600, 16, seed=40)
    load_table(con, "doc_items", x)
    vd.save_codec(con, "doc_pq", make_codec("pq", 16, "l2", m=4, niter=8).train(x))
    vd.save_codec(con, "doc_bin", make_codec("binary", 16).train(x))
    vd.save_codec(con, "doc_half", make_codec("half", 16))
    vd.add_compressed_column(
        con, "doc_items", "embedding", "doc_pq", "embedding_pq", progress=False
    )
    save_adapter(con, "doc_rel", doc_adapter(x))
    yield con
    con.close()


@pytest.mark.parametrize("fn", DUCK_FUNCTIONS, ids=[f.name for f in DUCK_FUNCTIONS])
def test_example_runs(doc, fn):
    rows = doc.execute(fn.example).fetchall()
    assert rows, f"{fn.name}: the example returned no rows"
    assert all(v is not None for row in rows for v in row), f"{fn.name}: NULL in {rows}"


def test_examples_give_the_documented_values(doc):
    fp = vd.codec_info(doc, "doc_pq").fingerprint
    assert doc.execute("SELECT vecext.codec_fingerprint('doc_pq')").fetchone() == (fp,)
    assert doc.execute(sqlapi.by_name()["vecext.codec_lut"].example).fetchone() == (4 * 256,)
    assert doc.execute(sqlapi.by_name()["vecext.pq_lut"].example).fetchone() == (4 * 256,)
    assert doc.execute(sqlapi.by_name()["vecext.{codec}_lut"].example).fetchone() == (4 * 256,)
    # the nearest item to item 1 by its own PQ codes is item 1 (or shares its codes)
    ids = [
        r[0] for r in doc.execute(sqlapi.by_name()["vecext.{codec}_distance"].example).fetchall()
    ]
    same = doc.execute(
        "SELECT a.embedding_pq = b.embedding_pq FROM doc_items a, doc_items b "
        "WHERE a.id = 1 AND b.id = ?",
        [ids[0]],
    ).fetchone()
    assert same == (True,)
    assert doc.execute("SELECT vecext.vecext_version()").fetchone() == ("0.6.0",)


def _arg_names(signature: str) -> list[str]:
    """``(codec text, v vector) -> bytea`` -> ``['codec', 'v']``."""
    args = signature.split(" -> ")[0].strip("()")
    return [a.split()[0] for a in args.split(",") if a.strip()]


def test_registered_functions_are_the_documented_ones(doc):
    rows = doc.execute(
        "SELECT function_name, parameters FROM duckdb_functions() "
        "WHERE schema_name = 'vecext' AND database_name = current_database()"
    ).fetchall()
    registered: dict[str, list[str]] = {}
    per_codec: dict[str, set[str]] = {c: set() for c in CODECS}
    for name, params in rows:
        codec = next((c for c in CODECS if name.startswith(c + "_")), None)
        if codec is not None:
            suffix = name[len(codec) + 1 :]
            per_codec[codec].add(suffix)
            registered["vecext.{codec}_" + suffix] = list(params)
        else:
            registered["vecext." + name] = list(params)
    documented = {f.name: f for f in DUCK_FUNCTIONS}
    assert set(registered) == set(documented)
    for name, params in registered.items():
        want = _arg_names(documented[name].signature)
        if documented[name].per_codec:
            assert params[0] == want[0], name  # the rest depend on the codec's kind
        else:
            assert params == want, name
    assert per_codec == {
        "doc_pq": {"encode", "decode", "lut", "distance"},
        "doc_bin": {"encode", "decode", "distance"},
        "doc_half": {"encode", "decode", "distance"},
    }
    internal = doc.execute(
        "SELECT DISTINCT schema_name FROM duckdb_functions() WHERE function_name LIKE 'vecext_udf_%'"
    ).fetchall()
    assert internal == [("main",)]  # system.main: global, never in schema vecext


def test_documented_duckdb_types(doc):
    """The column types the reference's notes give for DuckDB."""
    note = sqlapi.by_name()["vecext.{codec}_encode"].notes
    assert re.search(r"pq UTINYINT\[M\], binary UBIGINT\[ceil\(d/64\)\]", note)
    q = "(SELECT embedding FROM doc_items WHERE id = 1)"
    types = doc.execute(
        f"SELECT typeof(vecext.doc_pq_encode({q})), typeof(vecext.doc_bin_encode({q})), "
        f"typeof(vecext.doc_half_encode({q})), typeof(vecext.encode('doc_pq', {q})), "
        f"typeof(vecext.doc_half_decode(vecext.doc_half_encode({q}))), "
        f"typeof(vecext.decode('doc_half', vecext.encode('doc_half', {q})))"
    ).fetchone()
    assert types == ("UTINYINT[4]", "UBIGINT[1]", "BLOB", "BLOB", "FLOAT[16]", "FLOAT[]")
