"""What every backend does alike when it describes a table to the planner.

A backend reads its catalog its own way; the choice among compressed columns, the
reading of a stored calibration record and the :class:`~vecext.search.planner.Capabilities`
made of them are the same everywhere, so they live here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vecext.codecs.kinds import preference
from vecext.search.contracts import CodeColumn
from vecext.search.curves import planner_calibration
from vecext.search.planner import Capabilities

__all__ = ["best_first", "capabilities", "index_curve"]


def best_first(codes: Iterable[CodeColumn]) -> list[CodeColumn]:
    """Compressed columns in the order a search prefers them: with IVF lists first,
    then by kind (``CodecKind.preference`` in :mod:`vecext.codecs.kinds`)."""
    return sorted(codes, key=lambda c: (c.list_column is None, preference(c.kind)))


def index_curve(record: Any, metric: str) -> dict[str, Any] | None:
    """The ``ef_search -> recall`` curve of an HNSW index's calibration record, when it
    was measured for ``metric``."""
    if isinstance(record, dict) and record.get("metric") == metric:
        return record.get("ef_search") or None
    return None


def capabilities(
    n_rows: int,
    code: CodeColumn | None,
    hnsw: str | None,
    hnsw_record: dict[str, Any] | None,
    hnsw_metric: str,
    iterative: bool,
) -> Capabilities:
    """What a search can use: ``code`` (its calibration, its IVF lists and theirs) and
    the HNSW index named ``hnsw`` (its calibration record, measured for ``hnsw_metric``)."""
    cal = planner_calibration(code.calibration if code is not None else None)
    if code is None or code.list_column is None:
        cal["ivf_calibration"] = None
    record = hnsw_record if hnsw and isinstance(hnsw_record, dict) else None
    return Capabilities(
        n_rows=n_rows,
        code_column=code.name if code else None,
        code_kind=code.kind if code else None,
        list_column=code.list_column if code else None,
        n_lists=code.nlist if code else 0,
        hnsw_index=hnsw,
        iterative_scan=iterative,
        hnsw_calibration=index_curve(record, hnsw_metric),
        hnsw_record=record,
        **cal,  # type: ignore[arg-type]
    )
