"""PostgreSQL adapter: connections, the embedded default server, the catalog, codecs
with their generated SQL functions, compressed columns, IVF lists, pgvector indexes,
relevance adapters and search.

The verbs are the same in :mod:`vecext.duckdb` (:data:`vecext.catalog.api.VERBS`):
``train_codec``, ``save_codec``, ``load_codec``, ``drop_codec``, ``list_codecs``,
``codec_info``; ``add_compressed_column``, ``refresh`` (alias ``backfill``),
``drop_compressed_column``, ``list_compressed_columns``; ``add_ivf_lists``,
``drop_ivf_lists`` (and, PostgreSQL only, ``move_ivf_lists`` for lists made before
catalog 0.5.0); ``create_vector_index``, ``drop_vector_index``,
``list_vector_indexes``; ``save_adapter``, ``load_adapter``, ``drop_adapter``,
``list_adapters``, ``adapter_info``; ``search``, ``prepare_search``, ``explain``.
"""

from vecext.postgres.backend import PostgresBackend
from vecext.postgres.calibration import calibrate, calibrate_index
from vecext.postgres.catalog import InstallResult, install, installed_version, require_catalog
from vecext.postgres.codecs import (
    CodecInfo,
    codec_errors,
    codec_info,
    drop_codec,
    list_codecs,
    load_codec,
    save_codec,
    train_codec,
)
from vecext.postgres.columns import (
    BackfillError,
    CompressedColumn,
    add_compressed_column,
    check_column_current,
    compressed_column,
    drop_compressed_column,
    list_compressed_columns,
    refresh,
    stale_rows,
)
from vecext.postgres.connection import connect, resolve_dsn
from vecext.postgres.embedded import start_embedded, stop_embedded, vecext_home
from vecext.postgres.indexes import (
    IndexBuildError,
    VectorIndex,
    VectorIndexError,
    create_vector_index,
    drop_vector_index,
    hnsw_build_memory,
    list_vector_indexes,
)
from vecext.postgres.ivf import (
    IVFLists,
    add_ivf_lists,
    drop_ivf_lists,
    drop_orphaned_ivf_lists,
    ivf_lists,
    orphaned_ivf_lists,
)
from vecext.postgres.ivf_move import move_ivf_lists
from vecext.postgres.mirrors import mirror_columns, mirrored_columns, unmirror_columns
from vecext.postgres.privileges import owner_only
from vecext.postgres.relevance import (
    AdapterInfo,
    adapter_info,
    drop_adapter,
    get_adapter_info,
    list_adapters,
    load_adapter,
    save_adapter,
)
from vecext.postgres.stores import (
    drop_orphaned_compressed_columns,
    grant_usage,
    migrate_to_store,
    revoke_usage,
)
from vecext.postgres.tenants import (
    create_tenant_indexes,
    declare_tenant_column,
    tenant_indexes,
    undeclare_tenant_column,
)
from vecext.search import explain, prepare_search, search

# A role that is not the catalog's owner gets a CatalogError naming the role, the object
# and what to do, not psycopg's InsufficientPrivilege (vecext.postgres.privileges).
calibrate = owner_only(calibrate)
calibrate_index = owner_only(calibrate_index)
train_codec = owner_only(train_codec)
save_codec = owner_only(save_codec)
drop_codec = owner_only(drop_codec)
add_compressed_column = owner_only(add_compressed_column)
refresh = backfill = owner_only(refresh)
drop_compressed_column = owner_only(drop_compressed_column)
drop_orphaned_compressed_columns = owner_only(drop_orphaned_compressed_columns)
add_ivf_lists = owner_only(add_ivf_lists)
drop_ivf_lists = owner_only(drop_ivf_lists)
drop_orphaned_ivf_lists = owner_only(drop_orphaned_ivf_lists)
move_ivf_lists = owner_only(move_ivf_lists)
create_vector_index = owner_only(create_vector_index)
drop_vector_index = owner_only(drop_vector_index)
migrate_to_store = owner_only(migrate_to_store)
mirror_columns = owner_only(mirror_columns)
unmirror_columns = owner_only(unmirror_columns)
grant_usage = owner_only(grant_usage)
revoke_usage = owner_only(revoke_usage)
declare_tenant_column = owner_only(declare_tenant_column)
undeclare_tenant_column = owner_only(undeclare_tenant_column)
create_tenant_indexes = owner_only(create_tenant_indexes)

__all__ = [
    "AdapterInfo",
    "BackfillError",
    "CodecInfo",
    "CompressedColumn",
    "IVFLists",
    "IndexBuildError",
    "InstallResult",
    "PostgresBackend",
    "VectorIndex",
    "VectorIndexError",
    "adapter_info",
    "add_compressed_column",
    "add_ivf_lists",
    "backfill",
    "calibrate",
    "calibrate_index",
    "check_column_current",
    "codec_errors",
    "codec_info",
    "compressed_column",
    "connect",
    "create_tenant_indexes",
    "create_vector_index",
    "declare_tenant_column",
    "drop_adapter",
    "drop_codec",
    "drop_compressed_column",
    "drop_ivf_lists",
    "drop_orphaned_compressed_columns",
    "drop_orphaned_ivf_lists",
    "drop_vector_index",
    "explain",
    "get_adapter_info",
    "grant_usage",
    "hnsw_build_memory",
    "install",
    "installed_version",
    "ivf_lists",
    "list_adapters",
    "list_codecs",
    "list_compressed_columns",
    "list_vector_indexes",
    "load_adapter",
    "load_codec",
    "migrate_to_store",
    "mirror_columns",
    "move_ivf_lists",
    "mirrored_columns",
    "orphaned_ivf_lists",
    "refresh",
    "require_catalog",
    "resolve_dsn",
    "revoke_usage",
    "save_adapter",
    "save_codec",
    "prepare_search",
    "search",
    "stale_rows",
    "start_embedded",
    "stop_embedded",
    "tenant_indexes",
    "train_codec",
    "undeclare_tenant_column",
    "unmirror_columns",
    "vecext_home",
]
