"""Evaluate relevance methods on a labelled dataset.

For each query set: exact cosine top-N over all documents (FAISS ``IndexFlatIP``,
brute force), 0/1 labels from the qrels; every method is trained on the ``train``
queries (its threshold chosen there by micro-F1) and measured on the ``test`` queries.
Recall counts *all* relevant documents of the test queries, also those outside the
top-N. When ``train == test`` the queries are split 50/50 by
``numpy.random.default_rng(seed).permutation``: first half trains, second half tests.

Command line::

    python -m vecext.relevance.evaluate DATASET --train dev --test dev \\
        --methods fixed platt cosine-adapter "cosine-adapter:features=top1+gap12+mean10"
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vecext.datasets import Dataset, load_datasets
from vecext.evaluation import labels_from_qrels, pr_auc
from vecext.relevance.base import make_relevance

__all__ = ["QuerySetResults", "eval_relevance", "exact_top_n", "oracle_f1", "main"]


def exact_top_n(
    xb: np.ndarray, xq: np.ndarray, n: int, *, normalize: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-``n``: ``(S float32 (nq, n) descending, I int64 (nq, n))``.

    With ``normalize`` the rows are L2-normalised first (a normalised copy of ``xb`` is
    made only when its norms are not already 1 to within 1e-3).
    """
    import faiss

    xb = np.ascontiguousarray(xb, dtype=np.float32)
    xq = np.array(xq, dtype=np.float32, order="C")
    if normalize:
        norms = np.linalg.norm(xb, axis=1)
        if np.any(np.abs(norms - 1.0) > 1e-3):
            xb = xb / np.maximum(norms, 1e-12)[:, None]
        xq /= np.maximum(np.linalg.norm(xq, axis=1, keepdims=True), 1e-12)
    n = min(int(n), xb.shape[0])
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    S, I = index.search(xq, n)
    return S.astype(np.float32, copy=False), I.astype(np.int64, copy=False)


class QuerySetResults:
    """A query set's top-N similarities, labels and relevant counts (a subset view)."""

    def __init__(self, xq: np.ndarray, S: np.ndarray, I: np.ndarray, Y: np.ndarray, nrel):
        self.xq, self.S, self.I, self.Y = xq, S, I, Y
        self.n_relevant = np.asarray(nrel, dtype=np.int64)

    @classmethod
    def from_dataset(cls, ds: Dataset, top_n: int) -> QuerySetResults:
        S, I = exact_top_n(ds.xb, ds.xq, top_n)
        return cls(ds.xq, S, I, labels_from_qrels(I, ds.qrels), ds.n_relevant)

    def take(self, rows: np.ndarray) -> QuerySetResults:
        return QuerySetResults(
            self.xq[rows], self.S[rows], self.I[rows], self.Y[rows], self.n_relevant[rows]
        )

    @property
    def nq(self) -> int:
        return int(self.S.shape[0])


def oracle_f1(Y: np.ndarray, n_relevant: np.ndarray) -> dict[str, float]:
    """Per-query oracle cut-offs, chosen on each query's own labels.

    Each query keeps a prefix (0..N) of its ranking; the prefixes jointly maximise
    micro-F1 (Dinkelbach iteration: with ``F`` the current micro-F1 every query keeps
    the prefix maximising ``2 tp - F k``; ties take the shorter prefix). Returns micro
    precision/recall/F1 of that oracle, its average results per query, and
    ``mean_query_f1``: the mean over queries of each query's own best F1 (queries
    without relevant documents count 0).
    """
    Y = np.asarray(Y, dtype=bool)
    nrel = np.asarray(n_relevant, dtype=np.int64)
    nq, N = Y.shape
    R = int(nrel.sum())
    tp = np.concatenate([np.zeros((nq, 1), np.int64), np.cumsum(Y, axis=1)], axis=1)
    k = np.arange(N + 1)[None, :]
    rows = np.arange(nq)
    denom = k + nrel[:, None]
    q_f1 = np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0).max(axis=1)
    F = 0.0
    n_ok = n_sel = 0
    for _ in range(100):
        best = np.argmax(2.0 * tp - F * k, axis=1)
        n_ok = int(tp[rows, best].sum())
        n_sel = int(best.sum())
        F_new = 2.0 * n_ok / (n_sel + R) if (n_sel + R) else 0.0
        if F_new <= F + 1e-15:
            break
        F = F_new
    return {
        "precision": n_ok / n_sel if n_sel else 0.0,
        "recall": n_ok / R if R else 0.0,
        "f1": 2.0 * n_ok / (n_sel + R) if (n_sel + R) else 0.0,
        "avg_results_per_query": n_sel / nq if nq else 0.0,
        "mean_query_f1": float(q_f1.mean()) if nq else 0.0,
    }


def _evaluate_method(spec: str, train: QuerySetResults, test: QuerySetResults) -> dict[str, Any]:
    method = make_relevance(spec)
    t0 = time.perf_counter()
    method.fit(train.xq, train.S, train.Y, train.n_relevant)
    fit_s = time.perf_counter() - t0
    scores = method.score(test.xq, test.S)
    sel = scores >= method.threshold
    R = int(test.n_relevant.sum())
    n_sel = int(sel.sum())
    n_ok = int((sel & test.Y).sum())
    out: dict[str, Any] = {
        "method": spec,
        "threshold": float(method.threshold),
        "precision": n_ok / n_sel if n_sel else 0.0,
        "recall": n_ok / R if R else 0.0,
        "f1": 2.0 * n_ok / (n_sel + R) if (n_sel + R) else 0.0,
        "pr_auc": pr_auc(scores, test.Y, R),
        "avg_results_per_query": n_sel / test.nq,
        "fit_seconds": round(fit_s, 3),
    }
    train_prf = method.fit_info.get("train_prf")
    if train_prf:
        out["train_f1"] = train_prf["f1"]
    if "lam" in method.fit_info:
        out["lam"] = method.fit_info["lam"]
    features = getattr(method, "features", None)  # the Cosine Adapter's only
    if features:
        out["features"] = list(features)
    return out


def eval_relevance(
    dataset_dir: str | Path,
    train: str,
    test: str,
    methods: Sequence[str],
    *,
    top_n: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """Train each method on ``train`` queries and report micro P/R/F1 on ``test``.

    ``methods`` are registry names or specs (``"cosine-adapter:features=top1+gap12"``).
    Returns ``{"results": [{"method", "threshold", "precision", "recall", "f1",
    "pr_auc", "avg_results_per_query", ...}], "split": ..., "oracle": ...,
    "coverage": ..., ...}``. ``pr_auc`` is the area under the precision-recall curve
    of the method's score over the test queries' top-N (recall over all relevant).
    """
    if not methods:
        raise ValueError("no methods to evaluate")
    t0 = time.perf_counter()
    names = [train] if train == test else [train, test]
    sets = load_datasets(dataset_dir, names)
    load_s = time.perf_counter() - t0
    split: dict[str, Any] | None = None
    if train == test:
        full = QuerySetResults.from_dataset(sets[0], top_n)
        perm = np.random.default_rng(seed).permutation(full.nq)
        half = full.nq // 2
        tr, te = full.take(perm[:half]), full.take(perm[half:])
        split = {
            "how": f"numpy.random.default_rng({seed}).permutation({full.nq}); "
            f"train on the first {half}, report on the other {full.nq - half}",
            "seed": seed,
            "n_train": int(half),
            "n_test": int(full.nq - half),
        }
    else:
        tr = QuerySetResults.from_dataset(sets[0], top_n)
        te = QuerySetResults.from_dataset(sets[1], top_n)
    search_s = time.perf_counter() - t0 - load_s
    R_te = int(te.n_relevant.sum())
    results = [_evaluate_method(spec, tr, te) for spec in methods]
    return {
        "dataset": str(dataset_dir),
        "train": train,
        "test": test,
        "split": split,
        "top_n": int(top_n),
        "n_docs": int(sets[0].xb.shape[0]),
        "d": int(sets[0].xb.shape[1]),
        "n_train_queries": tr.nq,
        "n_test_queries": te.nq,
        "test_relevant_pairs": R_te,
        "coverage": float(te.Y.sum() / R_te) if R_te else 0.0,
        "oracle": oracle_f1(te.Y, te.n_relevant),
        "results": results,
        "seconds": {"load": round(load_s, 2), "search": round(search_s, 2)},
    }


def format_table(report: dict[str, Any]) -> str:
    """The results as a fixed-width text table."""
    lines = [
        f"dataset {report['dataset']}  train={report['train']}  test={report['test']}  "
        f"top_n={report['top_n']}  train/test queries {report['n_train_queries']}/"
        f"{report['n_test_queries']}  coverage of relevant in top-N {report['coverage']:.3f}",
    ]
    if report["split"]:
        lines.append(f"split: {report['split']['how']}")
    head = f"{'method':<58} {'thresh':>8} {'P':>6} {'R':>6} {'F1':>6} {'PR-AUC':>6} {'avg/q':>6}"
    lines += [head, "-" * len(head)]
    for r in report["results"]:
        lines.append(
            f"{r['method']:<58} {r['threshold']:8.4f} {r['precision']:6.3f} {r['recall']:6.3f} "
            f"{r['f1']:6.3f} {r['pr_auc']:6.3f} {r['avg_results_per_query']:6.2f}"
        )
    o = report["oracle"]
    lines.append(
        f"{'(per-query oracle)':<58} {'':>8} {o['precision']:6.3f} {o['recall']:6.3f} "
        f"{o['f1']:6.3f} {'':>6} {o['avg_results_per_query']:6.2f}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vecext.relevance.evaluate", description=__doc__)
    ap.add_argument("dataset", help="dataset directory or synthetic:... spec")
    ap.add_argument("--train", default="dev")
    ap.add_argument("--test", default=None, help="defaults to --train (50/50 split)")
    ap.add_argument(
        "--methods", nargs="+", default=["fixed", "platt", "cosine-adapter"], help="method specs"
    )
    ap.add_argument("--top-n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the full report to this file")
    args = ap.parse_args(argv)
    report = eval_relevance(
        args.dataset,
        args.train,
        args.test or args.train,
        args.methods,
        top_n=args.top_n,
        seed=args.seed,
    )
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
