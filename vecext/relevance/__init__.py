"""Relevance thresholds: fixed cosine cut-off, Platt scaling and the Cosine Adapter.

Pure numpy/scipy. ``make_relevance(name)`` builds a method, ``fit`` trains it and
chooses the micro-F1-optimal global threshold, ``to_state`` / ``relevance_from_state``
persist it. See :mod:`vecext.relevance.adapter` for the SQL-computable form.
"""

from vecext.relevance.adapter import CosineAdapter
from vecext.relevance.base import (
    RelevanceError,
    RelevanceMethod,
    RelevanceState,
    best_f1_threshold,
    make_relevance,
    parse_method_spec,
    relevance_from_state,
)
from vecext.relevance.features import FEATURES, distribution_features
from vecext.relevance.methods import FixedThreshold, PlattScaling

__all__ = [
    "FEATURES",
    "CosineAdapter",
    "FixedThreshold",
    "PlattScaling",
    "RelevanceError",
    "RelevanceMethod",
    "RelevanceState",
    "best_f1_threshold",
    "distribution_features",
    "make_relevance",
    "parse_method_spec",
    "relevance_from_state",
]
