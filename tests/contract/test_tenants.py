"""Multi-tenant search on every backend: a declared tenant column, isolation in every
strategy, the tenant ANDed with the caller's filter, tenant values bound."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests.contract.conftest import Db, recall
from vecext.errors import CatalogError
from vecext.search.api import SearchError
from vecext.search.planner import PlannerSettings


@pytest.fixture
def tenants(backend: Db) -> Iterator[Db]:
    backend.api.declare_tenant_column(backend.conn, "items", "tenant")
    yield backend
    backend.api.undeclare_tenant_column(backend.conn, "items")


def _tenants_of(db: Db, ids: np.ndarray) -> set[str]:
    return set(db.data.tenant[np.asarray(ids, dtype=np.int64)].tolist())


def _queries(db: Db, tenant: str, n: int = 3) -> np.ndarray:
    """``n`` queries near the data and ``n`` next to rows of *other* tenants (a leak
    would show there)."""
    others = np.flatnonzero(db.data.tenant != tenant)[::997][:n]
    return np.vstack([db.data.xq[:n], db.data.xb[others] + 0.01])


def test_declaring_is_recorded_and_checked(tenants: Db) -> None:
    db = tenants
    rows = db.sql("SELECT tenant_column FROM vecext.tenant_columns WHERE table_name = 'items'")
    assert rows == [("tenant",)]
    db.api.declare_tenant_column(db.conn, "items", "tenant")  # the same column: a no-op
    assert db.sql("SELECT count(*) FROM vecext.tenant_columns WHERE table_name = 'items'") == [(1,)]
    with pytest.raises(CatalogError, match="already has tenant column 'tenant'"):
        db.api.declare_tenant_column(db.conn, "items", "cat")
    with pytest.raises(CatalogError, match="no column 'org'"):
        db.api.declare_tenant_column(db.conn, "items", "org")


def test_tenant_is_required_and_only_on_tenant_tables(tenants: Db) -> None:
    db = tenants
    with pytest.raises(SearchError, match="tenant column 'tenant': pass tenant="):
        db.search(db.data.xq[0])
    db.api.undeclare_tenant_column(db.conn, "items")
    assert db.sql("SELECT count(*) FROM vecext.tenant_columns WHERE table_name = 'items'") == [(0,)]
    with pytest.raises(SearchError, match="no declared tenant column"):
        db.search(db.data.xq[0], tenant="big")
    db.api.declare_tenant_column(db.conn, "items", "tenant")


@pytest.mark.parametrize("strategy", ["auto", "exact", "compressed", "ivf"])
@pytest.mark.parametrize("tenant", ["tiny", "small", "big"])
def test_a_tenant_sees_only_its_rows(tenants: Db, strategy: str, tenant: str) -> None:
    db = tenants
    mask = db.data.tenant == tenant
    recs = []
    for q in _queries(db, tenant):
        r = db.search(q, strategy=strategy, tenant=tenant)
        assert len(r) == 10 and r.complete
        assert _tenants_of(db, r.ids) == {tenant}, f"{strategy} leaked: {r.explain()}"
        recs.append(recall(r.ids, db.data.truth(q, 10, mask)))
    if strategy in ("auto", "exact"):
        assert min(recs) == 1.0
    else:
        assert np.mean(recs) >= 0.85, f"{strategy} for {tenant}: recall {np.mean(recs):.3f}"


def test_small_tenants_scan_exactly(tenants: Db) -> None:
    db = tenants
    s = PlannerSettings(exact_max_rows=5_000)
    q = db.data.xq[1]
    tiny = db.search(q, tenant="tiny", settings=s)
    assert tiny.strategy == "exact" and "20 rows match" in tiny.plan.reason
    assert db.search(q, tenant="small", settings=s).strategy == "exact"
    big = db.search(q, tenant="big", settings=s)
    assert big.strategy != "exact" and "tenant = 'big'" in big.explain()
    assert len(big) == 10 and _tenants_of(db, big.ids) == {"big"}
    assert recall(big.ids, db.data.truth(q, 10, db.data.tenant == "big")) >= 0.8


@pytest.mark.parametrize("strategy", ["exact", "compressed", "ivf"])
def test_tenant_and_filter_combine(tenants: Db, strategy: str) -> None:
    db = tenants
    mask = (db.data.tenant == "small") & (db.data.cat == "b")
    for q in db.data.xq[:2]:
        r = db.search(q, tenant="small", filter={"cat": "b"}, strategy=strategy)
        assert len(r) == min(10, int(mask.sum())) and mask[r.ids].all()
        assert recall(r.ids, db.data.truth(q, 10, mask)) >= (1.0 if strategy == "exact" else 0.8)


def test_unknown_or_hostile_tenants_get_nothing(tenants: Db) -> None:
    db = tenants
    for value in ("nobody", "big' OR '1'='1", "big'; DROP TABLE items; --", 'big" OR TRUE --'):
        r = db.search(db.data.xq[2], tenant=value)
        assert len(r) == 0 and r.complete
    assert db.sql("SELECT count(*) FROM items") == [(20_000,)]
