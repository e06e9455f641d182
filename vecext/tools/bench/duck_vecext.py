"""vecext's own methods on DuckDB for ``vecext bench``, at vecext's defaults.

* ``vecext-pq``: two-stage search on a PQ column (M = d / 8 bytes, cosine), the
  rerank depth taken from the column's calibration for recall 0.95;
* ``vecext-binary``: the same on a centred binary column (d / 8 bytes);
* ``vecext-ivfpq``: IVF lists (4 sqrt(n), FAISS k-means) over the PQ column;
  nprobe and depth from the calibration, probes widened under filters;
* ``vecext-auto``: the planner's choice among exact, codes, lists and a VSS HNSW
  index (VSS defaults) that it builds.

Every method goes through :func:`vecext.search.search` with the run's
filter, so it returns ``min(k, rows matching)`` rows. The harness loads a fresh
in-memory DuckDB per run, so trained codecs and calibrations are cached on disk
(``$VECEXT_BENCH_CACHE``, default the user cache directory) and only the encoding
is redone; the build time reported is that of the first, full build.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import platformdirs

import vecext.duckdb as vd
from vecext.codecs import codec_from_state, dump_state, load_state
from vecext.codecs.ivf import IVFCodec
from vecext.duckdb import codeset, vectorset
from vecext.duckdb.calibration import calibrate, calibrate_hnsw
from vecext.duckdb.filters import ident
from vecext.duckdb.indexes import create_hnsw_index, drop_hnsw_index, hnsw_indexes
from vecext.duckdb.ivf import add_ivf_lists, ivf_lists
from vecext.duckdb.strategies import cached_codec
from vecext.search import SearchResult
from vecext.tools.bench.registry import register_method
from vecext.tools.bench.vecext_method import VecextMethod, register_fixed

PQ_SUB_DIMS = 8  # dimensions per PQ sub-quantizer: M = d / 8
Task = Callable[..., Any]


def cache_dir(dataset: str) -> Path:
    root = os.environ.get("VECEXT_BENCH_CACHE") or platformdirs.user_cache_dir("vecext")
    path = Path(root) / "bench" / "duckdb" / "".join(c if c.isalnum() else "_" for c in dataset)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _nullcontext_task(description: str, total: float | None = None) -> Any:
    return nullcontext(lambda *a, **kw: None)


def _prepare(con: duckdb.DuckDBPyConnection) -> None:
    vd.attach(con)


def _cached_codec(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    name: str,
    table: str,
    kind: str,
    params: dict[str, Any],
    task: Task,
) -> float:
    """Save codec ``name`` into ``con`` from the on-disk cache, training it on a miss;
    returns the seconds the training took (recorded on the first build)."""
    key = "-".join([kind, *(f"{k}{v}" for k, v in sorted(params.items()))])
    path = cache_dir(dataset) / f"{key}.npz"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        vd.save_codec(con, name, codec_from_state(load_state(path.read_bytes())), replace=True)
        return float(json.loads(meta.read_text())["train_s"])
    start = time.perf_counter()
    with task(f"train {kind} codec {params}"):
        codec = vd.train_codec(con, name, table, "embedding", kind, replace=True, **params)
    train_s = time.perf_counter() - start
    path.write_bytes(dump_state(codec.to_state()))
    meta.write_text(json.dumps({"train_s": round(train_s, 3)}))
    return train_s


def _cached_calibration(
    con: duckdb.DuckDBPyConnection, dataset: str, table: str, column: str, task: Task
) -> float:
    """Store the calibration of ``table.column`` from the cache, or measure it."""
    fps = con.execute(
        "SELECT k.codec_fingerprint, coalesce(v.fingerprint, ''), "
        f"(SELECT count(*) FROM {ident(table)}) FROM vecext.compressed_columns k "
        "LEFT JOIN vecext.codecs v ON v.name = k.ivf_codec_name "
        "WHERE k.table_name = ? AND k.code_column = ?",
        [table, column],
    ).fetchone()
    assert fps is not None
    # the record's layout follows vecext.search.calibrate: a new layout, a new file
    layout = "v2-subsets"
    path = cache_dir(dataset) / f"calibration-{layout}-{fps[0]}-{fps[1] or 'flat'}-{fps[2]}.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        con.execute(
            "UPDATE vecext.compressed_columns SET calibration = ? WHERE table_name = ? "
            "AND code_column = ?",
            [json.dumps(cached["record"]), table, column],
        )
        return float(cached["seconds"])
    start = time.perf_counter()
    with task(f"calibrate {table}.{column}"):
        record = calibrate(con, table, column)
    seconds = time.perf_counter() - start
    path.write_text(json.dumps({"record": record, "seconds": round(seconds, 3)}))
    return seconds


def ensure_codes(
    con: duckdb.DuckDBPyConnection, dataset: str, table: str, kind: str, task: Task | None = None
) -> tuple[str, float]:
    """The compressed column of ``kind`` (``pq``/``binary``), calibrated; build seconds."""
    task = task or _nullcontext_task
    _prepare(con)
    column = f"embedding_{kind}"
    if column in [c.code_column for c in vd.list_compressed_columns(con, table)]:
        return column, 0.0
    (d,) = con.execute(f"SELECT array_length(embedding) FROM {ident(table)} LIMIT 1").fetchone()  # type: ignore[misc]
    params: dict[str, Any] = {"metric": "cosine"}
    if kind == "pq":
        params["m"] = int(d) // PQ_SUB_DIMS
    codec = f"{table}_{kind}"[:48]
    seconds = _cached_codec(con, dataset, codec, table, kind, params, task)
    start = time.perf_counter()
    with task(f"encode {table}.{column}"):
        vd.add_compressed_column(con, table, "embedding", codec, column, progress=False)
    seconds += time.perf_counter() - start
    seconds += _cached_calibration(con, dataset, table, column, task)
    return column, seconds


def ensure_lists(
    con: duckdb.DuckDBPyConnection, dataset: str, table: str, column: str, task: Task | None = None
) -> float:
    """IVF lists on ``column`` (4 sqrt(n) lists) and a calibration with nprobe; seconds."""
    task = task or _nullcontext_task
    if ivf_lists(con, table, column) is not None:
        return 0.0
    n = int(con.execute(f"SELECT count(*) FROM {ident(table)}").fetchone()[0])  # type: ignore[index]
    path = cache_dir(dataset) / f"ivf-{column}-{n}.npz"
    meta = path.with_suffix(".json")
    start = time.perf_counter()
    with task(f"IVF lists for {table}.{column}"):
        if path.is_file() and meta.is_file():
            coarse = codec_from_state(load_state(path.read_bytes()))
            assert isinstance(coarse, IVFCodec)
            add_ivf_lists(con, table, "embedding", code_column=column, codec=coarse)
            seconds = float(json.loads(meta.read_text())["train_s"])
        else:
            lists = add_ivf_lists(con, table, "embedding", code_column=column)
            (fp,) = con.execute(
                "SELECT fingerprint FROM vecext.codecs WHERE name = ?", [lists.codec_name]
            ).fetchone()  # type: ignore[misc]
            coarse = cached_codec(con, lists.codec_name, str(fp))
            seconds = time.perf_counter() - start
            path.write_bytes(dump_state(coarse.to_state()))
            meta.write_text(json.dumps({"train_s": round(seconds, 3)}))
    return seconds + _cached_calibration(con, dataset, table, column, task)


def ensure_hnsw(con: duckdb.DuckDBPyConnection, table: str, task: Task | None = None) -> float:
    """A VSS HNSW index at VSS's defaults (cosine) on ``table.embedding``, with its
    ef_search calibration; seconds."""
    task = task or _nullcontext_task
    have = [ix for ix in hnsw_indexes(con, table, "embedding") if ix.metric == "cosine"]
    if have and have[0].calibration:
        return 0.0
    start = time.perf_counter()
    if not have:
        with task(f"VSS HNSW index on {table}.embedding"):
            have = [create_hnsw_index(con, table, "embedding", "cosine")]
    with task(f"calibrate ef_search of {have[0].name}"):
        calibrate_hnsw(con, table, have[0].name)
    return time.perf_counter() - start


class DuckVecext(VecextMethod):
    """A vecext method on DuckDB: codecs and calibrations restored from the cache."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.strategies: dict[str, int] = {}

    def build(self) -> float | None:
        seconds = super().build()
        # the first timed search loads the codes and vectors: "first ms" is cold
        codeset.clear()
        vectorset.clear()
        return seconds

    def ensure_codes(self, kind: str) -> tuple[str, float]:
        return ensure_codes(self.conn, self.ctx.dataset.name, self.table, kind, self.ctx.task)

    def ensure_lists(self, column: str) -> float:
        return ensure_lists(self.conn, self.ctx.dataset.name, self.table, column, self.ctx.task)

    def note(self, r: SearchResult) -> None:
        self.strategies[r.strategy] = self.strategies.get(r.strategy, 0) + 1
        self.params["strategies_used"] = dict(self.strategies)
        self.params["last_plan"] = dict(r.plan.params)

    def storage_bytes(self) -> int:
        # DuckDB reports no per-column sizes for in-memory tables: vectors 4 d bytes per
        # row, codes their fixed width, list ids 4 bytes
        total = 4 * self.ctx.d * self.ctx.n
        if self.using:
            total += self.ctx.n * int(self.ctx.d // 8)
        if self.strategy == "ivf":
            total += 4 * self.ctx.n
        return total


class VecextAuto(DuckVecext):
    """The planner with everything vecext would set up: PQ codes, IVF lists and a VSS
    HNSW index (VSS defaults, cosine)."""

    def build(self) -> float | None:
        name = self.ctx.dataset.name
        column, seconds = ensure_codes(self.conn, name, self.table, "pq", self.ctx.task)
        seconds += ensure_lists(self.conn, name, self.table, column, self.ctx.task)
        seconds += ensure_hnsw(self.conn, self.table, self.ctx.task)
        self.hnsw_bytes = int(
            self.conn.execute(
                "SELECT coalesce(sum(approx_memory_usage), 0) FROM pragma_hnsw_index_info() "
                "WHERE table_name = ?",
                [self.table],
            ).fetchone()[0]  # type: ignore[index]
        )
        codeset.clear()
        vectorset.clear()
        return seconds

    def storage_bytes(self) -> int:
        return 4 * self.ctx.d * self.ctx.n + self.ctx.n * (self.ctx.d // 8 + 4) + self.hnsw_bytes

    def close(self) -> None:
        # methods run after this one share the table: the exact baseline must not find
        # an HNSW index on it (its plan would turn approximate)
        for ix in hnsw_indexes(self.conn, self.table, "embedding"):
            drop_hnsw_index(self.conn, self.table, ix.name)


register_fixed("duckdb", DuckVecext)
register_method("vecext-auto", "duckdb", VecextAuto)
# vecext's exact strategy: numpy over the vector cache when the table fits it
register_method("vecext-exact", "duckdb", partial(DuckVecext, strategy="exact", kind=None))
