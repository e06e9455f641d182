-- vecext 0.3.0 -> 0.4.0: PostgreSQL catalog upgrade.
--
-- Applied after vecext--0.2.0--0.3.0.sql by `vecext install`, by the Alembic revision
-- vecext_0_4_0 and by the Docker init script, in the same transaction as the rest
-- of the chain. Released scripts are never edited: a later version adds
-- vecext--0.4.0--<next>.sql.
--
-- The 0.4.0 changes, one section each (later steps of this release append their
-- own numbered sections before the version record at the end):
--
--   1. Code stores: a compressed column's codes live in a narrow table of their own,
--      vecext."store_<id>" (pk, code), kept current by AFTER triggers on the user's
--      table; the user's table is never altered, updated or rewritten. Catalog rows
--      are keyed by the table's OID and the source column's attnum (the names stay,
--      for display); layout 'store' (new) or 'table' (codes in a column of the
--      user's table, as 0.1.0-0.3.0 made them: still read, migrate with
--      vecext.postgres.migrate_to_store).
--   2. Privileges and search_path: vecext.grant_usage(role) for readers, triggers
--      that run as the catalog's owner for writers, and search_path pinned on every
--      function.
--
-- This script changes tables, so the Alembic revision's downgrade refuses to undo it
-- (vecext.postgres.catalog.revert_script names why).

-- ---------------------------------------------------------------------------
-- 1. Code stores

ALTER TABLE vecext.compressed_columns
    ADD COLUMN table_oid     oid,
    ADD COLUMN source_attnum smallint,
    ADD COLUMN key_attnum    smallint,
    ADD COLUMN layout        text NOT NULL DEFAULT 'table' CHECK (layout IN ('store', 'table'));

-- rows of 0.1.0-0.3.0 name their table: resolve it once, now. A row whose table is
-- gone (dropped while its row stayed, issue 13) describes nothing and goes.
UPDATE vecext.compressed_columns k
   SET table_oid = r.oid,
       source_attnum = (SELECT a.attnum FROM pg_attribute a
                         WHERE a.attrelid = r.oid AND a.attname = k.source_column
                           AND a.attnum > 0 AND NOT a.attisdropped),
       key_attnum = (SELECT a.attnum FROM pg_attribute a
                      WHERE a.attrelid = r.oid AND a.attname = k.key_column
                        AND a.attnum > 0 AND NOT a.attisdropped)
  FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace
 WHERE n.nspname = k.table_schema AND r.relname = k.table_name AND r.relkind IN ('r', 'p');
DELETE FROM vecext.compressed_columns WHERE table_oid IS NULL OR source_attnum IS NULL;
ALTER TABLE vecext.compressed_columns
    ALTER COLUMN table_oid SET NOT NULL,
    ALTER COLUMN source_attnum SET NOT NULL,
    DROP CONSTRAINT IF EXISTS compressed_columns_table_schema_table_name_code_column_key,
    ADD CONSTRAINT compressed_columns_table_oid_code_column_key UNIQUE (table_oid, code_column);
ALTER TABLE vecext.compressed_columns ALTER COLUMN layout SET DEFAULT 'store';
COMMENT ON COLUMN vecext.compressed_columns.table_oid IS
    'the table (pg_class OID); table_schema and table_name are its names when registered';
COMMENT ON COLUMN vecext.compressed_columns.layout IS
    'store: codes in vecext."store_<id>" (pk, code); table: codes in column code_column of the table';

-- The name of a compressed column's code store in schema vecext.
CREATE FUNCTION vecext.store_name(id bigint) RETURNS name
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT ('store_' || id)::name $$;

-- The code store of compressed column tbl.code_column (NULL for layout 'table', whose
-- codes are the column code_column of tbl): SELECT pk, code FROM <it>.
CREATE FUNCTION vecext.code_store(tbl regclass, code_column name) RETURNS regclass
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$ SELECT to_regclass(format('vecext.%I', vecext.store_name(k.id)))
        FROM vecext.compressed_columns k
       WHERE k.table_oid = tbl AND k.code_column = code_store.code_column AND k.layout = 'store' $$;

-- The schema pgvector is installed in (its types and operators are qualified with it).
CREATE FUNCTION vecext.pgvector_schema() RETURNS name
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT n.nspname FROM pg_catalog.pg_extension e
      JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector' $$;

-- The row trigger of a code store: AFTER INSERT OR UPDATE OF (source, key) OR DELETE.
-- TG_ARGV: store table (in vecext), codec, source attnum, key attnum. Columns are
-- found by attnum, so renaming the table or its columns changes nothing. The row's
-- code is written (or replaced), or its store row deleted when the vector is NULL
-- or the row is gone; a changed key moves the code. SECURITY DEFINER: writers of
-- the table need no privilege on schema vecext; search_path is pinned (below).
CREATE FUNCTION vecext.store_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
AS $$
DECLARE
    src name;
    key name;
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
    IF TG_OP = 'INSERT' THEN
        -- the common case, one plain statement (a row with a NULL vector gets no code)
        EXECUTE format(
            'INSERT INTO vecext.%1$I (pk, code) '
            'SELECT ($1).%2$I, vecext.%4$I(($1).%3$I::vector) WHERE ($1).%3$I IS NOT NULL '
            'ON CONFLICT (pk) DO UPDATE SET code = EXCLUDED.code',
            TG_ARGV[0], key, src, TG_ARGV[1] || '_encode') USING NEW;
        RETURN NULL;
    END IF;
    -- UPDATE
    IF TG_OP = 'UPDATE' THEN
        -- the key changed: the old key's code goes, unless another row of the same
        -- statement took that key (UPDATE ... SET id = id + 1)
        EXECUTE format(
            'DELETE FROM vecext.%1$I s WHERE s.pk = ($1).%2$I AND s.pk IS DISTINCT FROM ($2).%2$I '
            'AND NOT EXISTS (SELECT FROM %3$s t WHERE t.%2$I = ($1).%2$I)',
            TG_ARGV[0], key, TG_RELID::regclass) USING OLD, NEW;
    END IF;
    EXECUTE format(
        'WITH d AS (DELETE FROM vecext.%1$I s WHERE s.pk = ($1).%2$I AND ($1).%3$I IS NULL) '
        'INSERT INTO vecext.%1$I AS s (pk, code) '
        'SELECT ($1).%2$I, vecext.%4$I(($1).%3$I::vector) WHERE ($1).%3$I IS NOT NULL '
        'ON CONFLICT (pk) DO UPDATE SET code = EXCLUDED.code',
        TG_ARGV[0], key, src, TG_ARGV[1] || '_encode') USING NEW;
    RETURN NULL;
END
$$;

-- The statement trigger of a code store: AFTER TRUNCATE empties the store too.
CREATE FUNCTION vecext.store_truncate_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
AS $$
BEGIN
    EXECUTE format('TRUNCATE vecext.%I', TG_ARGV[0]);
    RETURN NULL;
END
$$;

-- The SQL type of a codec's codes (pgvector's types schema-qualified).
CREATE FUNCTION vecext.code_type(codec text) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$
SELECT CASE c.kind
         WHEN 'binary' THEN format('bit(%s)', coalesce((c.params #>> '{pretransform,d_out}')::int, c.dim))
         WHEN 'half' THEN format('%I.halfvec(%s)', vecext.pgvector_schema(),
                                 coalesce((c.params #>> '{pretransform,d_out}')::int, c.dim))
         ELSE 'bytea' END
  FROM vecext.codecs c WHERE c.name = codec
$$;

-- Add a compressed column: layout 'store' (the default) makes its code store
-- vecext."store_<id>" (pk, code), the triggers that keep it current and its catalog
-- row, and does not alter the table; layout 'table' adds the code column to the table
-- with a BEFORE trigger, as catalogs 0.1.0-0.3.0 did (for code columns an ORM model
-- declares). The codes start empty (status 'backfilling' when the table has
-- vectors): fill them with vecext.backfill or the Python refresh(). (0.3.0's
-- four-argument function is replaced: a second overload would make calls ambiguous.)
DROP FUNCTION vecext.add_compressed_column(regclass, name, text, name);
CREATE FUNCTION vecext.add_compressed_column(
    tbl regclass, source_column name, codec text, code_column name DEFAULT NULL,
    layout text DEFAULT 'store')
RETURNS name
LANGUAGE plpgsql
AS $$
DECLARE
    c       record;
    src     record;
    rel     record;
    col     name := coalesce(code_column, source_column || '_' || codec);
    pk      record;
    empty   boolean;
    new_id  bigint;
    store   name;
BEGIN
    PERFORM vecext.codec_fingerprint(codec);
    SELECT k.* INTO c FROM vecext.codecs k WHERE k.name = codec;
    SELECT n.nspname, r.relname, r.relkind INTO rel
      FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace WHERE r.oid = tbl;
    IF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    SELECT a.attnum, a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod) AS typ INTO src
      FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = source_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % has no column %', tbl, quote_ident(source_column)
            USING ERRCODE = 'undefined_column';
    END IF;
    -- a vector(d) column, or (code stores only) a halfvec(d) one: storage mode, where
    -- the table keeps half-precision vectors only
    IF NOT EXISTS (SELECT FROM pg_type t
                    WHERE t.oid = src.atttypid
                      AND t.typnamespace = vecext.pgvector_schema()::regnamespace
                      AND (t.typname = 'vector'
                           OR (t.typname = 'halfvec' AND add_compressed_column.layout = 'store')))
       OR src.atttypmod < 0 THEN
        RAISE EXCEPTION 'column %.% is %, but codec % needs vector(%)%', tbl,
            quote_ident(source_column), src.typ, quote_literal(codec), c.dim,
            CASE WHEN add_compressed_column.layout = 'store' THEN format(' or halfvec(%s)', c.dim)
                 ELSE '' END
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    IF src.atttypmod <> c.dim THEN
        RAISE EXCEPTION 'column %.% has dimension % (%), but codec % expects dimension %', tbl,
            quote_ident(source_column), src.atttypmod, src.typ, quote_literal(codec), c.dim
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    SELECT a.attname, a.attnum, format_type(a.atttypid, a.atttypmod) AS typ INTO pk
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = tbl AND i.indisprimary AND i.indnkeyatts = 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % needs a single-column primary key: its code store is keyed by it', tbl
            USING ERRCODE = 'invalid_table_definition';
    END IF;
    IF EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = col
                                          AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'table % already has a column %', tbl, quote_ident(col)
            USING ERRCODE = 'duplicate_column';
    END IF;
    IF layout IS NULL OR layout NOT IN ('store', 'table') THEN
        RAISE EXCEPTION 'layout must be ''store'' or ''table'', got %', quote_nullable(layout)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM vecext.compressed_columns k
                WHERE k.table_oid = tbl AND k.code_column = col) THEN
        RAISE EXCEPTION 'table % already has a compressed column %', tbl, quote_ident(col)
            USING ERRCODE = 'duplicate_object';
    END IF;
    EXECUTE format('SELECT NOT EXISTS (SELECT FROM %s WHERE %I IS NOT NULL)', tbl, source_column)
        INTO empty;
    INSERT INTO vecext.compressed_columns
        (table_schema, table_name, source_column, code_column, codec_name, codec_fingerprint,
         key_column, status, table_oid, source_attnum, key_attnum, layout)
    VALUES (rel.nspname, rel.relname, source_column, col, codec, c.fingerprint, pk.attname,
            CASE WHEN empty THEN 'ready' ELSE 'backfilling' END, tbl, src.attnum, pk.attnum,
            add_compressed_column.layout)
    RETURNING compressed_columns.id INTO new_id;
    IF add_compressed_column.layout = 'table' THEN
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s', tbl, col, vecext.code_type(codec));
        EXECUTE format(
            'CREATE TRIGGER %I BEFORE INSERT OR UPDATE OF %I ON %s FOR EACH ROW '
            'EXECUTE FUNCTION vecext.compressed_column_trigger(%L, %L, %L)',
            left('vecext_' || col, 63), source_column, tbl, source_column, col, codec);
        RETURN col;
    END IF;
    store := vecext.store_name(new_id);
    EXECUTE format('CREATE TABLE vecext.%I (pk %s PRIMARY KEY, code %s NOT NULL)',
                   store, pk.typ, vecext.code_type(codec));
    EXECUTE format('COMMENT ON TABLE vecext.%I IS %L', store,
                   format('vecext code store of %s.%s (%s by codec %s)', tbl, quote_ident(col),
                          quote_ident(source_column), codec));
    EXECUTE format(
        'CREATE TRIGGER %I AFTER INSERT OR UPDATE OF %I, %I OR DELETE ON %s FOR EACH ROW '
        'EXECUTE FUNCTION vecext.store_trigger(%L, %L, %L, %L)',
        store, source_column, pk.attname, tbl, store, codec, src.attnum, pk.attnum);
    EXECUTE format(
        'CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT '
        'EXECUTE FUNCTION vecext.store_truncate_trigger(%L)',
        store || '_truncate', tbl, store);
    RETURN col;
END
$$;

-- Encode the rows whose codes are missing, batch_size rows per transaction.
CREATE OR REPLACE PROCEDURE vecext.backfill(tbl regclass, code_column name, batch_size integer DEFAULT 10000)
LANGUAGE plpgsql
AS $$
DECLARE
    cc      vecext.compressed_columns;
    keytype text;
    q       text;
    pos     text;
    n       bigint;
    last    text;
BEGIN
    IF batch_size IS NULL OR batch_size <= 0 THEN
        RAISE EXCEPTION 'batch_size must be a positive integer, got %', batch_size
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT k.* INTO cc FROM vecext.compressed_columns k
     WHERE k.table_oid = tbl AND k.code_column = backfill.code_column;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%.% is not a vecext compressed column', tbl, quote_ident(code_column)
            USING ERRCODE = 'undefined_object';
    END IF;
    IF vecext.codec_fingerprint(cc.codec_name) <> cc.codec_fingerprint THEN
        RAISE EXCEPTION 'compressed column %.% holds codes of codec % version %, but the catalog holds version %',
            tbl, quote_ident(code_column), quote_literal(cc.codec_name), cc.codec_fingerprint,
            vecext.codec_fingerprint(cc.codec_name) USING ERRCODE = 'VX001';
    END IF;
    SELECT format_type(a.atttypid, a.atttypmod) INTO keytype
      FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = cc.key_column;
    IF cc.layout = 'store' THEN
        -- rows locked FOR SHARE while their codes go in: a concurrent UPDATE or DELETE
        -- waits, then its trigger replaces (or deletes) the code; a row whose vector
        -- became NULL or that was deleted before is skipped, a code the trigger wrote
        -- meanwhile is kept (ON CONFLICT DO NOTHING)
        q := format(
            'WITH batch AS (SELECT t.%1$I AS k, t.%5$I AS v FROM %2$s t '
            '               WHERE ($1::text IS NULL OR t.%1$I > $1::text::%3$s) '
            '                 AND t.%5$I IS NOT NULL '
            '                 AND NOT EXISTS (SELECT FROM vecext.%4$I s WHERE s.pk = t.%1$I) '
            '               ORDER BY t.%1$I LIMIT $2 FOR SHARE OF t), '
            '     ins AS (INSERT INTO vecext.%4$I (pk, code) '
            '             SELECT k, vecext.%6$I(v::%7$s) FROM batch ON CONFLICT (pk) DO NOTHING RETURNING 1) '
            'SELECT (SELECT count(*) FROM ins), (SELECT max(k)::text FROM batch)',
            cc.key_column, tbl, keytype, vecext.store_name(cc.id), cc.source_column,
            cc.codec_name || '_encode', format('%I.vector', vecext.pgvector_schema()));
    ELSE
        q := format(
            'WITH batch AS (SELECT %1$I AS k FROM %2$s '
            '               WHERE ($1::text IS NULL OR %1$I > $1::text::%3$s) '
            '                 AND %4$I IS NULL AND %5$I IS NOT NULL ORDER BY %1$I LIMIT $2), '
            '     upd AS (UPDATE %2$s t SET %4$I = vecext.%6$I(t.%5$I) FROM batch '
            '             WHERE t.%1$I = batch.k RETURNING 1) '
            'SELECT (SELECT count(*) FROM upd), (SELECT max(k)::text FROM batch)',
            cc.key_column, tbl, keytype, cc.code_column, cc.source_column,
            cc.codec_name || '_encode');
    END IF;
    pos := cc.backfill_position;
    LOOP
        EXECUTE q INTO n, last USING pos, batch_size;
        EXIT WHEN last IS NULL;
        pos := last;
        -- the batch and the position commit together: an interrupted backfill resumes here
        UPDATE vecext.compressed_columns
           SET backfill_position = pos, rows_encoded = rows_encoded + n, updated_at = now()
         WHERE id = cc.id;
        COMMIT;
    END LOOP;
    UPDATE vecext.compressed_columns
       SET status = 'ready', backfill_position = NULL, updated_at = now()
     WHERE id = cc.id;
    COMMIT;
END
$$;

-- Drop a compressed column: its code store and triggers (layout 'store') or its code
-- column and trigger (layout 'table'), its IVF lists and its catalog entry, in the
-- caller's transaction; the source column stays.
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
    IF cc.list_column IS NOT NULL THEN
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

-- The k rows of tbl nearest to q among the rows matching filter, best first.
-- filter: {"column": value} (equality) or {"column": [v1, v2]} (IN), ANDed; the
-- values are compared after a cast to the column's type, never formatted into SQL.
-- Without code_column: an exact scan (index scans off, so an ANN index cannot make
-- it approximate). With code_column (a compressed column of vector_column): the
-- best candidates by code distance, as many as the column's calibration says reach
-- recall_target (10 k without one), reranked by the exact distance.
-- Returns min(k, matching rows) rows; ids are the integer primary key.
-- 0.4.0: the catalog row by table OID; codes read from the column's code store.
CREATE OR REPLACE FUNCTION vecext.search(
    tbl regclass, vector_column name, q vector, k integer DEFAULT 10,
    filter jsonb DEFAULT NULL, metric text DEFAULT 'cosine', code_column name DEFAULT NULL,
    recall_target real DEFAULT 0.95)
RETURNS TABLE (id bigint, distance double precision)
LANGUAGE plpgsql STABLE
SET enable_indexscan = off
AS $$
DECLARE
    op     text;
    pk     name;
    pktype text;
    vtype  text;
    conds  text := '';
    key    text;
    ctype  text;
    cc     record;
    mult   real;
    depth  integer;
    dist   text;
    lut    real[];
    qbits  bit varying;
    codes  text;
BEGIN
    IF k IS NULL OR k < 1 OR k > 10000 THEN
        RAISE EXCEPTION 'k must be between 1 and 10000, got %', k
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    op := CASE metric WHEN 'l2' THEN '<->' WHEN 'ip' THEN '<#>' WHEN 'cosine' THEN '<=>' END;
    IF op IS NULL THEN
        RAISE EXCEPTION 'unknown metric %; use one of l2, ip, cosine', quote_literal(metric)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.attname, format_type(a.atttypid, a.atttypmod) INTO pk, pktype
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = tbl AND i.indisprimary AND i.indnkeyatts = 1;
    IF pk IS NULL OR pktype NOT IN ('smallint', 'integer', 'bigint') THEN
        RAISE EXCEPTION 'vecext.search returns bigint ids: table % needs a single-column integer primary key', tbl
            USING ERRCODE = 'invalid_table_definition';
    END IF;
    SELECT format_type(a.atttypid, a.atttypmod) INTO vtype FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = vector_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF vtype IS NULL THEN
        RAISE EXCEPTION 'table % has no column %', tbl, quote_ident(vector_column)
            USING ERRCODE = 'undefined_column';
    END IF;
    IF vtype NOT LIKE 'vector(%)' THEN
        RAISE EXCEPTION 'column %.% is %: search needs a vector(d) column', tbl,
            quote_ident(vector_column), vtype USING ERRCODE = 'datatype_mismatch';
    END IF;
    IF vector_dims(q) <> substring(vtype from '\((\d+)\)')::int THEN
        RAISE EXCEPTION 'the query has dimension %, column %.% is %', vector_dims(q), tbl,
            quote_ident(vector_column), vtype USING ERRCODE = 'data_exception';
    END IF;
    IF filter IS NOT NULL THEN
        IF jsonb_typeof(filter) <> 'object' THEN
            RAISE EXCEPTION 'filter must be a JSON object of column: value'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        FOR key IN SELECT jsonb_object_keys(filter) LOOP
            SELECT format_type(a.atttypid, a.atttypmod) INTO ctype FROM pg_attribute a
             WHERE a.attrelid = tbl AND a.attname = key AND a.attnum > 0 AND NOT a.attisdropped;
            IF ctype IS NULL THEN
                RAISE EXCEPTION 'filter column % does not exist in table %', quote_ident(key), tbl
                    USING ERRCODE = 'undefined_column';
            END IF;
            IF jsonb_typeof(filter -> key) = 'array' THEN
                conds := conds || format(
                    ' AND t.%I = ANY (ARRAY(SELECT jsonb_array_elements_text($2 -> %L))::%s[])',
                    key, key, ctype);
            ELSE
                conds := conds || format(' AND t.%I = ($2 ->> %L)::%s', key, key, ctype);
            END IF;
        END LOOP;
    END IF;
    IF code_column IS NULL THEN
        RETURN QUERY EXECUTE format(
            'SELECT t.%I::bigint, (t.%I %s $1)::float8 AS d FROM %s t WHERE t.%I IS NOT NULL%s '
            'ORDER BY 2, 1 LIMIT %s',
            pk, vector_column, op, tbl, vector_column, conds, k) USING q, filter;
        RETURN;
    END IF;
    SELECT c.kind, c.metric, k2.codec_name, k2.calibration, k2.status, k2.source_column,
           k2.codec_fingerprint = c.fingerprint AS current, k2.layout, k2.id,
           (SELECT a.attname FROM pg_attribute a
             WHERE a.attrelid = tbl AND a.attnum = k2.source_attnum AND NOT a.attisdropped) AS src
      INTO cc
      FROM vecext.compressed_columns k2
      JOIN vecext.codecs c ON c.name = k2.codec_name
     WHERE k2.table_oid = tbl AND k2.code_column = search.code_column;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%.% is not a vecext compressed column', tbl, quote_ident(code_column)
            USING ERRCODE = 'undefined_object';
    END IF;
    IF cc.src IS DISTINCT FROM vector_column OR cc.metric <> metric OR cc.status <> 'ready'
       OR NOT cc.current THEN
        RAISE EXCEPTION 'compressed column %.% cannot rank %: it encodes %, for metric %, status %, codes %',
            tbl, quote_ident(code_column), quote_ident(vector_column), quote_ident(coalesce(cc.src, cc.source_column)),
            cc.metric, cc.status, CASE WHEN cc.current THEN 'current' ELSE 'of another codec version' END
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the smallest calibrated depth multiplier reaching recall_target, else the largest
    SELECT coalesce(
             (SELECT min(m::real) FROM jsonb_each_text(cc.calibration -> 'depth') d(m, r)
               WHERE r::real >= recall_target),
             (SELECT max(m::real) FROM jsonb_each_text(cc.calibration -> 'depth') d(m, r)),
             10)
      INTO mult;
    depth := greatest(k, ceil(mult * k)::int);
    codes := CASE WHEN cc.layout = 'store' THEN 's.code' ELSE format('t.%I', code_column) END;
    IF cc.kind = 'pq' THEN
        EXECUTE format('SELECT vecext.%I($1)', cc.codec_name || '_lut') INTO lut USING q;
        dist := format('vecext.%I(%s, $3)', cc.codec_name || '_distance', codes);
    ELSIF cc.kind = 'binary' THEN
        EXECUTE format('SELECT vecext.%I($1)', cc.codec_name || '_encode') INTO qbits USING q;
        dist := format('(%s <~> $4)', codes);
    ELSE
        dist := format('vecext.%I(%s, $1)', cc.codec_name || '_distance', codes);
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT c.id::bigint, (c.v %s $1)::float8 AS d FROM ('
        '  SELECT t.%I AS id, t.%I AS v, %s AS cd FROM %s t %s'
        '   WHERE t.%I IS NOT NULL AND %s IS NOT NULL%s ORDER BY 3 LIMIT %s) c '
        'ORDER BY 2, 1 LIMIT %s',
        op, pk, vector_column, dist, tbl,
        CASE WHEN cc.layout = 'store'
             THEN format('JOIN vecext.%I s ON s.pk = t.%I', vecext.store_name(cc.id), pk)
             ELSE '' END,
        vector_column, codes, conds, depth, k)
        USING q, filter, lut, qbits;
END
$$;

-- The trigger functions run as their owner with a fixed search_path: pg_catalog,
-- then pgvector's schema (the generated codec functions they call name pgvector's
-- types and operators unqualified), then pg_temp, so a caller's search_path or
-- objects can never change the codes they write.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION vecext.store_trigger() SET search_path = pg_catalog, %I, pg_temp',
                   vecext.pgvector_schema());
    EXECUTE format('ALTER FUNCTION vecext.store_truncate_trigger() SET search_path = pg_catalog, %I, pg_temp',
                   vecext.pgvector_schema());
END
$$;

-- Compressed columns whose table or vector column is gone: their catalog rows, code
-- stores and IVF codecs are dropped; returns their names (table OID.code column).
-- The event trigger below calls it on every DROP; a catalog installed by a role
-- that may not create event triggers (not a superuser) calls it by hand. A table
-- re-created under the same name never sees the old rows (they name the old OID).
CREATE FUNCTION vecext.drop_orphaned_compressed_columns() RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER
AS $$
DECLARE
    k record;
BEGIN
    FOR k IN SELECT c.id, c.layout, c.ivf_codec_name, c.table_oid, c.code_column,
                    format('%s.%s.%s', c.table_schema, c.table_name, c.code_column) AS label
               FROM vecext.compressed_columns c
              WHERE NOT EXISTS (SELECT FROM pg_class r WHERE r.oid = c.table_oid)
                 OR NOT EXISTS (SELECT FROM pg_attribute a
                                 WHERE a.attrelid = c.table_oid AND a.attnum = c.source_attnum
                                   AND NOT a.attisdropped)
              ORDER BY c.id LOOP
        IF k.layout = 'store' THEN
            IF EXISTS (SELECT FROM pg_class r WHERE r.oid = k.table_oid) THEN
                -- the vector column went, the table stayed: its store triggers go too
                EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', vecext.store_name(k.id),
                               k.table_oid::regclass);
                EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s',
                               vecext.store_name(k.id) || '_truncate', k.table_oid::regclass);
            END IF;
            EXECUTE format('DROP TABLE IF EXISTS vecext.%I', vecext.store_name(k.id));
        END IF;
        DELETE FROM vecext.compressed_columns WHERE id = k.id;
        IF k.ivf_codec_name IS NOT NULL THEN
            DELETE FROM vecext.codecs c
             WHERE c.name = k.ivf_codec_name AND c.kind = 'ivf'
               AND NOT EXISTS (SELECT FROM vecext.compressed_columns o
                                WHERE o.codec_name = c.name OR o.ivf_codec_name = c.name);
        END IF;
        RETURN NEXT k.label;
    END LOOP;
END
$$;

-- DROP TABLE / ALTER TABLE DROP COLUMN of a compressed column's table or vector
-- column drops what belonged to it (vecext.drop_orphaned_compressed_columns).
CREATE FUNCTION vecext.on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
AS $$
BEGIN
    IF to_regclass('vecext.compressed_columns') IS NULL THEN
        RETURN;  -- the catalog itself is being dropped
    END IF;
    IF EXISTS (SELECT FROM pg_event_trigger_dropped_objects() o
                WHERE o.object_type IN ('table', 'table column')
                  AND EXISTS (SELECT FROM vecext.compressed_columns c WHERE c.table_oid = o.objid))
    THEN
        PERFORM vecext.drop_orphaned_compressed_columns();
    END IF;
END
$$;

-- Event triggers need a superuser: other installers rely on the checks at use (a
-- dropped table's rows are never read: they name its OID) and call
-- vecext.drop_orphaned_compressed_columns() to reclaim the stores.
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        CREATE EVENT TRIGGER vecext_sql_drop ON sql_drop
            EXECUTE FUNCTION vecext.on_sql_drop();
    END IF;
END
$$;

-- Move a compressed column made before 0.4.0 (layout 'table': codes in the column
-- code_column of tbl) to a code store: the store gets the codes of every row with a
-- vector, the store triggers replace the column's trigger, and the catalog row says
-- layout 'store'. The table is locked against writes (SHARE) while the codes are
-- copied; the old code column stays, no longer kept current: drop it
-- (ALTER TABLE ... DROP COLUMN) when nothing reads it. Returns the store.
CREATE FUNCTION vecext.migrate_to_store(tbl regclass, code_column name) RETURNS regclass
LANGUAGE plpgsql
AS $$
DECLARE
    cc    vecext.compressed_columns;
    src   name;
    pk    record;
    store name;
BEGIN
    SELECT k.* INTO cc FROM vecext.compressed_columns k
     WHERE k.table_oid = tbl AND k.code_column = migrate_to_store.code_column;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%.% is not a vecext compressed column', tbl, quote_ident(code_column)
            USING ERRCODE = 'undefined_object';
    END IF;
    IF cc.layout = 'store' THEN
        RETURN vecext.code_store(tbl, code_column);
    END IF;
    SELECT a.attname INTO src FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attnum = cc.source_attnum AND NOT a.attisdropped;
    SELECT a.attname, a.attnum, format_type(a.atttypid, a.atttypmod) AS typ INTO pk
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = tbl AND i.indisprimary AND i.indnkeyatts = 1;
    IF pk IS NULL THEN
        RAISE EXCEPTION 'table % needs a single-column primary key: its code store is keyed by it', tbl
            USING ERRCODE = 'invalid_table_definition';
    END IF;
    EXECUTE format('LOCK TABLE %s IN SHARE MODE', tbl);
    store := vecext.store_name(cc.id);
    EXECUTE format('CREATE TABLE vecext.%I (pk %s PRIMARY KEY, code %s NOT NULL)',
                   store, pk.typ, vecext.code_type(cc.codec_name));
    EXECUTE format('COMMENT ON TABLE vecext.%I IS %L', store,
                   format('vecext code store of %s.%s (%s by codec %s)', tbl,
                          quote_ident(code_column), quote_ident(src), cc.codec_name));
    EXECUTE format('INSERT INTO vecext.%I (pk, code) SELECT %I, %I FROM %s '
                   'WHERE %I IS NOT NULL AND %I IS NOT NULL',
                   store, pk.attname, code_column, tbl, code_column, src);
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', left('vecext_' || code_column, 63), tbl);
    EXECUTE format(
        'CREATE TRIGGER %I AFTER INSERT OR UPDATE OF %I, %I OR DELETE ON %s FOR EACH ROW '
        'EXECUTE FUNCTION vecext.store_trigger(%L, %L, %L, %L)',
        store, src, pk.attname, tbl, store, cc.codec_name, cc.source_attnum, pk.attnum);
    EXECUTE format(
        'CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT '
        'EXECUTE FUNCTION vecext.store_truncate_trigger(%L)',
        store || '_truncate', tbl, store);
    UPDATE vecext.compressed_columns
       SET layout = 'store', key_attnum = pk.attnum, key_column = pk.attname, updated_at = now()
     WHERE id = cc.id;
    RETURN format('vecext.%I', store)::regclass;
END
$$;

-- ---------------------------------------------------------------------------
-- 2. Privileges and a pinned search_path (issue 13)
--
-- Roles: the catalog's owner (who installed it) changes the catalog; readers search;
-- writers write. The triggers that keep codes and IVF lists current run as their
-- owner (SECURITY DEFINER), so a role with INSERT/UPDATE/DELETE on a table writes
-- through them with no privilege on schema vecext. vecext.grant_usage(role) lets a
-- role search: USAGE on schema vecext, SELECT on the catalog tables and the code
-- stores (today's and, by default privileges, those made later by the same owner),
-- EXECUTE on the functions. Nobody but the owner may change the catalog: no role gets
-- INSERT, UPDATE or DELETE on it.
--
-- search_path: every function of vecext runs with search_path = pg_catalog, <the
-- schema pgvector is installed in>, pg_temp, so neither a caller's search_path nor
-- objects a caller can create change what they compute. The exception is the
-- procedure vecext.backfill (a procedure with a SET clause cannot COMMIT); it names
-- every object it uses with its schema. Per-codec functions made later by
-- save_codec get the same setting (vecext/postgres/sqlgen.py), except a PQ codec's
-- lookup sum, which must stay inlinable and uses built-in operators only.

ALTER FUNCTION vecext.compressed_column_trigger() SECURITY DEFINER;
ALTER FUNCTION vecext.ivf_lists_trigger() SECURITY DEFINER;

-- Let role search the vecext columns of the tables it can read (writer: the same;
-- writing needs nothing from vecext, the triggers run as the catalog's owner).
CREATE FUNCTION vecext.grant_usage(role name, writer boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT pg_has_role(current_user, (SELECT nspowner FROM pg_namespace WHERE nspname = 'vecext'),
                       'USAGE') THEN
        RAISE EXCEPTION 'only the owner of schema vecext (%) grants its use',
            (SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'vecext')
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = grant_usage.role) THEN
        RAISE EXCEPTION 'role % does not exist', quote_ident(role)
            USING ERRCODE = 'undefined_object';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA vecext TO %I', role);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA vecext TO %I', role);
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA vecext TO %I', role);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA vecext GRANT SELECT ON TABLES TO %I', role);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA vecext GRANT EXECUTE ON FUNCTIONS TO %I', role);
END
$$;

-- Undo vecext.grant_usage.
CREATE FUNCTION vecext.revoke_usage(role name) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT pg_has_role(current_user, (SELECT nspowner FROM pg_namespace WHERE nspname = 'vecext'),
                       'USAGE') THEN
        RAISE EXCEPTION 'only the owner of schema vecext (%) revokes its use',
            (SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'vecext')
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA vecext REVOKE SELECT ON TABLES FROM %I', role);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA vecext REVOKE EXECUTE ON FUNCTIONS FROM %I', role);
    EXECUTE format('REVOKE SELECT ON ALL TABLES IN SCHEMA vecext FROM %I', role);
    EXECUTE format('REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA vecext FROM %I', role);
    EXECUTE format('REVOKE USAGE ON SCHEMA vecext FROM %I', role);
END
$$;

-- Whether a role can search: USAGE on schema vecext and SELECT on its catalog.
CREATE FUNCTION vecext.has_usage(role name DEFAULT current_user) RETURNS boolean
LANGUAGE sql STABLE
AS $$ SELECT has_schema_privilege(role, 'vecext', 'USAGE')
         AND has_table_privilege(role, 'vecext.compressed_columns', 'SELECT')
         AND has_table_privilege(role, 'vecext.codecs', 'SELECT') $$;

-- Pin search_path on every vecext function (the procedure vecext.backfill aside), but
-- not on a PQ codec's lookup sum <codec>_distance(bytea, real[]): a SET clause stops
-- PostgreSQL from inlining a SQL function, and an inlined lookup sum is what makes a PQ
-- candidate stage run at all (measured: 0.16-0.30 s inlined against 4.5-5.0 s pinned,
-- 300,000 codes, m=16); it uses built-in operators only, resolved in pg_catalog first.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid FROM pg_proc p
              WHERE p.pronamespace = 'vecext'::regnamespace AND p.prokind = 'f'
                AND NOT (p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql')
                         AND p.proargtypes = '17 1021'::oidvector) LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, %I, pg_temp',
                       f, vecext.pgvector_schema());
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------
-- Every script records itself; the installers check that it did.
UPDATE vecext.installed_version SET version = '0.4.0';
INSERT INTO vecext.install_history (script, version) VALUES ('vecext--0.3.0--0.4.0.sql', '0.4.0');
