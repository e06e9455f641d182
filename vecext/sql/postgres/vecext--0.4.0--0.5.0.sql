-- vecext 0.4.0 -> 0.5.0: PostgreSQL catalog upgrade.
--
-- Applied after vecext--0.3.0--0.4.0.sql by `vecext install`, by the Alembic revision
-- vecext_0_5_0 and by the Docker init script, in the same transaction as the rest
-- of the chain. Released scripts are never edited: a later version adds
-- vecext--0.5.0--<next>.sql.
--
-- The 0.5.0 changes, one section each (later steps of this release append their
-- own numbered sections before the version record at the end):
--
--   1. IVF lists in the code store: the list ids of a compressed column of layout
--      'store' live in a column of its code store, vecext."store_<id>" (pk, code,
--      list), assigned by the store's own trigger; the user's table is not altered,
--      updated or rewritten (issue 11). Lists added before 0.5.0 (an integer column
--      of the user's table with its trigger vecext.ivf_lists_trigger) keep working:
--      compressed_columns.list_layout says where a column's lists are.
--
-- This script changes a table, so the Alembic revision's downgrade undoes it only
-- while no code store holds lists (vecext.postgres.catalog.revert_script says why).

-- ---------------------------------------------------------------------------
-- 1. IVF lists in the code store

ALTER TABLE vecext.compressed_columns
    ADD COLUMN list_layout text CHECK (list_layout IN ('store', 'table'));
-- every list made before 0.5.0 is a column of the user's table
UPDATE vecext.compressed_columns SET list_layout = 'table' WHERE list_column IS NOT NULL;
COMMENT ON COLUMN vecext.compressed_columns.list_layout IS
    'where the IVF list ids are (with list_column): store: column list_column of the code store; table: column list_column of the table';

-- The row trigger of a code store: AFTER INSERT OR UPDATE OF (source, key) OR DELETE.
-- TG_ARGV: store table (in vecext), codec, source attnum, key attnum and, when the
-- store keeps IVF lists (0.5.0), the IVF codec. Columns are found by attnum, so
-- renaming the table or its columns changes nothing. The row's code (and list: the
-- nearest centroid by the IVF codec's metric, ties to the lower list id, as
-- vecext.ivf_lists_trigger and the Python IVFCodec assign) is written or replaced,
-- or its store row deleted when the vector is NULL or the row is gone; a changed key
-- moves the code. An IVF codec that is gone (lists dropped or never recorded after
-- an interrupted add_ivf_lists) writes no list: no search reads lists the catalog
-- does not record, and the user's writes never fail for it. SECURITY DEFINER:
-- writers of the table need no privilege on schema vecext; search_path is pinned
-- (below).
CREATE OR REPLACE FUNCTION vecext.store_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
AS $$
DECLARE
    src   name;
    key   name;
    op    text;
    lcols text := '';
    lvals text := '';
    lset  text := '';
BEGIN
    SELECT max(a.attname) FILTER (WHERE a.attnum = TG_ARGV[2]::int2),
           max(a.attname) FILTER (WHERE a.attnum = TG_ARGV[3]::int2)
      INTO src, key
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = TG_RELID AND a.attnum IN (TG_ARGV[2]::int2, TG_ARGV[3]::int2)
       AND NOT a.attisdropped;
    IF src IS NULL OR key IS NULL THEN
        RAISE EXCEPTION 'vecext code store %: the source or key column of table % is gone; drop the compressed column (vecext.drop_compressed_column)',
            TG_ARGV[0], TG_RELID::regclass USING ERRCODE = 'undefined_column';
    END IF;
    IF TG_OP = 'DELETE' THEN
        EXECUTE format('DELETE FROM vecext.%I s WHERE s.pk = ($1).%I', TG_ARGV[0], key) USING OLD;
        RETURN NULL;
    END IF;
    IF TG_NARGS > 4 THEN
        SELECT CASE c.metric WHEN 'l2' THEN '<->' WHEN 'ip' THEN '<#>' ELSE '<=>' END INTO op
          FROM vecext.codecs c WHERE c.name = TG_ARGV[4] AND c.kind = 'ivf';
        IF op IS NOT NULL THEN
            lcols := ', list';
            lvals := format(
                ', (SELECT b.idx FROM vecext.codebook_vectors b '
                'WHERE b.codec_name = %L AND b.part = ''centroids'' '
                'ORDER BY b.vec %s ($1).%I::vector, b.idx LIMIT 1)',
                TG_ARGV[4], op, src);
            lset := ', list = EXCLUDED.list';
        END IF;
    END IF;
    IF TG_OP = 'INSERT' THEN
        -- the common case, one plain statement (a row with a NULL vector gets no code)
        EXECUTE format(
            'INSERT INTO vecext.%1$I (pk, code%5$s) '
            'SELECT ($1).%2$I, vecext.%4$I(($1).%3$I::vector)%6$s WHERE ($1).%3$I IS NOT NULL '
            'ON CONFLICT (pk) DO UPDATE SET code = EXCLUDED.code%7$s',
            TG_ARGV[0], key, src, TG_ARGV[1] || '_encode', lcols, lvals, lset) USING NEW;
        RETURN NULL;
    END IF;
    -- UPDATE: the key changed: the old key's code goes, unless another row of the same
    -- statement took that key (UPDATE ... SET id = id + 1)
    EXECUTE format(
        'DELETE FROM vecext.%1$I s WHERE s.pk = ($1).%2$I AND s.pk IS DISTINCT FROM ($2).%2$I '
        'AND NOT EXISTS (SELECT FROM %3$s t WHERE t.%2$I = ($1).%2$I)',
        TG_ARGV[0], key, TG_RELID::regclass) USING OLD, NEW;
    EXECUTE format(
        'WITH d AS (DELETE FROM vecext.%1$I s WHERE s.pk = ($1).%2$I AND ($1).%3$I IS NULL) '
        'INSERT INTO vecext.%1$I AS s (pk, code%5$s) '
        'SELECT ($1).%2$I, vecext.%4$I(($1).%3$I::vector)%6$s WHERE ($1).%3$I IS NOT NULL '
        'ON CONFLICT (pk) DO UPDATE SET code = EXCLUDED.code%7$s',
        TG_ARGV[0], key, src, TG_ARGV[1] || '_encode', lcols, lvals, lset) USING NEW;
    RETURN NULL;
END
$$;

-- Drop a compressed column: its code store (with its IVF lists, 0.5.0) and triggers
-- (layout 'store') or its code column and trigger (layout 'table'), IVF lists kept in
-- the table (list_layout 'table'), its catalog entry and its IVF codec, in the
-- caller's transaction; the source column stays. (0.4.0's function dropped the column
-- list_column of the table whenever the compressed column had lists.)
CREATE OR REPLACE FUNCTION vecext.drop_compressed_column(tbl regclass, code_column name) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    cc vecext.compressed_columns;
BEGIN
    SELECT k.* INTO cc FROM vecext.compressed_columns k
     WHERE k.table_oid = tbl AND k.code_column = drop_compressed_column.code_column;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%.% is not a vecext compressed column', tbl, quote_ident(code_column)
            USING ERRCODE = 'undefined_object';
    END IF;
    IF cc.list_column IS NOT NULL AND cc.list_layout IS DISTINCT FROM 'store' THEN
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', left('vecext_' || cc.list_column, 63), tbl);
        EXECUTE format('ALTER TABLE %s DROP COLUMN IF EXISTS %I', tbl, cc.list_column);
    END IF;
    IF cc.layout = 'store' THEN
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', vecext.store_name(cc.id), tbl);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', vecext.store_name(cc.id) || '_truncate', tbl);
        EXECUTE format('DROP TABLE IF EXISTS vecext.%I', vecext.store_name(cc.id));
    ELSE
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', left('vecext_' || cc.code_column, 63), tbl);
        EXECUTE format('ALTER TABLE %s DROP COLUMN IF EXISTS %I', tbl, cc.code_column);
    END IF;
    DELETE FROM vecext.compressed_columns WHERE id = cc.id;
    IF cc.ivf_codec_name IS NOT NULL THEN
        DELETE FROM vecext.codecs c
         WHERE c.name = cc.ivf_codec_name AND c.kind = 'ivf'
           AND NOT EXISTS (SELECT FROM vecext.compressed_columns o
                            WHERE o.codec_name = c.name OR o.ivf_codec_name = c.name);
    END IF;
END
$$;

-- CREATE OR REPLACE resets a function's settings: the two above get 0.4.0's back (the
-- trigger its SECURITY DEFINER from its definition), search_path pinned as on every
-- vecext function.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION vecext.store_trigger() SET search_path = pg_catalog, %I, pg_temp',
                   vecext.pgvector_schema());
    EXECUTE format('ALTER FUNCTION vecext.drop_compressed_column(regclass, name) SET search_path = pg_catalog, %I, pg_temp',
                   vecext.pgvector_schema());
END
$$;

-- ---------------------------------------------------------------------------
-- Every script records itself; the installers check that it did.
UPDATE vecext.installed_version SET version = '0.5.0';
INSERT INTO vecext.install_history (script, version) VALUES ('vecext--0.4.0--0.5.0.sql', '0.5.0');
