"""What a search returns: rows, distances and an honest account of how they were found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SearchResult:
    """Result of one search.

    Attributes
    ----------
    ids : numpy.ndarray
        Row ids (the table's id column), best first.
    distances : numpy.ndarray
        float32 distances in the metric's convention (l2: Euclidean, as pgvector's
        ``<->``; ip: negative inner product; cosine: 1 - cosine similarity), exact
        after a rerank, estimated when no rerank ran.
    strategy : str
        The strategy that produced the rows (``exact``, ``compressed``, ``ivf``,
        ``hnsw``, ``hnsw-iterative``, ...), after any fallback.
    rows_scanned : int
        Rows whose vectors or codes were read (an estimate for native indexes).
    complete : bool
        True when ``len(ids) == min(k, rows matching the filter)``; False only with
        a ``reason`` (a scan budget the caller set, or a threshold search cut short).
    """

    ids: np.ndarray
    distances: np.ndarray
    strategy: str
    rows_scanned: int
    complete: bool
    k: int | None
    reason: str = ""
    plan: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def to_list(self) -> list[tuple[Any, float]]:
        """``[(id, distance), ...]`` best first."""
        return [
            (i.item() if hasattr(i, "item") else i, float(d))
            for i, d in zip(self.ids, self.distances, strict=True)
        ]

    def to_arrow(self) -> Any:
        import pyarrow as pa

        return pa.table(
            {"id": pa.array(self.ids), "distance": pa.array(self.distances, pa.float32())}
        )

    def to_pandas(self) -> Any:
        return self.to_arrow().to_pandas()

    def explain(self) -> str:
        return self.plan.explain() if self.plan is not None else f"strategy {self.strategy}"

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"incomplete: {self.reason}"
        return (
            f"SearchResult({len(self)} rows, strategy={self.strategy!r}, "
            f"rows_scanned={self.rows_scanned}, {state})"
        )
