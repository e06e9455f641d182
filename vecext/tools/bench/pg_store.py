"""PostgreSQL side of the benchmark: the data table, index builds, sizes and plans.

The table ``bench_<name>`` holds ``id bigint`` (= the document's row), ``embedding
vector(d)`` and the attribute columns of ``docs.parquet``. It is loaded with a
binary ``COPY`` through pgvector's psycopg adapter and kept: its comment records a
checksum of the vectors and attributes, the load time and the vector column's
size, and a later run with the same data reuses it. Indexes are kept the same
way (their comment records the DDL and the build time), so repeated runs, e.g.
one per filter, build each index once; ``--rebuild`` forces fresh builds.

Sizes (``storage_bytes``) are defined as: the vector column's data, i.e.
``sum(pg_column_size(embedding))`` over all rows (the bytes of the datums in the
heap or TOAST, without tuple headers, other columns or free space), plus
``pg_relation_size`` of each index the method searches.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
from psycopg import sql

from vecext.tools.bench import pg_load
from vecext.tools.bench.registry import BenchError

#: Bump when the table layout changes, so that old tables are reloaded.
LAYOUT_VERSION = 1
_MB = 1 << 20


def table_name(dataset_name: str) -> str:
    """``bench_<name>``: lower case, ``[a-z0-9_]``, at most 48 characters (room for index suffixes)."""
    base = re.sub(r"[^a-z0-9]+", "_", dataset_name.lower()).strip("_") or "data"
    name = f"bench_{base}"
    if len(name) > 48:
        digest = hashlib.blake2b(dataset_name.encode(), digest_size=4).hexdigest()
        name = f"{name[:39]}_{digest}"
    return name


def checksum(xb: np.ndarray, attrs: pa.Table) -> str:
    """Hash of the vectors (float32 bytes), the attribute table and the layout version."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"v{LAYOUT_VERSION}:{xb.shape}:".encode())
    h.update(np.ascontiguousarray(xb, dtype=np.float32).data)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, attrs.schema) as writer:
        writer.write_table(attrs)
    h.update(memoryview(sink.getvalue()))
    return h.hexdigest()


_PG_TYPES = {
    "int8": "smallint",
    "int16": "smallint",
    "int32": "integer",
    "int64": "bigint",
    "uint8": "smallint",
    "uint16": "integer",
    "uint32": "bigint",
    "float": "real",
    "double": "double precision",
    "bool": "boolean",
    "string": "text",
    "large_string": "text",
}
_COPY_TYPES = {
    "smallint": "int2",
    "integer": "int4",
    "bigint": "int8",
    "real": "float4",
    "double precision": "float8",
    "boolean": "bool",
    "text": "text",
}


def attribute_columns(attrs: pa.Table) -> list[tuple[str, str]]:
    """``(column, postgres type)`` for the attributes stored next to the vectors.

    ``row`` (the document row, which is the ``id``) is left out; so are columns of
    types the benchmark cannot filter on (lists, structs, ...).
    """
    out = []
    for f in attrs.schema:
        if f.name == "row":
            continue
        if f.name in ("id", "embedding"):
            raise BenchError(f"docs.parquet has a column named {f.name!r}, which the table needs")
        typ = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        pg = _PG_TYPES.get(str(typ))
        if pg is not None:
            out.append((f.name, pg))
    return out


def _meta(conn: psycopg.Connection, relname: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c "
        "WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace",
        [relname],
    ).fetchone()
    if row is None or not row[0]:
        return None
    try:
        meta = json.loads(row[0])
    except ValueError:
        return None
    return meta if isinstance(meta, dict) and meta.get("vecext_bench") == LAYOUT_VERSION else None


def ensure_table(
    conn: psycopg.Connection,
    table: str,
    xb: np.ndarray,
    attrs: pa.Table,
    *,
    rebuild: bool,
    task: Callable[..., Any],
) -> dict[str, Any]:
    """Load (or reuse) ``table``; return its metadata (``load_s``, ``vector_bytes``, ``reused``)."""
    n, d = xb.shape
    digest = checksum(xb, attrs)
    meta = None if rebuild else _meta(conn, table)
    if meta is not None and meta.get("checksum") == digest:
        (count,) = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()  # type: ignore[misc]
        if count == n:
            return {**meta, "reused": True}
    cols = attribute_columns(attrs)
    ident = sql.Identifier(table)
    start = time.perf_counter()
    defs = [sql.SQL("id bigint NOT NULL"), sql.SQL("embedding vector({}) NOT NULL").format(d)]
    defs += [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in cols]
    names = [sql.Identifier("id"), sql.Identifier("embedding")] + [
        sql.Identifier(c) for c, _ in cols
    ]
    # created in the COPY's transaction, so COPY FREEZE writes frozen rows (no later
    # hint-bit writes or anti-wraparound vacuum of a freshly loaded table)
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT BINARY, FREEZE)").format(
        ident, sql.SQL(", ").join(names)
    )
    with (
        task(f"COPY {n:,} rows into {table}", total=n) as advance,
        conn.transaction(),
        conn.cursor() as cur,
    ):
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(ident, sql.SQL(", ").join(defs)))
        with cur.copy(copy_sql) as copy:
            for rows, data in pg_load.copy_batches(xb, attrs, cols):
                copy.write(data)
                advance(rows)
    conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(ident))
    conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(ident))
    load_s = time.perf_counter() - start
    (vbytes,) = conn.execute(  # type: ignore[misc]
        sql.SQL("SELECT coalesce(sum(pg_column_size(embedding)), 0)::bigint FROM {}").format(ident)
    ).fetchone()
    meta = {
        "vecext_bench": LAYOUT_VERSION,
        "checksum": digest,
        "n": n,
        "d": d,
        "load_s": round(load_s, 3),
        "vector_bytes": int(vbytes),
    }
    conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(ident, sql.Literal(json.dumps(meta))))
    return {**meta, "reused": False}


def hnsw_build_memory(n: int, element_bytes: int, m: int = 16) -> int:
    """``maintenance_work_mem`` (bytes) for pgvector to build an HNSW graph in memory.

    Per element: the indexed value, about ``2 m`` neighbour entries on layer 0 (plus
    a few upper layers) at ~10 bytes each, and ~100 bytes of bookkeeping; +25% and
    64 MB of slack. 117k x 384-d vectors: ~310 MB.
    """
    per = element_bytes + 2 * m * 10 * 1.1 + 100
    return int(n * per * 1.25) + 64 * _MB


def ensure_index(
    conn: psycopg.Connection,
    dsn: str,
    table: str,
    name: str,
    using: sql.Composable,
    *,
    memory: int,
    workers: int,
    rebuild: bool,
    task: Callable[..., Any],
) -> tuple[float, bool, list[str]]:
    """Create index ``name`` ``ON table USING <using>`` unless the same one exists.

    Returns ``(build_s, reused, notices)``; a reused index reports the build time
    and the server notices (e.g. pgvector's "hnsw graph no longer fits into
    maintenance_work_mem") recorded when it was made. The build raises ``maintenance_work_mem`` to ``memory``
    bytes and uses ``workers`` parallel maintenance workers, and shows pgvector's
    progress (``pg_stat_progress_create_index``) from a second connection.
    """
    ddl = (
        sql.SQL("CREATE INDEX {} ON {} USING ").format(sql.Identifier(name), sql.Identifier(table))
        + using
    )
    ddl_text = ddl.as_string(conn)
    meta = None if rebuild else _meta(conn, name)
    if meta is not None and meta.get("ddl") == ddl_text:
        return float(meta["build_s"]), True, list(meta.get("notices", []))
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
    mem_mb = max(64, -(-memory // _MB))
    conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(f"{mem_mb}MB")))
    conn.execute(sql.SQL("SET max_parallel_maintenance_workers = {}").format(sql.Literal(workers)))
    (relid,) = conn.execute(
        "SELECT %s::regclass::oid", [sql.Identifier(table).as_string(conn)]
    ).fetchone()  # type: ignore[misc]
    label = f"CREATE INDEX {name}"
    with task(label, total=100) as advance:
        stop = threading.Event()
        poller = threading.Thread(
            target=_poll_progress, args=(dsn, relid, stop, advance, label), daemon=True
        )
        poller.start()
        notices: list[str] = []

        def on_notice(diag: Any) -> None:
            notices.append(str(diag.message_primary))

        conn.add_notice_handler(on_notice)
        start = time.perf_counter()
        try:
            conn.execute(ddl)
        finally:
            conn.remove_notice_handler(on_notice)
            stop.set()
            poller.join(timeout=5)
            conn.execute("RESET maintenance_work_mem")
            conn.execute("RESET max_parallel_maintenance_workers")
        build_s = time.perf_counter() - start
    meta = {
        "vecext_bench": LAYOUT_VERSION,
        "ddl": ddl_text,
        "build_s": round(build_s, 3),
        "notices": notices,
    }
    conn.execute(
        sql.SQL("COMMENT ON INDEX {} IS {}").format(
            sql.Identifier(name), sql.Literal(json.dumps(meta))
        )
    )
    return build_s, False, notices


def _poll_progress(
    dsn: str, relid: int, stop: threading.Event, advance: Callable[..., Any], label: str
) -> None:
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            while not stop.wait(0.5):
                row = conn.execute(
                    "SELECT phase, blocks_done, blocks_total FROM pg_stat_progress_create_index "
                    "WHERE relid = %s",
                    [relid],
                ).fetchone()
                if row and row[2]:
                    advance(0, completed=100.0 * row[1] / row[2], description=f"{label}: {row[0]}")
    except psycopg.Error:
        return  # progress is a nicety; the build itself reports errors


def relation_bytes(conn: psycopg.Connection, names: list[str], *, table: bool = False) -> int:
    """Bytes on disk of relations by name: ``pg_table_size`` (heap, TOAST, free-space
    and visibility maps) when ``table``, else ``pg_relation_size`` (an index)."""
    fn = "pg_table_size" if table else "pg_relation_size"
    total = 0
    for name in names:
        (size,) = conn.execute(
            sql.SQL("SELECT {}(%s::regclass)").format(sql.SQL(fn)),
            [sql.Identifier(*name.split(".")).as_string(conn)],
        ).fetchone()  # type: ignore[misc]
        total += int(size)
    return total


def index_bytes(conn: psycopg.Connection, name: str) -> int:
    (size,) = conn.execute(
        "SELECT pg_relation_size(%s::regclass)", [sql.Identifier(name).as_string(conn)]
    ).fetchone()  # type: ignore[misc]
    return int(size)


def plan_summary(
    conn: psycopg.Connection, settings: str, query: sql.Composable, params: list[Any]
) -> str:
    """The plan PostgreSQL picks for one query, as ``Limit > Index Scan (idx)``."""
    with conn.transaction():
        if settings:
            conn.execute(settings)  # type: ignore[arg-type]
        (doc,) = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + query, params).fetchone()  # type: ignore[misc]
    plan = doc[0]["Plan"] if isinstance(doc, list) else json.loads(doc)[0]["Plan"]
    return _walk(plan)


def _walk(node: dict[str, Any]) -> str:
    label = node["Node Type"]
    if node.get("Index Name"):
        label += f" ({node['Index Name']})"
    elif node.get("Relation Name"):
        label += f" ({node['Relation Name']})"
    kids = node.get("Plans") or []
    if not kids:
        return label
    return label + " > " + " | ".join(_walk(k) for k in kids)


def server_info(conn: psycopg.Connection) -> dict[str, Any]:
    """Server version, pgvector version and the settings that shape the numbers."""
    out: dict[str, Any] = {
        "postgresql": conn.execute("SHOW server_version").fetchone()[0],  # type: ignore[index]
        "pgvector": conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()[0],  # type: ignore[index]
    }
    for name in (
        "shared_buffers",
        "work_mem",
        "effective_cache_size",
        "max_parallel_workers_per_gather",
        "max_parallel_workers",
        "jit",
    ):
        out[name] = conn.execute("SELECT current_setting(%s)", [name]).fetchone()[0]  # type: ignore[index]
    return out
