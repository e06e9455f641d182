"""pgvector HNSW indexes over a compressed column's code store, and the search through them.

A compressed column keeps its codes in a narrow store ``vecext."store_<id>"(pk, code)``
(catalog 0.4.0). pgvector indexes those codes natively (index building stays with
pgvector): ``bit_hamming_ops`` over centred binary codes, ``halfvec_<metric>_ops`` over
half-precision codes (after PCA / Matryoshka when the codec has a pretransform), and
``bit_hamming_ops`` over the first sign plane of an ``rbq`` code (an expression on its
``bytea``; that plane is the centred binary code). Such an index is 5-6x smaller than
HNSW over ``vector(d)`` (wordnet-minilm: 41 MB for bits against 241 MB), but ranks by
an approximate distance, so a search through it reranks exactly:

1. walk the index for ``ef`` candidates (with the filter joined from the user's table
   by primary key, and pgvector's iterative scan when the filter is selective);
2. ``rbq``: re-score them with the codec's asymmetric 2-bit distance in Python (the
   codes come with the walk), which needs a rerank depth of 20 where one bit needs 100
   for recall@10 0.95 on wordnet-minilm;
3. rerank exactly (primary-key lookups of the vectors): every walked candidate for
   one-level codes (the walk already ranked by them), the best ``depth`` after an
   ``rbq`` re-score, ``depth`` being what the column's calibration says its codes need
   (aimed at half the allowed loss; the walk loses some too), at least 4 k; or the
   best ``PlannerSettings.code_index_rerank`` by code distance when the caller sets it.
   Walk and rerank are one statement for one-level codes; ``rbq`` takes two (the
   re-score runs in Python between them).

``ef`` comes from the index's own calibration (:func:`vecext.postgres.calibrate_index`
measures the whole walk, re-score and rerank), like any HNSW index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from vecext.postgres.codecs import cached_codec
from vecext.postgres.index_catalog import INDEX_ROWS
from vecext.postgres.statement import Float4Array, cached_sql, vector_text
from vecext.postgres.store_filter import store_where
from vecext.search.contracts import CodeColumn
from vecext.search.planner import calibration_curves, rerank_depth

__all__ = ["CodeIndex", "code_indexes", "index_source", "plane_expr", "walk"]

#: pgvector's largest hnsw.ef_search
MAX_EF = 1000
#: ``rbq`` walks rerank at least this many times k after the 2-bit re-score (wordnet-
#: minilm, ef 400: recall@10 0.952 with 20 exact distances, 0.961 with 40, 0.963 with 80)
RESCORED_DEPTH_MULT = 4
#: what a kind's store column holds, as pgvector can index it
KIND_STORAGE = {"binary": "bit", "half": "halfvec", "rbq": "bit"}
OPERATORS = {"l2": "<->", "ip": "<#>", "cosine": "<=>", "hamming": "<~>"}
_OPCLASS_METRIC = re.compile(r"^(?:bit|halfvec)_(l2|ip|cosine|hamming)_ops$")


def plane_expr(nbytes: int, d: int, ref: str = "code") -> sql.Composed:
    """The first sign plane of an ``rbq`` code (``bytea`` column ``ref``) as ``bit(d)``:
    an immutable expression, so pgvector can index it and a query can order by it."""
    return sql.SQL(
        "(('x'::text || encode(substring({} FROM 1 FOR {}), 'hex'::text))::bit({}))"
    ).format(sql.SQL(ref), sql.Literal(int(nbytes)), sql.Literal(int(d)))


@dataclass(frozen=True)
class CodeIndex:
    """An HNSW index on a code store, as the planner sees it (the fields the planner reads
    of a :class:`~vecext.postgres.index_catalog.VectorIndex`, and where the codes are)."""

    name: str
    store: str
    code_column: str
    kind: str
    storage: str
    metric: str
    dim: int
    #: ``rbq``: bytes of one sign plane (the index is on :func:`plane_expr`)
    plane_bytes: int = 0
    comment: dict[str, Any] = field(default_factory=dict)
    method: str = "hnsw"
    predicate: str | None = None
    valid: bool = True

    def usable_for(self, metric: str) -> bool:
        """A candidate stage for a search by any metric (the candidates are reranked
        exactly): Hamming over bits; halfvec codes in the codec's own space, ordered by
        the index's operator on the encoded query."""
        return self.valid

    def order(self) -> sql.Composable:
        """The ordering expression the index serves."""
        code = (
            plane_expr(self.plane_bytes, self.dim, "s.code")
            if self.plane_bytes
            else sql.SQL("s.code")
        )
        return sql.SQL("{} {} %s::{}({})").format(
            code, sql.SQL(OPERATORS[self.metric]), sql.SQL(self.storage), sql.Literal(self.dim)
        )


_STORE_INDEXES = sql.SQL(INDEX_ROWS + " ORDER BY ic.relname")


def code_indexes(conn: psycopg.Connection, codes: list[CodeColumn]) -> list[CodeIndex]:
    """The HNSW indexes on the stores of ``codes`` (one query per code column with a
    store; the search caches them per connection)."""
    import json

    out: list[CodeIndex] = []
    for code in codes:
        if not code.store or code.kind not in KIND_STORAGE:
            continue
        rel = sql.Identifier("vecext", str(code.store)).as_string(conn)
        (oid,) = conn.execute("SELECT to_regclass(%s)::oid", [rel]).fetchone()  # type: ignore[misc]
        if oid is None:
            continue
        rows = conn.execute(
            _STORE_INDEXES.format(oid=sql.Literal(int(oid)), size=sql.SQL("false"))
        ).fetchall()
        for name, am, opc, expr, pred, valid, _opts, comment, _size in rows:
            m = _OPCLASS_METRIC.match(opc)
            if am != "hnsw" or m is None or pred is not None:
                continue
            if code.kind == "rbq":  # indexed: its first sign plane, as bit(d)
                d = _dim(expr)
                plane = (d + 7) // 8
                if not d or expr.strip() == "code":
                    continue
            else:
                d, plane = _dim(code.code_type), 0
                if expr.strip() != "code":
                    continue
            try:
                meta = json.loads(comment) if comment else {}
            except ValueError:
                meta = {}
            out.append(
                CodeIndex(
                    name, str(code.store), code.name, code.kind, KIND_STORAGE[code.kind],
                    m.group(1), d, plane, meta if isinstance(meta, dict) else {},
                    valid=bool(valid),
                )
            )  # fmt: skip
    return out


def _dim(code_type: str) -> int:
    got = re.search(r"(?:bit|halfvec)\((\d+)\)", code_type)
    return int(got.group(1)) if got else 0


def query_arg(codec: Any, ix: CodeIndex, q: np.ndarray) -> str:
    """The query's code as the text of the index's type (``bit(d)`` or ``halfvec(d)``)."""
    code = codec.encode(q[None, :])[0]
    return _bit_text(code, ix.dim) if ix.storage == "bit" else vector_text(_halves(code))


def query_param(codec: Any, ix: CodeIndex, q: np.ndarray) -> str | Float4Array:
    """The query's code as a parameter of a statement run by
    :func:`~vecext.postgres.statement.fetch_local`: ``bit(d)`` text, or half codes as a
    binary ``real[]`` that the statement casts to ``halfvec(d)`` (exact: every half is a
    float32; 37 against 90 us for 192 dimensions as text, 0.056 ms less per search)."""
    code = codec.encode(q[None, :])[0]
    return _bit_text(code, ix.dim) if ix.storage == "bit" else Float4Array(_halves(code))


def _bit_text(code: np.ndarray, dim: int) -> str:
    bits = np.unpackbits(code[: (dim + 7) // 8], count=dim)
    return (bits + ord("0")).tobytes().decode("ascii")  # bit(d) text: '0101...'


def _halves(code: np.ndarray) -> np.ndarray:
    return code.view("<f2").astype(np.float32)


def depth_for(ctx: Any, k: int) -> int:
    """Exact rerank depth from the code column's calibration (filtered: the subset curves
    too), aimed at half the allowed loss; ``default_depth * k`` without a calibration."""
    caps, plan, req = ctx.info.caps, ctx.plan, ctx.req
    sel = plan.selectivity if plan is not None else 1.0
    curves, _ = calibration_curves(caps, sel, req.pred is not None)
    target = 1.0 - (1.0 - req.recall_target) / 2
    return max(rerank_depth(k, c, target, 10) for c in curves)


def walk(ctx: Any, ix: CodeIndex, ef: int, fetch: Any) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows through a code-store index (see the module docstring).
    ``fetch(settings, query, params)`` runs one statement; returns ``(ids, distances)``."""
    code = ctx.info.codes[ix.code_column]
    codec = cached_codec(ctx.conn, code.codec, code.fingerprint)
    k = ctx.req.k
    # pgvector walks at most 1000 candidates (hnsw.ef_search); iterative scans go on
    ef = min(max(int(ef), k), MAX_EF)
    asked = ctx.plan.params.get("rerank") if ctx.plan is not None else None
    if asked:  # the caller's depth (PlannerSettings.code_index_rerank)
        depth = int(asked)
    elif ix.kind == "rbq":
        depth = max(depth_for(ctx, k), RESCORED_DEPTH_MULT * k)
    else:
        # the walk already ordered by these codes: rerank every candidate it found (the
        # calibrated depth, 120 on wordnet-minilm, lost 0.03 recall@10 on its dev queries)
        depth = ef
    depth = min(max(depth, k), ef)
    if ctx.plan is not None:
        ctx.plan.params["rerank"] = depth
    iterative = (ctx.plan.params if ctx.plan else {}).get("iterative_scan") or "off"
    settings = {"hnsw.ef_search": str(ef), "hnsw.iterative_scan": str(iterative)}
    if ctx.req.max_scan_rows is not None:
        settings["hnsw.max_scan_tuples"] = str(int(ctx.req.max_scan_rows))
    settings["enable_sort"] = "off"  # the index is the point of this strategy
    qarg = query_param(codec, ix, ctx.req.q)
    mirrored = store_where(ctx, code)
    if mirrored is not None:  # the filter on the store's mirrored columns (catalog 0.6.0)
        params = mirrored[1]
    else:
        params = list(ctx.where_params) if ctx.req.pred is not None else []
    if ix.kind != "rbq":
        # one statement: walk, keep the best `depth` by code distance, rerank exactly
        query = _statement(ctx, ix, "walk", (ef, depth, k))
        return _ids_dists(fetch(settings, query, [ctx.qtext, qarg, *params]))
    # rbq: the codes come with the walk and are re-scored by the 2-bit codec
    ((keys, blob),) = fetch(settings, _statement(ctx, ix, "codes", (ef,)), [*params, qarg])
    if not keys:
        return _ids_dists([])
    codes = np.frombuffer(bytes(blob), np.uint8).reshape(len(keys), -1)
    approx = codec.distances(ctx.req.q[None, :], codes)[0]
    best = np.argsort(approx, kind="stable")[:depth]
    ids = [keys[i] for i in best]
    return _ids_dists(fetch({}, _statement(ctx, ix, "rerank", (k,)), [ctx.qtext, ids]))


def _statement(ctx: Any, ix: CodeIndex, step: str, sizes: tuple[int, ...]) -> Any:
    """The SQL of one ``step`` of a walk (``walk``: walk and rerank, one-level codes;
    ``codes``: the walk with the codes; ``rerank``: exact distances of the given keys).
    Its text is kept by table, index, sizes and filter shape
    (:func:`~vecext.postgres.statement.cached_sql`)."""
    info = ctx.info
    mirrored = store_where(ctx, info.codes[ix.code_column])

    def build() -> sql.Composable:
        store = sql.Identifier("vecext", ix.store)
        if ctx.req.pred is None:
            source: sql.Composable = sql.SQL("{} s").format(store)
        elif mirrored is not None:
            # the filter on the store's own (mirrored) columns: no join to the table
            source = sql.SQL("{} s WHERE {}").format(store, mirrored[0])
        else:
            # the filter on the user's table, joined by primary key (its own subquery, so
            # that its column names never meet the store's)
            source = sql.SQL(
                "{} s JOIN (SELECT {} AS vx_id FROM {} WHERE {}) t ON t.vx_id = s.pk"
            ).format(store, ctx.id, ctx.t, ctx.where)
        exact = sql.SQL("(SELECT u.{col} {op} {q} FROM {t} u WHERE u.{id} = c.pk)").format(
            col=ctx.col, op=ctx.op, q=ctx.qcast, t=ctx.t, id=ctx.id
        )
        lit = [sql.Literal(n) for n in sizes]
        if step == "walk":
            # ordered by the select list's cd: the same index scan, one parameter less
            return sql.SQL(
                "SELECT pk, d FROM (SELECT c.pk, {exact} AS d FROM (SELECT s.pk, {order} AS cd "
                "FROM {source} ORDER BY cd LIMIT {ef}) c ORDER BY c.cd LIMIT {depth}) r "
                "ORDER BY d, pk LIMIT {k}"
            ).format(
                exact=exact, order=ix.order(), source=source, ef=lit[0], depth=lit[1], k=lit[2]
            )
        if step == "codes":
            # one row (the keys, the codes end to end; both aggregates read the walk's
            # rows in one order) instead of a row per candidate
            return sql.SQL(
                "SELECT array_agg(w.pk), string_agg(w.code, ''::bytea) FROM (SELECT s.pk, "
                "s.code FROM {source} ORDER BY {order} LIMIT {ef}) w"
            ).format(source=source, order=ix.order(), ef=lit[0])
        typ = sql.SQL(info.columns[info.id_column])
        return sql.SQL(
            "SELECT c.pk, {exact} AS d FROM unnest(%s::{typ}[]) AS c(pk) ORDER BY d, c.pk LIMIT {k}"
        ).format(exact=exact, typ=typ, k=lit[0])

    key = ctx.key(
        "code_index", step, *sizes, ix.store, ix.kind, ix.metric, ix.storage, ix.dim,
        ix.plane_bytes, info.columns[info.id_column], mirrored and mirrored[2],
    )  # fmt: skip
    return cached_sql(ctx.conn, key, build)


def _ids_dists(rows: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array([r[0] for r in rows]) if rows else np.empty(0, np.int64)
    return ids, np.array([r[1] for r in rows], dtype=np.float32)


def index_source(
    backend: Any, t: Any, index: str, metric: str | None, target_of: Any, rows_of: Any
) -> Any:
    """The calibration source of the code-store index ``index`` of table ``t``: searches
    planned through it, the table's rows (exact neighbours), its comment as the record's
    place (``target_of``/``rows_of``: the calibration module's target and row source)."""
    import json

    from vecext.postgres.stores import compressed_columns
    from vecext.search.calibrate import IndexSource

    conn = backend.conn
    metric = metric or "cosine"
    for cc in compressed_columns(conn, t.oid):
        if not cc.store_name or cc.status != "ready":
            continue
        name = f"{t.schema}.{t.name}"
        info = backend.table_info(name, cc.source_column, metric)
        ix = info.indexes.get(index)
        if not isinstance(ix, CodeIndex):
            continue
        target = target_of(backend, name, cc.source_column, index, metric)

        def save(record: dict[str, Any], ix: CodeIndex = ix) -> None:
            meta = {**ix.comment, "calibration": record}
            with conn.transaction():
                conn.execute(
                    sql.SQL("COMMENT ON INDEX {} IS {}").format(
                        sql.Identifier("vecext", ix.name),
                        sql.Literal(json.dumps(meta, sort_keys=True)),
                    )
                )

        return IndexSource(target, rows_of(conn, t, cc.source_column, info.dim), save)
    raise ValueError(f"{t} has no HNSW index named {index!r} (on the table or a code store)")
