"""Benchmark vecext's DuckDB code columns on 384-d embeddings (not a test).

Measures, on ``wordnet-minilm`` (``../shared/data/wordnet-minilm/docs.f16.npy``, 117,659
x 384) when present, else seeded synthetic data:

* scan rates of a top-10 query over every row: the PQ lookup macro (UTINYINT[48]), the
  Hamming macro (UBIGINT[6]), the Arrow-UDF distances (half, int8 BLOBs), and DuckDB's
  ``array_cosine_distance`` on the FLOAT[384] column as the baseline; FAISS IndexPQ
  over the same codes is the ceiling. DuckDB threads 1 and all, best of ``--repeat``;
* backfill rows/s of ``add_compressed_column`` per codec, and Python PQ encode rows/s;
* bytes per row DuckDB stores for each column type (a file database per column,
  checkpointed; ``PRAGMA database_size`` used blocks minus an empty database's).

Usage::

    python bench/duckdb_codes.py [--rows 117659] [--repeat 3] [--data PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb
import faiss
import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

import vecext.duckdb as vd
from vecext.codecs import make_codec

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "wordnet-minilm"


def load(path: Path, rows: int) -> tuple[np.ndarray, str]:
    f = path / "docs.f16.npy"
    if f.is_file():
        x = np.load(f)[:rows].astype(np.float32)
        return x, f"wordnet-minilm docs ({len(x):,} x {x.shape[1]})"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, f"synthetic unit vectors ({rows:,} x 384)"


def arrow_vectors(x: np.ndarray) -> pa.Table:
    values = pa.array(x.ravel())
    return pa.table(
        {
            "id": np.arange(len(x), dtype=np.int32),
            "embedding": pa.FixedSizeListArray.from_arrays(values, x.shape[1]),
        }
    )


def best_rate(con: duckdb.DuckDBPyConnection, sql: str, params: list, n: int, repeat: int) -> float:
    con.execute(sql, params).fetchall()  # warm-up (first UDF call, caches)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        con.execute(sql, params).fetchall()
        best = min(best, time.perf_counter() - t0)
    return n / best


def storage_bytes_per_row(col_sql: str, typ: str, src: pa.Table, n: int, tmp: Path) -> float:
    """Bytes per row of one column of type ``typ`` in a checkpointed file database."""

    def used(con: duckdb.DuckDBPyConnection) -> int:
        con.execute("CHECKPOINT")
        row = con.execute("SELECT used_blocks, block_size FROM pragma_database_size()").fetchone()
        return int(row[0]) * int(row[1])

    path = tmp / f"size_{abs(hash(typ + col_sql))}.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t (c INTEGER)")
    base = used(con)
    con.register("src", src)
    con.execute(f"CREATE OR REPLACE TABLE t AS SELECT CAST({col_sql} AS {typ}) AS c FROM src")
    size = used(con) - base
    con.close()
    return size / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=117_659)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--m", type=int, default=48)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vecext-bench-") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> None:
    console = Console()
    faiss.omp_set_num_threads(1)

    x, what = load(args.data, args.rows)
    n, d = x.shape
    q = x[12345 % n]
    console.print(f"[bold]data[/]: {what}; DuckDB {duckdb.__version__}, {n:,} rows")

    t0 = time.perf_counter()
    pq = make_codec("pq", d, "cosine", m=args.m, niter=10).train(x[:20_000])
    console.print(f"PQ m={args.m} trained on 20,000 in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    codes = pq.encode(x)
    encode_rate = n / (time.perf_counter() - t0)

    con = vd.connect(tmp / "bench.duckdb", vss=False)
    con.register("src", arrow_vectors(x))
    con.execute(f"CREATE TABLE items (id INTEGER PRIMARY KEY, embedding FLOAT[{d}])")
    con.execute("INSERT INTO items SELECT id, embedding FROM src")
    con.unregister("src")
    vd.save_codec(con, "it_pq", pq)
    vd.save_codec(con, "it_bin", make_codec("binary", d, "cosine").train(x[:20_000]))
    vd.save_codec(con, "it_half", make_codec("half", d, "cosine"))
    vd.save_codec(con, "it_int8", make_codec("int8", d, "cosine").train(x[:20_000]))

    backfill = {}
    for codec, col in [("it_pq", "pq"), ("it_bin", "bits"), ("it_half", "h"), ("it_int8", "q8")]:
        t0 = time.perf_counter()
        vd.add_compressed_column(con, "items", "embedding", codec, col, progress=False)
        backfill[codec] = n / (time.perf_counter() - t0)
    got = np.array([r[0] for r in con.execute("SELECT pq FROM items ORDER BY id").fetchall()])
    assert (got == codes).all(), "codes in DuckDB differ from Python's"

    qp = [float(v) for v in q]
    # the documented form: the query's table / codes as a column of a one-row CTE
    lut_cte = "WITH q AS MATERIALIZED (SELECT vecext.it_pq_lut(?::FLOAT[]) AS v) "
    bin_cte = "WITH q AS MATERIALIZED (SELECT vecext.it_bin_encode(?::FLOAT[]) AS v) "
    queries = {
        "PQ lookup macro, UTINYINT[48] (CTE)": (
            lut_cte + "SELECT id FROM items, q ORDER BY vecext.it_pq_distance(pq, q.v) LIMIT 10"
        ),
        "PQ lookup macro, inline lut argument": (
            "SELECT id FROM items ORDER BY vecext.it_pq_distance(pq, vecext.it_pq_lut(?::FLOAT[])) "
            "LIMIT 10"
        ),
        "Hamming macro, UBIGINT[6] (CTE)": (
            bin_cte + "SELECT id FROM items, q ORDER BY vecext.it_bin_distance(bits, q.v) LIMIT 10"
        ),
        "UDF distance, half BLOB": (
            "SELECT id FROM items ORDER BY vecext.it_half_distance(h, ?::FLOAT[]) LIMIT 10"
        ),
        "UDF distance, int8 BLOB": (
            "SELECT id FROM items ORDER BY vecext.it_int8_distance(q8, ?::FLOAT[]) LIMIT 10"
        ),
        "array_cosine_distance, FLOAT[384] (baseline)": (
            f"SELECT id FROM items ORDER BY array_cosine_distance(embedding, ?::FLOAT[{d}]) LIMIT 10"
        ),
    }
    rates: dict[str, dict[int, float]] = {}
    threads = sorted({1, int(con.execute("SELECT current_setting('threads')").fetchone()[0])})
    for t in threads:
        con.execute(f"SET threads = {t}")
        for label, sql in queries.items():
            rates.setdefault(label, {})[t] = best_rate(con, sql, [qp], n, args.repeat)

    index = faiss.IndexPQ(d, args.m, 8, faiss.METRIC_INNER_PRODUCT)
    faiss.copy_array_to_vector(pq.centroids.ravel(), index.pq.centroids)
    index.is_trained = True
    index.add_sa_codes(codes)
    qn = (q / np.linalg.norm(q)).astype(np.float32)[None]
    index.search(qn, 10)
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        index.search(qn, 10)
        best = min(best, time.perf_counter() - t0)
    faiss_rate = n / best

    table = Table(title=f"top-10 scan over {n:,} rows (best of {args.repeat})")
    table.add_column("method")
    for t in threads:
        table.add_column(f"rows/s, {t} thread{'s' if t > 1 else ''}", justify="right")
    for label, by_t in rates.items():
        table.add_row(label, *[f"{by_t[t] / 1e6:.2f} M" for t in threads])
    table.add_row("FAISS IndexPQ (same codes, 1 thread)", f"{faiss_rate / 1e6:.1f} M", "")
    console.print(table)

    t2 = Table(title="encoding")
    t2.add_column("step")
    t2.add_column("rows/s", justify="right")
    t2.add_row(f"Python PQ m={args.m} encode (1 thread)", f"{encode_rate:,.0f}")
    for codec, r in backfill.items():
        t2.add_row(f"add_compressed_column backfill, {codec}", f"{r:,.0f}")
    console.print(t2)

    src = con.execute(
        "SELECT embedding, pq, bits, h, q8, pq__vecext_hash AS hash FROM items"
    ).to_arrow_table()
    con.close()
    t3 = Table(title=f"storage, bytes per row ({n:,} rows, checkpointed file database)")
    t3.add_column("column")
    t3.add_column("payload", justify="right")
    t3.add_column("stored", justify="right")
    for label, col, typ, payload in [
        (f"FLOAT[{d}] source", "embedding", f"FLOAT[{d}]", 4 * d),
        (f"UTINYINT[{args.m}] PQ codes", "pq", f"UTINYINT[{args.m}]", args.m),
        (f"UBIGINT[{(d + 63) // 64}] binary codes", "bits", f"UBIGINT[{(d + 63) // 64}]", d // 8),
        ("BLOB half codes", "h", "BLOB", 2 * d),
        ("BLOB int8 codes", "q8", "BLOB", d),
        ("UBIGINT hash companion", "hash", "UBIGINT", 8),
    ]:
        per_row = storage_bytes_per_row(col, typ, src, n, tmp)
        t3.add_row(label, f"{payload}", f"{per_row:,.1f}")
    console.print(t3)


if __name__ == "__main__":
    main()
