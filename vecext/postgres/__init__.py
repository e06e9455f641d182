"""PostgreSQL adapter: connections, the embedded default server, the catalog, codecs
with their generated SQL functions, and compressed columns."""

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
    backfill,
    check_column_current,
    compressed_column,
    drop_compressed_column,
    list_compressed_columns,
)
from vecext.postgres.connection import connect, resolve_dsn
from vecext.postgres.embedded import start_embedded, stop_embedded, vecext_home

__all__ = [
    "BackfillError",
    "CodecInfo",
    "CompressedColumn",
    "InstallResult",
    "add_compressed_column",
    "backfill",
    "check_column_current",
    "codec_errors",
    "codec_info",
    "compressed_column",
    "connect",
    "drop_codec",
    "drop_compressed_column",
    "install",
    "installed_version",
    "list_codecs",
    "list_compressed_columns",
    "load_codec",
    "require_catalog",
    "resolve_dsn",
    "save_codec",
    "start_embedded",
    "stop_embedded",
    "train_codec",
    "vecext_home",
]

# search: the entry points, native indexes, IVF lists, tenants, calibration
from vecext.postgres.backend import PostgresBackend  # noqa: E402
from vecext.postgres.calibration import calibrate, calibrate_index  # noqa: E402
from vecext.postgres.indexes import (  # noqa: E402
    VectorIndex,
    create_vector_index,
    drop_vector_index,
    hnsw_build_memory,
    list_vector_indexes,
)
from vecext.postgres.ivf import (  # noqa: E402
    add_ivf_lists,
    drop_ivf_lists,
    drop_orphaned_ivf_lists,
    ivf_lists,
    orphaned_ivf_lists,
)
from vecext.postgres.tenants import (  # noqa: E402
    create_tenant_indexes,
    declare_tenant_column,
    tenant_indexes,
)
from vecext.search import explain, search  # noqa: E402

__all__ += [
    "PostgresBackend",
    "VectorIndex",
    "add_ivf_lists",
    "calibrate",
    "calibrate_index",
    "create_tenant_indexes",
    "create_vector_index",
    "declare_tenant_column",
    "drop_ivf_lists",
    "drop_orphaned_ivf_lists",
    "drop_vector_index",
    "explain",
    "hnsw_build_memory",
    "ivf_lists",
    "list_vector_indexes",
    "orphaned_ivf_lists",
    "search",
    "tenant_indexes",
]

# relevance adapters in the catalog (the SQL functions vecext.relevance_* read them)
from vecext.postgres.relevance import (  # noqa: E402
    AdapterInfo,
    drop_adapter,
    get_adapter_info,
    list_adapters,
    load_adapter,
    save_adapter,
)

__all__ += [
    "AdapterInfo",
    "drop_adapter",
    "get_adapter_info",
    "list_adapters",
    "load_adapter",
    "save_adapter",
]
