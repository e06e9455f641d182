"""Synthetic datasets from a spec string such as ``"synthetic:n=1000000,d=768"``."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from vecext.datasets.dataset import Dataset
from vecext.datasets.synthetic import synthetic_embeddings, synthetic_queries

__all__ = ["parse_synthetic_spec", "synthetic_datasets"]

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
    return synthetic_datasets(spec, [queries])[0]


def synthetic_datasets(spec: str, names: Sequence[str]) -> list[Dataset]:
    """One synthetic :class:`Dataset` per query set name, sharing the documents."""
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
