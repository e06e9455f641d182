"""Benchmark of compressed columns in PostgreSQL (a benchmark, not a timed test).

    /work/venv/bin/python bench/compressed_columns.py [--dsn DSN] [--rows N] [--data FILE]

Uses the embedded server (or ``--dsn``) and a scratch database that it drops at
the end. Data: ``../shared/data/wordnet-minilm/docs.f16.npy`` (117,659 real
384-d MiniLM embeddings) when present, else seeded synthetic clusters. Prints:

* Python PQ M=48 encode throughput on 384-d, one thread (target >= 100 k vectors/s);
* bulk backfill into PostgreSQL (``add_compressed_column``: binary COPY out, numpy
  encode, COPY in, merge; target >= 20 k rows/s), and the SQL ``CALL vecext.backfill``;
* the per-row cost of the trigger on single-row INSERTs (autocommit), with vs
  without it, for PQ and binary codes;
* encode and lookup-table cost of the generated SQL functions (codebook embedded
  as constants) against a variant that reads ``vecext.codebook_vectors``;
* scan rates (rows/s, one core): ``ORDER BY <codec>_distance(codes, lut) LIMIT 10``
  with the LUT inlined, with a subquery argument (not inlined), and the Hamming
  scan ``ORDER BY bits <~> <codec>_encode(q) LIMIT 10``; in the table itself
  (each row carries its 1.5 kB vector) and in a codes-only table.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from pathlib import Path

import faiss
import numpy as np
import psycopg
from psycopg import conninfo, sql
from rich.console import Console
from rich.table import Table

from vecext.codecs import make_codec
from vecext.postgres import (
    add_compressed_column,
    compressed_column,
    connect,
    copybin,
    install,
    load_codec,
    save_codec,
)
from vecext.postgres.bulk import Backfill
from vecext.postgres.connection import register_pgvector, resolve_dsn

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wordnet-minilm" / "docs.f16.npy"
console = Console()
results: list[tuple[str, str, str]] = []


def report(what: str, value: str, note: str = "") -> None:
    results.append((what, value, note))
    console.print(f"  {what}: [bold]{value}[/bold] {note}")


class Clock:
    """Wall time and CPU time (this process + the server backend of ``conn``).

    On a shared machine the wall clock mostly measures the other processes; CPU
    seconds of the two processes doing the work are what one free core would take.
    """

    def __init__(self, conn: psycopg.Connection | None = None) -> None:
        self.pid = None
        if conn is not None:
            self.pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]

    def _server_cpu(self) -> float:
        if self.pid is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a remote server (--dsn): client CPU only
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> Clock:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time() + self._server_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() + self._server_cpu() - self.cpu0


def rate(n: float, c: Clock, unit: str) -> str:
    return f"{n / c.wall:,.0f} {unit} ({n / max(c.cpu, 1e-9):,.0f} per CPU-second)"


def load_data(path: Path, rows: int) -> tuple[np.ndarray, str]:
    if path.exists():
        x = np.load(path, mmap_mode="r")[:rows].astype(np.float32)
        return x, f"{path.name} (real MiniLM, {x.shape[0]} x {x.shape[1]})"
    rng = np.random.default_rng(0)
    centroids = rng.standard_normal((200, 384)).astype(np.float32)
    x = centroids[rng.integers(0, 200, rows)] + 0.3 * rng.standard_normal((rows, 384))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), f"synthetic clusters ({rows} x 384)"


def load_table(conn: psycopg.Connection, table: str, x: np.ndarray) -> None:
    conn.execute(
        sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, embedding vector({}))").format(
            sql.Identifier(table), sql.Literal(x.shape[1])
        )
    )
    data = copybin.dump_key_vectors(np.arange(len(x)), x)
    with conn.cursor().copy(
        sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(sql.Identifier(table))
    ) as copy:
        for i in range(0, len(data), 1 << 20):
            copy.write(data[i : i + (1 << 20)])
    conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))


def python_encode(x: np.ndarray, xt: np.ndarray):
    console.rule("Python PQ encode (M=48, 384-d, one thread)")
    faiss.omp_set_num_threads(1)
    t0 = time.perf_counter()
    pq = make_codec("pq", 384, "cosine", m=48, niter=10).train(xt)
    report(
        "PQ M=48 training", f"{time.perf_counter() - t0:.1f} s", f"({len(xt)} vectors, niter=10)"
    )
    n = min(len(x), 100_000)
    pq.encode(x[:1000])
    runs = []
    for _ in range(3):  # best of 3: other processes share the cores
        with Clock() as c:
            pq.encode(x[:n])
        runs.append(c)
    best = min(runs, key=lambda c: c.cpu)
    report("Python PQ M=48 encode", rate(n, best, "vectors/s"), "(target >= 100,000)")
    return pq


def backfill(conn: psycopg.Connection, x: np.ndarray, pq, binary) -> None:
    console.rule("Backfill")
    save_codec(conn, "bench_pq", pq)
    save_codec(conn, "bench_bin", binary)
    load_table(conn, "items", x)
    # add_compressed_column(..., backfill=True) runs exactly this job; run it by hand
    # to read its per-phase timings
    with Clock(conn) as c:
        add_compressed_column(conn, "items", "embedding", "bench_pq", "codes", backfill=False)
        cc = compressed_column(conn, "items", "codes")
        job = Backfill(conn, cc, load_codec(conn, "bench_pq"), 20_000)
        job.run(progress=True)
    report("bulk backfill, PQ M=48", rate(len(x), c, "rows/s"), "(target >= 20,000)")
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in job.seconds.items())
    report("  its phases (wall)", phases, f"(total {c.wall:.1f} s)")
    with Clock(conn) as c:
        add_compressed_column(conn, "items", "embedding", "bench_bin", "bits", batch_size=20_000)
    report("bulk backfill, binary", rate(len(x), c, "rows/s"))
    # the pure-SQL path on a smaller table
    n = min(len(x), 2000)
    load_table(conn, "items_sql", x[:n])
    conn.execute("SELECT vecext.add_compressed_column('items_sql', 'embedding', 'bench_pq', 'c')")
    with Clock(conn) as c:
        conn.execute("CALL vecext.backfill('items_sql', 'c', 500)")
    report("SQL CALL vecext.backfill, PQ M=48", rate(n, c, "rows/s"), "(encodes in PL/pgSQL)")


def trigger_cost(conn: psycopg.Connection, x: np.ndarray) -> None:
    console.rule("Trigger cost")
    tables = {"t_plain": None, "t_pq": "bench_pq", "t_bin": "bench_bin"}
    for table, codec in tables.items():
        conn.execute(
            sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, embedding vector(384))").format(
                sql.Identifier(table)
            )
        )
        if codec:
            add_compressed_column(conn, table, "embedding", codec, "c", progress=False)
    # single-row INSERTs, autocommit: one statement (and one commit) per row
    n = 300
    rows = [vector_text(v) for v in x[:n]]
    single: dict[str, Clock] = {}
    for _round in range(2):  # the first round warms the session's PL/pgSQL caches
        for t in tables:
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(t)))
            q = sql.SQL("INSERT INTO {} VALUES (%s, %s::vector)").format(sql.Identifier(t))
            with Clock(conn) as c:
                for i, v in enumerate(rows):
                    conn.execute(q, [i, v])
            single[t] = c
    base = single["t_plain"]
    report("single-row INSERT, no trigger",
           f"{base.wall / n * 1e3:.3f} ms/row", f"(CPU {base.cpu / n * 1e3:.3f} ms)")  # fmt: skip
    for t, label in [("t_pq", "PQ M=48"), ("t_bin", "binary")]:
        c = single[t]
        report(f"single-row INSERT, {label} trigger", f"{c.wall / n * 1e3:.3f} ms/row",
               f"(CPU {c.cpu / n * 1e3:.3f} ms; trigger adds {(c.wall - base.wall) / n * 1e3:.3f} "
               f"ms wall, {(c.cpu - base.cpu) / n * 1e3:.3f} ms CPU)")  # fmt: skip
    # the trigger's own cost, without round trips and commits: one INSERT ... SELECT
    inserted = {"t_plain": 5000, "t_pq": 500, "t_bin": 5000}
    inner: dict[str, Clock] = {}
    for t, n_rows in inserted.items():
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(t)))
        q = sql.SQL("INSERT INTO {} (id, embedding) SELECT id, embedding FROM items WHERE id < %s")
        with Clock(conn) as c:
            conn.execute(q.format(sql.Identifier(t)), [n_rows])
        inner[t] = c
    b = inner["t_plain"].cpu / inserted["t_plain"]
    for t, label in [("t_pq", "PQ M=48"), ("t_bin", "binary")]:
        per = inner[t].cpu / inserted[t]
        report(f"trigger CPU per row in INSERT ... SELECT, {label}", f"{(per - b) * 1e6:,.0f} us",
               f"(row insert {per * 1e6:,.0f} vs {b * 1e6:,.0f} us CPU without trigger)")  # fmt: skip


def vector_text(v: np.ndarray) -> str:
    return "[" + ",".join(f"{a:.9g}" for a in v.tolist()) + "]"


def sql_functions(conn: psycopg.Connection, pq) -> None:
    console.rule("Generated SQL functions: codebook as constants vs read from the catalog")
    conn.execute("SET max_parallel_workers_per_gather = 0")
    m, dsub = pq.m, pq.dsub
    # the alternative: STABLE functions that read vecext.codebook_vectors
    subs = ", ".join(
        f"(SELECT idx FROM vecext.codebook_vectors WHERE codec_name = 'bench_pq' AND part = "
        f"'centroids' AND sub = {j} ORDER BY vec <-> subvector(x, {j * dsub + 1}, {dsub}), idx "
        "LIMIT 1)"
        for j in range(m)
    )
    conn.execute(
        "CREATE FUNCTION bench_catalog_encode(v vector) RETURNS int[] LANGUAGE plpgsql STABLE AS "
        f"$$ DECLARE x vector := l2_normalize(v); BEGIN RETURN ARRAY[{subs}]; END $$"
    )
    conn.execute(
        "CREATE FUNCTION bench_catalog_lut(v vector) RETURNS real[] LANGUAGE plpgsql STABLE AS "
        "$$ DECLARE x vector := l2_normalize(v); BEGIN RETURN (SELECT array_agg(-(subvector(x, "
        f"sub * {dsub} + 1, {dsub}) <#> vec) ORDER BY sub, idx) FROM vecext.codebook_vectors "
        "WHERE codec_name = 'bench_pq' AND part = 'centroids'); END $$"
    )
    n = 200
    for label, fn, unit in [
        ("SQL PQ M=48 encode, constants", "vecext.bench_pq_encode", "row"),
        ("SQL PQ M=48 encode, catalog reads", "bench_catalog_encode", "row"),
        ("SQL PQ M=48 lookup table, constants", "vecext.bench_pq_lut", "query"),
        ("SQL PQ M=48 lookup table, catalog reads", "bench_catalog_lut", "query"),
    ]:
        q = f"SELECT count({fn}(embedding)) FROM items WHERE id < %s"
        conn.execute(q, [5]).fetchone()  # warm the session's caches
        with Clock(conn) as c:
            conn.execute(q, [n]).fetchone()
        report(label, f"{c.wall / n * 1e3:.2f} ms/{unit}", f"(CPU {c.cpu / n * 1e3:.2f} ms)")


def scans(conn: psycopg.Connection, x: np.ndarray) -> None:
    console.rule("Scans (one core: max_parallel_workers_per_gather = 0)")
    conn.execute("SET max_parallel_workers_per_gather = 0")
    n = conn.execute("SELECT count(*) FROM items").fetchone()[0]
    q = vector_text(x[12345 % len(x)])
    forms = {
        "PQ scan, LUT from a CTE (inlined)": (
            "WITH q AS MATERIALIZED (SELECT vecext.bench_pq_lut(%s::vector) AS lut) "
            "SELECT id FROM items, q ORDER BY vecext.bench_pq_distance(codes, q.lut) LIMIT 10"
        ),
        "PQ scan, LUT as a subquery argument (not inlined)": (
            "SELECT id FROM items ORDER BY vecext.bench_pq_distance(codes, "
            "(SELECT vecext.bench_pq_lut(%s::vector))) LIMIT 10"
        ),
        "Hamming scan, bit <~>": (
            "SELECT id FROM items ORDER BY bits <~> (SELECT vecext.bench_bin_encode(%s::vector)) "
            "LIMIT 10"
        ),
        "exact scan, vector <=> (for reference)": (
            "SELECT id FROM items ORDER BY embedding <=> %s::vector LIMIT 10"
        ),
    }
    # the same scans over a narrow table (id, codes, bits): what the kernels cost
    # without reading 1.5 kB of float vector per row from the heap
    conn.execute("CREATE TABLE items_codes AS SELECT id, codes, bits FROM items")
    conn.execute("VACUUM ANALYZE items_codes")
    for label, query in list(forms.items())[:3]:
        forms[label.replace(",", ", codes-only table,", 1)] = query.replace("items", "items_codes")
    for label, query in forms.items():
        conn.execute(query, [q]).fetchall()  # warm
        best = None
        for _ in range(3):
            with Clock(conn) as c:
                conn.execute(query, [q]).fetchall()
            best = c if best is None or c.cpu < best.cpu else best
        assert best is not None
        report(label, rate(n, best, "rows/s"), f"({best.wall * 1e3:.0f} ms for {n} rows)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", help="server to use (default: $VECEXT_DSN or the embedded one)")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = ap.parse_args()

    x, what = load_data(args.data, args.rows)
    console.print(f"data: {what}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    server = resolve_dsn(args.dsn)
    db = f"vecext_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    try:
        with connect(conninfo.make_conninfo(server, dbname=db), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            register_pgvector(conn)
            install(conn)
            rng = np.random.default_rng(0)
            xt = x[rng.choice(len(x), min(len(x), 20_000), replace=False)]
            pq = python_encode(x, xt)
            binary = make_codec("binary", 384, "cosine").train(xt)
            backfill(conn, x, pq, binary)
            trigger_cost(conn, x)
            sql_functions(conn, pq)
            scans(conn, x)
            pg = conn.execute("SHOW server_version").fetchone()[0]
    finally:
        if not args.keep:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
                )
    table = Table(title=f"vecext compressed columns, PostgreSQL {pg}, {what}")
    for col in ("measure", "value", "note"):
        table.add_column(col)
    for row in results:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
