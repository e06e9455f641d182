-- vecext 0.1.0 -> 0.2.0: PostgreSQL catalog upgrade.
--
-- Applied after vecext--0.1.0.sql by `vecext install`, by the Alembic revision
-- vecext_0_2_0 and by the Docker init script, in the same transaction as the rest
-- of the chain. Released scripts are never edited: a later version adds
-- vecext--0.2.0--<next>.sql.
--
-- 1. vecext.drop_compressed_column also drops the column's IVF lists (list
--    column with its indexes, list trigger, centroids). In 0.1.0 it dropped the
--    code column only and left them orphaned: vecext.postgres.orphaned_ivf_lists()
--    finds lists left that way and drop_orphaned_ivf_lists() drops them.

-- ---------------------------------------------------------------------------
-- Compressed columns

-- Drop a code column, its trigger, its IVF lists and its catalog entry, in the
-- caller's transaction; the source column stays.
CREATE OR REPLACE FUNCTION vecext.drop_compressed_column(tbl regclass, code_column name) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    cc vecext.compressed_columns;
BEGIN
    SELECT k.* INTO cc FROM vecext.compressed_columns k
      JOIN pg_namespace n ON n.nspname = k.table_schema
      JOIN pg_class r ON r.relnamespace = n.oid AND r.relname = k.table_name
     WHERE r.oid = tbl AND k.code_column = drop_compressed_column.code_column;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%.% is not a vecext compressed column', tbl, quote_ident(code_column)
            USING ERRCODE = 'undefined_object';
    END IF;
    -- the IVF lists rank rows by these codes and belong to the column: their trigger
    -- (named as vecext.postgres.add_ivf_lists names it) and their list column, whose
    -- indexes go with it
    IF cc.list_column IS NOT NULL THEN
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', left('vecext_' || cc.list_column, 63), tbl);
        EXECUTE format('ALTER TABLE %s DROP COLUMN IF EXISTS %I', tbl, cc.list_column);
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', left('vecext_' || cc.code_column, 63), tbl);
    EXECUTE format('ALTER TABLE %s DROP COLUMN IF EXISTS %I', tbl, cc.code_column);
    DELETE FROM vecext.compressed_columns WHERE id = cc.id;
    -- the centroids (codec_arrays and codebook_vectors rows cascade), unless another
    -- compressed column uses that codec
    IF cc.ivf_codec_name IS NOT NULL THEN
        DELETE FROM vecext.codecs c
         WHERE c.name = cc.ivf_codec_name AND c.kind = 'ivf'
           AND NOT EXISTS (SELECT FROM vecext.compressed_columns o
                            WHERE o.codec_name = c.name OR o.ivf_codec_name = c.name);
    END IF;
END
$$;

-- Every script records itself; the installers check that it did.
UPDATE vecext.installed_version SET version = '0.2.0';
INSERT INTO vecext.install_history (script, version) VALUES ('vecext--0.1.0--0.2.0.sql', '0.2.0');
