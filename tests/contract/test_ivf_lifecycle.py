"""IVF lists over their whole life on every backend: rows written after the lists were
built are found by the IVF search at once (PostgreSQL's trigger assigns their list,
DuckDB searches rows without one until ``refresh``), dropping the compressed column
drops its lists and nothing else, and the source vectors are never touched."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests.conftest import clustered
from tests.contract.conftest import Fresh
from vecext.errors import CatalogError

N, D = 1_500, 16


@pytest.fixture
def table(fresh: Fresh) -> Iterator[tuple[Fresh, np.ndarray]]:
    """``t (id, embedding, cat)``: N clustered rows, ``cat`` a/b alternating, PQ codes
    ``emb_pq`` (l2). Where a backend keeps codes and list ids (the user's table or a
    store of its own) is its business: the assertions read the catalog and the rows."""
    db = fresh
    x = clustered(N, D, seed=41)
    db.load_table("t", x)
    db.sql("ALTER TABLE t ADD COLUMN cat VARCHAR")
    db.sql("UPDATE t SET cat = CASE WHEN id % 2 = 0 THEN 'a' ELSE 'b' END")
    db.api.train_codec(db.conn, "t_pq", "t", "embedding", "pq", metric="l2", m=4, niter=5)
    db.api.add_compressed_column(db.conn, "t", "embedding", "t_pq", "emb_pq", progress=False)
    yield db, x


def _codec_rows(db: Fresh, name: str) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        db.sql(f"SELECT count(*) FROM vecext.{t} WHERE {c} = ?", [name])[0][0]
        for t, c in (("codecs", "name"), ("codec_arrays", "codec_name"), ("codebook_vectors", "codec_name"))
    )  # fmt: skip


def _insert(db: Fresh, rid: int, v: np.ndarray, cat: str) -> None:
    cast, value = db.vector_param(v)
    db.sql(f"INSERT INTO t (id, embedding, cat) VALUES (?, {cast}, ?)", [rid, value, cat])


def _update(db: Fresh, rid: int, v: np.ndarray | None) -> None:
    if v is None:
        db.sql("UPDATE t SET embedding = NULL WHERE id = ?", [rid])
        return
    cast, value = db.vector_param(v)
    db.sql(f"UPDATE t SET embedding = {cast} WHERE id = ?", [value, rid])


def _ivf(db: Fresh, q: np.ndarray, k: int = 5, **kw):
    r = db.api.search(db.conn, "t", "embedding", q, k, metric="l2", strategy="ivf", **kw)
    assert r.strategy == "ivf"
    return r


def test_dropping_a_compressed_column_drops_its_ivf_lists(table) -> None:
    db, x = table
    cols0 = db.columns("t") - {"emb_pq"} - {c for c in db.columns("t") if "vecext" in c}
    before = db.rows("t")
    lists = db.api.add_ivf_lists(db.conn, "t", "embedding", 8, niter=5)
    assert db.api.ivf_lists(db.conn, "t", "emb_pq") is not None
    assert _codec_rows(db, lists.codec_name)[0] == 1

    db.api.drop_compressed_column(db.conn, "t", "emb_pq")

    # nothing of the compressed column or of its lists is left; the vectors are intact
    assert db.columns("t") == cols0
    assert _codec_rows(db, lists.codec_name) == (0, 0, 0)
    assert db.sql("SELECT count(*) FROM vecext.compressed_columns WHERE table_name = 't'") == [(0,)]
    assert db.rows("t") == before
    # and writes still work (no trigger or macro left reading dropped centroids)
    _insert(db, 99_999, x[0], "a")
    _update(db, 1, x[2])
    db.sql("DELETE FROM t WHERE id = 99999")
    _update(db, 1, x[1])
    assert db.rows("t") == before
    # the column and its lists can be added again under the same names
    db.api.add_compressed_column(db.conn, "t", "embedding", "t_pq", "emb_pq", progress=False)
    again = db.api.add_ivf_lists(db.conn, "t", "embedding", 8, niter=5)
    assert (again.list_column, again.codec_name) == (lists.list_column, lists.codec_name)
    assert _ivf(db, x[3] + 0.01).ids[0] == 3
    db.api.drop_compressed_column(db.conn, "t", "emb_pq")
    assert db.columns("t") == cols0 and db.rows("t") == before
    # the PQ codec is no longer used by anything: it can go
    assert db.api.drop_codec(db.conn, "t_pq")


def test_dropping_another_compressed_column_keeps_the_lists(table) -> None:
    db, x = table
    before = db.rows("t")
    db.api.train_codec(db.conn, "t_bin", "t", "embedding", "binary", metric="l2")
    db.api.add_compressed_column(db.conn, "t", "embedding", "t_bin", "emb_bin", progress=False)
    lists = db.api.add_ivf_lists(db.conn, "t", "embedding", 8, niter=5, code_column="emb_pq")
    db.api.drop_compressed_column(db.conn, "t", "emb_bin")
    kept = db.api.ivf_lists(db.conn, "t", "emb_pq")
    assert (kept.list_column, kept.codec_name, kept.nlist) == (
        lists.list_column,
        lists.codec_name,
        lists.nlist,
    )
    assert db.sql(
        "SELECT count(*) FROM vecext.compressed_columns WHERE code_column = 'emb_bin'"
    ) == [(0,)]
    assert _codec_rows(db, lists.codec_name)[0] == 1
    _insert(db, 99_999, x[5] + 0.01, "a")
    assert _ivf(db, x[5] + 0.01, 3).ids[0] == 99_999
    db.sql("DELETE FROM t WHERE id = 99999")
    assert db.rows("t") == before


def test_rows_written_later_are_found_at_once(table) -> None:
    db, x = table
    db.api.add_ivf_lists(db.conn, "t", "embedding", 8, niter=5)
    far = (x[:3] * -1.5).astype(np.float32)
    _insert(db, 50_000, far[0], "a")
    _insert(db, 50_001, far[1], "b")
    _update(db, 7, far[2])
    _update(db, 8, None)
    for rid, v in ((50_000, far[0]), (50_001, far[1]), (7, far[2])):
        r = _ivf(db, v)
        assert r.ids[0] == rid and len(r) == 5
    assert 8 not in _ivf(db, x[8]).ids.tolist()  # a NULL vector is never returned
    # a filtered IVF search keeps returning k rows
    r = _ivf(db, far[1], 10, filter={"cat": "b"})
    assert len(r) == 10 and r.ids[0] == 50_001
    # after the backend's upkeep (a no-op where triggers keep codes current) too
    db.api.refresh(db.conn, "t", "emb_pq", progress=False)
    assert db.api.stale_rows(db.conn, "t", "emb_pq") == 0
    for rid, v in ((50_000, far[0]), (50_001, far[1]), (7, far[2])):
        assert _ivf(db, v).ids[0] == rid


def test_many_new_rows_still_give_k_rows(table) -> None:
    db, x = table
    db.api.add_ivf_lists(db.conn, "t", "embedding", 8, niter=5)
    new = (x[:200] + 0.05).astype(np.float32)
    for i, v in enumerate(new):
        _insert(db, 60_000 + i, v, "c")
    allx = np.concatenate([x, new])
    ids = np.concatenate([np.arange(N), np.arange(60_000, 60_200)])
    for i in (0, 17, 150):
        q = new[i] + 0.001
        r = _ivf(db, q, 10)
        assert len(r) == 10 and r.ids[0] == 60_000 + i
        d = ((allx.astype(np.float64) - q) ** 2).sum(1)
        assert set(r.ids.tolist()) >= set(ids[np.argsort(d, kind="stable")[:3]].tolist())
        # a filter matching only new rows
        r = _ivf(db, q, 10, filter={"cat": "c"})
        assert len(r) == 10 and r.ids[0] == 60_000 + i


def test_drop_ivf_lists_then_the_column(table) -> None:
    """The demo's order (lists first, then the column) keeps working."""
    db, _ = table
    before = db.rows("t")
    cols = db.columns("t")
    lists = db.api.add_ivf_lists(db.conn, "t", "embedding", 8, niter=5)
    db.api.drop_ivf_lists(db.conn, "t", "emb_pq")
    assert db.api.ivf_lists(db.conn, "t", "emb_pq") is None
    assert db.columns("t") == cols and _codec_rows(db, lists.codec_name) == (0, 0, 0)
    with pytest.raises(CatalogError, match="has no IVF lists"):
        db.api.drop_ivf_lists(db.conn, "t", "emb_pq")
    db.api.drop_compressed_column(db.conn, "t", "emb_pq")
    assert "emb_pq" not in db.columns("t")
    assert db.rows("t") == before


def test_an_updated_row_is_found_at_once(table) -> None:
    db, x = table
    db.api.add_ivf_lists(db.conn, "t", "embedding", 8, niter=5)
    moved = (x[7] * -1.5).astype(np.float32)
    _update(db, 7, moved)
    for strategy in ("ivf", "compressed"):
        r = db.api.search(db.conn, "t", "embedding", moved, 5, metric="l2", strategy=strategy)
        assert r.ids[0] == 7, strategy
