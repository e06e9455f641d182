"""Tenants in DuckDB: case-insensitive column names, the shared VSS index per tenant,
scan budgets. (Isolation, required tenants, filters and bound values for every
backend: ``tests/contract/test_tenants.py``.)"""

from __future__ import annotations

import numpy as np
import pytest

from tests.duckdb.conftest import search_recall
from vecext.duckdb.tenants import declare_tenant_column, tenant_column, undeclare_tenant_column
from vecext.search import search


@pytest.fixture
def tenants(search_env):
    con, data = search_env
    assert declare_tenant_column(con, "items", "tenant") == "tenant"
    yield con, data
    undeclare_tenant_column(con, "items")


def test_declaring_returns_the_stored_name(tenants) -> None:
    con, _ = tenants
    assert tenant_column(con, "items") == "tenant"
    assert declare_tenant_column(con, "items", "TENANT") == "tenant"  # same column: no-op


@pytest.mark.parametrize("tenant", ["tiny", "small", "big"])
def test_a_tenant_searches_the_shared_hnsw_index(tenants, tenant: str) -> None:
    con, data = tenants
    for q in data.xq[:5]:
        r = search(con, "items", "embedding", q, 10, strategy="hnsw", tenant=tenant)
        assert set(data.tenant[r.ids]) == {tenant}, r.explain()
        assert len(r) == 10 and r.complete
    assert search_recall(r.ids, data.truth(q, 10, data.tenant == tenant)) >= 0.8


def test_scan_budget_gives_complete_false_with_a_reason(search_env) -> None:
    con, data = search_env
    q = data.xq[0]
    r = search(con, "items", "embedding", q, 10, strategy="hnsw", filter={"cat": "c"},
               max_scan_rows=100)  # fmt: skip
    assert len(r) < 10 and not r.complete
    assert "scan budget of 100 rows" in r.reason and r.strategy == "hnsw"
    assert set(data.cat[r.ids]) <= {"c"}
    r = search(con, "items", "embedding", q, 10, strategy="ivf", filter={"cat": "d"},
               max_scan_rows=5)  # fmt: skip
    assert len(r) < 10 and not r.complete and "scan budget of 5 rows" in r.reason
    # without a budget the same searches return every row they promise
    for strategy, cat in (("hnsw", "c"), ("ivf", "d")):
        r = search(con, "items", "embedding", q, 10, strategy=strategy, filter={"cat": cat})
        assert len(r) == 10 and r.complete and r.reason == ""
    # an exact scan under a budget reads at most that many rows
    r = search(con, "items", "embedding", q, 10, strategy="exact", max_scan_rows=500)
    assert len(r) == 10 and r.rows_scanned == 500
    assert np.isin(r.ids, np.arange(20_000)).all()
