"""The SQL functions of PostgreSQL's code stores (catalog 0.4.0) in the SQL reference."""

from __future__ import annotations

from vecext.sqlapi.model import PG, SqlFunction

STORE_FUNCTIONS: list[SqlFunction] = [
    SqlFunction(
        "vecext.code_store",
        "(tbl regclass, code_column name) -> regclass",
        (PG,),
        'The code store of a compressed column (catalog 0.4.0): the table vecext."store_<id>" '
        "(pk, code) holding one code per row of tbl that has a vector; NULL for a column made "
        "before 0.4.0, whose codes are the column code_column of tbl.",
        "SELECT vecext.code_store('doc_items', 'embedding_pq')",
    ),
    SqlFunction(
        "vecext.store_name",
        "(id bigint) -> name",
        (PG,),
        "The name of the code store of the compressed column with catalog id id (store_<id>, "
        "in schema vecext).",
        "SELECT vecext.store_name(7)",
    ),
    SqlFunction(
        "vecext.store_trigger",
        "() -> trigger",
        (PG,),
        "The row trigger of every code store (AFTER INSERT OR UPDATE OF the vector, the key "
        "or a mirrored column OR DELETE; trigger arguments: store, codec, vector attnum, key "
        "attnum and, when the store keeps IVF lists (catalog 0.5.0), the IVF codec ('' for "
        "none when mirrored columns follow), then the attnum of each column mirrored into "
        "the store (catalog 0.6.0)): writes, replaces or deletes the row's code, its list "
        "(the nearest centroid in vecext.codebook_vectors) in the store's column list and "
        "the mirrored values in its columns col_<attnum> (an update of mirrored columns "
        "alone rewrites only those). SECURITY DEFINER with a pinned search_path, so writers "
        "need no privilege on schema vecext and the codes never depend on the caller's "
        "search_path. It is not called directly.",
        "SELECT 'vecext.store_trigger'::regproc::text",
    ),
    SqlFunction(
        "vecext.store_truncate_trigger",
        "() -> trigger",
        (PG,),
        "The statement trigger of every code store (AFTER TRUNCATE; argument: store): "
        "empties the store with its table. It is not called directly.",
        "SELECT 'vecext.store_truncate_trigger'::regproc::text",
    ),
    SqlFunction(
        "vecext.code_type",
        "(codec text) -> text",
        (PG,),
        "The SQL type of a codec's codes: bit(d) for binary, halfvec(d) (qualified with "
        "pgvector's schema) for half, bytea for the others.",
        "SELECT vecext.code_type('doc_bin')",
    ),
    SqlFunction(
        "vecext.pgvector_schema",
        "() -> name",
        (PG,),
        "The schema pgvector is installed in; vecext qualifies pgvector's types with it.",
        "SELECT vecext.pgvector_schema()",
    ),
    SqlFunction(
        "vecext.migrate_to_store",
        "(tbl regclass, code_column name) -> regclass",
        (PG,),
        "Move a compressed column made before catalog 0.4.0 (codes in the column code_column "
        "of tbl) to a code store in one transaction (writes wait while the codes are "
        "copied): the store's triggers replace the column's; the old column stays, no "
        "longer kept current, for you to drop. Returns the store.",
        "SELECT vecext.migrate_to_store('doc_items', 'embedding_pq')",
    ),
    SqlFunction(
        "vecext.mirror_columns",
        "(tbl regclass, code_column name, columns name[]) -> name[]",
        (PG,),
        "Mirror filter columns of tbl into the code store of code_column (catalog 0.6.0): "
        "the store gets a column col_<attnum> and a btree per column, its trigger writes "
        "their values with the codes, and a search whose filter names only mirrored "
        "columns scans the store instead of joining tbl. Returns every column the store "
        "mirrors afterwards; columns mirrored already are left as they are. Refused for "
        "an unknown column, one named twice, the vector or key column, a vector column, or "
        "a compressed column of layout 'table'.",
        "ALTER TABLE doc_items ADD COLUMN lang text DEFAULT 'en'; "
        "SELECT vecext.mirror_columns('doc_items', 'embedding_pq', ARRAY['lang'])",
        "One transaction, the caller's: the store's rows are filled by one UPDATE; tbl stays "
        "locked against writes (SHARE ROW EXCLUSIVE, taken by CREATE OR REPLACE TRIGGER; "
        "reads go on) and its code store against everything (ACCESS EXCLUSIVE, its DDL; "
        "searches through it wait) until the transaction ends. "
        "vecext.postgres.mirror_columns does the same in committed batches and holds those "
        "locks only briefly; use it on large tables. From SQL alone, mirror while the store "
        "is still empty: vecext.add_compressed_column, then vecext.mirror_columns (no rows "
        "to fill), then CALL vecext.backfill, which writes the mirrored values with the "
        "codes in committed batches.",
    ),
    SqlFunction(
        "vecext.unmirror_columns",
        "(tbl regclass, code_column name, columns name[]) -> name[]",
        (PG,),
        "Stop mirroring columns of tbl into the code store of code_column (catalog 0.6.0), "
        "in one transaction: the trigger no longer writes or watches them and their store "
        "columns and btrees go; searches filtering on them join tbl again. Returns the "
        "columns still mirrored. Refused for a column the store does not mirror. Call it "
        "before dropping a mirrored column of tbl (the trigger fires on updates of it).",
        "ALTER TABLE doc_items ADD COLUMN lang text DEFAULT 'en'; "
        "SELECT vecext.mirror_columns('doc_items', 'embedding_pq', ARRAY['lang']); "
        "SELECT vecext.unmirror_columns('doc_items', 'embedding_pq', ARRAY['lang'])",
    ),
    SqlFunction(
        "vecext.drop_orphaned_compressed_columns",
        "() -> SETOF text",
        (PG,),
        "Drop the catalog rows, code stores and IVF codecs of compressed columns whose table "
        "or vector column was dropped; returns their names. The event trigger "
        "vecext_sql_drop (created by a superuser's install) does it at every DROP.",
        "SELECT count(*) FROM vecext.drop_orphaned_compressed_columns()",
    ),
    SqlFunction(
        "vecext.on_sql_drop",
        "() -> event_trigger",
        (PG,),
        "The function of the event trigger vecext_sql_drop: after a DROP of a table or "
        "column that compressed columns use, vecext.drop_orphaned_compressed_columns(). It "
        "is not called directly.",
        "SELECT 'vecext.on_sql_drop'::regproc::text",
    ),
    SqlFunction(
        "vecext.grant_usage",
        "(role name, writer boolean DEFAULT false) -> void",
        (PG,),
        "Let role search: USAGE on schema vecext, SELECT on the catalog and the code stores "
        "(also those made later), EXECUTE on the functions. Writers need no grant (the "
        "triggers run as the catalog's owner); only the owner of schema vecext may call it, "
        "and no role gets to change the catalog.",
        "SELECT vecext.grant_usage(current_user::name)",
    ),
    SqlFunction(
        "vecext.revoke_usage",
        "(role name) -> void",
        (PG,),
        "Undo vecext.grant_usage(role).",
        "SELECT vecext.revoke_usage('pg_monitor')",
    ),
    SqlFunction(
        "vecext.has_usage",
        "(role name DEFAULT CURRENT_USER) -> boolean",
        (PG,),
        "Whether role may search: USAGE on schema vecext and SELECT on its catalog.",
        "SELECT vecext.has_usage()",
    ),
]
