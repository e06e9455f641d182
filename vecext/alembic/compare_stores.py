"""Autogenerate for compressed columns: the operations that add and drop them, and the
comparison of a model's :func:`vecext.sqlalchemy.compressed` declarations (code stores
and the filter columns they mirror) with the catalog.

For a declared store the catalog lists with the same source column and codec, the
mirrored columns are compared (as sets): a column the model declares in ``mirror=``
that the store does not mirror becomes ``op.mirror_columns`` (after the table's own
operations, so that a column the same migration adds can be mirrored), one the store
mirrors that the model no longer declares becomes ``op.unmirror_columns`` (before them,
so that a column the same migration drops is no longer watched by the store's
trigger). The table's declared tenant column is mirrored by vecext on its own
(:func:`vecext.postgres.declare_tenant_column`), so it is never unmirrored for want of
a declaration.

A code store is offered to the environment's ``include_name`` and ``include_object``
hooks as what it stands for, a column of its table (``type_ "column"``), before any
operation is written for it: a store the catalog lists and the model does not declare
as a reflected column (``include_name(name, "column", {"table_name": ...,
"schema_name": ...})``, then ``include_object(column, name, "column", True, None)``
with a ``Column`` of that name on a ``Table`` of the table's name, its ``info``
``{"vecext": {"layout": "store", "source_column": ..., "codec": ...}}``), a declared one as
the model's object (``include_object(store, name, "column", False, compare_to)``, the
:class:`~vecext.sqlalchemy.CompressedStore`; ``compare_to`` is the reflected column when
the catalog lists it). A store a hook refuses gets no operation at all: the rule that
keeps Alembic from dropping the table's columns the model does not map (``reflected and
compare_to is None``) also keeps it from dropping a store made outside Alembic.
"""

from __future__ import annotations

from typing import Any

from vecext.alembic import ops

#: the mirrored columns of every store, by name, in the order they were mirrored
_MIRRORS = """SELECT n.nspname, r.relname, k.code_column,
       ARRAY(SELECT a.attname::text FROM unnest(k.mirror_attnums) WITH ORDINALITY m(x, i)
               JOIN pg_attribute a
                 ON a.attrelid = k.table_oid AND a.attnum = m.x AND NOT a.attisdropped
              ORDER BY m.i)
  FROM vecext.compressed_columns k
  JOIN pg_class r ON r.oid = k.table_oid
  JOIN pg_namespace n ON n.oid = r.relnamespace
 WHERE k.mirror_attnums IS NOT NULL"""


def create_ops(
    schema: str | None,
    table: str,
    col: Any,
    spec: dict[str, Any],
    codecs: set[str],
    planned: set[str],
    layout: str = "table",
    mirror: list[str] | None = None,
) -> list[Any]:
    """``create_codec`` (when needed) and ``add_compressed_column`` for ``col``: a table
    column of a code type, or a :class:`~vecext.sqlalchemy.CompressedStore`."""
    out: list[Any] = []
    codec = col.type.codec
    if codec is None:
        from vecext.alembic.ops import MigrationError

        raise MigrationError(
            f"compressed column {table}.{col.name} has no codec name: declare its type "
            "with codec='...'"
        )
    if codec not in codecs and codec not in planned:
        params = dict(spec.get("params") or {})
        for key, value in col.type.codec_params().items():  # PQ's m, rbq's bits
            params.setdefault(key, value)
        out.append(
            ops.CreateCodecOp(
                codec,
                table=table,
                column=spec["source"],
                kind=col.type.kind,
                metric=spec.get("metric", "cosine"),
                sample=spec.get("sample"),
                schema=schema,
                seed=spec.get("seed", 0),
                params=params,
            )
        )
        planned.add(codec)
    out.append(
        ops.AddCompressedColumnOp(
            table,
            spec["source"],
            codec,
            col.name,
            batch_size=spec.get("batch_size", 10_000),
            schema=schema,
            layout=layout,
            mirror=mirror,
        )
    )
    return out


def drop_op(
    schema: str | None,
    table: str,
    name: str,
    have: tuple[str, str, str],
    mirror: list[str] | None = None,
) -> Any:
    source, codec, layout = have
    return ops.DropCompressedColumnOp(
        table, name, schema=schema, source_column=source, codec=codec, layout=layout, mirror=mirror
    )


def catalog_mirrors(
    autogen_context: Any,
) -> tuple[dict[Any, list[str]], dict[Any, str]]:
    """The mirrored columns of each store ``(schema, table, code column) -> [column]``
    (empty before catalog 0.6.0) and the tenant columns ``(schema, table) -> column``."""
    conn = autogen_context.connection
    if conn is None:
        return {}, {}
    import sqlalchemy as sa

    if conn.execute(sa.text("SELECT to_regclass('vecext.tenant_columns')")).scalar() is None:
        return {}, {}
    default = conn.dialect.default_schema_name

    def key(schema: str) -> str | None:
        return None if schema == default else schema

    tenants = {
        (key(r[0]), r[1]): r[2]
        for r in conn.execute(
            sa.text("SELECT table_schema, table_name, tenant_column FROM vecext.tenant_columns")
        )
    }
    has_mirrors = conn.execute(
        sa.text(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = "
            "'vecext.compressed_columns'::regclass AND attname = 'mirror_attnums' "
            "AND NOT attisdropped"
        )
    ).scalar()
    if not has_mirrors:
        return {}, tenants
    mirrors = {(key(r[0]), r[1], r[2]): list(r[3]) for r in conn.execute(sa.text(_MIRRORS))}
    return mirrors, tenants


def compare_stores(
    autogen_context: Any,
    schemas: Any,
    registered: dict[Any, tuple[str, str, str]],
    codecs: set[str],
    planned: set[str],
) -> tuple[list[Any], list[Any]]:
    """(drops, adds) that make the code stores of the model's tables, and the columns
    they mirror, match their :func:`vecext.sqlalchemy.compressed` declarations."""
    from vecext.alembic.compare_code_indexes import built_store_indexes, compare_store_indexes
    from vecext.sqlalchemy.schema import declared_stores

    compared = set(schemas) if schemas is not None else {None}
    default = autogen_context.dialect.default_schema_name if autogen_context.dialect else None
    mirrors, tenants = catalog_mirrors(autogen_context)
    built = built_store_indexes(autogen_context, any(h[2] == "store" for h in registered.values()))
    drops: list[Any] = []
    adds: list[Any] = []
    for table in autogen_context.sorted_tables:
        schema = None if table.schema == default else table.schema
        if schema not in compared and table.schema not in compared:
            continue
        if not autogen_context.run_object_filters(table, table.name, "table", False, None):
            continue
        tenant = tenants.get((schema, table.name))

        def kept(key: Any, tenant: str | None = tenant) -> list[str]:
            # what a drop's reverse mirrors again (vecext mirrors the tenant column itself)
            return [c for c in mirrors.get(key, []) if c != tenant]

        declared = declared_stores(table)
        changed: set[str] = set()  # stores this migration adds, replaces or drops
        for name, store in declared.items():
            check_store(table, store)
            key = (schema, table.name, name)
            have = registered.get(key)
            if not _offer(autogen_context, table, name, have, store):
                continue
            if have == (store.source, store.codec, "store"):  # the store: compare mirrors
                drops += _unmirror_ops(schema, table.name, store, kept(key))
                adds += _mirror_ops(schema, table.name, store, mirrors.get(key, []))
                continue
            if have is not None and have[2] == "store":  # other source or codec: replace it
                drops.append(drop_op(schema, table.name, name, have, kept(key)))
            changed.add(name)
            adds += create_ops(
                schema,
                table.name,
                store,
                store.spec,
                codecs,
                planned,
                layout="store",
                mirror=list(store.mirror),
            )
        for key, have in registered.items():
            if key[:2] != (schema, table.name) or have[2] != "store":
                continue
            if key[2] not in declared and _offer(autogen_context, table, key[2], have, None):
                drops.append(drop_op(schema, table.name, key[2], have, kept(key)))
                changed.add(key[2])
        # the HNSW indexes over the stores: dropped before the stores, built after them
        ix_drops, ix_adds = compare_store_indexes(
            autogen_context, schema, table, declared, changed, built.get((schema, table.name), {})
        )
        drops = ix_drops + drops
        adds += ix_adds
    return drops, adds


def _offer(
    autogen_context: Any, table: Any, name: str, have: tuple[str, str, str] | None, store: Any
) -> bool:
    """Whether the environment's ``include_name`` / ``include_object`` let autogenerate
    write operations for code store ``name`` of ``table`` (see the module docstring):
    ``have`` is the catalog's (source column, codec, layout) or ``None``, ``store`` the
    model's declaration or ``None``."""
    import sqlalchemy as sa

    reflected = None
    if have is not None:
        if not autogen_context.run_name_filters(
            name, "column", {"table_name": table.name, "schema_name": table.schema}
        ):
            return False
        info = {"vecext": {"layout": have[2], "source_column": have[0], "codec": have[1]}}
        reflected = sa.Column(name, sa.types.NullType(), info=info)
        sa.Table(table.name, sa.MetaData(), reflected, schema=table.schema)
    if store is None:
        return bool(autogen_context.run_object_filters(reflected, name, "column", True, None))
    return bool(autogen_context.run_object_filters(store, name, "column", False, reflected))


def _unmirror_ops(schema: str | None, table: str, store: Any, have: list[str]) -> list[Any]:
    gone = [c for c in have if c not in store.mirror]
    if not gone:
        return []
    return [
        ops.UnmirrorColumnsOp(table, store.name, gone, schema=schema, batch_size=store.batch_size)
    ]


def _mirror_ops(schema: str | None, table: str, store: Any, have: list[str]) -> list[Any]:
    new = [c for c in store.mirror if c not in have]
    if not new:
        return []
    return [ops.MirrorColumnsOp(table, store.name, new, schema=schema, batch_size=store.batch_size)]


def check_store(table: Any, store: Any) -> None:
    """A clear error for a declaration autogenerate cannot turn into an operation."""
    from vecext.alembic.ops import MigrationError

    where = f"compressed({store.name!r}) on table {table.name}"
    if store.source not in table.c:
        raise MigrationError(
            f"{where}: source column {store.source!r} is not a column of the table (its "
            f"columns: {', '.join(table.c.keys())})"
        )
    if store.name in table.c:
        raise MigrationError(f"{where}: the table also has a column {store.name!r}")
    unknown = [c for c in store.mirror if c not in table.c]
    if unknown:
        raise MigrationError(
            f"{where}: mirror= names {', '.join(unknown)}, not a column of the table (its "
            f"columns: {', '.join(table.c.keys())})"
        )
    keys = [c for c in store.mirror if table.c[c].primary_key]
    if keys:
        raise MigrationError(
            f"{where}: mirror= names {', '.join(keys)}, the primary key: the code store is "
            "keyed by it already; mirror filter columns only"
        )
