"""`vecext advise`: the measurements against an independent brute-force computation,
the choice within the budget, bad input, and the command on real PostgreSQL and
DuckDB (read-only)."""

from __future__ import annotations

import json
import math

import duckdb
import faiss
import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from tests.postgres.conftest import clustered, load_table
from vecext.codecs import make_codec
from vecext.datasets import synthetic_embeddings
from vecext.evaluation import recall_at_k
from vecext.tools import advise as adv
from vecext.tools.cli import app

runner = CliRunner()
ROWS = 1_000_000
D = 64


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    """Embedding-like: decaying spectrum, clusters, an offset mean (not unit norm)."""
    return 1.7 * synthetic_embeddings(2300, D, seed=3).xb


@pytest.fixture(scope="module")
def advice(data: np.ndarray) -> adv.Advice:
    faiss.omp_set_num_threads(1)
    return adv.advise_vectors(data, budget=16, recall=0.9, n_queries=100, rows=ROWS, seed=1)


def test_exact_neighbours_match_faiss(data):
    xb, xq = adv.split_sample(data, 100, seed=1)
    mine = adv.exact_neighbours(xb, xq, 10, "cosine")
    nb = xb / np.linalg.norm(xb, axis=1, keepdims=True)
    nq = xq / np.linalg.norm(xq, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(D)
    index.add(nb.astype(np.float32))
    _, ref = index.search(nq.astype(np.float32), 10)
    assert recall_at_k(mine, ref, 10) > 0.999
    l2 = adv.exact_neighbours(xb, xq, 10, "l2")
    index = faiss.IndexFlatL2(D)
    index.add(xb)
    _, ref = index.search(xq, 10)
    assert recall_at_k(l2, ref, 10) > 0.999


@pytest.mark.parametrize("kind,params", [("pq", {"m": 8}), ("binary", {})])
def test_depth_is_the_smallest_rerank_that_reaches_the_target(data, kind, params):
    """Rerank the top R code candidates exactly, as a search would, and compare."""
    xb, xq = adv.split_sample(data, 100, seed=1)
    truth = adv.exact_neighbours(xb, xq, 10, "cosine")
    codec = make_codec(kind, D, "cosine", **params).train(xb)
    codes = codec.encode(xb)
    pos = adv.code_positions(codec.distances(xq, codes), truth)

    def reranked_recall(depth: int) -> float:
        _, cand = codec.search(xq, codes, depth)  # code order, ties to the lower row
        nb = xb / np.linalg.norm(xb, axis=1, keepdims=True)
        nq = xq / np.linalg.norm(xq, axis=1, keepdims=True)
        top = np.array(
            [c[np.argsort(-(nb[c] @ q), kind="stable")[:10]] for c, q in zip(cand, nq, strict=True)]
        )
        return recall_at_k(top, truth, 10)

    # recall on the codes alone == a plain top-10 search on the codes
    _, first = codec.search(xq, codes, 10)
    assert float((pos < 10).mean()) == pytest.approx(recall_at_k(first, truth, 10))
    for target in (0.8, 0.95):
        depth = adv.depth_for_recall(pos, target, 10)
        assert reranked_recall(depth) >= target
        if depth > 10:
            assert reranked_recall(depth - 1) < target


def test_depth_on_each_prefix_matches_an_independent_count(data, advice):
    """Recompute a candidate's depth on every prefix with Codec.search + numpy truth."""
    xb, xq = adv.split_sample(data, 100, seed=1)
    m = next(m for m in advice.measurements if m.label == "pq m=8")
    codec = make_codec("pq", D, "cosine", m=8).train(xb[:10_000])
    for size, depth in m.depth_by_size.items():
        truth = adv.exact_neighbours(xb[:size], xq, 10, "cosine")
        _, cand = codec.search(xq, codec.encode(xb[:size]), depth)
        hits = [np.isin(t, c).mean() for t, c in zip(truth, cand, strict=True)]
        assert np.mean(hits) >= 0.9
        if depth > 10:
            _, fewer = codec.search(xq, codec.encode(xb[:size]), depth - 1)
            hits = [np.isin(t, c).mean() for t, c in zip(truth, fewer, strict=True)]
            assert np.mean(hits) < 0.9


def test_growth_fit():
    assert adv.fit_growth([1000, 2000, 4000], [10, 20, 40]) == pytest.approx(1.0)
    assert adv.fit_growth([1000, 2000, 4000], [30, 30, 30]) == pytest.approx(0.0)
    assert adv.fit_growth([1000, 2000, 4000], [40, 20, 10]) == 0.0  # clamped
    assert adv.fit_growth([1000, 4000], [10, 20]) == pytest.approx(0.5)
    # accelerating growth: the last pair decides
    assert adv.fit_growth([1000, 2000, 4000], [10, 11, 22]) == pytest.approx(1.0)
    assert adv.fit_growth([5000], [10]) == 0.0
    assert adv.prefix_sizes(20_000, 10) == [2500, 5000, 10_000, 20_000]
    assert adv.prefix_sizes(1500, 10) == [750, 1500]


def test_every_candidate_fits_the_budget_and_the_cheapest_is_recommended(advice):
    assert advice.measurements, "no candidate measured"
    assert all(m.bytes_per_vector <= 16 for m in advice.measurements)
    kinds = {m.kind for m in advice.measurements}
    assert {"pq", "binary"} <= kinds
    costs = [m.est_bytes_per_query for m in advice.measurements]
    assert costs == sorted(costs)
    best = advice.best()
    assert best is not None and best.verdict == "recommended"
    assert best.est_bytes_per_query < advice.exact_bytes_per_query
    # a PQ recommendation says what PQ is for (size), not only what it reads
    assert (adv.PQ_NOTE in advice.reason) == best.label.startswith("pq")
    for m in advice.measurements:
        # the cost model, recomputed from the reported figures
        assert m.est_bytes_per_query == m.bytes_per_vector * ROWS + m.rerank_depth_table * max(
            adv.RERANK_ROW_BYTES, 4 * D
        )
        assert m.rerank_depth_table >= m.rerank_depth
        # the depth's growth: fitted on the nested prefixes, extrapolated to the table
        sizes = sorted(m.depth_by_size)
        assert sizes == adv.prefix_sizes(advice.n_base, 10) and sizes[-1] == advice.n_base
        assert m.depth_by_size[advice.n_base] == m.rerank_depth
        assert 0.0 <= m.depth_growth <= 1.0
        assert m.rerank_depth_table == min(
            ROWS,
            max(
                m.rerank_depth, math.ceil(m.rerank_depth * (ROWS / advice.n_base) ** m.depth_growth)
            ),
        )
        assert 0 <= m.recall_codes <= 1
        assert m.storage_bytes_table == m.bytes_per_vector * ROWS
    json.dumps(advice.as_dict())  # serialisable as is


def test_a_generous_budget_tries_scalar_codecs(data):
    a = adv.advise_vectors(data, budget=4 * D, recall=0.9, n_queries=50, seed=1)
    kinds = {m.label for m in a.measurements}
    assert {"half", "int8", f"int8 pca:{D // 2}", "rbq bits=4", "rbq bits=2"} <= kinds
    half = next(m for m in a.measurements if m.label == "half")
    assert half.recall_codes > 0.95  # float16 keeps the order almost everywhere


def test_given_candidates_and_real_queries(data):
    xq = clustered(40, D, seed=9, nc=30)
    a = adv.advise_vectors(
        data,
        budget=12,
        queries=xq,
        candidates=[adv.parse_candidate("pq:m=8"), adv.parse_candidate("int8")],
        metric="l2",
        seed=2,
    )
    assert [m.label for m in a.measurements] == ["pq m=8"]
    assert a.skipped == [f"int8 ({D} B/vector, over the budget)"]
    assert a.n_queries == 40 and a.query_source == "40 given queries"


def test_candidate_specs_round_trip():
    c = adv.parse_candidate("pq:m=32,opq=true")
    assert c == adv.Candidate("pq", {"m": 32, "opq": True})
    assert adv.parse_candidate(c.spec) == c
    assert c.label == "pq m=32 opq"
    p = adv.parse_candidate("int8:pretransform=pca:192")
    assert p.params == {"pretransform": "pca:192"} and p.label == "int8 pca:192"
    with pytest.raises(adv.AdviseError, match="expected key=value"):
        adv.parse_candidate("pq:32")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"budget": 0}, "budget must be a positive"),
        (
            {"budget": 1},
            "no candidate codec fits 1 bytes per vector for d=64; the smallest is pq m=2 at 2",
        ),
        ({"recall": 0.0}, r"recall target must be in \(0, 1\]"),
        ({"recall": 1.5}, r"recall target must be in \(0, 1\]"),
        ({"metric": "hamming"}, "unknown metric 'hamming'"),
        ({"n_queries": 3}, "queries must be an integer >= 10"),
        ({"candidates": [adv.Candidate("lsh")]}, "unknown codec kind 'lsh'"),
        ({"candidates": [adv.Candidate("pq", {"m": 5})]}, "not divisible by m=5"),
    ],
)
def test_bad_input_is_named(data, kwargs, message):
    args = {"budget": 16, **kwargs}
    with pytest.raises(adv.AdviseError, match=message):
        adv.advise_vectors(data, **args)


def test_no_recommendation_when_compression_cannot_pay_off():
    """32-d vectors, 2,300 rows: an exact scan reads 128 B per row, less than any codec
    plus the random reads of its rerank."""
    small = clustered(2300, 32, seed=3, nc=30)
    a = adv.advise_vectors(small, budget=16, recall=0.9, n_queries=100, seed=1)
    assert a.rows == 2200
    assert a.recommended is None and a.best() is None
    assert "raise the budget or lower the target" in a.reason
    assert all(m.est_bytes_per_query >= a.exact_bytes_per_query for m in a.measurements)
    assert {m.verdict for m in a.measurements} == {"no gain over exact"}


def test_too_few_rows_and_nan_are_refused(data):
    with pytest.raises(adv.AdviseError, match="only 500 vectors to sample from"):
        adv.advise_vectors(data[:500], budget=16)
    bad = data.copy()
    bad[7, 3] = np.nan
    with pytest.raises(adv.AdviseError, match="NaN"):
        adv.advise_vectors(bad, budget=16)


# ---------------------------------------------------------------------------
# the command, on the real databases


def _checksum(conn: psycopg.Connection) -> tuple:
    return conn.execute(
        "SELECT count(*), sum(id), md5(string_agg(embedding::text, ',' ORDER BY id)) FROM items"
    ).fetchone()


def test_advise_on_postgres_is_read_only_and_reads_the_index_metric(pg_dsn, data, tmp_path):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        load_table(conn, "items", data)
        conn.execute("CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)")
        conn.execute("ANALYZE items")
        before = _checksum(conn)
    out = tmp_path / "advice.json"
    result = runner.invoke(
        app,
        [
            "advise",
            "--dsn",
            pg_dsn,
            "--table",
            "items",
            "--column",
            "embedding",
            "--budget",
            "8",
            "--recall",
            "0.9",
            "--sample",
            "2000",
            "--queries",
            "100",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["metric"] == "l2" and doc["metric_source"] == "from the column's HNSW index"
    assert doc["rows"] == 2300 and doc["n_base"] == 2000 and doc["n_queries"] == 100
    assert doc["recommended"] in [m["label"] for m in doc["measurements"]]
    assert all(m["bytes_per_vector"] <= 8 for m in doc["measurements"])
    text = " ".join(result.stdout.split())
    assert "recommended:" in text and "vecext.postgres.train_codec(conn," in text
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert _checksum(conn) == before
        assert conn.execute("SELECT to_regnamespace('vecext')").fetchone()[0] is None


def test_advise_on_postgres_names_bad_tables(pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE empty (id int, embedding vector(8), note text)")
    base = ["advise", "--dsn", pg_dsn, "--budget", "8"]
    cases = [
        (["--table", "empty", "--column", "embedding"], "has no non-NULL vectors"),
        (["--table", "empty", "--column", "note"], "expected vector(d)"),
        (["--table", "nope", "--column", "embedding"], "table 'nope' does not exist"),
        (["--table", "empty", "--column", "embedding", "--metric", "dot"], "unknown metric"),
    ]
    for args, message in cases:
        result = runner.invoke(app, base + args)
        assert result.exit_code == 1, result.output
        assert message in " ".join(result.output.split()), result.output


def test_advise_on_duckdb_file(tmp_path, data):
    path = tmp_path / "app.duckdb"
    con = duckdb.connect(str(path))
    con.execute(f"CREATE TABLE items (id INTEGER, embedding FLOAT[{D}])")
    con.execute(
        "INSERT INTO items SELECT * FROM (SELECT unnest(?) AS id, unnest(?) AS embedding)",
        [list(range(len(data))), data.tolist()],
    )
    con.close()
    q = tmp_path / "q.npy"
    np.save(q, clustered(30, D, seed=11, nc=30).astype(np.float16))
    out = tmp_path / "advice.json"
    result = runner.invoke(
        app,
        [
            "advise",
            "--duckdb",
            str(path),
            "--table",
            "items",
            "--column",
            "embedding",
            "--budget",
            "16",
            "--metric",
            "ip",
            "--query-file",
            str(q),
            "--candidate",
            "binary",
            "--candidate",
            "pq:m=8",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["metric"] == "ip" and doc["metric_source"] == "given"
    assert doc["rows"] == len(data) and doc["n_queries"] == 30
    assert sorted(m["label"] for m in doc["measurements"]) == ["binary", "pq m=8"]
    text = " ".join(result.stdout.split())
    if doc["recommended"]:
        assert f"recommended: {doc['recommended']}" in text
        assert "vecext.duckdb.train_codec(con," in text
    else:
        assert "no recommendation:" in text and "apply it" not in text
    # untouched: no catalog was installed into the file
    con = duckdb.connect(str(path), read_only=True)
    names = {r[0] for r in con.execute("SELECT schema_name FROM duckdb_schemas()").fetchall()}
    con.close()
    assert "vecext" not in names
    missing = runner.invoke(
        app,
        [
            "advise",
            "--duckdb",
            str(tmp_path / "no.duckdb"),
            "--table",
            "items",
            "--column",
            "embedding",
            "--budget",
            "8",
        ],
    )
    assert missing.exit_code == 1 and "does not exist" in " ".join(missing.output.split())
