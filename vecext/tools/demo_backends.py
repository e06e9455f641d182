"""The two halves of ``vecext demo``: the same steps on PostgreSQL and on DuckDB.

What differs is only how the table is loaded and how storage is measured; the
codecs, the code columns and the searches go through the same verbs of
:mod:`vecext.postgres` and :mod:`vecext.duckdb` (see :mod:`vecext.tools.demo_common`).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from vecext.tools.demo_common import (
    BITS,
    BITS_COLUMN,
    PQ,
    PQ_COLUMN,
    TABLE,
    Demo,
    Workload,
    add_codes,
    fmt_bytes,
    progress,
    run_searches,
    variants,
)


def postgres_demo(demo: Demo, w: Workload, dsn: str | None) -> None:
    # the adapters are optional extras (vecext[postgres], vecext[duckdb]): each half
    # imports its own only when it runs
    import vecext.postgres as vpg
    from vecext.postgres.columns import list_compressed_columns

    n, d = w.data.xb.shape
    con = demo.console
    conn = vpg.connect(dsn, autocommit=True)
    try:
        vpg.install(conn)
        # start from a clean slate: the demo's lists, columns, codecs and table
        for cc in list_compressed_columns(conn):
            if cc.table.name == TABLE:
                if vpg.ivf_lists(conn, TABLE, cc.code_column):
                    vpg.drop_ivf_lists(conn, TABLE, cc.code_column)
                vpg.drop_compressed_column(conn, TABLE, cc.code_column)
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        for name in (PQ, BITS):
            vpg.drop_codec(conn, name, missing_ok=True)
        with progress(con) as prog:
            t = prog.add_task(f"postgres: load {n} rows", total=n)
            conn.execute(
                f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, embedding vector({d}), category text)"
            )
            with (
                conn.cursor() as cur,
                cur.copy(
                    f"COPY {TABLE} (id, embedding, category) FROM STDIN WITH (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(["int8", "vector", "text"])
                for i in range(n):
                    copy.write_row((i, w.data.xb[i], w.data.category[i]))
                    if i % 5000 == 4999:
                        prog.advance(t, 5000)
            prog.update(t, completed=n)
            conn.execute(f"CREATE INDEX ON {TABLE} (category)")
            conn.execute(f"ANALYZE {TABLE}")
        seconds = add_codes(vpg, conn, w, index_columns=["category"])
        con.print(f"postgres: codes, IVF lists and calibration in {seconds:.1f} s")
        t0 = time.perf_counter()
        vpg.create_vector_index(conn, TABLE, "embedding", metric="cosine")
        con.print(f"postgres: HNSW index in {time.perf_counter() - t0:.1f} s")
        run_searches(demo, "postgres", conn, w, variants(w, _pg_sizes(conn).__getitem__))
    finally:
        conn.close()


def _pg_sizes(conn: Any) -> dict[str, str]:
    out = {}
    for col in ("embedding", PQ_COLUMN, BITS_COLUMN):
        # a compressed column's codes are in its code store (catalog 0.4.0)
        (store,) = conn.execute(
            "SELECT vecext.code_store(%s::regclass, %s)::text", [TABLE, col]
        ).fetchone()
        rel, c = (store, "code") if store else (TABLE, col)
        row = conn.execute(f"SELECT sum(pg_column_size({c})) FROM {rel}").fetchone()
        out[col] = fmt_bytes(float(row[0] or 0))
    return out


def duckdb_demo(demo: Demo, w: Workload) -> None:
    import pyarrow as pa

    import vecext.duckdb as vdk

    n, d = w.data.xb.shape
    con = vdk.connect()
    try:
        items = pa.table(
            {
                "id": pa.array(np.arange(n, dtype=np.int64)),
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(w.data.xb.ravel()), d),
                "category": pa.array(w.data.category),
            }
        )
        con.register("demo_arrow", items)
        con.execute(
            f"CREATE TABLE {TABLE} (id BIGINT PRIMARY KEY, embedding FLOAT[{d}], category VARCHAR)"
        )
        con.execute(f"INSERT INTO {TABLE} SELECT * FROM demo_arrow")
        con.unregister("demo_arrow")
        seconds = add_codes(vdk, con, w)
        demo.console.print(f"duckdb: codes, IVF lists and calibration in {seconds:.1f} s")
        # DuckDB reports no per-column sizes: the vectors and codes at their fixed widths
        width = {"embedding": 4 * d, PQ_COLUMN: w.pq.code_size, BITS_COLUMN: w.bits.code_size}
        run_searches(
            demo, "duckdb", con, w, variants(w, lambda col: fmt_bytes(float(width[col] * n)))
        )
    finally:
        con.close()
