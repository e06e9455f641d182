"""The two halves of ``vecext demo``: the same steps on PostgreSQL and on DuckDB."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from vecext.codecs import Codec
from vecext.search.api import search
from vecext.search.filters import Predicate
from vecext.tools.demo import (
    TABLE,
    Demo,
    DemoData,
    Row,
    _fmt_bytes,
    _progress,
    _time_searches,
    recall,
)

PQ, BITS = "demo_pq", "demo_bits"


def _relevance(data: DemoData, d: int) -> Any | None:
    """A Cosine Adapter trained on half of the demo queries (None if too few labels)."""
    from vecext.relevance import make_relevance

    half = len(data.xq) // 2
    if half < 5:
        return None
    xq = data.xq[:half]
    sims = xq @ data.xb.T
    top = np.argsort(-sims, axis=1)[:, :100]
    S = np.take_along_axis(sims, top, axis=1).astype(np.float32)
    Y = np.array([np.isin(t, rel) for t, rel in zip(top, data.qrels[:half], strict=True)])
    if not Y.any() or Y.all():
        return None
    n_rel = np.array([len(r) for r in data.qrels[:half]])
    return make_relevance("cosine-adapter").fit(xq, S, Y, n_rel)


def _searches(
    demo: Demo,
    backend: str,
    conn: Any,
    data: DemoData,
    filters: list[tuple[str, Predicate | None]],
    truths: dict[str, list[np.ndarray]],
    expected: dict[str, int],
    k: int,
    variants: list[tuple[str, dict[str, Any], int, str]],
) -> None:
    d = data.xb.shape[1]
    for label, pred in filters:
        for name, kwargs, bpv, storage in variants:

            def run(q: np.ndarray, kwargs: dict[str, Any] = kwargs, pred: Any = pred) -> Any:
                return search(
                    conn, TABLE, "embedding", q, k, metric="cosine", filter=pred, **kwargs
                )

            ids, times, results = _time_searches(run, data.xq)
            strategies = sorted({r.strategy for r in results})
            demo.rows.append(
                Row(
                    backend,
                    f"{label}",
                    f"{name} -> {'/'.join(strategies)}",
                    bpv,
                    storage,
                    recall(ids, truths[label]),
                    float(np.median(times)),
                    f"{min(len(i) for i in ids)}/{expected[label]}",
                )
            )
    adapter = _relevance(data, d)
    if adapter is None:
        return
    # thresholded: no fixed k, the calibrated score decides how many rows come back
    test = data.xq[len(data.xq) // 2 :]
    threshold = float(adapter.threshold)

    def run_t(q: np.ndarray) -> Any:
        return search(
            conn,
            TABLE,
            "embedding",
            q,
            metric="cosine",
            strategy="exact",
            min_relevance=threshold,
            relevance=adapter,
            max_results=100,
        )

    ids, times, _ = _time_searches(run_t, test)
    rel = data.qrels[len(data.xq) // 2 :]
    hits = sum(len(np.intersect1d(i, r)) for i, r in zip(ids, rel, strict=True))
    returned = sum(len(i) for i in ids)
    n_rel = sum(len(r) for r in rel)
    p = hits / returned if returned else 0.0
    r_ = hits / n_rel if n_rel else 0.0
    demo.rows.append(
        Row(
            backend,
            f"score >= {threshold:.2f}",
            "cosine adapter -> exact",
            4 * d,
            "-",
            r_,
            float(np.median(times)),
            f"avg {returned / len(ids):.1f} ({min(len(i) for i in ids)}-{max(len(i) for i in ids)})",
            note=(
                f"threshold search: precision {p:.2f}, recall of the relevant rows {r_:.2f} "
                f"(recall column), rows per query vary with the query"
            ),
        )
    )


def postgres_demo(
    demo: Demo,
    data: DemoData,
    pq: Codec,
    bits: Codec,
    filters: list[tuple[str, Predicate | None]],
    truths: dict[str, list[np.ndarray]],
    expected: dict[str, int],
    k: int,
    dsn: str | None,
) -> None:
    import vecext.postgres as vpg
    from vecext.postgres.columns import list_compressed_columns

    n, d = data.xb.shape
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
        with _progress(con) as prog:
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
                    copy.write_row((i, data.xb[i], data.category[i]))
                    if i % 5000 == 4999:
                        prog.advance(t, 5000)
            prog.update(t, completed=n)
            conn.execute(f"CREATE INDEX ON {TABLE} (category)")
            conn.execute(f"ANALYZE {TABLE}")
        vpg.save_codec(conn, PQ, pq)
        vpg.save_codec(conn, BITS, bits)
        t0 = time.perf_counter()
        vpg.add_compressed_column(conn, TABLE, "embedding", PQ, "embedding_pq")
        vpg.add_compressed_column(conn, TABLE, "embedding", BITS, "embedding_bits")
        vpg.add_ivf_lists(
            conn, TABLE, "embedding", code_column="embedding_pq", index_columns=["category"]
        )
        vpg.calibrate(conn, TABLE, "embedding_pq", k=k, n_queries=50)
        vpg.calibrate(conn, TABLE, "embedding_bits", k=k, n_queries=50)
        con.print(f"postgres: codes, IVF lists and calibration in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        vpg.create_vector_index(conn, TABLE, "embedding", metric="cosine")
        con.print(f"postgres: HNSW index in {time.perf_counter() - t0:.1f} s")
        sizes = _pg_sizes(conn)
        variants = [
            ("exact", {"strategy": "exact"}, 4 * d, sizes["embedding"]),
            (
                "pq",
                {"strategy": "compressed", "using": "embedding_pq"},
                pq.code_size,
                sizes["embedding_pq"],
            ),
            (
                "binary",
                {"strategy": "compressed", "using": "embedding_bits"},
                bits.code_size,
                sizes["embedding_bits"],
            ),
            (
                "ivf-pq",
                {"strategy": "ivf", "using": "embedding_pq"},
                pq.code_size,
                sizes["embedding_pq"],
            ),
            ("auto", {}, 0, "-"),
        ]
        _searches(demo, "postgres", conn, data, filters, truths, expected, k, variants)
    finally:
        conn.close()


def _pg_sizes(conn: Any) -> dict[str, str]:
    out = {}
    for col in ("embedding", "embedding_pq", "embedding_bits"):
        row = conn.execute(f"SELECT sum(pg_column_size({col})) FROM {TABLE}").fetchone()
        out[col] = _fmt_bytes(float(row[0] or 0))
    return out


def duckdb_demo(
    demo: Demo,
    data: DemoData,
    pq: Codec,
    bits: Codec,
    filters: list[tuple[str, Predicate | None]],
    truths: dict[str, list[np.ndarray]],
    expected: dict[str, int],
    k: int,
) -> None:
    import pyarrow as pa

    import vecext.duckdb as vdk

    n, d = data.xb.shape
    con = vdk.connect()
    try:
        items = pa.table(
            {
                "id": pa.array(np.arange(n, dtype=np.int64)),
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(data.xb.ravel()), d),
                "category": pa.array(data.category),
            }
        )
        con.register("demo_arrow", items)
        con.execute(
            f"CREATE TABLE {TABLE} (id BIGINT PRIMARY KEY, embedding FLOAT[{d}], category VARCHAR)"
        )
        con.execute(f"INSERT INTO {TABLE} SELECT * FROM demo_arrow")
        con.unregister("demo_arrow")
        vdk.save_codec(con, PQ, pq)  # the very codecs Postgres uses
        vdk.save_codec(con, BITS, bits)
        t0 = time.perf_counter()
        vdk.add_compressed_column(con, TABLE, "embedding", PQ, "embedding_pq")
        vdk.add_compressed_column(con, TABLE, "embedding", BITS, "embedding_bits")
        vdk.add_ivf_lists(con, TABLE, "embedding", code_column="embedding_pq")
        vdk.calibrate(con, TABLE, "embedding_pq", k=k, n_queries=50)
        vdk.calibrate(con, TABLE, "embedding_bits", k=k, n_queries=50)
        demo.console.print(
            f"duckdb: codes, IVF lists and calibration in {time.perf_counter() - t0:.1f} s"
        )
        variants = [
            ("exact", {"strategy": "exact"}, 4 * d, _fmt_bytes(4.0 * d * n)),
            (
                "pq",
                {"strategy": "compressed", "using": "embedding_pq"},
                pq.code_size,
                _fmt_bytes(float(pq.code_size * n)),
            ),
            (
                "binary",
                {"strategy": "compressed", "using": "embedding_bits"},
                bits.code_size,
                _fmt_bytes(float(bits.code_size * n)),
            ),
            (
                "ivf-pq",
                {"strategy": "ivf", "using": "embedding_pq"},
                pq.code_size,
                _fmt_bytes(float(pq.code_size * n)),
            ),
            ("auto", {}, 0, "-"),
        ]
        _searches(demo, "duckdb", con, data, filters, truths, expected, k, variants)
    finally:
        con.close()
