"""Autogenerate for HNSW indexes over code stores: a model's
:func:`vecext.sqlalchemy.code_index` declarations against the indexes the catalog's
code stores have (pgvector's HNSW over the codes, in schema ``vecext``).

For each table of the model, by index name:

* declared and missing (or its store is added or replaced by this migration):
  ``op.create_vector_index(name, table, store, method='hnsw', metric=<the store's>,
  m=..., ef_construction=...)``, after the store is added;
* built over a store the model declares, with the same store and, where the
  declaration gives them, the same ``m`` and ``ef_construction``: nothing;
* built otherwise (another store or other options), over a store this migration drops
  or replaces, or over a store of the table the model does not declare it on:
  ``op.drop_vector_index(name, table=, column=, ...)`` (reversible: the downgrade
  builds it again as it was), before the store operations.

Each index is offered first to the environment's ``include_name`` (``type_ "index"``,
the table's names as parents) and ``include_object``: a built index as a reflected
``Index`` of that name on a ``Table`` of the table's name, its ``info`` ``{"vecext":
{"store": <code column>, "m": ..., "ef_construction": ...}}``; a declared one as the
model's :class:`~vecext.sqlalchemy.StoreIndex`. An index a hook refuses gets no
operation. Indexes over a store the model's hooks keep out of autogenerate are left
alone.
"""

from __future__ import annotations

from typing import Any

from vecext.alembic import ops

#: the HNSW indexes over every code store, with the store's code column and codec metric
_BUILT = """SELECT n.nspname, r.relname, k.code_column, ic.relname, ic.reloptions, c.metric
  FROM vecext.compressed_columns k
  JOIN pg_class r ON r.oid = k.table_oid
  JOIN pg_namespace n ON n.oid = r.relnamespace
  JOIN vecext.codecs c ON c.name = k.codec_name
  JOIN pg_class s ON s.relname = 'store_' || k.id AND s.relnamespace = 'vecext'::regnamespace
  JOIN pg_index i ON i.indrelid = s.oid
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_am am ON am.oid = ic.relam
 WHERE k.layout = 'store' AND am.amname = 'hnsw'
 ORDER BY ic.relname"""

#: (schema, table) -> {index name: (code column, options, metric)}
Built = dict[tuple[str | None, str], dict[str, tuple[str, dict[str, int], str]]]


def built_store_indexes(autogen_context: Any, has_layout: bool) -> Built:
    """The HNSW indexes over the catalog's code stores (empty before catalog 0.4.0)."""
    conn = autogen_context.connection
    if conn is None or not has_layout:
        return {}
    import sqlalchemy as sa

    default = conn.dialect.default_schema_name
    out: Built = {}
    for schema, table, column, name, reloptions, metric in conn.execute(sa.text(_BUILT)):
        key = (None if schema == default else schema, table)
        out.setdefault(key, {})[name] = (column, _options(reloptions), metric)
    return out


def _options(reloptions: list[str] | None) -> dict[str, int]:
    out = {}
    for item in reloptions or []:
        key, _, value = item.partition("=")
        if key in ("m", "ef_construction") and value.isdigit():
            out[key] = int(value)
    return out


def compare_store_indexes(
    autogen_context: Any,
    schema: str | None,
    table: Any,
    stores: dict[str, Any],
    changed: set[str],
    built: dict[str, tuple[str, dict[str, int], str]],
) -> tuple[list[Any], list[Any]]:
    """(drops, adds) for the :func:`~vecext.sqlalchemy.code_index` declarations of
    ``table`` (a model table; ``stores``: its declared stores by name; ``changed``: the
    code columns whose store this migration adds, replaces or drops; ``built``: the
    indexes over its stores, see the module docstring)."""
    from vecext.alembic.ops import MigrationError
    from vecext.sqlalchemy.store_index import declared_store_indexes

    declared = declared_store_indexes(table)
    drops: list[Any] = []
    adds: list[Any] = []
    for name, ix in declared.items():
        store = stores.get(ix.store)
        if store is None:
            raise MigrationError(
                f"code_index({name!r}) on table {table.name}: {ix.store!r} is not a "
                f"compressed(...) store of the table (its stores: "
                f"{', '.join(sorted(stores)) or 'none'})"
            )
        have = built.get(name)
        if have is not None and not _named(autogen_context, table, name):
            continue
        reflected = _reflected(table, name, have) if have is not None else None
        if not autogen_context.run_object_filters(ix, name, "index", False, reflected):
            continue
        if have is not None and have[0] not in changed:
            options = all(have[1].get(k) == v for k, v in ix.options.items())
            if have[0] == ix.store and options:
                continue  # built as declared (over a store this migration keeps)
            drops.append(_drop(schema, table.name, name, have))
        adds.append(
            ops.CreateVectorIndexOp(
                name,
                table.name,
                ix.store,
                method="hnsw",
                metric=store.metric,
                schema=schema,
                options=ix.options,
            )
        )
    for name, have in built.items():
        # over a store this migration drops or replaces: the index first, so that a
        # downgrade, which adds the store back, builds it again; over a kept store of the
        # model: dropped when the model no longer declares it
        gone = have[0] in changed and name in declared
        unwanted = name not in declared and (have[0] in changed or have[0] in stores)
        if gone or unwanted and _offer_built(autogen_context, table, name, have):
            drops.append(_drop(schema, table.name, name, have))
    return drops, adds


def _drop(schema: str | None, table: str, name: str, have: tuple[str, dict[str, int], str]) -> Any:
    column, options, metric = have
    metric = metric if metric in ops.INDEX_METRICS else "cosine"
    recreate = ops.CreateVectorIndexOp(
        name, table, column, method="hnsw", metric=metric, schema=schema, options=options
    )
    return ops.DropVectorIndexOp(name, schema=schema, recreate=recreate)


def _reflected(table: Any, name: str, have: tuple[str, dict[str, int], str]) -> Any:
    import sqlalchemy as sa

    info = {"vecext": {"store": have[0], **have[1]}}
    index = sa.Index(name, info=info)
    sa.Table(table.name, sa.MetaData(), index, schema=table.schema)
    return index


def _named(autogen_context: Any, table: Any, name: str) -> bool:
    return bool(
        autogen_context.run_name_filters(
            name, "index", {"table_name": table.name, "schema_name": table.schema}
        )
    )


def _offer_built(
    autogen_context: Any, table: Any, name: str, have: tuple[str, dict[str, int], str]
) -> bool:
    if not _named(autogen_context, table, name):
        return False
    reflected = _reflected(table, name, have)
    return bool(autogen_context.run_object_filters(reflected, name, "index", True, None))
