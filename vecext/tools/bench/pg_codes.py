"""vecext's HNSW over code stores on PostgreSQL, for ``vecext bench``.

* ``vecext-hnsw-binary``: centred binary codes (d / 8 bytes) in their code store, a
  pgvector HNSW index over them (``bit_hamming_ops``, m 16, ef_construction 200), every
  walked candidate reranked exactly;
* ``vecext-hnsw-binary2x``: the same with twice the bits (``expand:2d``: the centred
  vector and its coordinates in a random orthonormal basis, d / 4 bytes), whose
  Hamming distances rank closer to the exact ones, so the walk needs a smaller ef;
* ``vecext-hnsw-rbq``: 2-bit residual binary codes (d / 4 + 4 bytes), the index over
  their first sign plane (the same bits), candidates re-scored with both planes, the
  best ``4 k`` or calibrated depth reranked exactly;
* ``vecext-hnsw-pca``: half-precision codes after PCA to d / 3 (``halfvec``; option
  ``@dim=N``: to N dimensions, in a code column of its own), HNSW by the metric, every
  candidate reranked.

Each searches with ``search(strategy="hnsw", using=<the index>)`` (under a filter
``strategy="auto"``: the planner chooses between an exact scan, the codes and the
index), the index calibrated
on the table (ef_search from the calibration and the floors, as for any HNSW index);
option ``@ef=N`` pins ef_search instead, ``@rerank=N`` the number of walked
candidates reranked exactly (at most ef; default: every candidate, or after an rbq
re-score the calibrated depth: ``PlannerSettings.code_index_rerank``) and ``@efc=N``
the index's ef_construction (default vecext's for the code kind: 200 over bit codes,
pgvector's 64 over half codes), ``@m=N`` its m (default 16), ``@prepared=1`` one
:func:`~vecext.search.prepare_search` for every query; an index built with
other values is built again. Set-up is kept between runs (the codes and the
index are found in the catalog and reused; build seconds in the index comment).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from psycopg import sql

from vecext.postgres import add_compressed_column, calibrate, install, train_codec
from vecext.postgres.catalog import installed_version
from vecext.postgres.code_index import KIND_STORAGE
from vecext.postgres.store_indexes import code_ef_construction
from vecext.search import PlannerSettings
from vecext.tools.bench import pg_store
from vecext.tools.bench.context import BenchContext
from vecext.tools.bench.pg_methods import HNSW_M
from vecext.tools.bench.pg_vecext import ensure_attribute_indexes, ensure_mirrors
from vecext.tools.bench.registry import BaseMethod, BenchError, register_method
from vecext.tools.bench.vecext_method import PreparedOption

#: method -> (codec kind, codec params (d: the dimension), bytes per vector, code column)
KINDS: dict[str, tuple[str, Any, Any, str]] = {
    "vecext-hnsw-binary": ("binary", lambda d: {}, lambda d: d / 8, "embedding_binary"),
    "vecext-hnsw-binary2x": (
        "binary", lambda d: {"pretransform": f"expand:{2 * d}"}, lambda d: d / 4,
        "embedding_binary2x",
    ),
    "vecext-hnsw-rbq": ("rbq", lambda d: {"bits": 2}, lambda d: d / 4 + 4, "embedding_rbq"),
    "vecext-hnsw-pca": (
        "half", lambda d: {"pretransform": f"pca:{d // 3}"}, lambda d: d // 3 * 2,
        "embedding_half",
    ),
}  # fmt: skip


class PgCodeHnsw(BaseMethod):
    """HNSW over a compressed column's code store, reranked (see the module docstring)."""

    def __init__(self, ctx: BenchContext, method: str) -> None:
        kind, params, bpv, column = KINDS[method]
        self.kind, self.codec_params = kind, params(ctx.d)
        if method == "vecext-hnsw-pca":
            dim = int(ctx.option("dim", int, ctx.d // 3))
            if not 1 <= dim < ctx.d:
                raise BenchError(f"bad option dim={dim}: PCA keeps 1 to {ctx.d - 1} dimensions")
            if dim != ctx.d // 3:  # a codec and code column of its own, kept beside the default
                self.codec_params = {"pretransform": f"pca:{dim}"}
                bpv, column = (lambda d: 2 * dim), f"embedding_half{dim}"
        self.ef = ctx.option("ef", int, None)
        self.recall = float(ctx.option("recall", float, 0.95))
        super().__init__(
            ctx, params={"strategy": "hnsw", "codec": kind, **self.codec_params},
            bytes_per_vector=float(bpv(ctx.d)),
        )  # fmt: skip
        assert ctx.table is not None
        self.conn, self.table = ctx.conn, ctx.table
        self.column = column
        self.index = ""
        self.store = ""
        self.rerank = ctx.option("rerank", int, None)
        # the index's ef_construction (vecext's default for the code kind unless given:
        # 200 over bit codes, 64 over half codes; an index built with another is built again)
        self.efc = int(ctx.option("efc", int, code_ef_construction(KIND_STORAGE[kind])))
        self.m = int(ctx.option("m", int, HNSW_M))
        if not 2 <= self.m <= 100:  # pgvector's bounds for m
            raise BenchError(f"bad option m={self.m}")
        self.settings = None
        pinned: dict[str, Any] = {}
        if self.ef is not None:
            # pinned: the floors and the calibration neither raise nor lower it
            pinned = {"hnsw_ef_floor": self.ef, "max_ef_search": self.ef}
            pinned["hnsw_calibrated_floor"] = False
            self.params["ef_search"] = self.ef
        if self.rerank is not None:
            if self.rerank < 1:
                raise BenchError(f"bad option rerank={self.rerank}")
            # exact distances after the walk (at most ef_search; default: calibrated)
            pinned["code_index_rerank"] = self.rerank
            self.params["rerank"] = self.rerank
        # @mirror=0: join the table instead of filtering the code store's mirrored columns
        if not ctx.option("mirror", int, 1):
            pinned["mirrored_filters"] = False
            self.params["mirror"] = 0
        if pinned:
            self.settings = PlannerSettings(**pinned)
        # @prepared=1: one prepared search (vecext.search.prepared) for every query: the
        # plan kept, each query's first statement checking the guard instead of the stamp
        self.prepared = PreparedOption(ctx, self.params)

    def build(self) -> float | None:
        from vecext.postgres import create_vector_index, list_compressed_columns
        from vecext.search.calibrate import calibrate_index

        conn, table = self.conn, self.table
        ensure_attribute_indexes(self.ctx)
        if installed_version(conn) is None:
            install(conn)
        found = [c for c in list_compressed_columns(conn, table) if c.code_column == self.column]
        seconds = 0.0
        if not found or found[0].status != "ready" or self.ctx.rebuild:
            start = time.perf_counter()
            codec = f"{table}_{self.column.removeprefix('embedding_')}"[:48]
            with self.ctx.task(f"train {self.kind} codec and encode {table}.{self.column}"):
                if found:
                    from vecext.postgres import drop_compressed_column

                    drop_compressed_column(conn, table, self.column)
                conn.execute("DELETE FROM vecext.codecs WHERE name = %s", [codec])
                train_codec(
                    conn, codec, table, "embedding", self.kind, metric="cosine",
                    **self.codec_params,
                )  # fmt: skip
                add_compressed_column(conn, table, "embedding", codec, self.column, progress=False)
                calibrate(conn, table, self.column)
            seconds += time.perf_counter() - start
            found = [
                c for c in list_compressed_columns(conn, table) if c.code_column == self.column
            ]
        ensure_mirrors(self.ctx, self.column)
        cc = found[0]
        self.store = f"store_{cc.id}"
        self.index = f"{self.store}_hnsw"
        rel = f"vecext.{self.index}"
        (exists, comment, options) = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL, obj_description(to_regclass(%s), 'pg_class'), "
            "(SELECT reloptions FROM pg_class WHERE oid = to_regclass(%s))",
            [rel, rel, rel],
        ).fetchone()
        meta = _json(comment)
        wanted = {f"ef_construction={self.efc}", f"m={self.m}"}
        built = set(options or [])
        if not any(o.startswith("m=") for o in built):
            built.add(f"m={HNSW_M}")  # pgvector's default when the index does not say
        if exists and not wanted <= built:
            # built with another ef_construction or m: build it again with these
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier("vecext", self.index)))
            exists = False
        if not exists:
            start = time.perf_counter()
            with self.ctx.task(f"CREATE INDEX {self.index} (HNSW over {self.column})"):
                create_vector_index(
                    conn, table, self.column, metric="cosine", name=self.index,
                    m=self.m, ef_construction=self.efc,
                )  # fmt: skip
            meta = {"build_s": round(time.perf_counter() - start, 3)}
            _comment(conn, self.index, meta)
        if not isinstance(meta.get("calibration"), dict):
            with self.ctx.task(f"calibrate {self.index} (recall per ef_search)"):
                calibrate_index(conn, table, self.index)
        seconds += float(_json(_comment_of(conn, self.index)).get("build_s", 0.0))
        index_mb = pg_store.relation_bytes(conn, [f"vecext.{self.index}"]) / 1e6
        self.params.update(
            index=self.index, store=self.store, index_mb=round(index_mb, 1),
            m=self.m, ef_construction=self.efc,
        )  # fmt: skip
        return seconds

    def search(self, q: np.ndarray) -> np.ndarray:
        # no filter: through the index; a filter: the planner's choice with these codes
        # and this index (exact, a scan of the codes, or the index when the filter is broad)
        strategy = "hnsw" if self.ctx.filter is None else "auto"
        args = {
            "strategy": strategy, "using": self.index, "filter": self.ctx.filter,
            "recall_target": self.recall, "settings": self.settings,
        }  # fmt: skip
        r = self.prepared.search(self.conn, self.table, self.ctx.k, q, **args)
        self.params["last_plan"] = {"strategy": r.strategy, **r.plan.params}
        return np.asarray(r.ids, dtype=np.int64)

    def storage_bytes(self) -> int:
        codes = pg_store.relation_bytes(self.conn, [f"vecext.{self.store}"], table=True)
        index = pg_store.relation_bytes(self.conn, [f"vecext.{self.index}"])
        return int(self.ctx.extra.get("pg_vector_bytes", 0)) + codes + index

    def disk_bytes(self) -> int:
        """The table, the code store (with its primary key) and the HNSW index."""
        (store,) = self.conn.execute(
            "SELECT pg_total_relation_size(%s::regclass)", [f"vecext.{self.store}"]
        ).fetchone()
        return pg_store.relation_bytes(self.conn, [self.table], table=True) + int(store)


def _json(text: Any) -> dict[str, Any]:
    import json

    try:
        meta = json.loads(text) if text else {}
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _comment_of(conn: Any, index: str) -> Any:
    return conn.execute(
        "SELECT obj_description(to_regclass(%s), 'pg_class')", [f"vecext.{index}"]
    ).fetchone()[0]


def _comment(conn: Any, index: str, meta: dict[str, Any]) -> None:
    import json

    conn.execute(
        sql.SQL("COMMENT ON INDEX {} IS {}").format(
            sql.Identifier("vecext", index), sql.Literal(json.dumps(meta))
        )
    )


for _name in KINDS:
    register_method(_name, "postgres", lambda ctx, _m=_name: PgCodeHnsw(ctx, _m))
