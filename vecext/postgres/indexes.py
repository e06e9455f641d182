"""Native pgvector indexes: create (with a memory estimate), drop, and discover them.

vecext builds no index engine: pgvector builds HNSW and IVFFlat. This module
chooses the operator class for a metric, indexes the column itself, its
``halfvec`` cast or its ``binary_quantize`` bit expression, sizes
``maintenance_work_mem`` for the build, and lists the indexes a search can use.

The build-memory estimate and the settings a build runs with are in
:mod:`vecext.postgres.index_build`.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from typing import Any

import psycopg
from psycopg import sql

from vecext.postgres import pgvector
from vecext.postgres.index_build import (
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    MB,
    STORAGES,
    IndexBuildError,
    VectorIndexError,
    hnsw_build_memory,
    ivfflat_build_memory,
    literal_predicate,
    raise_settings,
    run_concurrently,
    value_bytes,
)
from vecext.postgres.index_catalog import (
    VectorIndex,
    list_vector_indexes,
)
from vecext.postgres.store_indexes import (
    compressed_target,
    create_store_index,
    on_code_store,
    store_ef_construction,
)
from vecext.postgres.tables import TableRef, resolve_table
from vecext.search.filters import parse_filter

METHODS = ("hnsw", "ivfflat")
METRIC_OPS = {"l2": "l2", "ip": "ip", "cosine": "cosine"}


def opclass(storage: str, metric: str) -> str:
    """The pgvector operator class for ``storage`` and ``metric`` (bit: Hamming)."""
    if storage == "bit":
        return "bit_hamming_ops"
    if metric not in METRIC_OPS:
        raise VectorIndexError(f"unknown metric {metric!r}; use one of {', '.join(METRIC_OPS)}")
    if storage not in ("vector", "halfvec"):
        raise VectorIndexError(
            f"unknown index storage {storage!r}; use one of {', '.join(STORAGES)}"
        )
    return f"{storage}_{METRIC_OPS[metric]}_ops"


def index_expression(column: str, column_type: str, storage: str, d: int) -> sql.Composable:
    """The indexed expression; searches must order by exactly this expression."""
    col = sql.Identifier(column)
    base = column_type.split("(")[0]
    if storage == base:
        return col
    if storage == "halfvec" and base == "vector":
        return sql.SQL("({}::halfvec({}))").format(col, sql.Literal(d))
    if storage == "bit" and base in ("vector", "halfvec"):
        return sql.SQL("(binary_quantize({})::bit({}))").format(col, sql.Literal(d))
    raise VectorIndexError(f"cannot index a {column_type} column as {storage}")


def _column(conn: psycopg.Connection, t: TableRef, column: str) -> tuple[str, int]:
    row = conn.execute(
        """SELECT format_type(atttypid, atttypmod), atttypmod FROM pg_attribute
           WHERE attrelid = %s AND attname = %s AND attnum > 0 AND NOT attisdropped""",
        [t.oid, column],
    ).fetchone()
    if row is None:
        raise VectorIndexError(f"table {t} has no column {column!r}")
    typ, typmod = row
    if typ.split("(")[0] not in ("vector", "halfvec") or typmod < 0:
        raise VectorIndexError(
            f"column {t}.{column} is {typ}; an index needs vector(d) or halfvec(d)"
        )
    return typ, int(typmod)


def default_index_name(
    table: str, column: str, method: str, storage: str, metric: str, where: str | None = None
) -> str:
    base = f"{table}_{column}_{method}_{storage}_{metric if storage != 'bit' else 'hamming'}"
    suffix = ""
    if where:
        suffix = "_p" + hashlib.sha256(where.encode()).hexdigest()[:10]
    if len((base + suffix).encode()) > 63:
        base = base.encode()[: 63 - len(suffix) - 9].decode(errors="ignore")
        base += "_" + hashlib.sha256(f"{table}.{column}".encode()).hexdigest()[:8]
    return base + suffix


def create_vector_index(
    conn: psycopg.Connection,
    table: str,
    column: str,
    *,
    method: str = "hnsw",
    metric: str = "cosine",
    name: str | None = None,
    m: int = HNSW_M,
    ef_construction: int | None = None,
    storage: str = "vector",
    lists: int | None = None,
    where: Any = None,
    concurrently: bool = False,
    max_memory: int | None = None,
    parallel_workers: int | None = None,
    comment: dict[str, Any] | None = None,
) -> VectorIndex:
    """Create a pgvector index on ``table.column`` sized for its build memory.

    ``column`` may name a compressed column (catalog 0.4.0): the HNSW index is then
    built on its code store (:func:`vecext.postgres.store_indexes.create_store_index`:
    binary codes with ``bit_hamming_ops``, half codes with ``halfvec`` ops).

    Parameters
    ----------
    method
        ``"hnsw"`` or ``"ivfflat"``.
    metric
        ``"cosine"``, ``"l2"`` or ``"ip"`` (ignored by ``storage="bit"``: Hamming).
    name
        Index name (default ``<table>_<column>_<method>_<storage>_<metric>``).
    storage
        ``"vector"`` (the column), ``"halfvec"`` (``column::halfvec(d)``) or ``"bit"``
        (``binary_quantize(column)::bit(d)``, for a Hamming candidate stage + rerank).
    m, ef_construction
        HNSW options (pgvector's defaults, 16 and 64; an index over the bit codes of a
        compressed column builds at ef_construction 200 unless given, see
        :data:`vecext.postgres.index_build.CODE_HNSW_EF_CONSTRUCTION`).
    lists
        IVFFlat lists (default ``max(10, rows / 1000)`` up to 1M rows, ``sqrt(rows)`` beyond).
    where
        A partial index: a filter (dict or predicates; equality, IN, ranges), e.g.
        ``{"tenant": "acme"}``. Searches use it when their filter implies it.
    concurrently
        ``CREATE INDEX CONCURRENTLY`` (no write lock; needs a connection outside a
        transaction block). ``maintenance_work_mem`` is then set for the session and
        restored after.
    max_memory
        A cap in bytes: when the estimated build memory exceeds it, raise
        :class:`IndexBuildError` saying how much is needed instead of building slowly
        on disk.
    parallel_workers
        ``max_parallel_maintenance_workers`` for the build (default: the server's).
    comment
        JSON metadata stored as the index comment (vecext uses it for tenant indexes).

    Returns
    -------
    VectorIndex
    """
    if method not in METHODS:
        raise VectorIndexError(f"unknown index method {method!r}; use one of {', '.join(METHODS)}")
    if storage not in STORAGES:
        raise VectorIndexError(
            f"unknown index storage {storage!r}; use one of {', '.join(STORAGES)}"
        )
    ops = opclass(storage, metric)
    t = resolve_table(conn, table)
    store_cc = compressed_target(conn, t, column)
    if ef_construction is None:
        ef_construction = (
            HNSW_EF_CONSTRUCTION if store_cc is None else store_ef_construction(conn, store_cc)
        )
    for label, v in (("m", m), ("ef_construction", ef_construction)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise VectorIndexError(f"{label} must be a positive integer, got {v!r}")
    # pgvector's bounds, said before the build rather than as a raw server error
    if not 2 <= m <= 100:
        raise VectorIndexError(f"m must be an integer >= 2 (pgvector allows 2 to 100), got {m}")
    if not 2 * m <= ef_construction <= 1000:
        raise VectorIndexError(
            f"ef_construction must be at least 2 * m = {2 * m} and at most 1000 (pgvector), "
            f"got {ef_construction}"
        )
    pgvector.require(conn, {"bit": "binary_quantize", "halfvec": "halfvec"}.get(storage, "hnsw"))
    if store_cc is not None:  # the codes of a compressed column: an index on its store
        if method != "hnsw" or where is not None or concurrently:
            raise VectorIndexError(
                f"{t}.{column} is a compressed column: its code store takes an HNSW index "
                "(method='hnsw', no where=, not concurrently)"
            )
        return create_store_index(
            conn, store_cc, name=name, m=m, ef_construction=ef_construction, max_memory=max_memory
        )
    typ, d = _column(conn, t, column)
    expr = index_expression(column, typ, storage, d)
    pred = parse_filter(where)
    where_sql = literal_predicate(pred) if pred is not None else None
    where_text = where_sql.as_string(conn) if where_sql is not None else None
    name = name or default_index_name(t.name, column, method, storage, metric, where_text)

    n = _rows(conn, t, column, where_sql)
    if method == "hnsw":
        need = hnsw_build_memory(n, d, storage=storage, m=m)
        with_ = sql.SQL("WITH (m = {}, ef_construction = {})").format(
            sql.Literal(m), sql.Literal(ef_construction)
        )
    else:
        if lists is None:
            lists = max(10, n // 1000) if n <= 1_000_000 else int(math.sqrt(n))
        if isinstance(lists, bool) or not isinstance(lists, int) or lists <= 0:
            raise VectorIndexError(f"lists must be a positive integer, got {lists!r}")
        need = ivfflat_build_memory(n, d, storage=storage, lists=lists)
        with_ = sql.SQL("WITH (lists = {})").format(sql.Literal(lists))
    if max_memory is not None and need > max_memory:
        raise IndexBuildError(
            f"building {method} index {name!r} on {t}.{column} ({n} rows, {storage}({d}), "
            f"m={m}) needs about {math.ceil(need / MB)} MB of maintenance_work_mem, more than "
            f"the cap of {max_memory // MB} MB: raise max_memory, lower m, or index a smaller "
            "storage (halfvec, bit)"
        )
    ddl = sql.SQL(
        "CREATE INDEX {conc} {name} ON {tbl} USING {method} ({expr} {ops}) {with_}"
    ).format(
        conc=sql.SQL("CONCURRENTLY") if concurrently else sql.SQL(""),
        name=sql.Identifier(name),
        tbl=t.ident,
        method=sql.SQL(method),
        expr=expr,
        ops=sql.SQL(ops),
        with_=with_,
    )
    if where_sql is not None:
        ddl = ddl + sql.SQL(" WHERE ") + where_sql
    settings = {"maintenance_work_mem": f"{math.ceil(need / 1024)}kB"}
    if parallel_workers is not None:
        settings["max_parallel_maintenance_workers"] = str(int(parallel_workers))
    stmts: list[sql.Composed] = [ddl]
    if comment is not None:
        stmts.append(
            sql.SQL("COMMENT ON INDEX {} IS {}").format(
                sql.Identifier(t.schema, name), sql.Literal(json.dumps(comment, sort_keys=True))
            )
        )
    if concurrently:
        run_concurrently(conn, stmts, settings)
    else:
        with conn.transaction():
            raise_settings(conn, settings, local=True)
            for s in stmts:
                conn.execute(s)
    found = [i for i in list_vector_indexes(conn, t.qualified, column) if i.name == name]
    if not found:  # pragma: no cover - created just above
        raise VectorIndexError(f"index {name!r} was not created")
    return found[0]


def _rows(conn: psycopg.Connection, t: TableRef, column: str, where: sql.Composable | None) -> int:
    """Rows the index will hold: the planner's count, exact when the table is small."""
    cond = sql.SQL("{} IS NOT NULL").format(sql.Identifier(column))
    if where is not None:
        cond = cond + sql.SQL(" AND (") + where + sql.SQL(")")
    (plan,) = conn.execute(
        sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE {}").format(t.ident, cond)
    ).fetchone()  # type: ignore[misc]
    doc = plan if isinstance(plan, list) else json.loads(plan)
    est = int(doc[0]["Plan"]["Plan Rows"])
    if est <= 1_000_000:
        (n,) = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {}").format(t.ident, cond)
        ).fetchone()  # type: ignore[misc]
        return int(n)
    return est


def drop_vector_index(
    conn: psycopg.Connection,
    table: str | None = None,
    name: str | None = None,
    *,
    schema: str | None = None,
    concurrently: bool = False,
    missing_ok: bool = False,
) -> bool:
    """Drop vector index ``name`` of ``table``; returns whether one was dropped. An index
    over one of the table's code stores (``create_vector_index`` on a compressed column)
    is found too.

    ``drop_vector_index(conn, name)``, the form of vecext 0.2 without the table, still
    works and warns; ``schema`` then says where the index is.

    Raises
    ------
    VectorIndexError
        ``table`` has no index ``name`` (unless ``missing_ok``).
    """
    if name is None:
        if table is None:
            raise TypeError("drop_vector_index() needs the table and the index name")
        warnings.warn(
            "drop_vector_index(conn, name) is deprecated: pass the table first, "
            "drop_vector_index(conn, table, name), as vecext.duckdb does",
            DeprecationWarning,
            stacklevel=2,
        )
        return drop_index(
            conn, table, schema=schema, concurrently=concurrently, missing_ok=missing_ok
        )
    t = resolve_table(conn, table) if table is not None else None
    if t is None or schema is not None and schema != t.schema:
        raise VectorIndexError(f"drop_vector_index: give the index's table, not schema={schema!r}")
    found = conn.execute(
        """SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           WHERE i.indrelid = %s AND c.relname = %s""",
        [t.oid, name],
    ).fetchone()
    if found is None:
        if on_code_store(conn, t, name):  # over a compressed column's code store
            return drop_index(conn, name, schema="vecext", concurrently=concurrently)
        if missing_ok:
            return False
        raise VectorIndexError(f"table {t} has no index named {name!r}")
    return drop_index(conn, name, schema=t.schema, concurrently=concurrently)


def drop_index(
    conn: psycopg.Connection,
    name: str,
    *,
    schema: str | None = None,
    concurrently: bool = False,
    missing_ok: bool = False,
) -> bool:
    """Drop an index by name (in ``schema``, else as the search path finds it); returns
    whether one was dropped. Migrations use it: ``op.drop_vector_index`` names no table."""
    ident = sql.Identifier(schema, name) if schema else sql.Identifier(name)
    ddl = sql.SQL("DROP INDEX {conc} {ie} {name}").format(
        conc=sql.SQL("CONCURRENTLY") if concurrently else sql.SQL(""),
        ie=sql.SQL("IF EXISTS") if missing_ok else sql.SQL(""),
        name=ident,
    )
    (exists,) = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", [ident.as_string(conn)]
    ).fetchone()  # type: ignore[misc]
    if not exists and not missing_ok:
        raise VectorIndexError(f"index {name!r} does not exist")
    if concurrently:
        run_concurrently(conn, [ddl], {})
    else:
        with conn.transaction():
            conn.execute(ddl)
    return bool(exists)


__all__ = [
    "HNSW_EF_CONSTRUCTION",
    "HNSW_M",
    "METHODS",
    "METRIC_OPS",
    "STORAGES",
    "IndexBuildError",
    "VectorIndex",
    "VectorIndexError",
    "create_vector_index",
    "default_index_name",
    "drop_index",
    "drop_vector_index",
    "hnsw_build_memory",
    "index_expression",
    "ivfflat_build_memory",
    "list_vector_indexes",
    "literal_predicate",
    "opclass",
    "value_bytes",
]
