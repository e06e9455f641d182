"""vecext: compressed vector columns, filtered ANN search that returns the rows it
promises, and calibrated relevance thresholds for PostgreSQL (pgvector) and DuckDB.

``vecext.search(conn, table, column, q, k)`` searches through whichever backend
``conn`` belongs to. Import the adapters you use (``vecext.postgres``,
``vecext.duckdb``) for everything else; this module imports no database driver.
Every error vecext raises is a :class:`VecextError`.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version

from vecext.codecs import CodecError, CodecVersionError
from vecext.errors import (
    CatalogError,
    ConnectionFailed,
    EmbeddedServerError,
    PgvectorError,
    VecextError,
    VecextWarning,
)
from vecext.relevance import RelevanceError
from vecext.search import FilterError, SearchError, SearchResult, explain, search

try:
    __version__ = _dist_version("vecext")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.4.0"

__all__ = [
    "CatalogError",
    "CodecError",
    "CodecVersionError",
    "ConnectionFailed",
    "EmbeddedServerError",
    "FilterError",
    "PgvectorError",
    "RelevanceError",
    "SearchError",
    "SearchResult",
    "VecextError",
    "VecextWarning",
    "__version__",
    "explain",
    "search",
]
