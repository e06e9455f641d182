"""A labelled query set over a document collection, and its relevance labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

__all__ = ["Dataset", "qrels_to_lists", "read_qrels"]


@dataclass
class Dataset:
    """Documents, attributes, one query set and its relevance labels.

    ``xb`` float32 ``(n, d)``; ``attrs`` a pyarrow Table with one row per document;
    ``xq`` float32 ``(nq, d)``; ``qrels`` one sorted int64 array of relevant doc rows
    per query; ``qrel_pairs`` int64 ``(P, 2)`` the same as (query, doc) pairs;
    ``query_attrs`` optional pyarrow Table with one row per query.
    """

    name: str
    queries: str
    xb: np.ndarray
    attrs: pa.Table
    xq: np.ndarray
    qrels: list[np.ndarray]
    qrel_pairs: np.ndarray
    query_attrs: pa.Table | None = None

    @property
    def d(self) -> int:
        return int(self.xb.shape[1])

    @property
    def n_relevant(self) -> np.ndarray:
        """int64 ``(nq,)``: size of each query's relevant set."""
        return np.fromiter((r.size for r in self.qrels), dtype=np.int64, count=len(self.qrels))

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, queries={self.queries!r}, docs={self.xb.shape}, "
            f"queries_shape={self.xq.shape}, qrels={len(self.qrel_pairs)} pairs)"
        )


def read_qrels(path: str | Path) -> np.ndarray:
    """Read a ``query<TAB>doc`` TSV into an int64 ``(P, 2)`` array sorted by (query, doc)."""
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
    if header[:2] != ["query", "doc"]:
        raise ValueError(f"{path}: header must be 'query<TAB>doc', got {header!r}")
    pairs = np.loadtxt(path, dtype=np.int64, delimiter="\t", skiprows=1, ndmin=2)
    if pairs.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if pairs.shape[1] != 2:
        raise ValueError(f"{path}: expected 2 columns, got {pairs.shape[1]}")
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return np.ascontiguousarray(pairs[order])


def qrels_to_lists(pairs: np.ndarray, nq: int) -> list[np.ndarray]:
    """Split sorted ``(query, doc)`` pairs into one doc array per query (``nq`` entries)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if pairs.size and (pairs[:, 0].min() < 0 or pairs[:, 0].max() >= nq):
        raise ValueError(f"qrels name query rows outside 0..{nq - 1}")
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    pairs = pairs[order]
    bounds = np.searchsorted(pairs[:, 0], np.arange(nq + 1))
    return [np.unique(pairs[bounds[i] : bounds[i + 1], 1]) for i in range(nq)]
