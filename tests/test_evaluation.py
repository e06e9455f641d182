"""Metrics against hand-computed cases, seeded synthetic data, dataset loading."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vecext.datasets import (
    load_dataset,
    load_datasets,
    parse_synthetic_spec,
    qrels_to_lists,
    synthetic_embeddings,
    synthetic_queries,
)
from vecext.evaluation import (
    labels_from_qrels,
    ndcg_at_k,
    pr_auc,
    pr_curve,
    precision_recall_f1,
    recall_at_k,
    relevance_recall_at_k,
)

# --------------------------------------------------------------------------- metrics


def test_recall_at_k_hand_case():
    I_pred = np.array([[1, 2, 3], [4, 5, -1]])
    I_true = np.array([[1, 3, 9], [4, -1, -1]])
    # q0: {1,3} of 3 true -> 2/3; q1: 1 valid true id, found -> 1
    assert recall_at_k(I_pred, I_true, 3) == pytest.approx((2 / 3 + 1) / 2)
    # k=1: q0 pred {1} true {1} -> 1; q1 -> 1
    assert recall_at_k(I_pred, I_true, 1) == pytest.approx(1.0)
    # k=2: q0 pred {1,2} true {1,3} -> 1/2
    assert recall_at_k(I_pred, I_true, 2) == pytest.approx((0.5 + 1) / 2)


def test_recall_at_k_padding_duplicates_and_empty():
    assert recall_at_k(np.array([[7, 7, 7]]), np.array([[7, 8, 9]]), 3) == pytest.approx(1 / 3)
    assert math.isnan(recall_at_k(np.array([[1, 2]]), np.array([[-1, -1]]), 2))
    # a query without true neighbours is left out of the average
    got = recall_at_k(np.array([[1, 2], [3, 4]]), np.array([[-1, -1], [4, 5]]), 2)
    assert got == pytest.approx(0.5)
    with pytest.raises(ValueError):
        recall_at_k(np.array([[1]]), np.array([[1], [2]]), 1)
    with pytest.raises(ValueError):
        recall_at_k(np.array([[1]]), np.array([[1]]), 0)


def test_relevance_recall_at_k_hand_case():
    I_pred = np.array([[1, 2, 3], [7, 8, 9], [4, 5, 6]])
    qrels = [np.array([3, 5]), np.array([], dtype=np.int64), np.array([4])]
    # q1 has no relevant documents and is skipped
    assert relevance_recall_at_k(I_pred, qrels, 2) == pytest.approx((0 + 1) / 2)
    assert relevance_recall_at_k(I_pred, qrels, 3) == pytest.approx((0.5 + 1) / 2)


def test_ndcg_at_k_hand_case():
    I_pred = np.array([[5, 1, 7]])
    qrels = [np.array([1, 7, 9, 10])]
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # min(k=3, |rel|=4) hits
    assert ndcg_at_k(I_pred, qrels, 3) == pytest.approx(dcg / ideal)
    # fewer relevant than k: ideal over |rel| hits only
    assert ndcg_at_k(np.array([[2, 9, 8]]), [np.array([9])], 3) == pytest.approx(1 / math.log2(3))
    # a repeated relevant id counts once; padding gains nothing
    assert ndcg_at_k(np.array([[1, 1, -1]]), [np.array([1])], 3) == pytest.approx(1.0)
    assert ndcg_at_k(np.array([[1, 2]]), [np.array([1, 2])], 2) == pytest.approx(1.0)


def test_precision_recall_f1_micro_counts_unretrieved_relevant():
    selected = [np.array([1, 2]), np.array([], dtype=np.int64), np.array([5])]
    qrels = [np.array([1, 3]), np.array([4]), np.array([6])]
    prf = precision_recall_f1(selected, qrels)
    assert (prf.n_selected, prf.n_correct, prf.n_relevant) == (3, 1, 4)
    assert prf.precision == pytest.approx(1 / 3)
    assert prf.recall == pytest.approx(1 / 4)
    assert prf.f1 == pytest.approx(2 / 7)
    # the same as a padded matrix
    padded = np.array([[1, 2], [-1, -1], [5, -1]])
    assert precision_recall_f1(padded, qrels) == prf
    empty = precision_recall_f1([np.array([], dtype=np.int64)], [np.array([1])])
    assert (empty.precision, empty.recall, empty.f1) == (0.0, 0.0, 0.0)


def test_pr_curve_and_auc_hand_case():
    scores = np.array([0.9, 0.8, 0.8, 0.3])
    labels = np.array([1, 0, 1, 0], dtype=bool)
    precision, recall, thr = pr_curve(scores, labels, n_relevant_total=4)
    np.testing.assert_allclose(thr, [0.9, 0.8, 0.3])
    np.testing.assert_allclose(precision, [1.0, 2 / 3, 0.5])
    np.testing.assert_allclose(recall, [0.25, 0.5, 0.5])
    assert pr_auc(scores, labels, 4) == pytest.approx(0.25 * 1 + 0.25 * 2 / 3)
    # default denominator: the labelled positives; a perfect ranking has area 1
    assert pr_auc(np.array([3.0, 2.0, 1.0]), np.array([1, 1, 0], bool)) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        pr_curve(scores, labels, n_relevant_total=1)
    with pytest.raises(ValueError):
        pr_curve(np.array([np.nan]), np.array([True]))


def test_labels_from_qrels():
    I = np.array([[3, 1, -1], [0, 2, 5]])
    Y = labels_from_qrels(I, [np.array([1, 9]), np.array([5])])
    np.testing.assert_array_equal(Y, [[False, True, False], [False, False, True]])


# --------------------------------------------------------------------------- synthetic data


def test_synthetic_embeddings_properties():
    data = synthetic_embeddings(3000, 32, n_clusters=60, seed=4, spectrum_decay=0.7)
    assert data.xb.shape == (3000, 32) and data.xb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(data.xb, axis=1), 1.0, atol=1e-5)
    assert data.cluster.dtype == np.int32 and data.cluster.max() < 60
    # skewed categorical, uniform numeric
    counts = np.bincount(data.category)
    assert counts.max() > 4 * np.median(counts[counts > 0])
    assert data.value.dtype == np.float32
    assert data.value.min() >= 0.0 and data.value.max() < 1.0
    assert abs(float(data.value.mean()) - 0.5) < 0.03
    # decaying spectrum: the leading directions carry most of the variance
    ev = np.linalg.eigvalsh(np.cov(data.xb.T.astype(np.float64)))[::-1]
    assert ev[0] > 5 * ev[15]
    # cluster structure: same-cluster pairs are more similar than random pairs
    same = data.cluster == data.cluster[0]
    sims = data.xb @ data.xb[0]
    assert sims[same][1:].mean() > sims[~same].mean() + 0.2
    # deterministic in the seed
    again = synthetic_embeddings(3000, 32, n_clusters=60, seed=4, spectrum_decay=0.7)
    np.testing.assert_array_equal(again.xb, data.xb)
    other = synthetic_embeddings(3000, 32, n_clusters=60, seed=5, spectrum_decay=0.7)
    assert not np.array_equal(other.xb, data.xb)
    raw = synthetic_embeddings(100, 8, seed=0, normalize=False, block_rows=7)
    assert not np.allclose(np.linalg.norm(raw.xb, axis=1), 1.0)


def test_synthetic_queries_known_relevance():
    data = synthetic_embeddings(2000, 24, seed=1)
    sq = synthetic_queries(data, 50, seed=2, max_relevant=20)
    assert sq.xq.shape == (50, 24) and sq.xq.dtype == np.float32
    assert len(sq.qrels) == 50
    for i, rel in enumerate(sq.qrels):
        assert rel.dtype == np.int64 and 1 <= rel.size <= 20
        assert np.all(data.cluster[rel] == sq.cluster[i])
        assert np.all(np.diff(rel) > 0)
    # relevant documents are near the query: most of them within its top 50
    sims = sq.xq @ data.xb.T
    top = np.argsort(-sims, axis=1)[:, :50]
    assert relevance_recall_at_k(top, sq.qrels, 50) > 0.6


# --------------------------------------------------------------------------- datasets


def _write_dataset(root, n=20, d=8, nq=4, with_query_parquet=True):
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((n, d)).astype(np.float16)
    np.save(root / "docs.f16.npy", xb)
    pq.write_table(
        pa.table({"row": np.arange(n, dtype=np.int32), "pos": ["n"] * n}), root / "docs.parquet"
    )
    np.save(root / "queries_dev.f16.npy", rng.standard_normal((nq, d)).astype(np.float16))
    (root / "qrels_dev.tsv").write_text("query\tdoc\n2\t5\n0\t3\n0\t1\n")
    if with_query_parquet:
        pq.write_table(
            pa.table({"row": np.arange(nq, dtype=np.int32)}), root / "queries_dev.parquet"
        )
    return xb


def test_load_dataset_layout(tmp_path):
    xb16 = _write_dataset(tmp_path)
    ds = load_dataset(tmp_path, "dev")
    assert ds.xb.dtype == np.float32 and ds.xb.flags.c_contiguous
    np.testing.assert_array_equal(ds.xb, xb16.astype(np.float32))
    assert ds.xq.shape == (4, 8) and ds.xq.dtype == np.float32
    assert ds.attrs.num_rows == 20 and "pos" in ds.attrs.column_names
    assert ds.query_attrs is not None and ds.query_attrs.num_rows == 4
    assert [r.tolist() for r in ds.qrels] == [[1, 3], [], [5], []]
    assert all(r.dtype == np.int64 for r in ds.qrels)
    np.testing.assert_array_equal(ds.qrel_pairs, [[0, 1], [0, 3], [2, 5]])
    np.testing.assert_array_equal(ds.n_relevant, [2, 0, 1, 0])
    assert ds.d == 8


def test_load_dataset_errors_name_the_file(tmp_path):
    _write_dataset(tmp_path, with_query_parquet=False)
    assert load_dataset(tmp_path, "dev").query_attrs is None  # optional file
    with pytest.raises(FileNotFoundError, match="queries_test.f16.npy"):
        load_dataset(tmp_path, "test")
    (tmp_path / "docs.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="docs.parquet"):
        load_dataset(tmp_path, "dev")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_dataset(tmp_path / "nowhere", "dev")


def test_load_dataset_bad_qrels(tmp_path):
    _write_dataset(tmp_path)
    (tmp_path / "qrels_dev.tsv").write_text("q\td\n0\t1\n")
    with pytest.raises(ValueError, match="header"):
        load_dataset(tmp_path, "dev")
    (tmp_path / "qrels_dev.tsv").write_text("query\tdoc\n0\t99\n")
    with pytest.raises(ValueError, match="doc rows"):
        load_dataset(tmp_path, "dev")
    (tmp_path / "qrels_dev.tsv").write_text("query\tdoc\n9\t1\n")
    with pytest.raises(ValueError, match="query rows"):
        load_dataset(tmp_path, "dev")


def test_load_datasets_shares_documents(tmp_path):
    _write_dataset(tmp_path)
    a, b = load_datasets(tmp_path, ["dev", "dev"])
    assert a.xb is b.xb


def test_qrels_to_lists_sorts_and_dedups():
    lists = qrels_to_lists(np.array([[1, 4], [0, 2], [1, 3], [1, 4]]), 3)
    assert [x.tolist() for x in lists] == [[2], [3, 4], []]


def test_parse_synthetic_spec():
    ds = parse_synthetic_spec("synthetic:n=1500,d=16,nq=30,seed=3", queries="a")
    assert ds.xb.shape == (1500, 16) and ds.xb.dtype == np.float32
    assert ds.xq.shape == (30, 16) and len(ds.qrels) == 30
    assert set(ds.attrs.column_names) == {"row", "category", "value"}
    assert ds.qrel_pairs.shape == (int(ds.n_relevant.sum()), 2)
    again = load_dataset("synthetic:n=1500,d=16,nq=30,seed=3", "a")
    np.testing.assert_array_equal(again.xq, ds.xq)
    other = load_dataset("synthetic:n=1500,d=16,nq=30,seed=3", "b")
    np.testing.assert_array_equal(other.xb, ds.xb)  # same documents
    assert not np.array_equal(other.xq, ds.xq)  # another query set
    with pytest.raises(ValueError, match="bad synthetic spec"):
        parse_synthetic_spec("synthetic:n=10,colour=red")
    with pytest.raises(ValueError, match="bad value"):
        parse_synthetic_spec("synthetic:n=ten")
    with pytest.raises(ValueError, match="synthetic:"):
        parse_synthetic_spec("n=10")


def test_synthetic_data_moved_with_a_deprecated_alias():
    import vecext.evaluation as ev
    from vecext.datasets import SyntheticEmbeddings

    with pytest.warns(DeprecationWarning, match="vecext.datasets"):
        assert ev.synthetic_embeddings is synthetic_embeddings
    with pytest.warns(DeprecationWarning):
        assert ev.SyntheticEmbeddings is SyntheticEmbeddings
    with pytest.raises(AttributeError):
        ev.no_such_name  # noqa: B018
