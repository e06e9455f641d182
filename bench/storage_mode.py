"""Storage mode on PostgreSQL: keep half-precision vectors and codes, drop the float32.

For one dataset (shared layout: docs, dev queries, qrels) this builds two tables in
the same database and searches both with the same queries, k = 10, cosine:

* ``sm_<name>_f32`` ``(id bigint, embedding vector(d))``: the reference;
* ``sm_<name>_f16`` ``(id bigint, embedding halfvec(d))``: storage mode. Its binary
  (and, with ``--pq``, PQ) compressed column lives in a code store; the search
  ranks candidates by the codes and reranks them with the halfvec vectors.

and prints nDCG@10 (against the qrels) and recall@10 (against numpy's exact top-10 over
the float32 vectors) of: exact search on each table, and the compressed search on the
storage-mode table (its planner's rerank depth, recall target 0.95); and the bytes on
disk per row of each table, store and index. Nothing is timed as a target here.

    python bench/storage_mode.py --dataset ../shared/data/wiki-vital [--limit-queries 300]
                                 [--dsn DSN] [--pq] [--keep]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from psycopg import sql

from vecext.datasets import load_dataset
from vecext.evaluation import ndcg_at_k, recall_at_k
from vecext.postgres import (
    add_compressed_column,
    calibrate,
    connect,
    copybin,
    install,
    search,
    train_codec,
)

K = 10


def load(conn, f32: str, f16: str, xb: np.ndarray) -> None:
    """The float32 table by binary COPY; the storage-mode table from it (halfvec cast)."""
    d = xb.shape[1]
    for t, typ in ((f32, "vector"), (f16, "halfvec")):
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(t)))
        conn.execute(
            sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, embedding {}({}))").format(
                sql.Identifier(t), sql.SQL(typ), sql.Literal(d)
            )
        )
    data = copybin.dump_key_vectors(np.arange(len(xb)), xb, "bigint")
    query = sql.SQL("COPY {} (id, embedding) FROM STDIN (FORMAT binary)")
    with conn.cursor().copy(query.format(sql.Identifier(f32))) as copy:
        copy.write(data)
    conn.execute(
        sql.SQL("INSERT INTO {} SELECT id, embedding::halfvec({}) FROM {}").format(
            sql.Identifier(f16), sql.Literal(d), sql.Identifier(f32)
        )
    )
    for t in (f32, f16):
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(t)))


def size(conn, rel: str) -> int:
    return int(conn.execute("SELECT pg_total_relation_size(%s::regclass)", [rel]).fetchone()[0])


def run(conn, table: str, xq: np.ndarray, **kw) -> tuple[np.ndarray, list[float]]:
    ids, ms = [], []
    for q in xq:
        t0 = time.perf_counter()
        r = search(conn, table, "embedding", q, K, metric="cosine", **kw)
        ms.append((time.perf_counter() - t0) * 1000)
        row = np.full(K, -1, dtype=np.int64)
        row[: len(r.ids)] = r.ids
        ids.append(row)
    return np.vstack(ids), ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--limit-queries", type=int, default=300)
    ap.add_argument("--dsn", default=None)
    ap.add_argument("--pq", action="store_true", help="also a PQ compressed column")
    ap.add_argument("--keep", action="store_true", help="keep the tables")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    ds = load_dataset(args.dataset, "dev")
    xq, qrels = ds.xq[: args.limit_queries], ds.qrels[: args.limit_queries]
    name = ds.name.replace("-", "_")
    f32, f16 = f"sm_{name}_f32", f"sm_{name}_f16"
    # numpy's exact top-10 over the float32 vectors (cosine)
    xn = ds.xb / np.linalg.norm(ds.xb, axis=1, keepdims=True)
    qn = xq / np.linalg.norm(xq, axis=1, keepdims=True)
    truth = np.argsort(-(qn @ xn.T), axis=1, kind="stable")[:, :K]
    out: dict = {"dataset": ds.name, "n": len(ds.xb), "d": ds.d, "queries": len(xq)}
    with connect(args.dsn, autocommit=True) as conn:
        install(conn)
        t0 = time.perf_counter()
        load(conn, f32, f16, ds.xb)
        out["load_s"] = round(time.perf_counter() - t0, 1)
        kinds = ["binary", *(["pq"] if args.pq else [])]
        for kind in kinds:
            codec = f"sm_{name}_{kind}"[:48]
            conn.execute("DELETE FROM vecext.compressed_columns WHERE codec_name = %s", [codec])
            conn.execute("DELETE FROM vecext.codecs WHERE name = %s", [codec])
            params = {"m": ds.d // 8} if kind == "pq" else {}
            train_codec(conn, codec, f16, "embedding", kind, metric="cosine", **params)
            t0 = time.perf_counter()
            add_compressed_column(conn, f16, "embedding", codec, f"emb_{kind}", progress=False)
            out[f"add_{kind}_s"] = round(time.perf_counter() - t0, 1)
            calibrate(conn, f16, f"emb_{kind}")
        rows = {}
        for label, table, kw in [
            ("exact float32", f32, {"strategy": "exact"}),
            ("exact halfvec", f16, {"strategy": "exact"}),
            *[
                (
                    f"{k} codes + halfvec rerank",
                    f16,
                    {"strategy": "compressed", "using": f"emb_{k}"},
                )
                for k in kinds
            ],
        ]:
            ids, ms = run(conn, table, xq, **kw)
            rows[label] = {
                "ndcg@10": round(ndcg_at_k(ids, qrels, K), 4),
                "recall@10": round(recall_at_k(ids, truth, K), 4),
                "p50_ms": round(float(np.median(ms)), 1),
            }
        n = len(ds.xb)
        stores = dict(
            conn.execute(
                "SELECT code_column, vecext.code_store(%s::regclass, code_column)::text "
                "FROM vecext.compressed_columns WHERE table_oid = %s::regclass",
                [f16, f16],
            ).fetchall()
        )
        out["bytes_per_row"] = {
            f"{f32} (table + pk)": round(size(conn, f32) / n, 1),
            f"{f16} (table + pk)": round(size(conn, f16) / n, 1),
            **{f"{c} store (+ pk)": round(size(conn, s) / n, 1) for c, s in stores.items()},
        }
        out["results"] = rows
        ref = rows["exact float32"]["ndcg@10"]
        for r in rows.values():
            r["ndcg_kept"] = round(r["ndcg@10"] / ref, 4) if ref else None
        if not args.keep:
            for t in (f32, f16):
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(t)))
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
