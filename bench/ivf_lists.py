"""How long ``add_ivf_lists`` takes on a compressed column, and what it does to the user's
table and the code store (issue 11).

Runs on a table ``vecext bench --backend postgres`` set up (e.g. ``bench_wordnet_minilm``
with its PQ column ``embedding_pq`` from ``--methods vecext-pq``): drops the column's IVF
lists if it has any, then times ``add_ivf_lists(..., index_columns=<the dataset's filter
columns>)`` and prints, as JSON: seconds, rows/s, ``pg_total_relation_size`` of the table
and of the code store before and after, where the lists went (``store`` or the table) and
the indexes made. With ``--repeat N`` it does so N times (lists dropped in between); with
``--reuse-centroids`` the lists get the centroids they had (no k-means: what is timed is
the fill of the list ids and the indexes). The
same script runs against vecext before catalog 0.5.0 (lists in a column of the table),
which is how the figures in docs/bench-postgres.md compare both; a table whose lists
went into it is compacted (``VACUUM FULL``) after each run, untimed, as the bench does.

    python bench/ivf_lists.py --dsn DSN [--table bench_wordnet_minilm]
        [--column embedding_pq] [--index-columns pos,lexname] [--repeat 2] [--reuse-centroids]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from psycopg import sql

from vecext.postgres import add_ivf_lists, connect, drop_ivf_lists, ivf_lists, load_codec


def _sizes(conn, table: str, column: str) -> tuple[int, int]:
    (t,) = conn.execute("SELECT pg_total_relation_size(%s::regclass)", [table]).fetchone()
    row = conn.execute("SELECT vecext.code_store(%s::regclass, %s)::text", [table, column])
    store = row.fetchone()[0]
    s = 0
    if store is not None:
        (s,) = conn.execute("SELECT pg_total_relation_size(%s::regclass)", [store]).fetchone()
    return int(t), int(s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", default=os.environ.get("VECEXT_DSN"))
    ap.add_argument("--table", default="bench_wordnet_minilm")
    ap.add_argument("--vector", default="embedding")
    ap.add_argument("--column", default="embedding_pq")
    ap.add_argument("--index-columns", default="pos,lexname")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument(
        "--reuse-centroids", action="store_true",
        help="re-add the lists with the centroids they had (time the fill, not k-means)",
    )  # fmt: skip
    args = ap.parse_args()
    conn = connect(args.dsn, autocommit=True)
    cols = [c for c in args.index_columns.split(",") if c]
    (n,) = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL").format(
            sql.Identifier(args.table), sql.Identifier(args.vector)
        )
    ).fetchone()
    for _ in range(args.repeat):
        coarse, name = None, None
        old = ivf_lists(conn, args.table, args.column)
        if old is not None:
            # the same centroids again (k-means is most of the time otherwise, and the
            # same in every vecext): what is timed is the list ids' fill and indexes
            if args.reuse_centroids:
                coarse, name = load_codec(conn, old.codec_name), old.codec_name
            drop_ivf_lists(conn, args.table, args.column)
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(args.table)))
        t0, s0 = _sizes(conn, args.table, args.column)
        start = time.perf_counter()
        lists = add_ivf_lists(
            conn, args.table, args.vector, code_column=args.column, index_columns=cols,
            codec=coarse, codec_name=name,
        )  # fmt: skip
        secs = time.perf_counter() - start
        t1, s1 = _sizes(conn, args.table, args.column)
        store = getattr(lists, "store", None)
        print(
            json.dumps(
                {
                    "rows": int(n),
                    "nlist": lists.nlist,
                    "seconds": round(secs, 2),
                    "rows_per_s": round(n / secs),
                    "lists_in": "store" if store else "table",
                    "table_bytes": [t0, t1],
                    "store_bytes": [s0, s1],
                    "indexes": list(lists.indexes),
                    "load": os.getloadavg()[0],
                }
            ),  # fmt: skip
            flush=True,
        )
        if store is None:  # the table was rewritten: compact it, as vecext bench does
            conn.execute(sql.SQL("VACUUM (FULL, ANALYZE) {}").format(sql.Identifier(args.table)))
    conn.close()


if __name__ == "__main__":
    main()
