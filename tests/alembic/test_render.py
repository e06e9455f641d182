"""render_item: vecext and pgvector types render as importable source, with imports."""

from __future__ import annotations

from types import SimpleNamespace

import pgvector
import pgvector.sqlalchemy as pgv
import pytest
import sqlalchemy as sa

import vecext.sqlalchemy
from vecext.alembic import chain_render_item, render_item


@pytest.mark.parametrize(
    ("type_", "text", "imp"),
    [
        (pgv.VECTOR(384), "pgvector.sqlalchemy.VECTOR(dim=384)", "import pgvector.sqlalchemy"),
        (pgv.HALFVEC(64), "pgvector.sqlalchemy.HALFVEC(dim=64)", "import pgvector.sqlalchemy"),
        (
            pgv.SPARSEVEC(1000),
            "pgvector.sqlalchemy.SPARSEVEC(dim=1000)",
            "import pgvector.sqlalchemy",
        ),
        (pgv.BIT(128), "pgvector.sqlalchemy.BIT(128)", "import pgvector.sqlalchemy"),
        (pgv.VECTOR(), "pgvector.sqlalchemy.VECTOR()", "import pgvector.sqlalchemy"),
        (
            vecext.sqlalchemy.PQCodes(m=48, codec="items_pq"),
            "vecext.sqlalchemy.PQCodes(m=48, codec='items_pq')",
            "import vecext.sqlalchemy",
        ),
        (
            vecext.sqlalchemy.BinaryCodes(384, codec="b"),
            "vecext.sqlalchemy.BinaryCodes(dim=384, codec='b')",
            "import vecext.sqlalchemy",
        ),
    ],
)
def test_render_item_types(type_, text, imp):
    ctx = SimpleNamespace(imports=set())
    out = render_item("type", type_, ctx)
    assert out == text and ctx.imports == {imp}
    # the rendered text rebuilds an equal type
    ns = {"pgvector": pgvector, "vecext": vecext}
    assert repr(eval(out, ns)) == repr(type_)


def test_other_items_fall_through_and_hooks_chain():
    ctx = SimpleNamespace(imports=set())
    assert render_item("type", sa.Integer(), ctx) is False
    assert render_item("column", sa.Column("x", sa.Integer), ctx) is False

    def mine(kind, obj, ctx):
        return "my.Type()" if isinstance(obj, sa.Integer) else False

    hook = chain_render_item(mine, render_item)
    assert hook("type", sa.Integer(), ctx) == "my.Type()"
    assert hook("type", pgv.VECTOR(3), ctx) == "pgvector.sqlalchemy.VECTOR(dim=3)"
    assert hook("type", sa.String(), ctx) is False
