"""Search for both backends: one entry point, a planner, filters and the result object."""

from vecext.search.api import MAX_K, SearchError, explain, search
from vecext.search.filters import And, Eq, FilterError, In, Range
from vecext.search.result import SearchResult

__all__ = [
    "MAX_K",
    "And",
    "Eq",
    "FilterError",
    "In",
    "Range",
    "SearchError",
    "SearchResult",
    "explain",
    "search",
]
