"""Backend-neutral catalog rows of a trained relevance method, and back.

Both database adapters write and read exactly these rows (``vecext.relevance_adapters``
and ``vecext.relevance_arrays``), so an adapter saved in PostgreSQL and one saved in
DuckDB carry the same bytes and the same fingerprint. Each state array is stored bit
for bit (``data``, little-endian) and, when it is a 1-D float array, also as a float
vector (``vec``: pgvector ``vector`` / DuckDB ``FLOAT[]``) so that SQL can take inner
products with it (``-(w_a <#> q)``).

Pure: numpy and the codec row helpers only (no database driver).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vecext.catalog.rows import ArrayRow, array_to_row, check_name, row_to_array
from vecext.errors import CatalogError
from vecext.relevance.base import RelevanceMethod, RelevanceState, relevance_from_state

__all__ = [
    "AdapterInfo",
    "AdapterRecord",
    "adapter_from_rows",
    "adapter_info",
    "adapter_record",
    "check_adapter_name",
    "check_query_dim",
]


def check_adapter_name(name: str) -> str:
    """A catalog name: 1-48 characters of ``a-z``, ``0-9``, ``_``, not starting with a digit."""
    return check_name(name, "relevance adapter")


@dataclass(frozen=True)
class AdapterInfo:
    """A row of ``vecext.relevance_adapters``, with the parameters people ask about."""

    name: str
    method: str
    dim: int | None
    version: int
    fingerprint: str
    threshold: float
    features: tuple[str, ...]
    params: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def calibrated(self) -> bool:
        """Scores in ``[0, 1]`` (every method but ``fixed``, whose score is the cosine)."""
        return self.method != "fixed"


def adapter_info(
    name: str, method: str, dim: Any, version: Any, params: Any, fingerprint: str
) -> AdapterInfo:
    p = json.loads(params) if isinstance(params, str) else dict(params)
    return AdapterInfo(
        name=name,
        method=method,
        dim=None if dim is None else int(dim),
        version=int(version),
        fingerprint=fingerprint,
        threshold=float(p.get("threshold", float("nan"))),
        features=tuple(p.get("features", ())),
        params=p,
    )


@dataclass(frozen=True)
class AdapterRecord:
    """A trained relevance method as catalog rows."""

    name: str
    method: str
    dim: int | None
    version: int
    params: str  # JSON object, sorted keys
    fingerprint: str
    arrays: list[ArrayRow]
    #: array name -> float32 1-D vector for the ``vec`` column (None: not a vector)
    vectors: dict[str, np.ndarray | None]


def adapter_record(name: str, method: RelevanceMethod) -> AdapterRecord:
    """Catalog rows for a fitted relevance method (``RuntimeError`` if it is not fitted)."""
    check_adapter_name(name)
    if not isinstance(method, RelevanceMethod):
        raise TypeError(f"expected a fitted vecext.relevance method, got {type(method).__name__}")
    state = method.to_state()
    arrays = [array_to_row(k, v) for k, v in sorted(state.arrays.items())]
    vectors: dict[str, np.ndarray | None] = {}
    for k, v in state.arrays.items():
        a = np.asarray(v)
        vectors[k] = a.astype(np.float32) if a.ndim == 1 and a.dtype.kind == "f" else None
    return AdapterRecord(
        name=name,
        method=state.method,
        dim=state.d,
        version=state.version,
        params=state.params,
        fingerprint=state.fingerprint(),
        arrays=arrays,
        vectors=vectors,
    )


def adapter_from_rows(
    name: str,
    method: str,
    dim: Any,
    version: Any,
    params: Any,
    fingerprint: str,
    arrays: list[tuple[str, str, list[int], bytes]],
    *,
    expected_fingerprint: str | None = None,
) -> RelevanceMethod:
    """Rebuild a method from its catalog rows; its state must hash to the fingerprint
    the catalog records (and to ``expected_fingerprint`` when given)."""
    p = json.loads(params) if isinstance(params, str) else dict(params)
    state = RelevanceState(
        method=method,
        d=None if dim is None else int(dim),
        version=int(version),
        params=json.dumps(p, sort_keys=True),
        arrays={n: row_to_array(dt, list(shape), data) for n, dt, shape, data in arrays},
    )
    got = state.fingerprint()
    if got != fingerprint:
        raise CatalogError(
            f"relevance adapter {name!r} in the catalog is inconsistent: its state hashes to "
            f"{got}, the catalog records {fingerprint}; save it again"
        )
    if expected_fingerprint is not None and expected_fingerprint != fingerprint:
        raise CatalogError(
            f"relevance adapter {name!r} is version {fingerprint} in the catalog, "
            f"not the expected version {expected_fingerprint}"
        )
    return relevance_from_state(state)


def check_query_dim(info: AdapterInfo, dim: int, what: str = "the query has dimension") -> None:
    """:class:`~vecext.relevance.RelevanceError` naming both dimensions when they differ."""
    from vecext.relevance.base import RelevanceError

    if info.dim is not None and int(dim) != info.dim:
        raise RelevanceError(
            f"relevance adapter {info.name!r} was trained on dimension {info.dim}, "
            f"{what} {int(dim)}"
        )
