"""The backend contract: behaviour every database backend must have, tested once.

A test here takes the ``backend`` fixture and runs once per database. The fixture
yields a :class:`Db`, a small adapter over one backend's connection: the same
equipped ``items`` table (20,000 x 32 seeded vectors with ``cat`` and ``tenant``,
PQ and binary compressed columns with IVF lists, calibrated, and an HNSW index; see
``pg_search_env`` and ``duck_search_env`` in ``tests/conftest.py``), SQL with ``?``
placeholders, and the adapter module's verbs. What differs between the databases
stays in ``tests/postgres`` and ``tests/duckdb``.

The ``fresh`` fixture gives each backend's fresh database with only the catalog
(:class:`Fresh`: the same, plus tables loaded from numpy and the generated functions
of a codec). To add a backend: give :data:`BACKENDS` its two builders.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import vecext
from vecext.search.registry import backend_for


@dataclass
class Db:
    """One backend under test."""

    name: str
    conn: Any
    #: the adapter module (``vecext.postgres``, ``vecext.duckdb``): the same verbs
    api: ModuleType
    #: the rows of ``items`` (``xb``, ``cat``, ``tenant``, ``xq``, ``truth()``) and
    #: what the fixture built (``extra``: ``ivf``, ``cal_pq``, ``cal_bin``, ``hnsw``)
    data: Any
    #: how a float vector is bound: SQL with one ``?`` and its parameter
    vector_param: Callable[[np.ndarray], tuple[str, Any]]

    def sql(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run ``query`` (``?`` placeholders) and fetch its rows (``[]`` without any)."""
        if self.name == "postgres" and params:
            query = query.replace("%", "%%").replace("?", "%s")
        cur = self.conn.execute(query, params or None)
        return cur.fetchall() if cur.description is not None else []

    def json(self, value: Any) -> Any:
        """A JSON column's value as Python (PostgreSQL decodes jsonb, DuckDB gives text)."""
        return json.loads(value) if isinstance(value, str) else value

    @property
    def backend_class(self) -> type:
        return type(backend_for(self.conn))

    def search(self, q: np.ndarray, k: int = 10, **kw: Any) -> vecext.SearchResult:
        """``vecext.search`` on ``items.embedding``."""
        return vecext.search(self.conn, "items", "embedding", q, k, **kw)

    def explain(self, q: np.ndarray, k: int = 10, **kw: Any) -> str:
        return vecext.explain(self.conn, "items", "embedding", q, k, **kw)


def _postgres(request: pytest.FixtureRequest) -> Iterator[Db]:
    import vecext.postgres as vp
    from tests.postgres.search_data import vector_text

    data = request.getfixturevalue("pg_search_env")
    conn = vp.connect(data.dsn, autocommit=True)
    try:
        yield Db("postgres", conn, vp, data, lambda v: ("?::vector", vector_text(v)))
    finally:
        conn.close()


def _duckdb(request: pytest.FixtureRequest) -> Iterator[Db]:
    import vecext.duckdb as vd

    con, data = request.getfixturevalue("duck_search_env")
    d = data.xb.shape[1]
    yield Db("duckdb", con, vd, data, lambda v: (f"?::FLOAT[{d}]", [float(x) for x in v]))


@dataclass
class Fresh(Db):
    """A fresh database of one backend with the vecext catalog and nothing else."""

    #: the schema tables are created in (``public``, ``main``)
    schema: str = ""

    def load_table(self, table: str, x: np.ndarray) -> None:
        """``table (id INTEGER PRIMARY KEY, embedding <vector type>(d))`` holding ``x``."""
        if self.name == "postgres":
            from tests.postgres.conftest import load_table
        else:
            from tests.duckdb.conftest import load_table
        load_table(self.conn, table, x)

    def columns(self, table: str) -> set[str]:
        rows = self.sql(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ?",
            [self.schema, table],
        )
        return {r[0] for r in rows}

    def rows(self, table: str) -> list[tuple[Any, list[float] | None]]:
        """Every ``(id, vector)`` of ``table`` by id (vectors as float32 values)."""
        got = self.sql(f"SELECT id, embedding FROM {table} ORDER BY id")
        return [(i, None if v is None else floats(v)) for i, v in got]

    def functions(self, codec: str) -> set[str]:
        """The SQL functions (PostgreSQL) or macros (DuckDB) generated for ``codec``."""
        if self.name == "postgres":
            query = "SELECT proname FROM pg_proc WHERE pronamespace = 'vecext'::regnamespace"
        else:
            query = (
                "SELECT function_name FROM duckdb_functions() WHERE schema_name = 'vecext' "
                "AND database_name = current_database()"
            )
        return {r[0] for r in self.sql(query) if r[0].startswith(codec + "_")}


def _fresh_postgres(request: pytest.FixtureRequest) -> Iterator[Fresh]:
    import vecext.postgres as vp
    from tests.postgres.search_data import vector_text

    conn = request.getfixturevalue("pg_catalog")
    yield Fresh("postgres", conn, vp, None, lambda v: ("?::vector", vector_text(v)), "public")


def _fresh_duckdb(request: pytest.FixtureRequest) -> Iterator[Fresh]:
    import vecext.duckdb as vd

    con = vd.connect(vss=False)
    try:
        yield Fresh(
            "duckdb", con, vd, None, lambda v: ("?::FLOAT[]", [float(x) for x in v]), "main"
        )
    finally:
        con.close()


Builder = Callable[[pytest.FixtureRequest], Iterator[Any]]
#: backend -> (its equipped search table, a fresh database)
BACKENDS: dict[str, tuple[Builder, Builder]] = {
    "postgres": (_postgres, _fresh_postgres),
    "duckdb": (_duckdb, _fresh_duckdb),
}


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Iterator[Db]:
    """Each backend in turn, over its equipped ``items`` table."""
    yield from BACKENDS[request.param][0](request)


@pytest.fixture(params=list(BACKENDS))
def fresh(request: pytest.FixtureRequest) -> Iterator[Fresh]:
    """Each backend in turn, a fresh database with the catalog installed."""
    yield from BACKENDS[request.param][1](request)


def floats(v: Any) -> list[float]:
    """A vector column's value (pgvector's ``Vector``, a DuckDB list) as float32 values."""
    return np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v, np.float32).tolist()


def recall(ids: np.ndarray, truth: np.ndarray) -> float:
    if len(truth) == 0:
        return 1.0
    return len(set(np.asarray(ids).tolist()) & set(truth.tolist())) / len(truth)
