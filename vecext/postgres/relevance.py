"""Relevance adapters in the PostgreSQL catalog: save, load, list, drop.

The verbs are :mod:`vecext.catalog.api`'s, the same functions as ``vecext.duckdb``'s:
a saved adapter is its ``vecext.relevance_adapters`` / ``vecext.relevance_arrays``
rows (:mod:`vecext.catalog.adapters`, the same rows DuckDB stores). The SQL
functions ``vecext.relevance_score``, ``vecext.relevance_min_similarity`` and
``vecext.relevance_features`` (``sql/postgres/``; the first two share
``vecext.relevance_map`` since catalog 0.2.0) read those rows, so SQL computes the
same calibrated scores as Python (pgvector inner products with the stored ``w_a`` /
``w_b`` vectors).
"""

from __future__ import annotations

from vecext.catalog import api
from vecext.catalog.api import *  # noqa: F403  (the verbs, where vecext 0.2 had them)

__all__ = api.ADAPTER_VERBS
