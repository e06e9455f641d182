"""Labelled embedding datasets on disk, and synthetic ones from a spec string.

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

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vecext.evaluation import synthetic_embeddings, synthetic_queries

__all__ = [
    "Dataset",
    "load_dataset",
    "load_datasets",
    "parse_synthetic_spec",
    "qrels_to_lists",
    "read_qrels",
]


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
        by_name = dict(zip(names, _synthetic(path, names), strict=True))
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


_SPEC_KEYS = {
    "n": int,
    "d": int,
    "nq": int,
    "n_clusters": int,
    "seed": int,
    "spectrum_decay": float,
    "noise": float,
    "max_relevant": int,
}


def _parse_spec(spec: str) -> dict[str, float | int]:
    if not spec.startswith("synthetic:"):
        raise ValueError(f"not a synthetic spec (must start with 'synthetic:'): {spec!r}")
    opts: dict[str, float | int] = {
        "n": 10_000,
        "d": 128,
        "nq": 1000,
        "seed": 0,
        "spectrum_decay": 0.5,
        "noise": 0.5,
        "max_relevant": 50,
    }
    body = spec[len("synthetic:") :].strip()
    for item in filter(None, (s.strip() for s in body.split(","))):
        key, sep, val = item.partition("=")
        key = key.strip()
        if not sep or key not in _SPEC_KEYS:
            raise ValueError(
                f"bad synthetic spec item {item!r}; expected key=value with key in "
                f"{sorted(_SPEC_KEYS)}"
            )
        conv = _SPEC_KEYS[key]
        try:
            num = float(val)
            if conv is int and num != int(num):
                raise ValueError(val)
            opts[key] = conv(num)
        except ValueError as exc:
            raise ValueError(f"bad value in synthetic spec item {item!r}") from exc
    return opts


def parse_synthetic_spec(spec: str, queries: str = "dev") -> Dataset:
    """Build a seeded synthetic :class:`Dataset` from ``"synthetic:n=1000000,d=768"``.

    Keys (all optional): ``n`` docs (10000), ``d`` (128), ``nq`` queries (1000),
    ``n_clusters`` (n // 10), ``seed`` (0), ``spectrum_decay`` (0.5), ``noise`` (query
    noise, 0.5), ``max_relevant`` (50). Documents (float32, unit norm) depend on the
    spec only; a query set's seed is derived from ``seed`` and the ``queries`` name, so
    different names give different, reproducible query sets over the same documents.
    Attributes: ``row``, ``category`` (skewed int32), ``value`` (uniform float32).
    """
    return _synthetic(spec, [queries])[0]


def _synthetic(spec: str, names: Sequence[str]) -> list[Dataset]:
    opts = _parse_spec(spec)
    seed = int(opts["seed"])
    data = synthetic_embeddings(
        int(opts["n"]),
        int(opts["d"]),
        n_clusters=int(opts["n_clusters"]) if "n_clusters" in opts else None,
        seed=seed,
        spectrum_decay=float(opts["spectrum_decay"]),
    )
    attrs = pa.table(
        {
            "row": pa.array(np.arange(data.n, dtype=np.int32)),
            "category": pa.array(data.category),
            "value": pa.array(data.value),
        }
    )
    out = []
    for name in names:
        q_seed = np.random.SeedSequence([seed, zlib.crc32(name.encode("utf-8"))])
        sq = synthetic_queries(
            data,
            int(opts["nq"]),
            seed=int(q_seed.generate_state(1)[0]),
            noise=float(opts["noise"]),
            max_relevant=int(opts["max_relevant"]),
        )
        lens = np.fromiter((r.size for r in sq.qrels), dtype=np.int64, count=len(sq.qrels))
        pairs = np.column_stack(
            [np.repeat(np.arange(len(sq.qrels), dtype=np.int64), lens), np.concatenate(sq.qrels)]
        )
        query_attrs = pa.table(
            {
                "row": pa.array(np.arange(len(sq.qrels), dtype=np.int32)),
                "cluster": pa.array(sq.cluster),
                "n_relevant": pa.array(lens.astype(np.int32)),
            }
        )
        out.append(
            Dataset(
                name=spec,
                queries=name,
                xb=data.xb,
                attrs=attrs,
                xq=sq.xq,
                qrels=sq.qrels,
                qrel_pairs=pairs,
                query_attrs=query_attrs,
            )
        )
    return out
