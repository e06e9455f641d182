"""vecext: compressed vector columns, filtered ANN search that returns the rows it
promises, and calibrated relevance thresholds for PostgreSQL (pgvector) and DuckDB.

``vecext.search(conn, table, column, q, k)`` searches through whichever backend
``conn`` belongs to; ``vecext.prepare_search(conn, table, column, k)`` keeps one
search's plan for many query vectors. Import the adapters you use (``vecext.postgres``,
``vecext.duckdb``) for everything else; this module imports no database driver.
Every error vecext raises is a :class:`VecextError`.
"""

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
from vecext.search import (
    FilterError,
    PreparedSearch,
    SearchError,
    SearchResult,
    explain,
    prepare_search,
    search,
)

#: The package's version, which is also the catalog version its SQL scripts end at
#: (pyproject.toml says the same; tests/postgres/test_catalog.py checks all three). Not
#: read from the installed metadata: an editable install keeps the version it was
#: installed at while the source moves on.
__version__ = "0.6.0"

__all__ = [
    "CatalogError",
    "CodecError",
    "CodecVersionError",
    "ConnectionFailed",
    "EmbeddedServerError",
    "FilterError",
    "PgvectorError",
    "PreparedSearch",
    "RelevanceError",
    "SearchError",
    "SearchResult",
    "VecextError",
    "VecextWarning",
    "__version__",
    "explain",
    "prepare_search",
    "search",
]
