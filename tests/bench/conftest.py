"""A small dataset in the shared layout, generated into a temporary directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

N_DOCS = 2000
DIM = 32
N_QUERIES = 40


def write_dataset(root: Path, *, n: int = N_DOCS, d: int = DIM, nq: int = N_QUERIES) -> Path:
    """Clustered unit vectors stored as float16, with ``pos``/``color``/``rank`` attributes.

    ``pos`` has a rare value ``r`` (~3%), ``color`` a very rare value ``teal`` (8 rows);
    queries are perturbed documents and each query's relevant set is its cluster's
    nearest documents (relevance labels that nDCG can use).
    """
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((30, d)).astype(np.float32)
    cluster = rng.integers(0, 30, n)
    xb = centers[cluster] + 0.6 * rng.standard_normal((n, d)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    pos = rng.choice(np.array(["n", "v", "a", "r"]), size=n, p=[0.6, 0.2, 0.17, 0.03])
    color = rng.choice(np.array(["red", "green", "blue"]), size=n)
    color[rng.choice(n, 8, replace=False)] = "teal"
    attrs = pa.table(
        {
            "row": pa.array(np.arange(n, dtype=np.int32)),
            "pos": pa.array(pos),
            "color": pa.array(color),
            "rank": pa.array(rng.integers(0, 100, n).astype(np.int32)),
        }
    )
    anchors = rng.choice(n, nq, replace=False)
    xq = xb[anchors] + 0.3 * rng.standard_normal((nq, d)).astype(np.float32)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "docs.f16.npy", xb.astype(np.float16))
    pq.write_table(attrs, root / "docs.parquet")
    np.save(root / "queries_x.f16.npy", xq.astype(np.float16))
    lines = ["query\tdoc"]
    xb16 = xb.astype(np.float16).astype(np.float32)
    for i, a in enumerate(anchors):
        members = np.flatnonzero(cluster == cluster[a])
        sims = xb16[members] @ xq[i].astype(np.float16).astype(np.float32)
        for doc in np.sort(members[np.argsort(-sims)[:5]]):
            lines.append(f"{i}\t{doc}")
    (root / "qrels_x.tsv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def bench_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("bench") / "tiny-set")


@pytest.fixture(autouse=True)
def _one_faiss_thread():
    """FAISS's OpenMP threads spin-wait; on a loaded 2-core test machine one thread is faster."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)
