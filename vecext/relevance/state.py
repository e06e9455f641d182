"""The persisted state of a trained relevance method."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vecext.codecs.state import state_fingerprint
from vecext.relevance.checks import RelevanceError

__all__ = ["RelevanceState", "json_params"]


@dataclass(frozen=True)
class RelevanceState:
    """Everything needed to rebuild a trained relevance method.

    ``method`` registry name; ``d`` embedding dimension (``None`` when the method
    ignores the query); ``version`` format version of that method's state; ``params``
    a JSON object (as text) of scalars and short lists; ``arrays`` named 1-D/2-D numpy
    arrays (weight vectors, float32). Maps onto the catalog tables
    ``vecext.relevance_adapters`` / ``vecext.relevance_arrays``.
    """

    method: str
    d: int | None
    version: int
    params: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def params_dict(self) -> dict[str, Any]:
        return json.loads(self.params)

    def fingerprint(self) -> str:
        """16 hex chars of sha256 over the canonical JSON of method, d, version and params
        and, for each array sorted by name, its name, dtype, shape and little-endian
        bytes (the recipe of ``CodecState.fingerprint``)."""
        head = {
            "method": self.method,
            "d": self.d,
            "version": self.version,
            "params": json.loads(self.params),
        }
        return state_fingerprint(head, self.arrays)


def json_params(params: dict[str, Any]) -> str:
    """``params`` as JSON text: numpy scalars become Python numbers, tuples lists;
    a non-finite float is a :class:`RelevanceError` (JSON cannot hold it)."""

    def fix(v: Any) -> Any:
        if isinstance(v, (np.floating, float)):
            f = float(v)
            if not math.isfinite(f):
                raise RelevanceError(f"non-finite parameter {v!r} cannot be stored")
            return f
        if isinstance(v, np.integer):
            return int(v)
        if isinstance(v, (list, tuple)):
            return [fix(x) for x in v]
        if isinstance(v, dict):
            return {str(k): fix(x) for k, x in v.items()}
        return v

    return json.dumps(fix(params), sort_keys=True)
