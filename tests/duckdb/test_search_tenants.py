"""Tenants in DuckDB: case-insensitive column names, the shared VSS index per tenant. (Isolation, required tenants, filters and bound values for every
backend: ``tests/contract/test_tenants.py``.)"""

from __future__ import annotations

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
