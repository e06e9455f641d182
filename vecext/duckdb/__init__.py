"""DuckDB adapter: the catalog, vecext's functions and the VSS extension in one call.

The verbs are the same in :mod:`vecext.postgres` (:data:`vecext.catalog.api.VERBS`):
``train_codec``, ``save_codec``,
``load_codec``, ``drop_codec``, ``list_codecs``, ``codec_info``;
``add_compressed_column``, ``refresh`` (alias ``backfill``), ``drop_compressed_column``,
``list_compressed_columns``; ``add_ivf_lists``, ``drop_ivf_lists``;
``create_vector_index``, ``drop_vector_index``, ``list_vector_indexes``;
``save_adapter``, ``load_adapter``, ``drop_adapter``, ``list_adapters``,
``adapter_info``; ``search``, ``prepare_search``, ``explain``. DuckDB has no triggers: call ``refresh``
after writing vectors (it also keeps IVF lists current).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from vecext.catalog.scripts import InstallResult
from vecext.duckdb.backend import DuckDBBackend
from vecext.duckdb.calibration import calibrate, calibrate_hnsw
from vecext.duckdb.catalog import install, installed_version, require_catalog
from vecext.duckdb.codecs import (
    CodecInfo,
    codec_info,
    drop_codec,
    list_codecs,
    load_codec,
    read_vectors,
    save_codec,
    train_codec,
)
from vecext.duckdb.columns import (
    CompressedColumn,
    add_compressed_column,
    backfill,
    check_column_current,
    compressed_column,
    drop_compressed_column,
    list_compressed_columns,
    refresh,
    stale_rows,
)
from vecext.duckdb.functions import register_functions
from vecext.duckdb.indexes import (
    HnswIndex,
    HnswIndexError,
    VectorIndexError,
    create_hnsw_index,
    create_vector_index,
    drop_hnsw_index,
    drop_vector_index,
    estimate_hnsw_memory,
    hnsw_build_memory,
    hnsw_indexes,
    list_vector_indexes,
)
from vecext.duckdb.ivf import IVFLists, add_ivf_lists, drop_ivf_lists, ivf_lists, refresh_lists
from vecext.duckdb.relevance import (
    AdapterInfo,
    adapter_info,
    drop_adapter,
    get_adapter_info,
    list_adapters,
    load_adapter,
    save_adapter,
)
from vecext.duckdb.scan import candidate_scan, set_candidate_scan, set_faiss_threads
from vecext.duckdb.tenants import declare_tenant_column, tenant_column, undeclare_tenant_column
from vecext.duckdb.vectorset import set_vector_cache_mb
from vecext.duckdb.vss import VssStatus, load_vss, vss_extension_path
from vecext.search import explain, prepare_search, search


def connect(
    database: str | Path = ":memory:",
    *,
    read_only: bool = False,
    vss: bool = True,
) -> duckdb.DuckDBPyConnection:
    """Open DuckDB with vecext ready: catalog installed, functions registered, VSS loaded.

    Parameters
    ----------
    database
        A file path or ``":memory:"``.
    vss
        Try to load the VSS extension (HNSW). Failure is not an error here:
        ``vecext.duckdb.load_vss(con, required=True)`` says why.
    """
    con = duckdb.connect(str(database), read_only=read_only)
    attach(con, vss=vss, install_catalog=not read_only)
    return con


def attach(
    con: duckdb.DuckDBPyConnection, *, vss: bool = True, install_catalog: bool = True
) -> VssStatus | None:
    """Make an existing DuckDB connection a vecext one (the entry point for your own connections)."""
    if install_catalog:
        install(con)
    register_functions(con)
    return load_vss(con) if vss else None


__all__ = [
    "AdapterInfo",
    "CodecInfo",
    "CompressedColumn",
    "DuckDBBackend",
    "HnswIndex",
    "HnswIndexError",
    "IVFLists",
    "InstallResult",
    "VectorIndexError",
    "VssStatus",
    "adapter_info",
    "add_compressed_column",
    "add_ivf_lists",
    "attach",
    "backfill",
    "calibrate",
    "calibrate_hnsw",
    "candidate_scan",
    "check_column_current",
    "codec_info",
    "compressed_column",
    "connect",
    "create_hnsw_index",
    "create_vector_index",
    "declare_tenant_column",
    "drop_adapter",
    "drop_codec",
    "drop_compressed_column",
    "drop_hnsw_index",
    "drop_ivf_lists",
    "drop_vector_index",
    "estimate_hnsw_memory",
    "explain",
    "get_adapter_info",
    "hnsw_build_memory",
    "hnsw_indexes",
    "install",
    "installed_version",
    "ivf_lists",
    "list_adapters",
    "list_codecs",
    "list_compressed_columns",
    "list_vector_indexes",
    "load_adapter",
    "load_codec",
    "load_vss",
    "read_vectors",
    "refresh",
    "refresh_lists",
    "register_functions",
    "require_catalog",
    "save_adapter",
    "save_codec",
    "prepare_search",
    "search",
    "set_candidate_scan",
    "set_faiss_threads",
    "set_vector_cache_mb",
    "stale_rows",
    "tenant_column",
    "train_codec",
    "undeclare_tenant_column",
    "vss_extension_path",
]
