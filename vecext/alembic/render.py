"""Autogenerate rendering: vecext operations, vecext and pgvector column types.

Each operation renders as ``op.<name>(...)`` and adds ``import vecext.alembic``
to the migration (that import registers the operations on ``op``).
:func:`render_item` renders vecext types as ``vecext.sqlalchemy.PQCodes(m=48,
codec='items_pq')`` and pgvector's as ``pgvector.sqlalchemy.VECTOR(dim=384)``,
each with its import, so that generated migrations run as written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# the module, not the package: this also runs while Alembic loads its plugins
from alembic.autogenerate.render import renderers

from vecext.alembic import ops

IMPORT_OPS = "import vecext.alembic"
IMPORT_TYPES = "import vecext.sqlalchemy"
IMPORT_PGVECTOR = "import pgvector.sqlalchemy"


def _call(name: str, args: list[Any], kwargs: dict[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"op.{name}({', '.join(parts)})"


def _imports(autogen_context: Any) -> None:
    if autogen_context.imports is not None:
        autogen_context.imports.add(IMPORT_OPS)


@renderers.dispatch_for(ops.CreateCodecOp)
def _render_create_codec(autogen_context: Any, op: ops.CreateCodecOp) -> str:
    _imports(autogen_context)
    return _call("create_codec", [op.name], op.spec())


@renderers.dispatch_for(ops.DropCodecOp)
def _render_drop_codec(autogen_context: Any, op: ops.DropCodecOp) -> str:
    _imports(autogen_context)
    # the create arguments make the drop reversible in a later autogenerate
    kwargs = op.recreate.spec() if op.recreate is not None else {}
    return _call("drop_codec", [op.name], kwargs)


@renderers.dispatch_for(ops.AddCompressedColumnOp)
def _render_add_compressed_column(autogen_context: Any, op: ops.AddCompressedColumnOp) -> str:
    _imports(autogen_context)
    kwargs: dict[str, Any] = {}
    if op.batch_size != 10_000:
        kwargs["batch_size"] = op.batch_size
    if not op.backfill:
        kwargs["backfill"] = False
    if op.schema:
        kwargs["schema"] = op.schema
    if op.layout is not None:  # always, from autogenerate: the file means one layout
        kwargs["layout"] = op.layout
    if op.mirror:
        kwargs["mirror"] = list(op.mirror)
    args = [op.table, op.source_column, op.codec]
    if op.code_column is not None:
        args.append(op.code_column)
    return _call("add_compressed_column", args, kwargs)


@renderers.dispatch_for(ops.DropCompressedColumnOp)
def _render_drop_compressed_column(autogen_context: Any, op: ops.DropCompressedColumnOp) -> str:
    _imports(autogen_context)
    kwargs: dict[str, Any] = {}
    if op.schema:
        kwargs["schema"] = op.schema
    if op.source_column is not None:
        kwargs["source_column"] = op.source_column
    if op.codec is not None:
        kwargs["codec"] = op.codec
    if op.layout is not None:
        kwargs["layout"] = op.layout
    if op.mirror:
        kwargs["mirror"] = list(op.mirror)
    return _call("drop_compressed_column", [op.table, op.code_column], kwargs)


@renderers.dispatch_for(ops.MirrorColumnsOp)
@renderers.dispatch_for(ops.UnmirrorColumnsOp)
def _render_mirror(autogen_context: Any, op: ops.MirrorColumnsOp | ops.UnmirrorColumnsOp) -> str:
    _imports(autogen_context)
    kwargs: dict[str, Any] = {}
    if op.schema:
        kwargs["schema"] = op.schema
    if op.batch_size != 10_000:
        kwargs["batch_size"] = op.batch_size
    return _call(op.name, [op.table, op.code_column, list(op.columns)], kwargs)


@renderers.dispatch_for(ops.CreateVectorIndexOp)
def _render_create_vector_index(autogen_context: Any, op: ops.CreateVectorIndexOp) -> str:
    _imports(autogen_context)
    return _call("create_vector_index", [op.name, op.table, op.column], op.spec())


@renderers.dispatch_for(ops.DropVectorIndexOp)
def _render_drop_vector_index(autogen_context: Any, op: ops.DropVectorIndexOp) -> str:
    _imports(autogen_context)
    kwargs: dict[str, Any] = {}
    if op.recreate is not None:
        kwargs = {"table": op.recreate.table, "column": op.recreate.column}
        kwargs.update(op.recreate.spec())
    else:
        if op.schema:
            kwargs["schema"] = op.schema
        if op.concurrently:
            kwargs["concurrently"] = True
    return _call("drop_vector_index", [op.name], kwargs)


# ---------------------------------------------------------------------------
# column types


def render_type(type_: Any, autogen_context: Any) -> str | bool:
    """The source text of a vecext or pgvector type (adding its import), else ``False``."""
    from vecext.sqlalchemy.types import CODE_TYPES

    imports = autogen_context.imports
    if isinstance(type_, tuple(CODE_TYPES.values())):
        if imports is not None:
            imports.add(IMPORT_TYPES)
        return f"vecext.sqlalchemy.{type_!r}"
    mod = type(type_).__module__
    if mod.startswith("pgvector.sqlalchemy"):
        if imports is not None:
            imports.add(IMPORT_PGVECTOR)
        dim = getattr(type_, "dim", None)
        if dim is None and hasattr(type_, "impl_instance"):  # BIT is a TypeDecorator
            dim = getattr(type_.impl_instance, "length", None)
        name = type(type_).__name__
        if name == "BIT":
            return f"pgvector.sqlalchemy.BIT({dim!r})" if dim else "pgvector.sqlalchemy.BIT()"
        return (
            f"pgvector.sqlalchemy.{name}(dim={dim!r})" if dim else f"pgvector.sqlalchemy.{name}()"
        )
    return False


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """``render_item`` hook for ``context.configure`` in env.py.

    Renders vecext code types and pgvector's ``VECTOR``/``HALFVEC``/``BIT``/
    ``SPARSEVEC`` with their imports; returns ``False`` (Alembic's default) for
    everything else. To combine it with a hook of your own, use
    :func:`chain_render_item`.
    """
    if type_ == "type":
        return render_type(obj, autogen_context)
    return False


def chain_render_item(
    *hooks: Callable[[str, Any, Any], str | bool] | None,
) -> Callable[[str, Any, Any], str | bool]:
    """A ``render_item`` that asks each hook in turn (ours first when listed first)."""
    live = [h for h in hooks if h is not None]

    def render(type_: str, obj: Any, autogen_context: Any) -> str | bool:
        for hook in live:
            out = hook(type_, obj, autogen_context)
            if out is not False:
                return out
        return False

    render._vecext_chain = True  # type: ignore[attr-defined]
    return render
