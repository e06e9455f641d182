"""``vecext bench`` end to end on every backend, checked against the JSON contract."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vecext.tools.cli import app

runner = CliRunner()

# The contract of `vecext bench --json`, spelled out here so that a change is deliberate.
DOC_KEYS = ["dataset", "n", "d", "machine", "results"]
RESULT_KEYS = [
    "backend",
    "method",
    "params",
    "k",
    "filter",
    "selectivity",
    "recall_at_k",
    "ndcg_at_10",
    "min_rows_returned",
    "complete_fraction",
    "p50_ms",
    "p95_ms",
    "first_ms",
    "qps",
    "bytes_per_vector",
    "storage_bytes",
    "build_s",
    "disk_bytes_per_row",
]
PG_METHODS = ["exact", "pgvector-hnsw", "pgvector-halfvec-hnsw", "pgvector-bit-rerank"]


def bench(tmp_path: Path, data: Path, backend: str, methods: list[str], *extra: str) -> dict:
    out = tmp_path / f"{backend}.json"
    args = ["bench", "--dataset", str(data), "--queries", "x", "--backend", backend,
            "--methods", ",".join(methods), "--json", str(out), *extra]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    check_contract(doc, backend, methods)
    return doc


def check_contract(doc: dict, backend: str, methods: list[str]) -> None:
    assert list(doc) == DOC_KEYS
    assert doc["n"] == 2000 and doc["d"] == 32
    assert {"cpu", "cores", "memory_bytes", "os", "versions"} <= set(doc["machine"])
    assert [r["method"] for r in doc["results"]] == methods
    for r in doc["results"]:
        assert list(r) == RESULT_KEYS
        assert r["backend"] == backend and r["k"] == 10
        assert isinstance(r["params"], dict)
        assert 0.0 < r["selectivity"] <= 1.0
        assert 0.0 <= r["recall_at_k"] <= 1.0
        assert r["ndcg_at_10"] is None or 0.0 <= r["ndcg_at_10"] <= 1.0
        assert 0 <= r["min_rows_returned"] <= 10
        assert 0.0 <= r["complete_fraction"] <= 1.0
        assert 0 < r["p50_ms"] <= r["p95_ms"]
        assert r["qps"] > 0 and math.isfinite(r["qps"])
        assert r["bytes_per_vector"] > 0 and r["storage_bytes"] > 0 and r["build_s"] >= 0


@pytest.mark.parametrize("filt", [None, "pos=r", "color=teal"])
def test_faiss_methods(bench_data, tmp_path, filt):
    extra = ["--filter", filt] if filt else []
    doc = bench(tmp_path, bench_data, "faiss", ["exact", "faiss-pq", "faiss-ivfpq"], *extra)
    exact, pq, ivf = doc["results"]
    assert exact["recall_at_k"] == 1.0 and exact["complete_fraction"] == 1.0
    assert pq["bytes_per_vector"] == 4 and ivf["bytes_per_vector"] == 4  # M = d / 8
    assert ivf["params"]["nlist"] == round(4 * 2000**0.5)
    if filt == "color=teal":  # 8 rows match: "complete" means all 8
        assert exact["min_rows_returned"] == 8 and pq["min_rows_returned"] == 8
    if filt is None:
        assert exact["filter"] is None and exact["selectivity"] == 1.0
    else:
        assert exact["filter"] == filt.replace("=", " = '") + "'"


@pytest.mark.parametrize("filt", [None, "color=red"])
def test_duckdb_methods(bench_data, tmp_path, filt):
    extra = ["--filter", filt] if filt else []
    doc = bench(tmp_path, bench_data, "duckdb", ["vss-hnsw", "exact"], *extra)
    vss, exact = doc["results"]
    # DuckDB's float32 cosine swaps one near-tie (1e-6 apart) with numpy's at rank 10
    assert exact["recall_at_k"] >= 0.99
    assert exact["complete_fraction"] == 1.0
    assert "HNSW_INDEX_SCAN" in vss["params"]["plan"]
    assert "HNSW_INDEX_SCAN" not in exact["params"]["plan"]  # vss dropped its index
    assert ("note" in vss["params"]) == (filt is not None)
    if filt is None:
        assert vss["recall_at_k"] > 0.8
    else:  # the filter is applied to what the index returned: rows go missing
        assert vss["min_rows_returned"] < 10 and vss["complete_fraction"] < 1.0


@pytest.mark.parametrize("filt", [None, "pos=r"])
def test_postgres_methods(bench_data, tmp_path, pg_dsn, filt):
    extra = ["--dsn", pg_dsn] + (["--filter", filt] if filt else [])
    doc = bench(tmp_path, bench_data, "postgres", PG_METHODS, *extra)
    assert doc["machine"]["postgres"]["pgvector"].startswith("0.")
    exact, hnsw, half, bit = doc["results"]
    assert "Index" not in exact["params"]["plan"]
    assert exact["recall_at_k"] >= 0.99  # one float32 near-tie (1e-6) at rank 10 may swap
    assert [r["bytes_per_vector"] for r in doc["results"]] == [128, 128, 64, 4]
    assert bit["params"]["candidates"] == 40 and half["params"]["ef_search"] == 40
    assert all(r["params"]["settings"].startswith("SET LOCAL") for r in doc["results"])
    # storage = vector column + the method's index
    assert exact["storage_bytes"] < min(
        hnsw["storage_bytes"], half["storage_bytes"], bit["storage_bytes"]
    )
    if filt is None:
        for r, suffix in ((hnsw, "_hnsw)"), (half, "_hnsw_half)"), (bit, "_hnsw_bit)")):
            assert "Index Scan" in r["params"]["plan"] and r["params"]["plan"].count(suffix) == 1
        assert hnsw["recall_at_k"] > 0.8


def test_postgres_reuses_table_and_indexes(bench_data, tmp_path, pg_dsn):
    first = bench(tmp_path, bench_data, "postgres", ["pgvector-hnsw"], "--dsn", pg_dsn)
    second = bench(tmp_path, bench_data, "postgres", ["pgvector-hnsw"], "--dsn", pg_dsn)
    p1, p2 = first["results"][0]["params"], second["results"][0]["params"]
    assert (p1["table_reused"], p1["index_reused"]) == (False, False)
    assert (p2["table_reused"], p2["index_reused"]) == (True, True)
    # the recorded load and build times are reported again, not the time of the lookup
    assert second["results"][0]["build_s"] == pytest.approx(
        first["results"][0]["build_s"], abs=2e-3
    )
    third = bench(tmp_path, bench_data, "postgres", ["pgvector-hnsw"], "--dsn", pg_dsn, "--rebuild")
    assert third["results"][0]["params"]["index_reused"] is False


def test_plot_and_table(bench_data, tmp_path):
    png = tmp_path / "r.png"
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["bench", "--dataset", str(bench_data), "--queries", "x",
                                 "--backend", "faiss", "--methods", "exact",
                                 "--json", str(out), "--plot", str(png), "--limit-queries", "7"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "exact" in result.stdout and "recall@k" in result.stdout
    assert json.loads(out.read_text())["results"][0]["params"]["nq"] == 7


@pytest.mark.parametrize(
    ("backend", "method", "message"),
    [
        ("faiss", "vecext-auto", "not available yet"),
        ("postgres", "vss-hnsw", "runs on backend duckdb"),
        ("duckdb", "nope", "unknown method 'nope'"),
        ("oracle", "exact", "unknown backend"),
    ],
)
def test_method_errors(bench_data, tmp_path, backend, method, message):
    result = runner.invoke(app, ["bench", "--dataset", str(bench_data), "--queries", "x",
                                 "--backend", backend, "--methods", method,
                                 "--json", str(tmp_path / "x.json")])  # fmt: skip
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "x.json").exists()


def test_bad_filter_column_is_named(bench_data, tmp_path):
    result = runner.invoke(app, ["bench", "--dataset", str(bench_data), "--queries", "x",
                                 "--backend", "faiss", "--methods", "exact",
                                 "--filter", "colour=red", "--json", str(tmp_path / "x.json")])  # fmt: skip
    assert result.exit_code == 1
    assert "'colour'" in result.output


def test_synthetic_dataset_with_integer_filter(tmp_path):
    out = tmp_path / "s.json"
    result = runner.invoke(app, ["bench", "--dataset", "synthetic:n=3000,d=16,nq=50", "--queries", "dev",
                                 "--backend", "faiss", "--methods", "exact", "--filter", "category=0",
                                 "--limit-queries", "20", "--json", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert list(doc) == DOC_KEYS and (doc["n"], doc["d"]) == (3000, 16)
    (r,) = doc["results"]
    assert r["filter"] == "category = 0" and 0.0 < r["selectivity"] < 1.0  # typed, not '0'
    assert r["recall_at_k"] == 1.0 and r["ndcg_at_10"] is not None


def test_postgres_exact_allows_a_btree_on_the_filter_column(bench_data, tmp_path, pg_dsn):
    import psycopg

    bench(tmp_path, bench_data, "postgres", ["exact"], "--dsn", pg_dsn)  # loads the table
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE INDEX ON bench_tiny_set (color)")
        conn.execute("ANALYZE bench_tiny_set")
    doc = bench(tmp_path, bench_data, "postgres", ["exact", "pgvector-hnsw"], "--dsn", pg_dsn,
                "--filter", "color=teal")  # fmt: skip
    exact, hnsw = doc["results"]
    assert "Bitmap Index Scan" in exact["params"]["plan"]  # finds the 8 rows, stays exact
    assert exact["recall_at_k"] == 1.0 and exact["min_rows_returned"] == 8
    assert "Bitmap Index Scan" in hnsw["params"]["plan"]  # the planner's choice, recorded


def test_postgres_method_options_and_disk_bytes(bench_data, tmp_path, pg_dsn):
    doc = bench(tmp_path, bench_data, "postgres", ["exact", "pgvector-hnsw@ef=80"], "--dsn", pg_dsn)
    exact, hnsw = doc["results"]
    assert hnsw["params"]["ef_search"] == 80 and "ef_search = 80" in hnsw["params"]["settings"]
    # table (+ the method's index) on disk per row: at least the 32 float32 of a vector
    assert 128 < exact["disk_bytes_per_row"] < hnsw["disk_bytes_per_row"]
    result = runner.invoke(app, ["bench", "--dataset", str(bench_data), "--queries", "x",
                                 "--backend", "postgres", "--dsn", pg_dsn,
                                 "--methods", "exact@ef=80", "--json", str(tmp_path / "x.json")])  # fmt: skip
    assert result.exit_code == 1 and "takes no option ef" in " ".join(result.output.split())


def test_postgres_binary_copy_loads_every_value(bench_data, pg_dsn):
    import psycopg
    import pyarrow as pa
    from pgvector.psycopg import register_vector

    from vecext.datasets import load_dataset
    from vecext.tools.bench import pg_store

    ds = load_dataset(str(bench_data), "x")
    attrs = ds.attrs.set_column(
        ds.attrs.schema.get_field_index("color"),
        "color",
        pa.array([None if i % 7 == 0 else c for i, c in enumerate(ds.attrs["color"].to_pylist())]),
    )
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        register_vector(conn)
        meta = pg_store.ensure_table(conn, "t_load", ds.xb, attrs, rebuild=True, task=_no_task)
        rows = conn.execute(
            "SELECT id, embedding, pos, color, rank FROM t_load ORDER BY id"
        ).fetchall()
    assert meta["n"] == len(rows) == ds.xb.shape[0]
    assert [r[0] for r in rows] == list(range(len(rows)))
    np.testing.assert_array_equal(np.array([r[1].to_numpy() for r in rows]), ds.xb)
    assert [r[2] for r in rows] == attrs["pos"].to_pylist()
    assert [r[3] for r in rows] == attrs["color"].to_pylist()
    assert [r[4] for r in rows] == attrs["rank"].to_pylist()


def _no_task(*args, **kwargs):
    from contextlib import nullcontext

    return nullcontext(lambda *a, **k: None)


@pytest.mark.parametrize("filt", [None, "color=red"])
def test_lancedb_peers(bench_data, tmp_path, filt):
    """LanceDB (the [bench] extra) on the same data: IVF_PQ at its defaults, tuned with
    nprobes and refine_factor, prefiltered or not; rows that fail the filter never come
    back (the harness checks), recall against the same numpy truth."""
    pytest.importorskip("lancedb")
    extra = ["--filter", filt] if filt else []
    methods = ["lancedb-ivfpq@num_partitions=4", "lancedb-ivfpq-tuned@num_partitions=4+nprobes=4",
               "lancedb-ivfpq-postfilter@num_partitions=4"]  # fmt: skip
    doc = bench(tmp_path, bench_data, "duckdb", methods, *extra)
    default, tuned, post = doc["results"]
    assert tuned["params"]["refine_factor"] == 10 and tuned["params"]["nprobes"] == 4
    assert tuned["recall_at_k"] >= 0.95  # every list probed, refined with full vectors
    assert default["params"]["prefilter"] and not post["params"]["prefilter"]
    assert default["first_ms"] > 0 and tuned["qps"] > 0
    if filt:
        assert tuned["complete_fraction"] == 1.0


def test_lance_where_quotes_values():
    from vecext.search.filters import And, Eq, In, Range
    from vecext.tools.bench.lance_methods import lance_where

    pred = And((Eq("a b", "it's"), In("n", (1, 2)), Range("x", 0.5, 2, True)))
    assert lance_where(pred) == (
        '("a b" = \'it\'\'s\') AND ("n" IN (1, 2)) AND ("x" >= 0.5 AND "x" <= 2)'
    )


def test_postgres_hnsw_over_code_stores(bench_data, tmp_path, pg_dsn):
    methods = ["exact", "vecext-hnsw-binary", "vecext-hnsw-rbq", "vecext-hnsw-pca@ef=300"]
    doc = bench(tmp_path, bench_data, "postgres", methods, "--dsn", pg_dsn, "--filter", "pos=n")
    exact, binary, rbq, pca = doc["results"]
    for r in (binary, rbq, pca):
        # under a filter the planner chooses (2,000 rows: an exact scan of the matching ones)
        assert r["params"]["index"].startswith("store_")
        assert r["params"]["last_plan"]["strategy"] in ("hnsw", "exact", "compressed")
        assert r["recall_at_k"] >= 0.9 and r["complete_fraction"] == 1.0
        # the table, plus a code store and an index over it
        assert r["disk_bytes_per_row"] > exact["disk_bytes_per_row"]
    assert pca["params"]["ef_search"] == 300  # pinned by the option
    assert (binary["bytes_per_vector"], rbq["bytes_per_vector"], pca["bytes_per_vector"]) == (
        4,
        12,
        20,
    )


def test_postgres_hnsw_over_codes_options(bench_data, tmp_path, pg_dsn):
    # @rerank pins the exact rerank depth after the walk, @efc the index's ef_construction
    # and @m its m (an index built with other values is built again); pgvector-hnsw
    # takes @efc and @m too
    methods = ["vecext-hnsw-binary@ef=60+rerank=30+efc=32+m=8", "pgvector-hnsw@ef=60+efc=32+m=6"]
    doc = bench(tmp_path, bench_data, "postgres", methods, "--dsn", pg_dsn)
    codes, native = doc["results"]
    assert native["params"]["m"] == 6 and native["complete_fraction"] == 1.0
    assert native["params"]["plan"].endswith(f"Index Scan ({native['params']['index']})")
    assert codes["params"]["rerank"] == 30 and codes["params"]["last_plan"]["rerank"] == 30
    assert codes["params"]["ef_construction"] == 32 and codes["params"]["ef_search"] == 60
    assert codes["params"]["m"] == 8
    assert native["params"]["ef_construction"] == 32
    # (32-bit codes of 32-d data: coarse; every query still gets its k exact rows)
    assert codes["min_rows_returned"] == 10 and codes["complete_fraction"] == 1.0
    import psycopg

    with psycopg.connect(pg_dsn) as conn:
        (options,) = conn.execute(
            "SELECT reloptions FROM pg_class WHERE oid = to_regclass(%s)",
            [f"vecext.{codes['params']['index']}"],
        ).fetchone()
    assert "ef_construction=32" in options and "m=8" in options
    with psycopg.connect(pg_dsn) as conn:
        (options,) = conn.execute(
            "SELECT reloptions FROM pg_class WHERE oid = to_regclass(%s)",
            [native["params"]["index"]],
        ).fetchone()
        assert "m=6" in options and "ef_construction=32" in options
    # the same method with m 12 builds the index again
    (tmp_path / "postgres.json").unlink()
    doc = bench(
        tmp_path, bench_data, "postgres", ["vecext-hnsw-binary@efc=32+m=12"], "--dsn", pg_dsn
    )
    with psycopg.connect(pg_dsn) as conn:
        (options,) = conn.execute(
            "SELECT reloptions FROM pg_class WHERE oid = to_regclass(%s)",
            [f"vecext.{doc['results'][0]['params']['index']}"],
        ).fetchone()
    assert "m=12" in options and doc["results"][0]["params"]["m"] == 12
    with psycopg.connect(pg_dsn) as conn:
        # a second index on the same expression: PostgreSQL would choose between the two,
        # so the bench refuses to measure rather than time the other one
        conn.execute(
            f"CREATE INDEX bench_twin ON {native['params']['index'][: -len('_hnsw')]} "
            "USING hnsw (embedding vector_cosine_ops) WITH (m = 4)"
        )
        conn.commit()
    result = runner.invoke(app, ["bench", "--dataset", str(bench_data), "--queries", "x",
                                 "--backend", "postgres", "--methods", "pgvector-hnsw@m=12",
                                 "--dsn", pg_dsn, "--json", str(tmp_path / "x.json")])  # fmt: skip
    assert result.exit_code == 1
    assert "plans the query with index bench_twin" in " ".join(result.output.split())


def test_postgres_hnsw_over_pca_codes_dim_option(bench_data, tmp_path, pg_dsn):
    # @dim=N reduces to N dimensions in a code column and codec of its own, beside the
    # default d / 3 one; a dimension PCA cannot keep is refused before anything is built
    # (@prepared=1: one prepared search for every query, the same rows)
    methods = [
        "vecext-hnsw-pca@ef=60",
        "vecext-hnsw-pca@dim=8+ef=60",
        "vecext-hnsw-pca@ef=60+prepared=1",
    ]
    doc = bench(tmp_path, bench_data, "postgres", methods, "--dsn", pg_dsn)
    third, eight, prepared = doc["results"]
    assert prepared["params"]["prepared"] == 1 and "prepared" not in third["params"]
    assert prepared["recall_at_k"] == third["recall_at_k"]
    assert prepared["params"]["last_plan"] == third["params"]["last_plan"]
    assert (third["bytes_per_vector"], eight["bytes_per_vector"]) == (20, 16)
    assert (third["params"]["pretransform"], eight["params"]["pretransform"]) == (
        "pca:10",
        "pca:8",
    )
    assert third["params"]["store"] != eight["params"]["store"]
    assert eight["complete_fraction"] == 1.0  # k rows; recall is low: random 32-d data
    for dim in ("32", "0"):
        result = runner.invoke(app, ["bench", "--dataset", str(bench_data), "--queries", "x",
                                     "--backend", "postgres", "--methods",
                                     f"vecext-hnsw-pca@dim={dim}", "--dsn", pg_dsn,
                                     "--json", str(tmp_path / "x.json")])  # fmt: skip
        assert result.exit_code == 1
        assert f"bad option dim={dim}: PCA keeps 1 to 31 dimensions" in result.output


def test_interleaved_timing_scores_like_separate_passes(bench_data, tmp_path, pg_dsn):
    # --interleave times every method in one pass, query by query in a shuffled order;
    # what each returns is scored exactly as in method-by-method passes
    methods = ["exact", "vecext-hnsw-binary2x@ef=60", "pgvector-hnsw@ef=60"]
    apart = bench(tmp_path, bench_data, "postgres", methods, "--dsn", pg_dsn)
    (tmp_path / "postgres.json").unlink()
    mixed = bench(tmp_path, bench_data, "postgres", methods, "--dsn", pg_dsn, "--interleave")
    check_contract(mixed, "postgres", methods)
    for a, b in zip(apart["results"], mixed["results"], strict=True):
        assert b["params"]["interleaved"] is True and "interleaved" not in a["params"]
        assert a["method"] == b["method"]
        for key in ("recall_at_k", "ndcg_at_10", "min_rows_returned", "complete_fraction"):
            assert a[key] == b[key], (a["method"], key)
        assert b["qps"] > 0 and b["p50_ms"] > 0
    exact, expanded, _ = mixed["results"]
    assert exact["recall_at_k"] >= 0.99  # float32 near-ties at rank 10 may swap
    # twice the bits of 32-d data: 8 bytes a vector, an HNSW index over them, k rows each
    assert expanded["bytes_per_vector"] == 8 and expanded["complete_fraction"] == 1.0
    assert expanded["params"]["pretransform"] == "expand:64"


@pytest.mark.parametrize("backend", ["postgres", "duckdb"])
def test_prepared_option_returns_what_search_returns(bench_data, tmp_path, pg_dsn, backend):
    # @prepared=1: one prepare_search for every query (DuckDB: planned every call), the
    # same rows as search() per query
    extra = ["--dsn", pg_dsn] if backend == "postgres" else []
    methods = ["vecext-binary", "vecext-binary@prepared=1", "vecext-auto@prepared=1"]
    doc = bench(tmp_path, bench_data, backend, methods, "--filter", "pos=r", *extra)
    plain, prepared, auto = doc["results"]
    assert prepared["params"]["prepared"] == 1 and auto["params"]["prepared"] == 1
    assert "prepared" not in plain["params"]
    assert prepared["recall_at_k"] == plain["recall_at_k"]
    assert prepared["complete_fraction"] == auto["complete_fraction"] == 1.0
