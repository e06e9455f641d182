"""``vecext eval-relevance`` on a tiny dataset written in the wordnet-minilm layout."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from vecext.datasets import synthetic_embeddings, synthetic_queries
from vecext.tools.cli import EVAL_RESULT_KEYS, app, split_method_specs

runner = CliRunner()
KEYS = ["method", "threshold", "precision", "recall", "f1", "pr_auc", "avg_results_per_query"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs.f16.npy, docs.parquet, and the query sets ``dev`` (120) and ``test`` (40)."""
    root = tmp_path_factory.mktemp("tiny-minilm")
    data = synthetic_embeddings(1500, 16, n_clusters=40, seed=3, spread_range=(0.2, 1.0))
    np.save(root / "docs.f16.npy", data.xb.astype(np.float16))
    pq.write_table(
        pa.table({"row": np.arange(1500, dtype=np.int32), "category": data.category}),
        root / "docs.parquet",
    )
    for name, nq, seed in (("dev", 120, 4), ("test", 40, 5)):
        qs = synthetic_queries(data, nq, seed=seed, noise=0.3)
        np.save(root / f"queries_{name}.f16.npy", qs.xq.astype(np.float16))
        lines = ["query\tdoc"] + [f"{i}\t{d}" for i, docs in enumerate(qs.qrels) for d in docs]
        (root / f"qrels_{name}.tsv").write_text("\n".join(lines) + "\n")
    # a query set whose relevant documents are each query's farthest: none in any top 30
    np.save(root / "queries_norel.f16.npy", data.xb[:20].astype(np.float16))
    far = np.argmin(data.xb[:20] @ data.xb.T, axis=1)
    lines = ["query\tdoc"] + [f"{i}\t{d}" for i, d in enumerate(far)]
    (root / "qrels_norel.tsv").write_text("\n".join(lines) + "\n")
    return root


def run(dataset: Path, out: Path, train: str, test: str, methods: str) -> tuple[dict, str]:
    result = runner.invoke(
        app,
        ["eval-relevance", "--dataset", str(dataset), "--train", train, "--test", test,
         "--methods", methods, "--top-n", "30", "--json", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text()), result.stdout


def test_json_has_exactly_the_documented_keys(dataset, tmp_path):
    assert list(EVAL_RESULT_KEYS) == KEYS
    methods = "fixed,platt,cosine-adapter:lam=0.01,cosine-adapter:features=mean10,lam=0.01"
    doc, out = run(dataset, tmp_path / "r.json", "dev", "dev", methods)
    assert [r["method"] for r in doc["results"]] == [
        "fixed", "platt", "cosine-adapter:lam=0.01", "cosine-adapter:features=mean10,lam=0.01"
    ]  # fmt: skip
    for r in doc["results"]:
        assert list(r) == KEYS
        assert all(isinstance(r[k], float) and math.isfinite(r[k]) for k in KEYS[1:])
        assert 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1 and 0 <= r["f1"] <= 1
        if r["precision"] + r["recall"]:
            hm = 2 * r["precision"] * r["recall"] / (r["precision"] + r["recall"])
            assert r["f1"] == pytest.approx(hm)
    fixed, platt, adapter = doc["results"][:3]
    assert platt["f1"] == pytest.approx(fixed["f1"])  # a global monotone map
    assert 0 < adapter["threshold"] < 1 and fixed["f1"] > 0.2
    # train == test: a seeded 50/50 split of the queries, said in the JSON and the output
    assert doc["split"]["n_train"] == 60 and doc["split"]["n_test"] == 60
    assert "split 50/50" in " ".join(out.split())
    assert doc["details"][2]["lam"] == 0.01 and "fit_seconds" in doc["details"][0]
    assert "fixed" in out and "F1" in out


def test_separate_query_sets(dataset, tmp_path):
    doc, out = run(dataset, tmp_path / "r.json", "dev", "test", "fixed,cosine-adapter:lam=0.01")
    assert doc["split"] is None and "50/50" not in out
    assert (doc["n_train_queries"], doc["n_test_queries"]) == (120, 40)
    assert [list(r) for r in doc["results"]] == [KEYS, KEYS]


def test_bad_input_is_a_clear_error(dataset, tmp_path):
    cases = [
        (["--methods", "fixed,nonsense"], "unknown relevance method 'nonsense'"),
        (["--methods", "fixed", "--test", "nope"], "queries_nope.f16.npy"),
        (["--methods", "fixed", "--top-n", "0"], "--top-n must be positive"),
        (["--methods", "platt", "--train", "norel"], "training data has no positive"),
    ]
    for extra, message in cases:
        args = ["eval-relevance", "--dataset", str(dataset), "--train", "dev", "--test", "dev",
                "--json", str(tmp_path / "x.json"), *extra]  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert message in " ".join(result.output.split())
    assert not (tmp_path / "x.json").exists()


def test_split_method_specs():
    assert split_method_specs("fixed, platt,cosine-adapter") == ["fixed", "platt", "cosine-adapter"]
    assert split_method_specs("fixed,cosine-adapter:features=top1+mean10,lam=0.1,platt") == [
        "fixed", "cosine-adapter:features=top1+mean10,lam=0.1", "platt"
    ]  # fmt: skip
