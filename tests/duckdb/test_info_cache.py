"""The DuckDB backend's per-connection table facts (vecext.duckdb.info_cache): reused
between searches, re-read after DDL, after every vecext catalog write, and on demand."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import vecext.duckdb as vd
from vecext.duckdb import info_cache
from vecext.search import search
from vecext.search.contracts import SearchError

from .conftest import clustered

N, D = 800, 8


@pytest.fixture()
def con(tmp_path):  # type: ignore[no-untyped-def]
    c = vd.connect(str(tmp_path / "i.duckdb"), vss=False)
    x = clustered(N, D, seed=4)
    c.register(
        "src",
        pa.table(
            {
                "id": np.arange(N, dtype=np.int64),
                "v": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), D),
                "org": np.where(np.arange(N) % 2 == 0, "a", "b"),
            }
        ),
    )
    c.execute(f"CREATE TABLE t (id BIGINT PRIMARY KEY, v FLOAT[{D}], org VARCHAR)")
    c.execute("INSERT INTO t SELECT * FROM src")
    c.unregister("src")
    yield c, x
    c.close()


def test_facts_follow_ddl_and_vecext_writes(con) -> None:
    c, x = con
    q = x[3]
    search(c, "t", "v", q, 5, metric="l2")
    # DDL: a new column is a filter column at once
    c.execute("ALTER TABLE t ADD COLUMN grp INTEGER DEFAULT 1")
    r = search(c, "t", "v", q, 5, metric="l2", filter={"grp": 1})
    assert len(r.ids) == 5
    # a vecext catalog write (a compressed column) is seen by the next search
    vd.train_codec(c, "b8", "t", "v", "binary", metric="l2", sample=N)
    vd.add_compressed_column(c, "t", "v", "b8", "v_b", progress=False)
    r = search(c, "t", "v", q, 5, metric="l2", strategy="compressed", using="v_b")
    assert r.strategy == "compressed"
    vd.drop_compressed_column(c, "t", "v_b")
    with pytest.raises(SearchError, match="no code column or index named 'v_b'"):
        search(c, "t", "v", q, 5, metric="l2", using="v_b")
    # a tenant column declared through vecext: searches must name a tenant from now on
    vd.declare_tenant_column(c, "t", "org")
    with pytest.raises(SearchError, match="tenant"):
        search(c, "t", "v", q, 5, metric="l2")
    assert set(search(c, "t", "v", q, 5, metric="l2", tenant="a").ids % 2) == {0}
    vd.undeclare_tenant_column(c, "t")
    assert len(search(c, "t", "v", q, 5, metric="l2").ids) == 5


def test_a_hand_edit_of_the_catalog_needs_forget(con) -> None:
    c, x = con
    search(c, "t", "v", x[0], 5, metric="l2")
    # by hand, not through vecext: the cached facts do not see it ...
    c.execute(
        "INSERT INTO vecext.tenant_columns (table_schema, table_name, tenant_column) "
        "VALUES ('main', 't', 'org')"
    )
    assert len(search(c, "t", "v", x[0], 5, metric="l2").ids) == 5
    # ... until told
    info_cache.forget(c)
    with pytest.raises(SearchError, match="tenant"):
        search(c, "t", "v", x[0], 5, metric="l2")
    c.execute("DELETE FROM vecext.tenant_columns")
    info_cache.forget()
    assert len(search(c, "t", "v", x[0], 5, metric="l2").ids) == 5
