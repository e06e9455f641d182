"""LanceDB (embedded, no server) as a peer of the DuckDB methods, on the same data.

LanceDB is an optional dependency (``pip install "vecext[bench]"``). The run's
vectors and attributes go into a Lance table in a temporary directory, indexed
with ``IVF_PQ`` and ``metric="cosine"``:

* ``lancedb-ivfpq``: LanceDB's documented defaults (``num_partitions`` and
  ``num_sub_vectors`` chosen by LanceDB, ``nprobes`` and no ``refine_factor`` at
  query time); a filter is applied before the vector search (``prefilter=True``);
* ``lancedb-ivfpq-postfilter``: the same index, the filter applied to the rows the
  index returned (``prefilter=False``), which may return fewer than k rows;
* ``lancedb-ivfpq-tuned``: ``num_sub_vectors = d / 8`` (vecext's PQ width),
  ``nprobes`` :data:`TUNED_NPROBES` and ``refine_factor`` :data:`TUNED_REFINE`
  (LanceDB reranks ``refine_factor * k`` rows with the full vectors), prefiltered.

The filter becomes a LanceDB SQL ``WHERE`` (DataFusion dialect): column names
double-quoted, strings single-quoted with quotes doubled, numbers as written by
Python; the benchmark's values come from its own command line.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vecext.search.filters import And, Eq, In, Predicate, Range
from vecext.tools.bench.context import BenchContext
from vecext.tools.bench.registry import BaseMethod, BenchError, register_method

TUNED_NPROBES = 64
TUNED_REFINE = 10
_TABLE = "bench_data"


def _literal(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, np.integer, np.floating)):
        return repr(v.item() if hasattr(v, "item") else v)
    return "'" + str(v).replace("'", "''") + "'"


def _col(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lance_where(pred: Predicate) -> str:
    """A LanceDB ``WHERE`` for the benchmark's filters (``=``, ``IN``, ranges, ``AND``)."""
    if isinstance(pred, And):
        return " AND ".join(f"({lance_where(p)})" for p in pred.parts)
    if isinstance(pred, Eq):
        return f"{_col(pred.column)} = {_literal(pred.value)}"
    if isinstance(pred, In):
        return f"{_col(pred.column)} IN ({', '.join(_literal(v) for v in pred.values)})"
    if isinstance(pred, Range):
        parts = []
        hi_op = "<=" if pred.inclusive else "<"
        if pred.lo is not None:
            parts.append(f"{_col(pred.column)} >= {_literal(pred.lo)}")
        if pred.hi is not None:
            parts.append(f"{_col(pred.column)} {hi_op} {_literal(pred.hi)}")
        return " AND ".join(parts) or "true"
    raise BenchError(f"LanceDB methods cannot express the filter {pred!r}")


def _boolean(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise ValueError(text)


def _import_lancedb() -> Any:
    try:
        import lancedb
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BenchError("the lancedb-* methods need LanceDB: pip install 'vecext[bench]'") from exc
    return lancedb


class _Shared:
    """One Lance table per run and index setting (the methods share the data)."""

    def __init__(self, ctx: BenchContext) -> None:
        lancedb = _import_lancedb()
        self.dir = tempfile.mkdtemp(prefix="vecext-lance-")
        atexit.register(shutil.rmtree, self.dir, True)
        self.db = lancedb.connect(self.dir)
        n, d = ctx.xb.shape
        cols: dict[str, Any] = {"id": pa.array(np.arange(n, dtype=np.int64))}
        flat = pa.array(np.ascontiguousarray(ctx.xb, dtype=np.float32).reshape(-1))
        cols["embedding"] = pa.FixedSizeListArray.from_arrays(flat, d)
        for f in ctx.dataset.attrs.schema:
            if f.name not in cols and f.name != "row":
                col = ctx.dataset.attrs.column(f.name)
                if pa.types.is_dictionary(col.type):
                    col = col.cast(col.type.value_type)
                cols[f.name] = col
        start = time.perf_counter()
        self.table = self.db.create_table(_TABLE, data=pa.table(cols), mode="overwrite")
        self.load_s = time.perf_counter() - start
        self.index: dict[str, Any] | None = None

    def ensure_index(self, params: dict[str, Any]) -> float:
        if self.index == params:
            return 0.0
        start = time.perf_counter()
        from lancedb.index import IvfPq

        # LanceDB's unified API: the column first, the index as a config
        self.table.create_index(
            "embedding", replace=True, config=IvfPq(distance_type="cosine", **params)
        )
        self.index = dict(params)
        return time.perf_counter() - start


class LanceIvfPq(BaseMethod):
    """LanceDB ``IVF_PQ`` (see the module docstring for the three settings)."""

    def __init__(
        self,
        ctx: BenchContext,
        *,
        tuned: bool = False,
        prefilter: bool = True,
    ) -> None:
        d = ctx.d
        default_sub = d // 16 if d % 16 == 0 else d // 8
        sub = ctx.option("num_sub_vectors", int, d // 8 if tuned else None)
        parts = ctx.option("num_partitions", int, None)
        self.index_params: dict[str, Any] = {}
        if sub is not None:
            self.index_params["num_sub_vectors"] = sub
        if parts is not None:
            self.index_params["num_partitions"] = parts
        self.nprobes = ctx.option("nprobes", int, TUNED_NPROBES if tuned else None)
        self.refine = ctx.option("refine_factor", int, TUNED_REFINE if tuned else None)
        self.prefilter = bool(ctx.option("prefilter", _boolean, prefilter))
        params: dict[str, Any] = {
            "metric": "cosine",
            "index": "IVF_PQ",
            "num_sub_vectors": sub or default_sub,
            "num_partitions": parts or "default",
            "nprobes": self.nprobes or "default",
            "refine_factor": self.refine,
            "prefilter": self.prefilter,
        }
        super().__init__(ctx, params=params, bytes_per_vector=sub or default_sub)
        shared = ctx.extra.get("lancedb")
        if shared is None:
            shared = ctx.extra["lancedb"] = _Shared(ctx)
        self.shared: _Shared = shared
        self.where = lance_where(ctx.filter) if ctx.filter is not None else None

    def build(self) -> float | None:
        with self.ctx.task(f"LanceDB IVF_PQ index {self.index_params or 'defaults'}"):
            return self.shared.load_s + self.shared.ensure_index(self.index_params)

    def search(self, q: np.ndarray) -> np.ndarray:
        s = self.shared.table.search(
            np.asarray(q, np.float32), vector_column_name="embedding"
        ).distance_type("cosine")
        if self.nprobes:
            s = s.nprobes(self.nprobes)
        if self.refine:
            s = s.refine_factor(self.refine)
        if self.where is not None:
            s = s.where(self.where, prefilter=self.prefilter)
        got = s.select(["id", "_distance"]).limit(self.ctx.k).to_arrow()
        return np.asarray(got.column("id").to_numpy(), dtype=np.int64)

    def storage_bytes(self) -> int:
        return sum(p.stat().st_size for p in Path(self.shared.dir).rglob("*") if p.is_file())


register_method("lancedb-ivfpq", "duckdb", LanceIvfPq)
register_method("lancedb-ivfpq-postfilter", "duckdb", lambda ctx: LanceIvfPq(ctx, prefilter=False))
register_method("lancedb-ivfpq-tuned", "duckdb", lambda ctx: LanceIvfPq(ctx, tuned=True))
