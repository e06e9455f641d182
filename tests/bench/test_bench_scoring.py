"""The harness's scores against an independent numpy computation, and the plug-in point."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from vecext.datasets import load_dataset
from vecext.tools.bench import BaseMethod, BenchConfig, registry, run_bench
from vecext.tools.bench.runner import limit_queries
from vecext.tools.bench.truth import exact_topk


def independent_scores(data, query_rows, returned, k, column=None, value=None):
    """Recall, nDCG@10, min rows and complete fraction recomputed from the raw files."""
    xb = np.load(data / "docs.f16.npy").astype(np.float32)
    xq = np.load(data / "queries_x.f16.npy").astype(np.float32)[query_rows]
    attrs = pq.read_table(data / "docs.parquet").to_pydict()
    keep = np.ones(len(xb), bool) if column is None else np.array(attrs[column]) == value
    qrels: dict[int, set[int]] = {}
    for line in (data / "qrels_x.tsv").read_text().splitlines()[1:]:
        q, doc = map(int, line.split("\t"))
        qrels.setdefault(q, set()).add(doc)
    sims = xq @ xb.T
    sims[:, ~keep] = -np.inf
    recall, ndcg, rows, complete = [], [], [], []
    expected = min(k, int(keep.sum()))
    for i, got in enumerate(returned):
        truth = [j for j in np.argsort(-sims[i], kind="stable")[:k] if keep[j]]
        recall.append(len(set(got.tolist()) & set(truth)) / len(truth))
        rel = {d for d in qrels.get(int(query_rows[i]), set()) if keep[d]}
        if rel:
            dcg = sum(1 / np.log2(r + 2) for r, d in enumerate(got[:10].tolist()) if d in rel)
            ideal = sum(1 / np.log2(r + 2) for r in range(min(10, len(rel))))
            ndcg.append(dcg / ideal)
        rows.append(len(got))
        complete.append(len(got) == expected)
    return np.mean(recall), (np.mean(ndcg) if ndcg else None), min(rows), np.mean(complete)


@pytest.mark.parametrize(
    ("backend", "methods", "filt"),
    [
        ("faiss", ["faiss-pq", "faiss-ivfpq", "exact"], None),
        ("faiss", ["faiss-ivfpq"], ("pos", "a")),
        ("postgres", ["pgvector-bit-rerank", "pgvector-hnsw"], None),
        ("postgres", ["pgvector-hnsw"], ("color", "blue")),
        ("duckdb", ["vss-hnsw"], ("color", "red")),
    ],
)
def test_reported_scores_equal_numpy(bench_data, request, backend, methods, filt):
    dsn = request.getfixturevalue("pg_dsn") if backend == "postgres" else None
    config = BenchConfig(
        dataset=str(bench_data), queries="x", backend=backend, methods=methods, k=10,
        filters=[f"{filt[0]}={filt[1]}"] if filt else [], limit_queries=25, dsn=dsn,
    )  # fmt: skip
    run = run_bench(config)
    assert len(run.query_rows) == 25
    for result, ids in zip(run.doc["results"], run.ids, strict=True):
        recall, ndcg, min_rows, complete = independent_scores(
            bench_data, run.query_rows, ids, 10, *(filt or (None, None))
        )
        assert result["recall_at_k"] == pytest.approx(recall, abs=1e-12)
        assert result["ndcg_at_10"] == (
            pytest.approx(ndcg, abs=1e-12) if ndcg is not None else None
        )
        assert result["min_rows_returned"] == min_rows
        assert result["complete_fraction"] == pytest.approx(complete)
    # something below perfect was measured, so the comparison above had teeth
    assert min(r["recall_at_k"] for r in run.doc["results"]) < 1.0


def test_integer_range_filter_matches_numpy(bench_data):
    run = run_bench(BenchConfig(str(bench_data), "x", "faiss", ["exact"], filters=["rank=10..19"]))
    ranks = np.array(pq.read_table(bench_data / "docs.parquet")["rank"])
    r = run.doc["results"][0]
    assert r["selectivity"] == pytest.approx(np.mean((ranks >= 10) & (ranks <= 19)))
    assert all(((ranks[ids] >= 10) & (ranks[ids] <= 19)).all() for ids in run.ids[0])
    assert r["recall_at_k"] == 1.0


class SignBits(BaseMethod):
    """A toy plug-in: sign bits of the vectors, Hamming distance, no rerank."""

    def __init__(self, ctx):
        super().__init__(ctx, params={"bits": ctx.d}, bytes_per_vector=ctx.d / 8)
        self.closed = False

    def build(self):
        self.codes = np.packbits(self.ctx.xb > 0, axis=1)
        self.rows = np.flatnonzero(self.ctx.filter_mask)
        return None

    def search(self, q):
        x = np.bitwise_xor(self.codes[self.rows], np.packbits(q > 0))
        dist = np.unpackbits(x, axis=1).sum(axis=1)
        return self.rows[np.argsort(dist, kind="stable")[: self.ctx.k]].astype(np.int64)

    def storage_bytes(self):
        return int(self.codes.nbytes)


def test_plugin_method_runs_through_the_harness(bench_data, monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_method("vecext-binary", "faiss", SignBits)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_method("vecext-binary", "faiss", lambda ctx: SignBits(ctx))
    run = run_bench(BenchConfig(str(bench_data), "x", "faiss", ["exact", "vecext-binary"],
                                filters=["pos=n"]))  # fmt: skip
    exact, ours = run.doc["results"]
    assert ours["method"] == "vecext-binary" and ours["bytes_per_vector"] == 4
    assert ours["storage_bytes"] == 2000 * 4 and ours["params"]["bits"] == 32
    assert 0.0 < ours["recall_at_k"] < exact["recall_at_k"] == 1.0


def test_plugin_returning_non_matching_rows_is_rejected(bench_data, monkeypatch):
    class Unfiltered(SignBits):
        def build(self):
            super().build()
            self.rows = np.arange(self.ctx.n)

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_method("vecext-pq", "faiss", Unfiltered)
    with pytest.raises(registry.BenchError, match="do not match the filter"):
        run_bench(BenchConfig(str(bench_data), "x", "faiss", ["vecext-pq"], filters=["pos=r"]))


def test_exact_topk_ties_padding_and_blocks():
    rng = np.random.default_rng(3)
    xb = rng.integers(-2, 3, (500, 8)).astype(np.float32)  # many exact ties
    xq = rng.integers(-2, 3, (20, 8)).astype(np.float32)
    keep = rng.random(500) < 0.5
    D, I = exact_topk(xb, xq, 7, keep, block=64)
    for i in range(20):
        cand = np.flatnonzero(keep)
        s = xb[cand] @ xq[i]
        order = np.lexsort((cand, -s))[:7]
        assert I[i].tolist() == cand[order].tolist()
        assert np.allclose(D[i], s[order])
    few = np.zeros(500, bool)
    few[[3, 99]] = True
    D, I = exact_topk(xb, xq, 5, few, block=64)
    assert (I[:, 2:] == -1).all() and np.isinf(D[:, 2:]).all()
    assert set(I[0, :2].tolist()) == {3, 99}


def test_limit_queries_is_a_seeded_sorted_sample(bench_data):
    ds = load_dataset(bench_data, "x")
    a, rows_a = limit_queries(ds, 10)
    b, rows_b = limit_queries(ds, 10)
    assert rows_a.tolist() == rows_b.tolist() == sorted(set(rows_a.tolist()))
    assert np.array_equal(a.xq, ds.xq[rows_a])
    assert all(np.array_equal(a.qrels[i], ds.qrels[r]) for i, r in enumerate(rows_a))
    assert a.qrel_pairs[:, 0].max() < 10
    full, rows = limit_queries(ds, None)
    assert full is ds and rows.size == ds.xq.shape[0]
