"""The one calibration driver, on an in-memory table: the backends only read rows."""

from __future__ import annotations

import numpy as np
import pytest

from tests.search.test_engine import MemoryBackend
from vecext.codecs import make_codec
from vecext.search import calibrate
from vecext.search.calibrator import Calibrator


class Rows:
    """A RowSource over numpy arrays (keys = row numbers)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x, self.dim = x, x.shape[1]

    def sample(self, n: int, seed: int):
        rows = np.sort(np.random.default_rng(seed).choice(len(self.x), n, replace=False))
        return rows, self.x[rows]

    def batches(self, size: int):
        for i in range(0, len(self.x), size):
            yield np.arange(i, min(i + size, len(self.x))), self.x[i : i + size]


def test_code_calibration_is_the_calibrator_over_streamed_rows() -> None:
    x = np.random.default_rng(1).standard_normal((1500, 16)).astype(np.float32)
    codec = make_codec("pq", d=16, m=4, metric="l2").train(x)
    rows = Rows(x)
    rec = calibrate.measure_codes(rows, codec, k=5, n_queries=30, batch_size=400)
    qids, xq = rows.sample(30, 0)
    ref = Calibrator(xq, qids, 5, codec)
    for keys, xb in rows.batches(400):  # (the cluster subsets come from the first batch)
        ref.add(keys, xb)
    assert rec == ref.result() and rec["queries"] == "rows"
    given = calibrate.measure_codes(rows, codec, k=5, queries=xq[:7])
    assert given["queries"] == "given" and given["n_queries"] == 7
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        calibrate.measure_codes(rows, codec, batch_size=0)


def test_index_calibration_runs_perturbed_rows_through_the_engine() -> None:
    backend = MemoryBackend(hnsw=True)
    target = calibrate.index_target(backend, "t", "v", "ix", "l2")
    rec = calibrate.measure_index(target, Rows(backend.xb), k=5, n_queries=12, ef_ladder=(8, 64))
    assert rec["queries"] == "perturbed rows" and rec["metric"] == "l2"
    assert rec["ef_search"] == {"8": 1.0, "64": 1.0}  # the in-memory "index" is exact
    assert "hnsw:8" in backend.calls and "hnsw:64" in backend.calls  # as given: no floor
    with pytest.raises(ValueError, match="index 'nope' cannot order"):
        calibrate.index_target(backend, "t", "v", "nope", "l2")


def test_perturbed_queries_sit_at_the_kth_distance() -> None:
    x = np.random.default_rng(2).standard_normal((200, 64)).astype(np.float32)
    q = calibrate.perturbed_queries(x, 4.0, "l2", seed=3)
    moved = ((q - x) ** 2).sum(1)
    assert abs(float(np.median(moved)) - 4.0) < 0.5
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    c = calibrate.perturbed_queries(x, 0.2, "cosine")
    cos = (c * xn).sum(1) / np.linalg.norm(c, axis=1)
    assert abs(float(np.median(1 - cos)) - 0.2) < 0.03
