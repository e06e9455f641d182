"""pgvector HNSW indexes over a compressed column's code store.

``create_vector_index(conn, table, <compressed column>)`` lands here: pgvector builds
the index on ``vecext."store_<id>"`` (column ``code``), so the graph holds the codes,
not the float vectors. Binary codes (``bit(d)``, centred sign bits) get
``bit_hamming_ops``; half codes (``halfvec(d)``, after any PCA/Matryoshka
pretransform, in the codec's own space) get ``halfvec_l2_ops`` for an ``l2`` codec and
``halfvec_ip_ops`` otherwise (the codec's cosine and inner-product distances order
like the negative inner product of the prepared query and the codes). ``rbq`` codes
(``bytea``) get ``bit_hamming_ops`` over their first sign plane, an expression
(:func:`vecext.postgres.code_index.plane_expr`): those are the centred binary bits, and
the search re-scores the candidates with both planes. Other ``bytea`` codes (pq, int8)
have no pgvector index.

A search orders by ``code <~> <encoded query>`` (binary) or ``code <op>
<codec>_prepare(q)::halfvec`` (half) over the store and reranks the candidates by the
exact distance.
"""

from __future__ import annotations

import math

import psycopg
from psycopg import sql

from vecext.codecs.kinds import inner_dim
from vecext.postgres.catalog import PgDialect
from vecext.postgres.code_index import plane_expr
from vecext.postgres.index_build import (
    CODE_HNSW_EF_CONSTRUCTION,
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    MB,
    IndexBuildError,
    VectorIndexError,
    hnsw_build_memory,
    raise_settings,
)
from vecext.postgres.index_catalog import VectorIndex, list_vector_indexes
from vecext.postgres.stores import PgCompressedColumn, compressed_columns, has_stores
from vecext.postgres.tables import TableRef, column_type


def compressed_target(
    conn: psycopg.Connection, t: TableRef, column: str
) -> PgCompressedColumn | None:
    """The compressed column ``column`` of ``t`` when it is not a column of the table (an
    index request on it is then for its code store)."""
    if column_type(conn, t, column) is not None or not has_stores(conn):
        return None
    found = compressed_columns(conn, t.oid, column)
    return found[0] if found else None


def store_opclass(kind: str, metric: str) -> tuple[str, str]:
    """(storage, operator class) of an HNSW index over codes of ``kind``."""
    if kind in ("binary", "rbq"):  # rbq: its first sign plane (the centred binary code)
        return "bit", "bit_hamming_ops"
    if kind == "half":
        return "halfvec", "halfvec_l2_ops" if metric == "l2" else "halfvec_ip_ops"
    raise VectorIndexError(
        f"codes of kind {kind!r} are stored as bytea, which pgvector cannot index: build the "
        "HNSW index over a binary or half compressed column (or the vector column)"
    )


def code_ef_construction(storage: str) -> int:
    """The default ef_construction of an HNSW index over codes stored as ``storage``."""
    return CODE_HNSW_EF_CONSTRUCTION if storage == "bit" else HNSW_EF_CONSTRUCTION


def store_ef_construction(conn: psycopg.Connection, cc: PgCompressedColumn) -> int:
    """The default ef_construction of an HNSW index over the codes of ``cc``."""
    from vecext.catalog.store import codec_info

    info = codec_info(PgDialect(conn), cc.codec)
    return code_ef_construction(store_opclass(info.kind, info.metric)[0])


def create_store_index(
    conn: psycopg.Connection,
    cc: PgCompressedColumn,
    *,
    name: str | None = None,
    m: int = HNSW_M,
    ef_construction: int | None = None,
    max_memory: int | None = None,
) -> VectorIndex:
    """An HNSW index on the code store of ``cc`` (see the module docstring).
    ``ef_construction`` defaults to :data:`~vecext.postgres.index_build.CODE_HNSW_EF_CONSTRUCTION`
    (200) over bit codes, pgvector's 64 over half codes."""
    from vecext.catalog.store import codec_info

    if cc.store is None:
        raise VectorIndexError(
            f"{cc.table}.{cc.code_column} keeps its codes in the table (a column made before "
            "catalog 0.4.0): move them to a code store first (vecext.postgres.migrate_to_store)"
        )
    info = codec_info(PgDialect(conn), cc.codec)
    storage, ops = store_opclass(info.kind, info.metric)
    if ef_construction is None:
        ef_construction = code_ef_construction(storage)
    for label, v in (("m", m), ("ef_construction", ef_construction)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise VectorIndexError(f"{label} must be a positive integer, got {v!r}")
    d = inner_dim(info.dim, info.params)
    name = name or f"{cc.table.name}_{cc.code_column}_hnsw"[:63]
    (n,) = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(cc.store)).fetchone()  # type: ignore[misc]
    need = hnsw_build_memory(int(n), d, storage=storage, m=m)
    if max_memory is not None and need > max_memory:
        raise IndexBuildError(
            f"building HNSW index {name!r} on the codes of {cc.table}.{cc.code_column} ({n} "
            f"rows, {storage}({d}), m={m}) needs about {math.ceil(need / MB)} MB of "
            f"maintenance_work_mem, more than the cap of {max_memory // MB} MB"
        )
    # rbq codes are bytea: the index holds their first sign plane as bit(d)
    expr = plane_expr((d + 7) // 8, d) if info.kind == "rbq" else sql.SQL("code")
    ddl = sql.SQL(
        "CREATE INDEX {} ON {} USING hnsw ({} {}) WITH (m = {}, ef_construction = {})"
    ).format(
        sql.Identifier(name), cc.store, expr, sql.SQL(ops), sql.Literal(m),
        sql.Literal(ef_construction),
    )  # fmt: skip
    with conn.transaction():
        raise_settings(conn, {"maintenance_work_mem": f"{math.ceil(need / 1024)}kB"}, local=True)
        conn.execute(ddl)
    if info.kind == "rbq":  # an expression index, which list_vector_indexes does not list
        return VectorIndex(name, "vecext", str(cc.store_name), "code", "hnsw", storage,
                           "hamming", ops, d)  # fmt: skip
    found = [i for i in store_indexes(conn, cc) if i.name == name]
    if not found:  # pragma: no cover - created just above
        raise VectorIndexError(f"index {name!r} was not created")
    return found[0]


def store_indexes(conn: psycopg.Connection, cc: PgCompressedColumn) -> list[VectorIndex]:
    """The pgvector indexes on the code store of ``cc`` (none for layout ``table``)."""
    if cc.store is None:
        return []
    return list_vector_indexes(conn, cc.store.as_string(conn), "code")


def on_code_store(conn: psycopg.Connection, t: TableRef, name: str) -> bool:
    """Whether ``name`` is a vector index over one of the code stores of table ``t``
    (what ``create_vector_index`` on a compressed column makes; not the stores' own
    key, list or mirrored-column btrees)."""
    from vecext.postgres.catalog import installed_version

    if installed_version(conn) is None or not has_stores(conn):
        return False
    return any(
        ix.name == name for cc in compressed_columns(conn, t.oid) for ix in store_indexes(conn, cc)
    )
