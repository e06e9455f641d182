"""vecext.relevance_score / relevance_min_similarity / relevance_features in SQL equal
the Python methods, in PostgreSQL (plpgsql + pgvector) and DuckDB (macros)."""

from __future__ import annotations

import copy
import json

import duckdb
import numpy as np
import psycopg
import pytest

from tests.relevance.sql_data import SPECS
from vecext.relevance import distribution_features

DB_ERRORS = (psycopg.Error, duckdb.Error)


class Sql:
    """The three functions called the same way on either backend."""

    def __init__(self, db) -> None:
        self.db = db
        self.pg = type(db).__module__.startswith("psycopg")

    def _q(self, q: np.ndarray) -> tuple[str, object]:
        if self.pg:
            return "%s::vector", "[" + ",".join(f"{v:.9g}" for v in q.tolist()) + "]"
        return f"?::FLOAT[{len(q)}]", [float(v) for v in q]

    def _run(self, sql: str, params: list) -> list[tuple]:
        if not self.pg:
            sql = sql.replace("%s", "?")
        return self.db.execute(sql, params).fetchall()

    def features(self, name: str, sims: np.ndarray) -> dict:
        cast = "%s::float8[]" if self.pg else "%s::DOUBLE[]"
        (f,) = self._run(f"SELECT vecext.relevance_features(%s, {cast})", [name, sims.tolist()])[0]
        return f if isinstance(f, dict) else json.loads(f)

    def scores(self, name: str, q: np.ndarray, s: np.ndarray, feats: dict | None) -> np.ndarray:
        qsql, qp = self._q(q)
        arr = "%s::float8[]" if self.pg else "%s::DOUBLE[]"
        rows = self._run(
            f"SELECT vecext.relevance_score(%s, {qsql}, t.s, %s) "
            f"FROM unnest({arr}) WITH ORDINALITY AS t(s, i) ORDER BY t.i",
            [name, qp, None if feats is None else json.dumps(feats), s.tolist()],
        )
        return np.array([r[0] for r in rows], dtype=np.float64)

    def min_similarity(self, name: str, q: np.ndarray, T: float | None, feats: dict | None):
        qsql, qp = self._q(q)
        (v,) = self._run(
            f"SELECT vecext.relevance_min_similarity(%s, {qsql}, %s, %s)",
            [name, qp, T, None if feats is None else json.dumps(feats)],
        )[0]
        return v


@pytest.fixture
def sql(rel_db) -> Sql:
    return Sql(rel_db)


@pytest.mark.parametrize("name", list(SPECS))
def test_sql_scores_equal_python(sql, rel_data, name):
    m = rel_data.adapters[name]
    grid = np.linspace(-1.0, 1.0, 41)
    for i, q in enumerate(rel_data.xq[:4]):
        S = rel_data.S[i].astype(np.float64)  # the query's top 50, descending
        feats = sql.features(name, S[::-1].copy())  # any order
        names = list(getattr(m, "features", ()))
        ref_f = distribution_features(S[None, :], names)[0]
        assert sorted(feats) == sorted(names)  # a JSON object: jsonb orders its keys itself
        np.testing.assert_allclose([feats[f] for f in names], ref_f, atol=1e-12)
        got = sql.scores(name, q, S, feats)
        np.testing.assert_allclose(got, m.score(q[None, :], S[None, :])[0], atol=1e-5, rtol=0)
        # monotone in the similarity for a fixed query (features fixed too)
        g = sql.scores(name, q, grid, feats)
        assert np.all(np.diff(g) >= 0)
        if m.calibrated:
            assert np.all((g >= 0) & (g <= 1)) and g[-1] > g[0]


@pytest.mark.parametrize("name", list(SPECS))
def test_sql_min_similarity_is_the_python_bound(sql, rel_data, name):
    m = rel_data.adapters[name]
    for i, q in enumerate(rel_data.xq[:2]):
        S = rel_data.S[i].astype(np.float64)[None, :]
        feats = sql.features(name, S[0])
        for T in ([0.2, 0.5, 0.9] if m.calibrated else [0.6, 0.8]) + [None]:
            mt = copy.copy(m)
            if T is not None:
                mt.set_threshold(T)
            want = float(mt.query_params(q[None, :], S)["s_min"][0])
            got = sql.min_similarity(name, q, T, feats)
            assert got == pytest.approx(want, abs=1e-5), (T, got, want)
            if m.calibrated and abs(got) < 1:  # the score at the bound is the threshold
                at = sql.scores(name, q, np.array([got]), feats)[0]
                assert at == pytest.approx(mt.threshold, abs=1e-5)


def test_sql_bound_filters_like_the_score(sql, rel_db, rel_data):
    """Filtering by the distance bound in plain SQL keeps the rows whose SQL score passes."""
    q = rel_data.xq[1]
    qsql, qp = sql._q(q)
    dist = "embedding <=> {q}" if sql.pg else "array_cosine_distance(embedding, {q})"
    sim = "1 - (embedding <=> {q})" if sql.pg else "array_cosine_similarity(embedding, {q})"
    by_bound = sql._run(
        f"SELECT id FROM docs WHERE {dist.format(q=qsql)} <= "
        f"1 - (SELECT vecext.relevance_min_similarity('rel_ca', {qsql}, 0.5)) ORDER BY id",
        [qp, qp],
    )
    by_score = sql._run(
        f"SELECT id FROM docs WHERE vecext.relevance_score('rel_ca', {qsql}, "
        f"{sim.format(q=qsql)}) >= 0.5 ORDER BY id",
        [qp, qp],
    )
    assert by_bound == by_score and len(by_bound) > 5


def test_sql_constant_and_edge_thresholds(sql, rel_data):
    q = rel_data.xq[0]
    assert sql.min_similarity("rel_ca", q, 0.0, None) == -np.inf
    assert sql.min_similarity("rel_ca", q, 1.0, None) == np.inf
    assert sql.min_similarity("rel_fixed", q, 0.7, None) == pytest.approx(0.7)
    assert sql.scores("rel_fixed", q, np.array([0.25]), None)[0] == pytest.approx(0.25)
    assert sql.features("rel_ca", np.array([0.9, 0.8])) == {}


def test_sql_bad_input(sql, rel_data):
    q = rel_data.xq[0]
    with pytest.raises(DB_ERRORS, match="unknown relevance adapter 'nope'; known adapters: rel_ca"):
        sql.scores("nope", q, np.array([0.5]), None)
    with pytest.raises(DB_ERRORS, match="trained on dimension 16, the query has dimension 8"):
        sql.scores("rel_ca", q[:8], np.array([0.5]), None)
    with pytest.raises(DB_ERRORS, match="trained on dimension 16, the query has dimension 8"):
        sql.min_similarity("rel_ca", q[:8], 0.5, None)
    for bad in (1.5, -0.2):
        with pytest.raises(DB_ERRORS, match=r"threshold .* is outside \[0, 1\]"):
            sql.min_similarity("rel_ca", q, bad, None)
    with pytest.raises(DB_ERRORS, match="distribution features.*missing: top1"):
        sql.scores("rel_feat", q, np.array([0.5]), {"mean10": 0.5})
    with pytest.raises(DB_ERRORS, match="distribution features"):
        sql.min_similarity("rel_feat", q, 0.5, None)
    with pytest.raises(DB_ERRORS, match="got none"):
        sql.features("rel_feat", np.array([], dtype=np.float64))


@pytest.mark.parametrize("name", list(SPECS))
def test_pg_relevance_map_is_the_python_map(rel_pg, rel_data, name):
    """vecext.relevance_map (PostgreSQL, catalog 0.2.0): the per-query a and b that
    relevance_score and relevance_min_similarity both use, equal to Python's."""
    sql = Sql(rel_pg)
    m = rel_data.adapters[name]
    for i, q in enumerate(rel_data.xq[:3]):
        S = rel_data.S[i].astype(np.float64)[None, :]
        feats = sql.features(name, S[0])
        qsql, qp = sql._q(q)
        ((method, threshold, a, b),) = sql._run(
            f"SELECT * FROM vecext.relevance_map(%s, {qsql}, %s)", [name, qp, json.dumps(feats)]
        )
        assert method == m.name and threshold == pytest.approx(m.threshold, abs=1e-12)
        if not m.calibrated:
            assert (a, b) == (None, None)
            continue
        want = m.query_params(q[None, :], S)
        assert a == pytest.approx(float(want["a"][0]), rel=1e-5, abs=1e-5)
        assert b == pytest.approx(float(want["b"][0]), rel=1e-5, abs=1e-5)
        # score = sigmoid(a s + b), as relevance_score computes it
        s = float(S[0, 0])
        assert sql.scores(name, q, np.array([s]), feats)[0] == pytest.approx(
            1 / (1 + np.exp(-(a * s + b))), abs=1e-12
        )
    assert sql._run("SELECT * FROM vecext.relevance_map(%s, NULL)", [name]) == [
        (None, None, None, None)
    ]
