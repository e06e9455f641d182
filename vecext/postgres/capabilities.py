"""What a table offers a search on one vector column, as the planner reads it
(:class:`~vecext.search.planner.Capabilities`): for the whole table, and as one tenant
sees it. :mod:`vecext.postgres.backend` reads the facts these are made from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from vecext.postgres.code_index import CodeIndex
from vecext.postgres.index_catalog import VectorIndex
from vecext.search.contracts import CodeColumn, TableInfo
from vecext.search.filters import Eq, Predicate
from vecext.search.planner import Capabilities
from vecext.search.tables import capabilities

__all__ = ["STORAGE_ORDER", "caps_of", "code_of", "tenant_view"]

#: Preference among index storages (a vector index needs no rerank).
STORAGE_ORDER = {"vector": 0, "halfvec": 1, "bit": 2}


def tenant_view(
    info: TableInfo, tenant: Any, rows: Callable[[TableInfo, Predicate], float]
) -> TableInfo:
    """The table as one tenant sees it: its partial HNSW index (if it has one) replaces
    the shared one; without one the planner scans exactly or uses codes and lists.
    ``rows(info, pred)`` estimates the rows of ``pred`` (the tenant's)."""
    from vecext.postgres.tenants import tenant_key

    metric = info.metric
    key = tenant_key(tenant)
    mine = [
        ix
        for ix in info.all_indexes
        if ix.comment.get("vecext") == "tenant"
        and ix.comment.get("column") == info.tenant_column
        and ix.comment.get("tenant") == key
        and ix.method == "hnsw"
        and ix.usable_for(metric)
    ]
    mine.sort(key=lambda ix: (STORAGE_ORDER.get(ix.storage, 9), ix.name))
    indexes = dict(info.indexes)
    codes = info.codes
    code = info.caps.code_column
    iterative = info.caps.iterative_scan
    if mine:
        ix = mine[0]
        indexes[ix.name] = ix
        assert info.tenant_column is not None
        n = rows(info, Eq(info.tenant_column, tenant))
        caps = caps_of(int(max(n, 1)), codes.get(code) if code else None, ix, iterative)
        note = f"tenant {tenant!r} has its own HNSW index {ix.name}"
    else:
        caps = replace(info.caps, hnsw_index=None)
        note = f"tenant {tenant!r} has no HNSW index of its own: exact scan, codes or lists"
    # (the ef_search floor reads the record of the index that runs: the tenant's)
    alternatives = {
        name: replace(c, hnsw_index=caps.hnsw_index, hnsw_record=caps.hnsw_record)
        for name, c in info.alternatives.items()
        if name in codes
    }
    for ix in mine:
        rec = caps_of(1, None, ix, iterative).hnsw_record
        alternatives[ix.name] = replace(caps, hnsw_index=ix.name, hnsw_record=rec)
    return replace(
        info, caps=caps, indexes=indexes, notes=[*info.notes, note], alternatives=alternatives
    )


def code_of(ix: Any, codes: dict[str, CodeColumn], default: CodeColumn | None) -> CodeColumn | None:
    """The code column whose calibration a plan through ``ix`` reads: the indexed one for
    an index over a code store."""
    return codes[ix.code_column] if isinstance(ix, CodeIndex) else default


def caps_of(
    n_rows: int, code: CodeColumn | None, hnsw: VectorIndex | CodeIndex | None, iterative: bool
) -> Capabilities:
    """The planner's view of a table of ``n_rows`` searched through ``code`` and ``hnsw``."""
    # an index's calibration record lives in its JSON comment; the planner reads its curve
    # when it was measured for the index's own metric
    record = hnsw.comment.get("calibration") if hnsw is not None else None
    name, metric = (hnsw.name, hnsw.metric) if hnsw is not None else (None, "")
    # no iterative scans through a code-store index: joined to a selective filter they
    # walked 20,000 tuples for 0.70-0.93 recall@10 on wordnet-minilm (3-12% of the rows),
    # where the same codes scanned for the matching rows reach 0.95-0.98
    iterative = iterative and not isinstance(hnsw, CodeIndex)
    return capabilities(n_rows, code, name, record, metric, iterative)
