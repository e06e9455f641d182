"""``vecext advise``: which codec for which memory budget, measured on your own data.

Given a sample of a vector column, a memory budget in bytes per vector and a recall
target, train every candidate codec that fits the budget, measure it on held-out
queries against exact search, and recommend one.

What is measured, per codec, on a sample of ``n`` base vectors and ``nq`` queries
(held-out rows of the same column unless real queries are given):

* ``recall_codes``: recall@k of a search on the codes alone (no rerank);
* ``rerank_depth``: the fewest candidates, taken in code order, whose exact rerank
  reaches the recall target. Reranking the top ``R`` candidates exactly keeps every
  true neighbour among them, so recall after rerank is the share of true neighbours
  whose position in code order is below ``R``; the depth is read off those
  positions, not searched for;
* ``train_s`` and ``encode_per_s`` (vectors per second).

Sample figures are scaled to the table. How the rerank depth grows with the number
of rows depends on the data (near-duplicates keep it flat; a diffuse neighbourhood
makes it grow), so it is measured rather than assumed: the depth is read off nested
prefixes of the sample (1/8, 1/4, 1/2 and all of it) and extrapolated to the table's
row count with the power law ``depth ~ n^a`` whose exponent is the growth between the
last two prefixes (see :func:`fit_growth`; ``bench/advise_scaling.py`` checks the
estimate against the depth measured on whole tables).
The cost of one query
is then estimated in bytes read: every code once, sequentially, plus one random read
of a page (:data:`RERANK_ROW_BYTES`, PostgreSQL's 8 kB block) per rerank candidate,
since the candidates' float32 vectors are scattered over the table. The
recommendation is the codec within the budget with the lowest estimated cost,
provided it reads less than an exact scan of the float32 vectors.

Nothing is written to the database: ``advise`` only reads a sample.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from vecext import topk
from vecext.codecs import METRICS, CodecError, make_codec
from vecext.codecs.base import as_float32_rows

if TYPE_CHECKING:
    import duckdb
    import psycopg

#: a sample smaller than this leaves too few neighbours to tell codecs apart
MIN_BASE = 1000
#: bytes charged per rerank candidate: a random heap fetch reads a whole 8 kB page
RERANK_ROW_BYTES = 8192
#: at most this many candidate rows are ranked per block of queries (memory bound)
_BLOCK_CELLS = 1 << 24


class AdviseError(ValueError):
    """Bad input to :func:`advise_vectors` or the table readers (message names it)."""


@dataclass(frozen=True)
class Candidate:
    """A codec configuration to try: ``make_codec(kind, d, metric, **params)``."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        parts = [self.kind]
        for key, value in self.params.items():
            if key == "pretransform":
                parts.append(str(value))
            elif value is True:
                parts.append(key)
            else:
                parts.append(f"{key}={value}")
        return " ".join(parts)

    @property
    def spec(self) -> str:
        """The ``--candidate`` text that gives this candidate back."""
        if not self.params:
            return self.kind
        body = ",".join(
            f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in self.params.items()
        )
        return f"{self.kind}:{body}"


def parse_candidate(spec: str) -> Candidate:
    """``"pq:m=32,opq=true"``, ``"int8:pretransform=pca:192"``, ``"binary"`` -> Candidate.

    Values are read as int, float or true/false where they look like one; the
    codec's own constructor checks names and ranges.
    """
    kind, _, body = spec.strip().partition(":")
    kind = kind.strip().lower()
    if not kind:
        raise AdviseError(f"empty candidate spec {spec!r}; expected e.g. 'pq:m=32'")
    params: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in body.split(","))):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise AdviseError(
                f"bad item {item!r} in candidate {spec!r}; expected key=value, e.g. 'pq:m=32'"
            )
        params[key.strip()] = _value(raw.strip())
    return Candidate(kind, params)


def _value(raw: str) -> Any:
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(raw)
        except ValueError:
            pass
    return raw


def _pq_sizes(d: int, budget: int) -> list[int]:
    """Up to three PQ widths: the largest ``m`` within the budget, then about half and
    a quarter of it; ``m`` divides ``d`` with sub-vectors of 2 to 32 dimensions."""
    ok = [m for m in range(1, d + 1) if d % m == 0 and 2 <= d // m <= 32 and m <= budget]
    if not ok:
        return []
    top = max(ok)
    picks = [top]
    for frac in (2, 4):
        below = [m for m in ok if m <= top // frac]
        if below and max(below) not in picks:
            picks.append(max(below))
    return picks


def default_candidates(d: int, budget: int) -> list[Candidate]:
    """The codecs worth trying for dimension ``d`` within ``budget`` bytes per vector."""
    out: list[Candidate] = [Candidate("half"), Candidate("int8")]
    if d % 2 == 0 and d >= 32:
        out.append(Candidate("int8", {"pretransform": f"pca:{d // 2}"}))
    out += [Candidate("rbq", {"bits": 4}), Candidate("rbq", {"bits": 2})]
    # OPQ is left to --candidate pq:m=..,opq=true: its rotation takes minutes to train
    out += [Candidate("pq", {"m": m}) for m in _pq_sizes(d, budget)]
    out.append(Candidate("binary"))
    return [c for c in out if code_size(c, d) <= budget]


def code_size(c: Candidate, d: int, metric: str = "cosine") -> int:
    return make_codec(c.kind, d, metric, **c.params).code_size


@dataclass
class Measurement:
    label: str
    spec: str
    kind: str
    params: dict[str, Any]
    bytes_per_vector: int
    compression: float
    recall_codes: float
    rerank_depth: int
    rerank_fraction: float
    #: rerank depth for the target on nested prefixes of the sample, and the fitted
    #: exponent of its growth with the number of rows
    depth_by_size: dict[int, int]
    depth_growth: float
    rerank_depth_table: int
    est_bytes_per_query: float
    vs_exact: float
    train_s: float
    encode_per_s: float
    storage_bytes_table: int
    verdict: str = ""


@dataclass
class Advice:
    """The measured candidates (cheapest estimated query first) and the pick."""

    source: str
    metric: str
    metric_source: str
    d: int
    rows: int
    k: int
    recall_target: float
    budget: int
    n_base: int
    n_queries: int
    query_source: str
    exact_bytes_per_query: float
    measurements: list[Measurement]
    skipped: list[str]
    recommended: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def best(self) -> Measurement | None:
        return next((m for m in self.measurements if m.label == self.recommended), None)


# ---------------------------------------------------------------------------
# the measurement


def exact_distances(xb: np.ndarray, xq: np.ndarray, metric: str) -> np.ndarray:
    """Exact ``(nq, n)`` distances in the codecs' convention (smaller is closer; cosine
    ranks by ``-cos``), as :mod:`vecext.topk` ranks."""
    return topk.ranking(topk.prepare(xq, metric), topk.prepare(xb, metric), metric)


def exact_neighbours(xb: np.ndarray, xq: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Exact top-``k`` row ids of ``xb`` per query (ties to the lower row)."""
    return topk.exact_topk(xb, xq, k, metric)[1]


def prefix_sizes(n: int, k: int) -> list[int]:
    """Nested sample prefixes the depth is measured on: n/8, n/4, n/2, n (each >= 50 k)."""
    sizes = sorted({n // f for f in (8, 4, 2, 1) if n // f >= 50 * k} | {n})
    return sizes


def fit_growth(sizes: Sequence[int], depths: Sequence[int]) -> float:
    """Exponent ``a`` of ``depth ~ n^a`` at the largest sizes: the slope of log(depth)
    on log(n) between the last two prefixes, clamped to [0, 1] (0 for one size).

    The local slope, not a fit over all prefixes: the depth of a coarse codec grows
    faster as the table grows (on 300k synthetic embeddings a fit over all prefixes
    under-predicted the depth of PQ m=16 twice over, the last slope by 12%), and an
    estimate that errs high only costs a deeper rerank.
    """
    if len(sizes) < 2:
        return 0.0
    slope = math.log(depths[-1] / depths[-2]) / math.log(sizes[-1] / sizes[-2])
    return min(1.0, max(0.0, slope))


def code_positions(D: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Position of each true neighbour in code order (``(nq, k)``, 0 = first).

    Code order is ascending estimated distance with ties to the lower row, the order
    in which a search over codes hands candidates to the rerank.
    """
    nq, n = D.shape
    rows = np.arange(n)
    pos = np.empty(truth.shape, dtype=np.int64)
    for i in range(nq):
        vals = D[i, truth[i]]  # (k,)
        before = D[i][None, :] < vals[:, None]
        tied = (D[i][None, :] == vals[:, None]) & (rows[None, :] < truth[i][:, None])
        pos[i] = before.sum(1) + tied.sum(1)
    return pos


def depth_for_recall(pos: np.ndarray, target: float, k: int) -> int:
    """The fewest candidates (at least ``k``) whose exact rerank reaches ``target``."""
    flat = np.sort(pos.ravel())
    need = max(1, math.ceil(target * flat.size - 1e-9))
    return max(k, int(flat[need - 1]) + 1)


def _measure(
    c: Candidate,
    xt: np.ndarray,
    xb: np.ndarray,
    xq: np.ndarray,
    truths: dict[int, np.ndarray],
    *,
    metric: str,
    k: int,
    target: float,
    rows: int,
) -> Measurement:
    """Train ``c`` on ``xt``, encode ``xb`` and measure it; ``truths[m]`` holds the exact
    top-k of every query among the first ``m`` rows of ``xb``."""
    d, n = xb.shape[1], xb.shape[0]
    codec = make_codec(c.kind, d, metric, **c.params)
    t0 = time.perf_counter()
    codec.train(xt)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    codes = codec.encode(xb)
    encode_s = max(time.perf_counter() - t0, 1e-9)
    sizes = sorted(truths)
    pos = {m: np.empty((xq.shape[0], k), dtype=np.int64) for m in sizes}
    step = max(1, _BLOCK_CELLS // n)
    for i0 in range(0, xq.shape[0], step):
        D = codec.distances(xq[i0 : i0 + step], codes)
        for m in sizes:
            pos[m][i0 : i0 + step] = code_positions(D[:, :m], truths[m][i0 : i0 + step])
    depths = [depth_for_recall(pos[m], target, k) for m in sizes]
    growth = fit_growth(sizes, depths)
    depth = depths[-1]
    scaled = min(rows, max(depth, math.ceil(depth * (rows / n) ** growth)))
    cs = codec.code_size
    cost = rows * cs + scaled * max(RERANK_ROW_BYTES, 4 * d)
    exact = rows * 4 * d
    return Measurement(
        label=c.label,
        spec=c.spec,
        kind=c.kind,
        params=dict(c.params),
        bytes_per_vector=cs,
        compression=4 * d / cs,
        recall_codes=float((pos[n] < k).mean()),
        rerank_depth=depth,
        rerank_fraction=depth / n,
        depth_by_size={int(m): int(v) for m, v in zip(sizes, depths, strict=True)},
        depth_growth=growth,
        rerank_depth_table=int(scaled),
        est_bytes_per_query=float(cost),
        vs_exact=float(exact / cost),
        train_s=train_s,
        encode_per_s=n / encode_s,
        storage_bytes_table=int(rows * cs),
    )


def _check_args(budget: int, target: float, k: int, n_queries: int) -> None:
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget <= 0:
        raise AdviseError(f"budget must be a positive number of bytes per vector, got {budget!r}")
    if not isinstance(target, (int, float)) or not 0 < float(target) <= 1:
        raise AdviseError(f"recall target must be in (0, 1], got {target!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise AdviseError(f"k must be a positive integer, got {k!r}")
    if (
        isinstance(n_queries, bool)
        or not isinstance(n_queries, (int, np.integer))
        or n_queries < 10
    ):
        raise AdviseError(f"queries must be an integer >= 10, got {n_queries!r}")


def split_sample(x: np.ndarray, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hold ``n_queries`` random rows of ``x`` out as queries; the rest is the base."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(x.shape[0])
    return x[perm[n_queries:]], x[perm[:n_queries]]


def advise_vectors(
    x: np.ndarray,
    *,
    budget: int,
    recall: float = 0.95,
    metric: str = "cosine",
    k: int = 10,
    n_queries: int = 200,
    queries: np.ndarray | None = None,
    rows: int | None = None,
    candidates: Sequence[Candidate] | None = None,
    train_size: int = 10_000,
    seed: int = 0,
    source: str = "vectors",
    metric_source: str = "given",
    progress: Callable[[str], Any] | None = None,
) -> Advice:
    """Measure candidate codecs on the sample ``x`` (n, d) and recommend one.

    ``queries`` (real queries, (nq, d)) replace held-out rows of ``x``; ``rows`` is the
    table's size (default: the sample's), which scales the rerank depth and the cost.
    ``candidates`` default to :func:`default_candidates` within the budget; given
    ones over the budget are skipped with a note. Codecs train on the first
    ``train_size`` base vectors (a random subset: the sample is shuffled) and encode
    all of them.
    """
    _check_args(budget, recall, k, n_queries)
    if metric not in METRICS:
        raise AdviseError(f"unknown metric {metric!r}; known metrics: {', '.join(METRICS)}")
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise AdviseError(f"the sample holds no vectors (shape {x.shape})")
    d = x.shape[1]
    try:
        x = as_float32_rows(x, d, "the sample")
    except CodecError as exc:
        raise AdviseError(str(exc)) from None
    if queries is None:
        needed = MIN_BASE + n_queries
        if x.shape[0] < needed:
            raise AdviseError(
                f"only {x.shape[0]:,} vectors to sample from: advise needs at least "
                f"{needed:,} ({MIN_BASE:,} base + {n_queries} held-out queries); at this "
                "size an exact scan is the right choice"
            )
        xb, xq = split_sample(x, n_queries, seed)
        query_source = f"{n_queries} held-out rows"
    else:
        try:
            xq = as_float32_rows(queries, d, "queries")
        except CodecError as exc:
            raise AdviseError(str(exc)) from None
        if x.shape[0] < MIN_BASE:
            raise AdviseError(
                f"only {x.shape[0]:,} vectors to sample from: advise needs at least "
                f"{MIN_BASE:,}; at this size an exact scan is the right choice"
            )
        xb = x[np.random.default_rng(seed).permutation(x.shape[0])]
        query_source = f"{xq.shape[0]} given queries"
    n = xb.shape[0]
    rows = n if rows is None else max(int(rows), n)

    skipped: list[str] = []
    if candidates is None:
        chosen = default_candidates(d, int(budget))
    else:
        chosen = []
        for c in candidates:
            try:
                size = code_size(c, d, metric)
            except CodecError as exc:
                raise AdviseError(f"candidate {c.spec!r}: {exc}") from None
            if size > budget:
                skipped.append(f"{c.label} ({size} B/vector, over the budget)")
            else:
                chosen.append(c)
    if not chosen:
        pq_ok = [m for m in range(1, d + 1) if d % m == 0 and 2 <= d // m <= 32]
        smallest = min(
            [(code_size(Candidate("binary"), d), "binary")] + [(m, f"pq m={m}") for m in pq_ok[:1]]
        )
        raise AdviseError(
            f"no candidate codec fits {budget} bytes per vector for d={d}; the smallest "
            f"is {smallest[1]} at {smallest[0]} bytes per vector"
            + (f" (skipped: {'; '.join(skipped)})" if skipped else "")
        )

    if isinstance(train_size, bool) or not isinstance(train_size, int) or train_size < 1:
        raise AdviseError(f"train_size must be a positive integer, got {train_size!r}")
    xt = xb[:train_size]
    truths: dict[int, np.ndarray] = {
        m: np.empty((xq.shape[0], k), np.int64) for m in prefix_sizes(n, k)
    }
    step = max(1, _BLOCK_CELLS // n)
    for i0 in range(0, xq.shape[0], step):
        D = exact_distances(xb, xq[i0 : i0 + step], metric)
        for m, t in truths.items():
            t[i0 : i0 + step] = topk.smallest_k(D[:, :m], k)[1]
    exact_cost = float(rows * 4 * d)
    out: list[Measurement] = []
    for c in chosen:
        if progress is not None:
            progress(f"training and measuring {c.label}")
        try:
            out.append(
                _measure(c, xt, xb, xq, truths, metric=metric, k=k, target=recall, rows=rows)
            )
        except CodecError as exc:
            raise AdviseError(f"candidate {c.spec!r}: {exc}") from None
    out.sort(key=lambda m: (m.est_bytes_per_query, m.bytes_per_vector))
    best = out[0]
    if best.est_bytes_per_query < exact_cost:
        recommended: str | None = best.label
        best.verdict = "recommended"
        reason = (
            f"{best.label} reaches recall@{k} {recall:g} by reranking about "
            f"{best.rerank_depth_table:,} of {rows:,} rows: an estimated "
            f"{best.est_bytes_per_query / 1e6:,.1f} MB read per query, {best.vs_exact:.1f}x "
            f"less than an exact scan, in {best.bytes_per_vector} bytes per vector"
        )
    else:
        recommended = None
        reason = (
            f"no codec within {budget} bytes per vector reaches recall@{k} {recall:g} "
            "while reading less than an exact scan; raise the budget or lower the target"
        )
    for m in out:
        if m.label != recommended:
            m.verdict = "costlier" if m.est_bytes_per_query < exact_cost else "no gain over exact"
    return Advice(
        source=source,
        metric=metric,
        metric_source=metric_source,
        d=d,
        rows=rows,
        k=int(k),
        recall_target=float(recall),
        budget=int(budget),
        n_base=n,
        n_queries=int(xq.shape[0]),
        query_source=query_source,
        exact_bytes_per_query=exact_cost,
        measurements=out,
        skipped=skipped,
        recommended=recommended,
        reason=reason,
    )


# ---------------------------------------------------------------------------
# reading a sample from the databases


#: pgvector operator classes -> metric (vector and halfvec)
_PG_OPS = {
    "vector_cosine_ops": "cosine",
    "vector_l2_ops": "l2",
    "vector_ip_ops": "ip",
    "halfvec_cosine_ops": "cosine",
    "halfvec_l2_ops": "l2",
    "halfvec_ip_ops": "ip",
}


def postgres_metric(conn: psycopg.Connection, table: str, column: str) -> str | None:
    """The metric of a pgvector index on ``table.column`` (``None`` if there is none)."""
    from vecext.postgres.columns import resolve_table

    t = resolve_table(conn, table)
    rows = conn.execute(
        """SELECT opc.opcname FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           JOIN pg_opclass opc ON opc.oid = i.indclass[0]
           WHERE i.indrelid = %s AND a.attname = %s""",
        [t.oid, column],
    ).fetchall()
    for (name,) in rows:
        if name in _PG_OPS:
            return _PG_OPS[name]
    return None


def read_postgres(
    conn: psycopg.Connection, table: str, column: str, *, sample: int, seed: int = 0
) -> tuple[np.ndarray, int]:
    """A repeatable sample of ``table.column`` and the table's row count (estimate)."""
    from psycopg import sql

    from vecext.postgres.columns import read_vectors, resolve_column

    col = resolve_column(conn, table, column)
    est = conn.execute("SELECT reltuples FROM pg_class WHERE oid = %s", [col.table.oid]).fetchone()
    rows = int(est[0]) if est and est[0] is not None and est[0] >= 0 else -1
    if rows < 0:
        got = conn.execute(
            sql.SQL("SELECT count({}) FROM {}").format(sql.Identifier(column), col.table.ident)
        ).fetchone()
        rows = int(got[0]) if got else 0
    x = read_vectors(conn, col, sample=sample, seed=seed)
    if x.shape[0] == 0:
        raise AdviseError(f"table {col.table} has no non-NULL vectors in column {column!r}")
    return x, max(rows, x.shape[0])


def duckdb_metric(con: duckdb.DuckDBPyConnection, table: str, column: str) -> str | None:
    """The metric of a VSS HNSW index on ``table.column`` (``None`` if there is none or
    VSS is not loaded)."""
    import duckdb

    from vecext.duckdb._sql import resolve_table, vector_dim
    from vecext.duckdb.indexes import vss_indexes

    t = resolve_table(con, table)
    col, _ = vector_dim(con, t, column)
    try:
        found = vss_indexes(con, t.schema, t.name, col)
    except duckdb.CatalogException:  # VSS not loaded: no HNSW index can be in use
        return None
    return found[0].metric if found else None


def read_duckdb(
    con: duckdb.DuckDBPyConnection, table: str, column: str, *, sample: int, seed: int = 0
) -> tuple[np.ndarray, int]:
    """A repeatable reservoir sample of ``table.column`` and the table's row count."""
    from vecext.duckdb._sql import quote_ident, resolve_table, vector_dim
    from vecext.duckdb.codecs import read_vectors

    t = resolve_table(con, table)
    col, _ = vector_dim(con, t, column)
    got = con.execute(f"SELECT count({quote_ident(col)}) FROM {t.sql}").fetchone()
    rows = int(got[0]) if got else 0
    if rows == 0:
        raise AdviseError(f"table {t} has no non-NULL vectors in column {col!r}")
    x = read_vectors(con, table, col, sample=sample, seed=seed)
    return x, rows
