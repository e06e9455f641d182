"""Run methods on one backend over one dataset, filter and k; score and time them.

Per method: ``build()`` (timed; plus the data load, see ``build_s``), one warm-up
pass over all queries (not timed), then a timed pass, one query at a time from
Python (``p50_ms``/``p95_ms`` per query end to end, ``qps`` = queries / wall time
of the pass, a single client). ``--interleave`` builds and warms every method first,
then times them in one pass, query by query, the methods in a seeded shuffled order for
each query (``qps`` = queries / the method's summed latencies): on a machine shared with
other work, load that comes and goes then falls on every method alike, so their ratios
hold where method-after-method timings drift by 10-30%. Scores against the exact filtered top-k from
:func:`vecext.tools.bench.truth.exact_topk`:

* ``recall_at_k``: ``|returned ∩ exact top-k| / min(k, rows matching)``, averaged.
* ``ndcg_at_10``: against the dataset's relevance labels restricted to the rows
  that match the filter (a relevant document the filter excludes cannot be
  returned); queries with no such document are left out, ``null`` if none is left.
* ``min_rows_returned``, ``complete_fraction``: rows per query, and the share of
  queries that got ``min(k, rows matching)`` rows.

``--limit-queries N`` takes a seeded random sample (seed 0, order kept) of the
query set: query files may be ordered by difficulty (wordnet-minilm's are sorted
by relevant-set size), so their first N rows would not be representative.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from vecext.datasets import Dataset, load_dataset
from vecext.duckdb import load_vss
from vecext.postgres import connect, pgvector, resolve_dsn
from vecext.search.filters import parse_cli_filters
from vecext.tools.bench import pg_store, where
from vecext.tools.bench.context import BenchContext, progress_task
from vecext.tools.bench.duck_methods import load_table
from vecext.tools.bench.machine import cores, machine_info
from vecext.tools.bench.registry import BACKENDS, BenchError, get_factory
from vecext.tools.bench.timing import run_interleaved, run_method
from vecext.tools.bench.truth import exact_topk

LIMIT_SEED = 0


@dataclass
class BenchConfig:
    """The arguments of ``vecext bench``."""

    dataset: str
    queries: str
    backend: str
    methods: list[str]
    k: int = 10
    filters: list[str] = field(default_factory=list)
    limit_queries: int | None = None
    dsn: str | None = None
    rebuild: bool = False
    interleave: bool = False


@dataclass
class BenchRun:
    """A finished run: the JSON document and, per result, what each query returned."""

    doc: dict[str, Any]
    ids: list[list[np.ndarray]]  # ids[result][query]: int64 row ids, best first
    truth: np.ndarray  # (nq, k) exact filtered top-k, -1 padded
    query_rows: np.ndarray  # rows of the query file that were used


def limit_queries(ds: Dataset, limit: int | None) -> tuple[Dataset, np.ndarray]:
    """``ds`` with a seeded sample of ``limit`` queries (all when ``None`` or larger)."""
    nq = ds.xq.shape[0]
    if limit is None or limit >= nq:
        return ds, np.arange(nq)
    if limit < 1:
        raise BenchError(f"--limit-queries must be >= 1, got {limit}")
    rows = np.sort(np.random.default_rng(LIMIT_SEED).choice(nq, size=limit, replace=False))
    qrels = [ds.qrels[i] for i in rows]
    lens = np.fromiter((r.size for r in qrels), dtype=np.int64, count=len(qrels))
    pairs = np.column_stack(
        [
            np.repeat(np.arange(len(rows), dtype=np.int64), lens),
            np.concatenate(qrels) if qrels else np.zeros(0, np.int64),
        ]
    )
    sub = dataclasses.replace(
        ds,
        xq=np.ascontiguousarray(ds.xq[rows]),
        qrels=qrels,
        qrel_pairs=pairs,
        query_attrs=ds.query_attrs.take(rows) if ds.query_attrs is not None else None,
    )
    return sub, rows


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=not console.is_terminal,  # steps are logged one by one instead
    )


def run_bench(config: BenchConfig, *, console: Console | None = None) -> BenchRun:
    """Run ``config``; return the document (not yet written) and per-query results."""
    if config.backend not in BACKENDS:
        raise BenchError(
            f"unknown backend {config.backend!r}; expected one of {', '.join(BACKENDS)}"
        )
    if config.k < 1:
        raise BenchError(f"--k must be >= 1, got {config.k}")
    names = [m.strip() for m in config.methods if m.strip()]
    if not names:
        raise BenchError("no methods given (--methods exact,...)")
    if len(set(names)) != len(names):
        raise BenchError(f"a method is listed twice: {', '.join(names)}")
    # fail fast: unknown methods and malformed options before anything is loaded
    factories = [
        (name, get_factory(base, config.backend), opts)
        for name, (base, opts) in ((n, parse_method(n)) for n in names)
    ]
    console = console or Console(stderr=True)
    machine = machine_info()  # first: its load average is other work on the machine, not ours

    with _progress(console) as progress:
        with progress_task(progress, f"load dataset {config.dataset} ({config.queries})"):
            ds = load_dataset(config.dataset, config.queries)
        ds, query_rows = limit_queries(ds, config.limit_queries)
        pred = where.coerce(parse_cli_filters(config.filters), ds.attrs)
        keep = where.filter_mask(pred, ds.attrs)
        n, d = ds.xb.shape
        nq = ds.xq.shape[0]
        n_match = int(keep.sum())
        with progress_task(
            progress, f"exact filtered top-{config.k} (numpy)", total=n_match
        ) as adv:
            _, truth = exact_topk(ds.xb, ds.xq, config.k, keep, on_block=adv)
        qrels = [r[keep[r]] for r in ds.qrels]
        ctx = BenchContext(
            backend=config.backend,
            dataset=ds,
            k=config.k,
            filter=pred,
            filter_mask=keep,
            rebuild=config.rebuild,
            cores=cores(),
            progress=progress,
        )
        shared: dict[str, Any] = {"queries": config.queries, "nq": nq}
        if config.interleave:
            shared["interleaved"] = True
        closers = _setup_backend(ctx, config, machine, shared)
        results: list[dict[str, Any]] = []
        all_ids: list[list[np.ndarray]] = []
        try:
            if config.interleave:
                for row, ids in run_interleaved(ctx, factories, truth, qrels, shared):
                    results.append(row)
                    all_ids.append(ids)
            for name, factory, opts in [] if config.interleave else factories:
                mctx = dataclasses.replace(ctx, options=opts, used_options=set())
                method = factory(mctx)
                try:
                    row, ids = run_method(mctx, name, method, truth, qrels, shared)
                finally:
                    method.close()
                results.append(row)
                all_ids.append(ids)
        finally:
            for close in closers:
                close()
    doc = {"dataset": ds.name, "n": int(n), "d": int(d), "machine": machine, "results": results}
    return BenchRun(doc=doc, ids=all_ids, truth=truth, query_rows=query_rows)


def _setup_backend(
    ctx: BenchContext, config: BenchConfig, machine: dict[str, Any], shared: dict[str, Any]
) -> list[Any]:
    """Connect, load the data table; fill ``ctx``; return the closers."""
    ds = ctx.dataset
    if ctx.backend == "postgres":
        dsn = resolve_dsn(config.dsn)
        conn = connect(dsn, autocommit=True)
        # Plan every query with its own values, like an application that sends plain
        # queries: psycopg otherwise prepares a statement after 5 runs and PostgreSQL
        # may then switch to a generic plan that ignores the filter value's selectivity
        # (measured: lexname = 'noun.animal' went from HNSW to a sequential scan).
        conn.prepare_threshold = None
        try:
            pgvector.require(conn, "hnsw")
            table = pg_store.table_name(ds.name)
            meta = pg_store.ensure_table(
                conn, table, ds.xb, ds.attrs, rebuild=config.rebuild, task=ctx.task
            )
            machine["postgres"] = pg_store.server_info(conn)
        except BaseException:
            conn.close()
            raise
        ctx.conn, ctx.table, ctx.load_s = conn, table, float(meta["load_s"])
        ctx.extra.update(pg_dsn=dsn, pg_vector_bytes=int(meta["vector_bytes"]))
        shared.update(table=table, load_s=ctx.load_s, table_reused=meta["reused"])
        return [conn.close]
    if ctx.backend == "duckdb":
        con = duckdb.connect(":memory:")
        try:
            vss = load_vss(con)
            table = "bench_data"
            ctx.load_s = load_table(con, table, ds.xb, ds.attrs, ctx.task)
            (threads,) = con.execute("SELECT current_setting('threads')").fetchone()  # type: ignore[misc]
        except BaseException:
            con.close()
            raise
        machine["duckdb"] = {"threads": threads, "vss": vss.reason}
        ctx.conn, ctx.table = con, table
        shared.update(table=table, load_s=round(ctx.load_s, 3))
        return [con.close]
    return []


def parse_method(spec: str) -> tuple[str, dict[str, str]]:
    """``"name@a=1,b=x"`` -> ``("name", {"a": "1", "b": "x"})`` (options are the method's)."""
    base, _, rest = spec.partition("@")
    opts: dict[str, str] = {}
    if rest:
        for item in rest.split(";" if ";" in rest else "+"):
            key, eq, value = item.partition("=")
            if not eq or not key.strip() or not value.strip():
                raise BenchError(f"bad method option {item!r} in {spec!r}: expected NAME=VALUE")
            opts[key.strip()] = value.strip()
    return base.strip(), opts
