"""Loading a labelled dataset from its directory, or building one from a spec string.

On-disk layout (see ``wordnet-minilm``)::

    docs.f16.npy              (n, d) float16 (float32 also accepted) document vectors
    docs.parquet              one row per document: filter attributes
    queries_NAME.f16.npy      (nq, d) query vectors
    qrels_NAME.tsv            header ``query<TAB>doc``, one relevant (query row, doc row) pair a line
    queries_NAME.parquet      optional per-query attributes

``load_dataset(path, "NAME")`` reads one query set; ``load_dataset("synthetic:n=...,d=...",
"NAME")`` builds seeded synthetic data instead (see :func:`parse_synthetic_spec`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from vecext.datasets.dataset import Dataset, qrels_to_lists, read_qrels
from vecext.datasets.spec import synthetic_datasets

__all__ = ["load_dataset", "load_datasets"]


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"dataset file missing: {path} ({what})")
    return path


def _load_vectors(path: Path) -> np.ndarray:
    arr = np.load(path, mmap_mode="r")
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D array, got shape {arr.shape}")
    # Memory-mapped read, then exactly one in-RAM float32 copy (no float16 copy first).
    return np.array(arr, dtype=np.float32, order="C")


def load_dataset(path: str | Path, queries: str) -> Dataset:
    """Load documents, attributes and the query set ``queries`` from ``path``.

    ``path`` is a directory in the layout above, or a ``synthetic:...`` spec. Raises
    ``FileNotFoundError`` naming the missing file, ``ValueError`` on inconsistent
    shapes or qrels outside the document/query ranges.
    """
    return load_datasets(path, [queries])[0]


def load_datasets(path: str | Path, queries: Sequence[str]) -> list[Dataset]:
    """Like :func:`load_dataset` for several query sets; the documents are read once
    and shared (same ``xb`` / ``attrs`` objects) by all returned datasets."""
    names = list(dict.fromkeys(queries))
    if isinstance(path, str) and path.startswith("synthetic:"):
        by_name = dict(zip(names, synthetic_datasets(path, names), strict=True))
        return [by_name[q] for q in queries]
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory missing: {root}")
    docs_npy = _need(root / "docs.f16.npy", "document vectors")
    docs_pq = _need(root / "docs.parquet", "document attributes")
    files = {}
    for q in names:  # check every file before the expensive reads
        files[q] = (
            _need(root / f"queries_{q}.f16.npy", f"vectors of query set {q!r}"),
            _need(root / f"qrels_{q}.tsv", f"relevance labels of query set {q!r}"),
            root / f"queries_{q}.parquet",
        )
    xb = _load_vectors(docs_npy)
    attrs = pq.read_table(docs_pq)
    if attrs.num_rows != xb.shape[0]:
        raise ValueError(f"{docs_pq} has {attrs.num_rows} rows but {docs_npy} has {xb.shape[0]}")
    out: dict[str, Dataset] = {}
    for q, (q_npy, q_tsv, q_pq) in files.items():
        xq = _load_vectors(q_npy)
        if xq.shape[1] != xb.shape[1]:
            raise ValueError(
                f"{q_npy}: queries have dimension {xq.shape[1]} but documents {xb.shape[1]}"
            )
        pairs = read_qrels(q_tsv)
        if pairs.size and (pairs[:, 1].min() < 0 or pairs[:, 1].max() >= xb.shape[0]):
            raise ValueError(f"{q_tsv}: doc rows outside 0..{xb.shape[0] - 1}")
        qrels = qrels_to_lists(pairs, xq.shape[0])
        query_attrs = pq.read_table(q_pq) if q_pq.is_file() else None
        if query_attrs is not None and query_attrs.num_rows != xq.shape[0]:
            raise ValueError(
                f"{q_pq} has {query_attrs.num_rows} rows but {q_npy} has {xq.shape[0]}"
            )
        out[q] = Dataset(
            name=root.name,
            queries=q,
            xb=xb,
            attrs=attrs,
            xq=xq,
            qrels=qrels,
            qrel_pairs=pairs,
            query_attrs=query_attrs,
        )
    return [out[q] for q in queries]
