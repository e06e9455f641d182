"""Search for every backend: one entry point, a planner, filters and the result object.

Where a search is decided: :mod:`vecext.search.engine` (prepare, plan, execute, the
k-rows guarantee) with :mod:`~vecext.search.floors` and :mod:`~vecext.search.twostage`,
used by :func:`search`, :func:`prepare_search` (a plan kept for many queries), threshold search and the SQLAlchemy builder; the floors are
:class:`PlannerSettings` with per-backend defaults. Filters compile through one
compiler (:mod:`~vecext.search.sqlfilter`) over each backend's dialect; calibration has
one driver (:mod:`~vecext.search.calibrate`). Backends are found through
:mod:`vecext.search.registry`; nothing here imports a database driver.
"""

from vecext.search.api import explain, search
from vecext.search.contracts import Backend, CodeColumn, Hits, Request, SearchError, TableInfo
from vecext.search.filters import And, Eq, FilterError, In, Range, Within
from vecext.search.planner import Plan, PlannerSettings
from vecext.search.prepared import PreparedSearch, prepare_search
from vecext.search.registry import backend_for, register
from vecext.search.result import SearchResult
from vecext.search.validate import MAX_K

__all__ = [
    "MAX_K",
    "And",
    "Backend",
    "CodeColumn",
    "Eq",
    "FilterError",
    "Hits",
    "In",
    "Plan",
    "PlannerSettings",
    "PreparedSearch",
    "Range",
    "Request",
    "SearchError",
    "SearchResult",
    "TableInfo",
    "Within",
    "backend_for",
    "explain",
    "prepare_search",
    "register",
    "search",
]
