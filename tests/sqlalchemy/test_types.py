"""Code-column types: ORM round trip through the triggers, comparators against the
Python codecs, repr / cache keys / reflection, bad values."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

import vecext.sqlalchemy
from tests.sqlalchemy.conftest import D, Item
from vecext.sqlalchemy import (
    BinaryCodes,
    CodeTypeError,
    CodeValueError,
    HalfCodes,
    Int8Codes,
    PQCodes,
    RBQCodes,
    code_type_for,
)


def test_orm_round_trip_codes_equal_python_codes(session, items_db):
    codecs = items_db["codecs"]
    rng = np.random.default_rng(5)
    x = rng.standard_normal(D).astype(np.float32)
    item = Item(id=10_000, category_id=1, embedding=x)
    session.add(item)
    session.flush()  # INSERT; the triggers encode; FetchedValue makes the ORM read codes back
    np.testing.assert_array_equal(item.embedding_pq, codecs["items_pq"].encode(x)[0])
    np.testing.assert_array_equal(item.embedding_bits, codecs["items_bin"].encode(x)[0])
    np.testing.assert_array_equal(item.embedding_half, codecs["items_half"].encode(x)[0])
    assert item.embedding_pq.dtype == np.uint8

    y = -x
    item.embedding = y
    session.flush()  # UPDATE re-encodes
    np.testing.assert_array_equal(item.embedding_pq, codecs["items_pq"].encode(y)[0])
    session.commit()
    session.expire_all()
    back = session.get(Item, 10_000)
    np.testing.assert_array_equal(back.embedding_bits, codecs["items_bin"].encode(y)[0])
    np.testing.assert_allclose(back.embedding, y)

    # existing rows were backfilled with the same codes
    rows = session.execute(sa.select(Item).order_by(Item.id).limit(50)).scalars().all()
    xb = items_db["xb"][:50]
    np.testing.assert_array_equal(
        np.stack([r.embedding_pq for r in rows]), codecs["items_pq"].encode(xb)
    )


def test_comparators_equal_python_distances(session, items_db):
    codecs = items_db["codecs"]
    xb = items_db["xb"]
    q = np.random.default_rng(9).standard_normal(D).astype(np.float32)
    stmt = sa.select(
        Item.id,
        Item.embedding_pq.distance_to(q),
        Item.embedding_pq.pq_distance(codecs["items_pq"].distance_table(q[None])),
        Item.embedding_bits.hamming_distance_to(q),
        Item.embedding_bits.hamming_distance(codecs["items_bin"].encode(q[None])[0]),
        Item.embedding_half.l2_distance(q),
    ).order_by(Item.id)
    rows = session.execute(stmt).all()
    ids = np.array([r[0] for r in rows])
    pq_d = codecs["items_pq"].distances(q[None], codecs["items_pq"].encode(xb[ids]))[0]
    np.testing.assert_allclose([r[1] for r in rows], pq_d, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose([r[2] for r in rows], pq_d, rtol=1e-5, atol=1e-5)
    ham = codecs["items_bin"].distances(q[None], codecs["items_bin"].encode(xb[ids]))[0]
    np.testing.assert_array_equal([r[3] for r in rows], ham)
    np.testing.assert_array_equal([r[4] for r in rows], ham)
    half = xb[ids].astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(
        [r[5] for r in rows],
        np.linalg.norm(half - q.astype(np.float16).astype(np.float32), axis=1),
        rtol=1e-3,
    )
    dec = session.execute(sa.select(Item.embedding_pq.decode()).where(Item.id == 3)).scalar_one()
    np.testing.assert_allclose(
        dec, codecs["items_pq"].decode(codecs["items_pq"].encode(xb[3:4]))[0], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "t",
    [
        PQCodes(m=48, codec="items_pq"),
        PQCodes(8),
        BinaryCodes(384, codec="items_bin"),
        HalfCodes(dim=64),
        Int8Codes(dim=32, codec="i8"),
        RBQCodes(dim=100, bits=3, codec="r"),
    ],
)
def test_repr_reproduces_the_constructor_from_the_public_path(t):
    assert type(t).__module__ == "vecext.sqlalchemy"
    again = eval("vecext.sqlalchemy." + repr(t), {"vecext": vecext})
    assert type(again) is type(t) and repr(again) == repr(t)
    assert again._static_cache_key == t._static_cache_key  # cache_ok: keyed by parameters
    assert repr(PQCodes(m=48, codec="items_pq")) == "PQCodes(m=48, codec='items_pq')"


def test_code_type_for_a_trained_codec(items_db):
    codecs = items_db["codecs"]
    assert repr(code_type_for(codecs["items_pq"], "items_pq")) == "PQCodes(m=4, codec='items_pq')"
    assert repr(code_type_for(codecs["items_bin"], "b")) == f"BinaryCodes(dim={D}, codec='b')"
    assert repr(code_type_for(codecs["items_half"])) == f"HalfCodes(dim={D})"


def test_reflection_gives_the_storage_types(engine, items_db):
    from pgvector.sqlalchemy import HALFVEC, VECTOR
    from sqlalchemy.dialects.postgresql import BIT, BYTEA

    cols = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("items")}
    assert isinstance(cols["embedding"], VECTOR) and cols["embedding"].dim == D
    assert isinstance(cols["embedding_pq"], BYTEA)
    assert isinstance(cols["embedding_bits"], BIT) and cols["embedding_bits"].length == D
    assert isinstance(cols["embedding_half"], HALFVEC) and cols["embedding_half"].dim == D

    # with the catalog-aware listener, the vecext types come back
    from vecext.sqlalchemy import code_column_reflect

    meta = sa.MetaData()
    sa.event.listen(meta, "column_reflect", code_column_reflect)  # this MetaData's tables
    with engine.connect() as conn:
        items = sa.Table("items", meta, autoload_with=conn)
    assert repr(items.c.embedding_pq.type) == "PQCodes(m=4, codec='items_pq')"
    assert repr(items.c.embedding_bits.type) == f"BinaryCodes(dim={D}, codec='items_bin')"
    assert repr(items.c.embedding_half.type) == f"HalfCodes(dim={D}, codec='items_half')"
    assert isinstance(items.c.embedding.type, VECTOR)


def test_bad_values_and_parameters(session, items_db):
    with pytest.raises(CodeValueError, match="3 bytes wide, expected 4"):
        PQCodes(4).process_bind_param(np.zeros(3, np.uint8), None)
    with pytest.raises(CodeValueError, match="dtype float32"):
        PQCodes(4).process_bind_param(np.zeros(4, np.float32), None)
    with pytest.raises(CodeValueError, match=f"expected 2 \\({D} bits packed\\)"):
        BinaryCodes(D).process_bind_param(np.zeros(3, np.uint8), None)
    with pytest.raises(CodeValueError, match="dimension 3, expected 16"):
        HalfCodes(16).process_bind_param([1.0, 2.0, 3.0], None)
    with pytest.raises(CodeTypeError, match="m must be a positive integer"):
        PQCodes(0)
    with pytest.raises(ValueError, match="invalid codec name"):
        PQCodes(4, codec="Bad Name")
    anonymous = sa.column("codes", PQCodes(4))
    with pytest.raises(CodeTypeError, match="has no codec"):
        anonymous.distance_to(np.zeros(D, np.float32))
    with pytest.raises(CodeTypeError, match="has 1024 values, got 10"):
        Item.embedding_pq.pq_distance(np.zeros(10))
    # writing codes of the wrong width through the ORM fails before reaching the server
    with pytest.raises(sa.exc.StatementError, match="expected 4"):
        session.execute(
            sa.update(Item).where(Item.id == 1).values(embedding_pq=np.zeros(5, np.uint8))
        )
