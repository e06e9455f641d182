"""vecext: compressed vector columns, filtered ANN search that returns the rows it
promises, and calibrated relevance thresholds for PostgreSQL (pgvector) and DuckDB.

This module only re-exports; import the adapters you use (``vecext.postgres``,
``vecext.duckdb``) explicitly, so that the numerical core stays free of drivers.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version

from vecext.errors import (
    CatalogError,
    ConnectionFailed,
    EmbeddedServerError,
    PgvectorError,
    VecextError,
)

try:
    __version__ = _dist_version("vecext")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.2.0"

__all__ = [
    "CatalogError",
    "ConnectionFailed",
    "EmbeddedServerError",
    "PgvectorError",
    "VecextError",
    "__version__",
]
