"""Tenant isolation and scan budgets in the DuckDB search."""

from __future__ import annotations

import numpy as np
import pytest

from tests.duckdb.conftest import search_recall
from vecext.duckdb.tenants import declare_tenant_column, tenant_column, undeclare_tenant_column
from vecext.errors import CatalogError
from vecext.search import search
from vecext.search.api import SearchError
from vecext.search.planner import PlannerSettings


@pytest.fixture
def tenants(search_env):
    con, data = search_env
    assert declare_tenant_column(con, "items", "tenant") == "tenant"
    yield con, data
    undeclare_tenant_column(con, "items")


def _tenant_of(con, ids) -> set[str]:
    if len(ids) == 0:
        return set()
    rows = con.execute(
        "SELECT DISTINCT tenant FROM items WHERE list_contains(?::BIGINT[], id)",
        [[int(i) for i in ids]],
    ).fetchall()
    return {r[0] for r in rows}


def test_declaring_is_recorded_and_checked(tenants) -> None:
    con, _ = tenants
    assert tenant_column(con, "items") == "tenant"
    assert declare_tenant_column(con, "items", "TENANT") == "tenant"  # same column: no-op
    with pytest.raises(CatalogError, match="already has tenant column 'tenant'"):
        declare_tenant_column(con, "items", "cat")
    with pytest.raises(CatalogError, match="no column 'org'"):
        declare_tenant_column(con, "items", "org")


def test_tenant_is_required_and_only_on_tenant_tables(tenants) -> None:
    con, data = tenants
    with pytest.raises(SearchError, match="tenant column 'tenant': pass tenant="):
        search(con, "items", "embedding", data.xq[0], 10)
    undeclare_tenant_column(con, "items")
    with pytest.raises(SearchError, match="no declared tenant column"):
        search(con, "items", "embedding", data.xq[0], 10, tenant="big")
    declare_tenant_column(con, "items", "tenant")


@pytest.mark.parametrize("strategy", ["auto", "exact", "compressed", "ivf", "hnsw"])
@pytest.mark.parametrize("tenant", ["tiny", "small", "big"])
def test_a_tenant_sees_only_its_rows(tenants, strategy: str, tenant: str) -> None:
    con, data = tenants
    mask = data.tenant == tenant
    for q in data.xq[:5]:
        r = search(con, "items", "embedding", q, 10, strategy=strategy, tenant=tenant)
        assert _tenant_of(con, r.ids) == {tenant}, r.explain()
        assert len(r) == 10 and r.complete
        if strategy in ("auto", "exact"):
            assert search_recall(r.ids, data.truth(q, 10, mask)) == 1.0


def test_small_tenants_scan_exactly_large_ones_share_the_lists(tenants) -> None:
    con, data = tenants
    s = PlannerSettings(exact_max_rows=5_000)
    q = data.xq[1]
    tiny = search(con, "items", "embedding", q, 10, tenant="tiny", settings=s)
    assert tiny.strategy == "exact" and "20 rows match" in tiny.plan.reason
    small = search(con, "items", "embedding", q, 10, tenant="small", settings=s)
    assert small.strategy == "exact"
    big = search(con, "items", "embedding", q, 10, tenant="big", settings=s)
    assert big.strategy in ("ivf", "hnsw") and "tenant = 'big'" in big.explain()
    assert search_recall(big.ids, data.truth(q, 10, data.tenant == "big")) >= 0.8
    # a tenant filter and the caller's filter are ANDed
    both = search(con, "items", "embedding", q, 10, tenant="small", filter={"cat": "b"})
    assert _tenant_of(con, both.ids) == {"small"}
    assert set(data.cat[both.ids]) == {"b"}


def test_unknown_or_hostile_tenants_get_nothing(tenants) -> None:
    con, data = tenants
    for value in ("nobody", "big' OR '1'='1", 'big" --'):
        r = search(con, "items", "embedding", data.xq[0], 10, tenant=value)
        assert len(r) == 0 and r.complete
    assert con.execute("SELECT count(*) FROM items").fetchone() == (20_000,)


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
