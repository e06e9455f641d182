"""Autogenerate: turn plain column and index operations into vecext operations.

Runs after Alembic's own comparison (priority LAST, target ``schema``) and
rewrites the operations it produced:

* a compressed column declared with :func:`vecext.sqlalchemy.compressed` (a code
  store, not a table column) that the catalog does not list for that table becomes
  ``op.add_compressed_column(..., layout="store")`` after the table's own operations
  (preceded by ``op.create_codec`` when the catalog has no codec of that name); a code
  store the catalog lists for a table of the model that the model no longer declares
  becomes ``op.drop_compressed_column(..., layout="store")``, before everything else;
  model and catalog agreeing (same name, source column and codec) give nothing but
  ``op.mirror_columns`` / ``op.unmirror_columns`` for the columns its ``mirror=``
  and the catalog disagree on (:mod:`vecext.alembic.compare_stores`); HNSW indexes
  over the stores declared with :func:`vecext.sqlalchemy.code_index` are compared by
  name and options (:mod:`vecext.alembic.compare_code_indexes`);
* a new column declared with :func:`vecext.sqlalchemy.compressed_column` becomes
  ``op.add_compressed_column(..., layout="table")`` (the model maps it as a column of
  the table); on a new table the column is taken out of ``op.create_table`` and
  added after it;
* a dropped column that the catalog lists as a compressed column becomes
  ``op.drop_compressed_column`` (reversible: source, codec and layout come from the
  catalog);
* a new index declared with :func:`vecext.sqlalchemy.vector_index` becomes
  ``op.create_vector_index``; the index/type differences Alembic cannot judge on
  existing vecext columns and indexes (expression indexes, ``bytea`` vs
  ``PQCodes``) are dropped rather than rendered as spurious alterations;
* on a new table, the ``compressed(...)`` declarations that Alembic would render in
  ``op.create_table(..., info=...)`` are left out of it (they become operations);
* with ``include_schemas=True`` Alembic reflects schema ``vecext`` too: its catalog
  tables, code stores and the indexes over them are vecext's, never the model's, so
  the ``drop_table`` and ``drop_index`` it would write for them are left out.

It also installs :func:`vecext.alembic.render.render_item` (after any hook of the
user's) so that vecext and pgvector types render with their imports.
"""

from __future__ import annotations

from typing import Any

from alembic.operations import ops as aops

from vecext.alembic import ops
from vecext.alembic.compare_stores import compare_stores, create_ops, drop_op
from vecext.alembic.render import chain_render_item, render_item
from vecext.sqlalchemy.schema import INFO_KEY


def _install_render_item(autogen_context: Any) -> None:
    opts = autogen_context.opts
    current = opts.get("render_item")
    if getattr(current, "_vecext_chain", False) or current is render_item:
        return
    opts["render_item"] = chain_render_item(current, render_item)


def _metadata_specs(autogen_context: Any) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """Compressed columns ``(schema, table, column) -> (Column, spec)`` and vector
    indexes ``(schema, name) -> (Index, spec)`` declared in the target metadata."""
    cols: dict[Any, Any] = {}
    idx: dict[Any, Any] = {}
    for table in autogen_context.sorted_tables:
        for col in table.columns:
            spec = col.info.get(INFO_KEY)
            if spec:
                cols[(table.schema, table.name, col.name)] = (col, spec)
        for index in table.indexes:
            spec = index.info.get(INFO_KEY)
            if spec:
                idx[(table.schema, index.name)] = (index, spec)
    return cols, idx


#: the schema of vecext's catalog and code stores
CATALOG_SCHEMA = "vecext"

#: registered compressed columns, names read live from pg_class on catalog >= 0.4.0
_REGISTERED = """SELECT n.nspname, r.relname, k.code_column,
       coalesce(a.attname, k.source_column), k.codec_name, k.layout
  FROM vecext.compressed_columns k
  JOIN pg_class r ON r.oid = k.table_oid
  JOIN pg_namespace n ON n.oid = r.relnamespace
  LEFT JOIN pg_attribute a
         ON a.attrelid = k.table_oid AND a.attnum = k.source_attnum AND NOT a.attisdropped
 ORDER BY k.id"""
_REGISTERED_OLD = """SELECT table_schema, table_name, code_column, source_column, codec_name, 'table'
  FROM vecext.compressed_columns ORDER BY id"""


def _catalog(autogen_context: Any) -> tuple[set[str], dict[Any, tuple[str, str, str]]]:
    """Codec names and registered compressed columns ``(schema, table, code column) ->
    (source column, codec, layout)``, or empty when no catalog."""
    conn = autogen_context.connection
    if conn is None:
        return set(), {}
    import sqlalchemy as sa

    if conn.execute(sa.text("SELECT to_regclass('vecext.codecs')")).scalar() is None:
        return set(), {}
    codecs = {r[0] for r in conn.execute(sa.text("SELECT name FROM vecext.codecs"))}
    default = conn.dialect.default_schema_name
    has_layout = conn.execute(
        sa.text(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = "
            "'vecext.compressed_columns'::regclass AND attname = 'layout' AND NOT attisdropped"
        )
    ).scalar()
    registered = {
        (None if r[0] == default else r[0], r[1], r[2]): (r[3], r[4], r[5])
        for r in conn.execute(sa.text(_REGISTERED if has_layout else _REGISTERED_OLD))
    }
    return codecs, registered


def _index_op(schema: str | None, table: str, name: str, spec: dict[str, Any]) -> Any:
    return ops.CreateVectorIndexOp(
        name,
        table,
        spec["column"],
        method=spec["method"],
        metric=spec["metric"],
        storage=spec.get("storage", "vector"),
        concurrently=spec.get("concurrently", False),
        schema=schema,
        options=spec.get("options"),
    )


def compare_vecext(autogen_context: Any, upgrade_ops: Any, schemas: Any) -> Any:
    """The ``schema``-level comparator (see the module docstring)."""
    from alembic.util import PriorityDispatchResult

    if getattr(upgrade_ops, "_vecext_done", False):  # registered twice (plugin + import)
        return PriorityDispatchResult.CONTINUE
    upgrade_ops._vecext_done = True
    _install_render_item(autogen_context)
    if autogen_context.metadata is None:
        return PriorityDispatchResult.CONTINUE
    meta_cols, meta_idx = _metadata_specs(autogen_context)
    codecs, registered = _catalog(autogen_context)
    planned: set[str] = set()
    new_ops: list[Any] = []
    own = {(t.schema, t.name) for t in autogen_context.sorted_tables}
    for op in upgrade_ops.ops:
        extra: list[Any] = []
        if (
            getattr(op, "schema", None) == CATALOG_SCHEMA
            and (op.schema, getattr(op, "table_name", None)) not in own
        ):
            # vecext's catalog, a code store or an index over one, reflected with
            # include_schemas=True (drop_table, drop_index, or changes to such a table)
            continue
        if isinstance(op, aops.CreateTableOp):
            # the table's compressed(...) declarations become add_compressed_column below;
            # rendered as create_table(info=...) they would not even import
            op.info = {k: v for k, v in (op.info or {}).items() if k != INFO_KEY}
            keep = []
            for c in op.columns:
                key = (op.schema, op.table_name, getattr(c, "name", None))
                if key in meta_cols:
                    col, spec = meta_cols[key]
                    extra += create_ops(
                        op.schema, op.table_name, col, spec, codecs, planned, layout="table"
                    )
                else:
                    keep.append(c)
            op.columns = keep
        elif isinstance(op, aops.ModifyTableOps):
            op.ops = _rewrite_table_ops(op, meta_cols, meta_idx, registered, codecs, planned, extra)
            if not op.ops:
                new_ops += _order(extra)
                continue
        new_ops.append(op)
        new_ops += _order(extra)
    # after the loop, so that a codec the table columns create first is not planned twice
    store_drops, store_adds = compare_stores(autogen_context, schemas, registered, codecs, planned)
    upgrade_ops.ops[:] = [*store_drops, *new_ops, *_order(store_adds)]
    return PriorityDispatchResult.CONTINUE


def _order(extra: list[Any]) -> list[Any]:
    # codecs before the columns that use them, indexes last; drops in reverse
    rank = {
        ops.DropVectorIndexOp: 0,
        ops.DropCompressedColumnOp: 1,
        ops.CreateCodecOp: 2,
        ops.AddCompressedColumnOp: 3,
        ops.CreateVectorIndexOp: 4,
    }
    return sorted(extra, key=lambda o: rank.get(type(o), 5))


def _rewrite_table_ops(
    mt: Any,
    meta_cols: dict[Any, Any],
    meta_idx: dict[Any, Any],
    registered: dict[Any, tuple[str, str, str]],
    codecs: set[str],
    planned: set[str],
    extra: list[Any],
) -> list[Any]:
    schema, table = mt.schema, mt.table_name
    kept: list[Any] = []
    for sub in mt.ops:
        if isinstance(sub, aops.AddColumnOp) and (schema, table, sub.column.name) in meta_cols:
            col, spec = meta_cols[(schema, table, sub.column.name)]
            extra += create_ops(schema, table, col, spec, codecs, planned, layout="table")
        elif isinstance(sub, aops.DropColumnOp) and (schema, table, sub.column_name) in registered:
            extra.append(
                drop_op(
                    schema, table, sub.column_name, registered[(schema, table, sub.column_name)]
                )
            )
        elif isinstance(sub, aops.AlterColumnOp) and (schema, table, sub.column_name) in meta_cols:
            # bytea / bit(n) / halfvec(n) reflected against the vecext type: the same
            # storage; codes are only ever written by the column's trigger
            continue
        elif isinstance(sub, aops.CreateIndexOp) and (schema, sub.index_name) in meta_idx:
            _index, spec = meta_idx[(schema, sub.index_name)]
            if _drops_same(mt.ops, sub.index_name):
                continue  # Alembic could not compare an existing expression index
            extra.append(_index_op(schema, table, sub.index_name, spec))
        elif isinstance(sub, aops.DropIndexOp) and (schema, sub.index_name) in meta_idx:
            continue  # paired with the CreateIndexOp above
        else:
            kept.append(sub)
    return kept


def _drops_same(sub_ops: list[Any], name: str) -> bool:
    return any(isinstance(o, aops.DropIndexOp) and o.index_name == name for o in sub_ops)


def register_global() -> bool:
    """Add :func:`compare_vecext` to Alembic's global comparators (used by every env.py).

    Returns ``False`` when Alembic is still importing itself (vecext loaded through
    its ``alembic.plugins`` entry point): its comparator collection does not exist
    yet, and the plugin's comparator (``autogenerate_plugins=[..., "vecext"]``)
    is the way in; call this again from env.py to register globally instead.
    """
    import sys

    compare_mod = sys.modules.get("alembic.autogenerate.compare")
    if compare_mod is not None and not hasattr(compare_mod, "comparators"):
        return False
    from alembic.autogenerate.compare import comparators

    if getattr(comparators, "_vecext_registered", False):
        return True
    try:
        from alembic.util import DispatchPriority

        comparators.dispatch_for("schema", priority=DispatchPriority.LAST, subgroup="vecext")(
            compare_vecext
        )
    except ImportError:  # Alembic < 1.18: a plain list dispatcher, run in order
        comparators.dispatch_for("schema")(compare_vecext)
    comparators._vecext_registered = True
    return True
