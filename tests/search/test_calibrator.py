"""The streaming calibrator and how the planner reads its curves (pure numpy/FAISS)."""

from __future__ import annotations

import faiss
import numpy as np

from vecext.codecs import make_codec
from vecext.codecs.ivf import IVFCodec
from vecext.search.calibrate import Calibrator, _hash01, planner_calibration, probe_curve
from vecext.search.planner import Capabilities, PlannerSettings, calibration_curves, plan


def _data(n: int = 6000, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = 3 * rng.standard_normal((30, d))
    return (centers[rng.integers(0, 30, n)] + rng.standard_normal((n, d))).astype(np.float32)


def _brute_force_curve(xq, qids, xb, codec, k, mask=None):
    D = (
        -(xq / np.linalg.norm(xq, axis=1, keepdims=True))
        @ (xb / np.linalg.norm(xb, axis=1, keepdims=True)).T
    )
    C = codec.distances(xq, codec.encode(xb))
    D[qids[:, None] == np.arange(len(xb))[None, :]] = np.inf
    C[qids[:, None] == np.arange(len(xb))[None, :]] = np.inf
    if mask is not None:
        D[:, ~mask] = np.inf
        C[:, ~mask] = np.inf
    true = np.argsort(D, 1, kind="stable")[:, :k]
    cand = np.argsort(C, 1, kind="stable")[:, : 128 * k]
    hits = [
        {m: len(set(t) & set(c[: m * k])) / k for m in (1, 4, 16)}
        for t, c in zip(true, cand, strict=True)
    ]
    return {str(m): float(np.mean([h[m] for h in hits])) for m in (1, 4, 16)}, true


def test_streamed_batches_equal_brute_force() -> None:
    faiss.omp_set_num_threads(1)
    xb = _data()
    codec = make_codec("pq", 16, "cosine", m=4, niter=5).train(xb)
    coarse = IVFCodec(16, "cosine", nlist=24, niter=5).train(xb)
    qids = np.arange(0, 6000, 150)
    cal = Calibrator(xb[qids], qids, 10, codec, coarse, subsets=((0.1, "random"),))
    for i in range(0, len(xb), 1700):  # uneven batches
        cal.add(np.arange(i, min(i + 1700, len(xb))), xb[i : i + 1700])
    rec = cal.result()
    ref, true = _brute_force_curve(xb[qids], qids, xb, codec, 10)
    for m in ("1", "4", "16"):
        assert abs(rec["depth"][m] - ref[m]) < 1e-9
    ref_probe = probe_curve(coarse.assign(xb)[true], coarse.probe(xb[qids], 24))
    assert rec["nprobe"] == ref_probe and rec["queries"] == "rows"
    (sub,) = rec["subsets"]
    assert sub["kind"] == "random" and abs(sub["fraction"] - 0.1) < 0.02
    # the subset's curve is the brute-force curve among the subset's rows
    mask = _hash01(np.arange(len(xb)), 0) < 0.1
    ref_sub, _ = _brute_force_curve(xb[qids], qids, xb, codec, 10, mask)
    for m in ("1", "4", "16"):
        assert abs(sub["depth"][m] - ref_sub[m]) < 1e-9
    assert sub["depth"] != rec["depth"]


def test_given_queries_and_cluster_subsets() -> None:
    faiss.omp_set_num_threads(1)
    xb = _data(seed=1)
    codec = make_codec("binary", 16, "cosine").train(xb)
    xq = _data(50, seed=2)
    cal = Calibrator(xq, np.zeros(50, np.int64), 5, codec, exclude_self=False,
                     subsets=((0.1, "cluster"), (0.01, "random")))  # fmt: skip
    cal.add(np.arange(len(xb)), xb)
    rec = cal.result()
    assert rec["queries"] == "given" and "nprobe" not in rec
    kinds = {(s["kind"], s["selectivity"]) for s in rec["subsets"]}
    assert kinds == {("cluster", 0.1), ("random", 0.01)}
    cluster = next(s for s in rec["subsets"] if s["kind"] == "cluster")
    assert 0.02 < cluster["fraction"] < 0.3


def test_planner_takes_the_most_demanding_curve() -> None:
    rec = {
        "depth": {"1": 0.9, "2": 0.97, "8": 1.0},
        "nprobe": {"4": 0.9, "16": 0.99, "64": 1.0},
        "subsets": [
            {"selectivity": 0.1, "kind": "random", "depth": {"2": 0.9, "4": 0.96},
             "nprobe": {"16": 0.9, "32": 0.98}},
            {"selectivity": 0.01, "kind": "cluster", "depth": {"4": 0.9, "8": 0.96},
             "nprobe": {"32": 0.9, "64": 0.98}},
        ],
    }  # fmt: skip
    caps = Capabilities(n_rows=100_000, code_column="c", list_column="l", n_lists=64,
                        **planner_calibration(rec))  # fmt: skip
    depth, probe = calibration_curves(caps, 1.0, filtered=False)
    assert depth == [rec["depth"]] and probe == [rec["nprobe"]]
    depth, _ = calibration_curves(caps, 0.05, filtered=True)  # between the two levels
    assert depth[1] == rec["subsets"][1]["depth"]
    depth, _ = calibration_curves(caps, 0.5, filtered=True)
    assert depth[1] == rec["subsets"][0]["depth"]
    s = PlannerSettings(exact_max_rows=10)
    assert plan(caps, 100_000, 10, strategy="compressed", settings=s).params["rerank"] == 20
    assert plan(caps, 50_000, 10, strategy="compressed", filtered=True).params["rerank"] == 40
    assert plan(caps, 5_000, 10, strategy="compressed", filtered=True).params["rerank"] == 80
    p = plan(caps, 100_000, 10, strategy="ivf")
    assert p.params["nprobe"] == 16 and p.params["deepen"] > 0  # stage target 0.975
