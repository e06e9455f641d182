"""One public face: the same verbs with the same signatures in vecext.postgres and
vecext.duckdb, and the names of vecext 0.2 still working (with a DeprecationWarning)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import vecext.duckdb as vd
import vecext.postgres as vp
from tests.postgres.conftest import clustered, load_table
from vecext.catalog import api
from vecext.errors import CatalogError

#: the public face both adapters export (classes and functions)
VERBS = list(api.VERBS)


def _positional(fn) -> list[str]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in inspect.signature(fn).parameters.values() if p.kind in kinds][1:]


def _keywords(fn) -> dict[str, object]:
    return {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


@pytest.mark.parametrize("verb", VERBS)
def test_both_adapters_have_the_verb_with_the_same_signature(verb):
    pg, duck = getattr(vp, verb), getattr(vd, verb)
    assert verb in vp.__all__ and verb in vd.__all__
    if isinstance(pg, type) or verb == "connect":  # a record, or how each database opens
        return
    if pg is duck:  # one function for both (search, the relevance verbs, codec_info, ...)
        return
    if verb == "hnsw_build_memory":  # (n, d): the sizes; m keyword-only in both
        assert _positional(pg) == _positional(duck) == ["d"]
        return
    assert _positional(pg) == _positional(duck), verb
    # the keywords both have mean the same: same defaults (each may have its own extras)
    shared = _keywords(pg).keys() & _keywords(duck).keys()
    differ = {k for k in shared if _keywords(pg)[k] != _keywords(duck)[k]}
    # index build defaults are each engine's own (pgvector 64, VSS 128)
    assert differ <= {"ef_construction"}, (verb, differ)


def test_metric_is_keyword_only_everywhere():
    for fn in (vp.create_vector_index, vd.create_vector_index, vp.train_codec, vd.train_codec):
        assert "metric" in _keywords(fn), fn


def test_refresh_and_backfill_are_one_function():
    assert vp.refresh is vp.backfill and vd.refresh is vd.backfill


def test_shared_verbs_find_the_database_of_the_connection():
    for verb in ("save_adapter", "load_adapter", "list_adapters", "codec_info", "list_codecs"):
        assert getattr(vp, verb) is getattr(vd, verb) is getattr(api, verb)
    with pytest.raises(CatalogError, match="no vecext adapter handles a builtins.object"):
        vp.list_codecs(object())
    con = vd.connect(":memory:", vss=False)
    assert vp.list_codecs(con) == []  # the DuckDB catalog, through the same function


def test_catalog_records_are_shared():
    assert vp.CodecInfo is vd.CodecInfo
    assert vp.AdapterInfo is vd.AdapterInfo
    assert issubclass(vd.CompressedColumn, vp.CompressedColumn)
    assert issubclass(vd.IVFLists, vp.IVFLists)


def test_postgres_vector_index_verbs(pg_conn):
    vp.install(pg_conn)
    load_table(pg_conn, "faces", clustered(300, 8, seed=3))
    ix = vp.create_vector_index(pg_conn, "faces", "embedding", metric="l2", m=8)
    assert [i.name for i in vp.list_vector_indexes(pg_conn, "faces")] == [ix.name]
    with pytest.raises(vp.VectorIndexError, match="has no index named 'nope'"):
        vp.drop_vector_index(pg_conn, "faces", "nope")
    assert vp.drop_vector_index(pg_conn, "faces", "nope", missing_ok=True) is False
    assert vp.drop_vector_index(pg_conn, "faces", ix.name) is True
    assert vp.list_vector_indexes(pg_conn, "faces") == []
    # the form of vecext 0.2, by index name alone, still works and says what to use
    ix = vp.create_vector_index(pg_conn, "faces", "embedding", metric="l2", m=8)
    with pytest.warns(DeprecationWarning, match=r"drop_vector_index\(conn, table, name\)"):
        assert vp.drop_vector_index(pg_conn, ix.name) is True
    assert vp.list_vector_indexes(pg_conn, "faces") == []


def _codec(kind: str, x: np.ndarray, **params):
    from vecext.codecs import make_codec

    return make_codec(kind, x.shape[1], "l2", **params).train(x)


def test_postgres_refresh_fills_missing_codes(pg_conn):
    vp.install(pg_conn)
    x = clustered(400, 8, seed=4)
    load_table(pg_conn, "faces", x)
    vp.save_codec(pg_conn, "faces_half", _codec("half", x))
    vp.add_compressed_column(pg_conn, "faces", "embedding", "faces_half", "h", backfill=False)
    assert vp.stale_rows(pg_conn, "faces", "h") == 400
    assert vp.refresh(pg_conn, "faces", "h", progress=False) == 400
    assert vp.stale_rows(pg_conn, "faces", "h") == 0
    assert [c.code_column for c in vp.list_compressed_columns(pg_conn, "faces")] == ["h"]


def test_adapter_info_replaces_get_adapter_info(pg_conn):
    from tests.relevance.sql_data import doc_adapter

    vp.install(pg_conn)
    vp.save_adapter(pg_conn, "faces_rel", doc_adapter(clustered(600, 16, seed=40)))
    info = vp.adapter_info(pg_conn, "faces_rel")
    with pytest.warns(DeprecationWarning, match="use adapter_info"):
        assert vp.get_adapter_info(pg_conn, "faces_rel") == info


def test_duckdb_names_of_vecext_0_2_still_work():
    from vecext.duckdb.indexes import estimate_hnsw_memory

    assert vd.HnswIndexError is vd.VectorIndexError
    with pytest.warns(DeprecationWarning, match="use hnsw_build_memory"):
        assert estimate_hnsw_memory(1000, 16, 8) == vd.hnsw_build_memory(1000, 16, m=8)
    con = vd.connect(":memory:", vss=False)
    con.execute("CREATE TABLE t (id INTEGER, v FLOAT[4])")
    with pytest.raises(vd.VectorIndexError, match="builds 'hnsw' only"):
        vd.create_vector_index(con, "t", "v", method="ivfflat")
    assert vd.list_vector_indexes(con, "t") == []
    assert vd.drop_vector_index(con, "t", "nope", missing_ok=True) is False
    with pytest.warns(DeprecationWarning, match="use list_vector_indexes"):
        assert vd.hnsw_indexes(con, "t") == []
    with (
        pytest.warns(DeprecationWarning, match="use drop_vector_index"),
        pytest.raises(vd.HnswIndexError, match="no HNSW index named 'nope'"),
    ):
        vd.drop_hnsw_index(con, "t", "nope")
    with (
        pytest.warns(DeprecationWarning, match="use create_vector_index"),
        pytest.raises(vd.VectorIndexError, match="unknown metric 'dot'"),
    ):
        vd.create_hnsw_index(con, "t", "v", "dot")


def test_add_ivf_lists_takes_a_trained_quantizer_and_checks_filter_columns(pg_conn):
    """``codec=`` (a trained IVF quantizer) and ``index_columns=``, in both adapters."""
    from vecext.codecs import CodecError
    from vecext.codecs.ivf import IVFCodec

    vp.install(pg_conn)
    x = clustered(400, 8, seed=5)
    load_table(pg_conn, "faces", x)
    vp.save_codec(pg_conn, "faces_pq", _codec("pq", x, m=2))
    vp.add_compressed_column(pg_conn, "faces", "embedding", "faces_pq", "pq", progress=False)
    with pytest.raises(CodecError, match="trained for dimension 8 and metric l2"):
        vp.add_ivf_lists(pg_conn, "faces", "embedding", codec=IVFCodec(4, "l2", nlist=4))
    lists = vp.add_ivf_lists(
        pg_conn, "faces", "embedding", codec=IVFCodec(8, "l2", nlist=4).train(x)
    )
    assert lists.nlist == 4 and lists.store is not None  # in the code store (catalog 0.5.0)
    (missing,) = pg_conn.execute(
        f'SELECT count(*) FROM vecext."{lists.store}" WHERE list IS NULL'
    ).fetchone()
    assert missing == 0

    con = vd.connect(":memory:", vss=False)
    con.execute("CREATE TABLE faces (id INTEGER PRIMARY KEY, embedding FLOAT[8])")
    con.execute("INSERT INTO faces SELECT i, ? FROM range(300) t(i)", [x[0].tolist()])
    vd.save_codec(con, "faces_pq", _codec("pq", x, m=2))
    vd.add_compressed_column(con, "faces", "embedding", "faces_pq", "pq", progress=False)
    with pytest.raises(CatalogError, match="has no column\\(s\\) 'nope'"):
        vd.add_ivf_lists(con, "faces", "embedding", 4, index_columns=["nope"])
