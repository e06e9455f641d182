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
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from vecext.duckdb.filters import ident
from vecext.tools.bench.context import BenchContext
from vecext.tools.bench.registry import BaseMethod, register_method

PQ_SUB_DIMS = 8  # dimensions per PQ sub-quantizer: M = d / 8
Task = Callable[..., Any]


def cache_dir(dataset: str) -> Path:
    import platformdirs

    root = os.environ.get("VECEXT_BENCH_CACHE") or platformdirs.user_cache_dir("vecext")
    path = Path(root) / "bench" / "duckdb" / "".join(c if c.isalnum() else "_" for c in dataset)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _nullcontext_task(description: str, total: float | None = None) -> Any:
    from contextlib import nullcontext

    return nullcontext(lambda *a, **kw: None)


def _prepare(con: duckdb.DuckDBPyConnection) -> None:
    import vecext.duckdb as vd

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
    import vecext.duckdb as vd
    from vecext.codecs import codec_from_state, dump_state, load_state

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
    from vecext.duckdb.calibration import calibrate

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
    import vecext.duckdb as vd

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
    from vecext.codecs import codec_from_state, dump_state, load_state
    from vecext.codecs.ivf import IVFCodec
    from vecext.duckdb.ivf import add_ivf_lists, ivf_lists

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
            from vecext.duckdb.strategies import cached_codec

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
    from vecext.duckdb.calibration import calibrate_hnsw
    from vecext.duckdb.indexes import create_hnsw_index, hnsw_indexes

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


class _Vecext(BaseMethod):
    strategy = "auto"
    kind: str | None = None

    def __init__(self, ctx: BenchContext) -> None:
        bpv = ctx.d / 8 if self.kind else 4 * ctx.d
        super().__init__(ctx, params={"strategy": self.strategy}, bytes_per_vector=bpv)
        assert ctx.conn is not None and ctx.table is not None
        self.con: duckdb.DuckDBPyConnection = ctx.conn
        self.table: str = ctx.table
        self.using: str | None = None
        self.strategies: dict[str, int] = {}

    def build(self) -> float | None:
        if self.kind is None:
            return 0.0
        self.using, seconds = ensure_codes(
            self.con, self.ctx.dataset.name, self.table, self.kind, self.ctx.task
        )
        return seconds

    def search(self, q: np.ndarray) -> np.ndarray:
        from vecext.search import search

        r = search(
            self.con, self.table, "embedding", q, self.ctx.k, strategy=self.strategy,
            filter=self.ctx.filter, using=self.using,
        )  # fmt: skip
        self.strategies[r.strategy] = self.strategies.get(r.strategy, 0) + 1
        self.params["strategies_used"] = dict(self.strategies)
        self.params["last_plan"] = dict(r.plan.params)
        return np.asarray(r.ids, dtype=np.int64)

    def storage_bytes(self) -> int:
        # DuckDB reports no per-column sizes for in-memory tables: vectors 4 d bytes per
        # row, codes their fixed width
        total = 4 * self.ctx.d * self.ctx.n
        if self.using:
            total += self.ctx.n * int(self.ctx.d // 8)
        return total


class VecextPQ(_Vecext):
    strategy, kind = "compressed", "pq"


class VecextBinary(_Vecext):
    strategy, kind = "compressed", "binary"


class VecextIVFPQ(_Vecext):
    strategy, kind = "ivf", "pq"

    def __init__(self, ctx: BenchContext) -> None:
        super().__init__(ctx)
        self.bytes_per_vector += 4  # the list id

    def build(self) -> float | None:
        seconds = super().build() or 0.0
        assert self.using is not None
        return seconds + ensure_lists(
            self.con, self.ctx.dataset.name, self.table, self.using, self.ctx.task
        )

    def storage_bytes(self) -> int:
        return super().storage_bytes() + 4 * self.ctx.n


class VecextAuto(_Vecext):
    """The planner with everything vecext would set up: PQ codes, IVF lists and a VSS
    HNSW index (VSS defaults, cosine)."""

    strategy = "auto"

    def build(self) -> float | None:
        name = self.ctx.dataset.name
        column, seconds = ensure_codes(self.con, name, self.table, "pq", self.ctx.task)
        seconds += ensure_lists(self.con, name, self.table, column, self.ctx.task)
        seconds += ensure_hnsw(self.con, self.table, self.ctx.task)
        self.hnsw_bytes = int(
            self.con.execute(
                "SELECT coalesce(sum(approx_memory_usage), 0) FROM pragma_hnsw_index_info() "
                "WHERE table_name = ?",
                [self.table],
            ).fetchone()[0]  # type: ignore[index]
        )
        return seconds

    def storage_bytes(self) -> int:
        return 4 * self.ctx.d * self.ctx.n + self.ctx.n * (self.ctx.d // 8 + 4) + self.hnsw_bytes

    def close(self) -> None:
        # methods run after this one share the table: the exact baseline must not find
        # an HNSW index on it (its plan would turn approximate)
        from vecext.duckdb.indexes import drop_hnsw_index, hnsw_indexes

        for ix in hnsw_indexes(self.con, self.table, "embedding"):
            drop_hnsw_index(self.con, self.table, ix.name)


register_method("vecext-pq", "duckdb", VecextPQ)
register_method("vecext-binary", "duckdb", VecextBinary)
register_method("vecext-ivfpq", "duckdb", VecextIVFPQ)
register_method("vecext-auto", "duckdb", VecextAuto)
