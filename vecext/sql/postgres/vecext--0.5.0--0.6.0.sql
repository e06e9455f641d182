-- vecext 0.5.0 -> 0.6.0: PostgreSQL catalog upgrade.
--
-- Applied after vecext--0.4.0--0.5.0.sql by `vecext install`, by the Alembic revision
-- vecext_0_6_0 and by the Docker init script, in the same transaction as the rest
-- of the chain. Released scripts are never edited: a later version adds
-- vecext--0.6.0--<next>.sql.
--
-- The 0.6.0 changes, one section each (later steps of this release append their
-- own numbered sections before the version record at the end):
--
--   1. Mirrored filter columns in the code store: declared filter (and tenant) columns
--      of the user's table are copied into the code store vecext."store_<id>" as
--      columns col_<attnum>, with a btree each, kept current by the store's own
--      trigger, so that a filtered search scans the narrow store alone instead of
--      joining the user's table by primary key (issue 11 item 3; measured in
--      docs/bench-postgres.md). The user's table is not altered, updated or rewritten.
--      compressed_columns.mirror_attnums records the mirrored columns by attnum (renames
--      are followed); stores without mirrors keep working unchanged. The SQL backfill
--      (vecext.backfill) writes the mirrored values with the codes.
--   2. vecext.mirror_columns / vecext.unmirror_columns: mirroring from SQL alone, as
--      vecext.add_compressed_column and vecext.backfill are.
--   3. vecext.search ranks every code of a binary code store: its candidate ordering is
--      one no index serves, so a pgvector HNSW index over the store cannot answer it
--      with a walk that stops at hnsw.ef_search rows (the function's own
--      enable_indexscan = off kept that from happening unless a caller also disabled
--      sequential scans).
--
-- This script changes a table, so the Alembic revision's downgrade undoes it only
-- while no code store mirrors columns (vecext.postgres.catalog.revert_script says why).

-- ---------------------------------------------------------------------------
-- 1. Mirrored filter columns in the code store

ALTER TABLE vecext.compressed_columns ADD COLUMN mirror_attnums int2[];
COMMENT ON COLUMN vecext.compressed_columns.mirror_attnums IS
    'columns of the table mirrored into the code store (layout store), by attnum: store column col_<attnum> holds the value of each row with a code';

-- The row trigger of a code store: AFTER INSERT OR UPDATE OF (source, key, mirrored
-- columns) OR DELETE. TG_ARGV: store table (in vecext), codec, source attnum, key
-- attnum and, when the store keeps IVF lists (0.5.0), the IVF codec ('' for none when
-- mirrored columns follow), then (0.6.0) the attnum of each mirrored column, whose
-- value goes to store column col_<attnum>. Columns are found by attnum, so renaming
-- the table or its columns changes nothing; a mirrored column that is gone is left
-- out (the search no longer reads it). The row's code (and list: the nearest centroid
-- by the IVF codec's metric, ties to the lower list id, as vecext.ivf_lists_trigger
-- and the Python IVFCodec assign) and mirrored values are written or replaced, or its
-- store row deleted when the vector is NULL or the row is gone; a changed key moves
-- the code. An UPDATE that leaves the vector and key alone (a mirrored column changed)
-- only rewrites the mirrored values. An IVF codec that is gone writes no list. SECURITY
-- DEFINER: writers of the table need no privilege on schema vecext; search_path is
-- pinned (below).
CREATE OR REPLACE FUNCTION vecext.store_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
AS $$
DECLARE
    src   name;
    key   name;
    op    text;
    same  boolean;
    lcols text := '';
    lvals text := '';
    lset  text := '';
    mcols text := '';
    mvals text := '';
    mset  text := '';
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
    IF TG_NARGS > 5 THEN
        SELECT coalesce(string_agg(format(', %I', 'col_' || m.n), '' ORDER BY m.i), ''),
               coalesce(string_agg(format(', ($1).%I', a.attname), '' ORDER BY m.i), ''),
               coalesce(string_agg(format(', %1$I = EXCLUDED.%1$I', 'col_' || m.n), '' ORDER BY m.i), '')
          INTO mcols, mvals, mset
          FROM unnest(TG_ARGV[5:TG_NARGS - 1]) WITH ORDINALITY AS m(n, i)
          JOIN pg_catalog.pg_attribute a
            ON a.attrelid = TG_RELID AND a.attnum = m.n::int2 AND NOT a.attisdropped;
        IF TG_OP = 'UPDATE' AND mcols <> '' THEN
            EXECUTE format('SELECT ($1).%1$I IS NOT DISTINCT FROM ($2).%1$I AND ($1).%2$I = ($2).%2$I',
                           src, key) INTO same USING OLD, NEW;
            IF same THEN
                -- only mirrored columns changed: the code and list stand
                EXECUTE format('UPDATE vecext.%I s SET (%s) = ROW(%s) WHERE s.pk = ($1).%I',
                               TG_ARGV[0], substr(mcols, 3), substr(mvals, 3), key) USING NEW;
                RETURN NULL;
            END IF;
        END IF;
    END IF;
    IF TG_NARGS > 4 AND TG_ARGV[4] <> '' THEN
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
    lcols := lcols || mcols;
    lvals := lvals || mvals;
    lset := lset || mset;
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

-- Encode the rows whose codes are missing, batch_size rows per transaction (0.4.0's
-- procedure; from 0.6.0 a store's mirrored columns get their values with the code, read
-- from the same locked row).
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
    mpick   text := '';
    mcols   text := '';
    mvals   text := '';
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
        -- the mirrored columns (0.6.0): store column col_<attnum> from the table's column
        SELECT coalesce(string_agg(format(', t.%I AS %I', a.attname, 'm' || a.attnum), '' ORDER BY m.i), ''),
               coalesce(string_agg(format(', %I', 'col_' || a.attnum), '' ORDER BY m.i), ''),
               coalesce(string_agg(format(', %I', 'm' || a.attnum), '' ORDER BY m.i), '')
          INTO mpick, mcols, mvals
          FROM unnest(cc.mirror_attnums) WITH ORDINALITY AS m(n, i)
          JOIN pg_catalog.pg_attribute a ON a.attrelid = tbl AND a.attnum = m.n AND NOT a.attisdropped;
        -- rows locked FOR SHARE while their codes go in: a concurrent UPDATE or DELETE
        -- waits, then its trigger replaces (or deletes) the code; a row whose vector
        -- became NULL or that was deleted before is skipped, a code the trigger wrote
        -- meanwhile is kept (ON CONFLICT DO NOTHING)
        q := format(
            'WITH batch AS (SELECT t.%1$I AS k, t.%5$I AS v%8$s FROM %2$s t '
            '               WHERE ($1::text IS NULL OR t.%1$I > $1::text::%3$s) '
            '                 AND t.%5$I IS NOT NULL '
            '                 AND NOT EXISTS (SELECT FROM vecext.%4$I s WHERE s.pk = t.%1$I) '
            '               ORDER BY t.%1$I LIMIT $2 FOR SHARE OF t), '
            '     ins AS (INSERT INTO vecext.%4$I (pk, code%9$s) '
            '             SELECT k, vecext.%6$I(v::%7$s)%10$s FROM batch ON CONFLICT (pk) DO NOTHING RETURNING 1) '
            'SELECT (SELECT count(*) FROM ins), (SELECT max(k)::text FROM batch)',
            cc.key_column, tbl, keytype, vecext.store_name(cc.id), cc.source_column,
            cc.codec_name || '_encode', format('%I.vector', vecext.pgvector_schema()),
            mpick, mcols, mvals);
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

-- CREATE OR REPLACE resets a function's settings: the trigger gets 0.5.0's back (its
-- SECURITY DEFINER from its definition), search_path pinned as on every vecext function.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION vecext.store_trigger() SET search_path = pg_catalog, %I, pg_temp',
                   vecext.pgvector_schema());
END
$$;

-- ---------------------------------------------------------------------------
-- 2. Mirroring from SQL: vecext.mirror_columns and vecext.unmirror_columns
--
-- The SQL face of vecext.postgres.mirror_columns / unmirror_columns, for clients
-- without Python (as vecext.add_compressed_column and vecext.backfill are): the same
-- store columns col_<attnum>, btrees, trigger arguments and catalog record. A function
-- cannot commit, so mirror_columns fills the store's rows with one UPDATE in the
-- caller's transaction; its CREATE OR REPLACE TRIGGER locks the user's table first (the
-- order writers take the locks; SHARE ROW EXCLUSIVE: reads go on, writes wait) and the
-- store stays locked (ACCESS EXCLUSIVE: searches through it wait) until that
-- transaction ends. (vecext.postgres.mirror_columns fills in committed batches instead,
-- holding those locks only briefly.)

-- Mirror columns of tbl into the code store of code_column; returns every column the
-- store mirrors afterwards. Columns mirrored already are left as they are.
CREATE FUNCTION vecext.mirror_columns(tbl regclass, code_column name, columns name[])
RETURNS name[]
LANGUAGE plpgsql
AS $$
DECLARE
    cc    vecext.compressed_columns;
    store name;
    have  int2[];
    added   int2[] := '{}';
    keep  int2[];
    col   name;
    att   record;
    n     int2;
    dup   text;
    srccol   name;
    keycol   name;
    ivf   text;
    args  text;
    upd   text;
    sets  text;
    vals  text;
BEGIN
    SELECT k.* INTO cc FROM vecext.compressed_columns k
     WHERE k.table_oid = tbl AND k.code_column = mirror_columns.code_column;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%.% is not a vecext compressed column', tbl, quote_ident(code_column)
            USING ERRCODE = 'undefined_object';
    END IF;
    IF cc.layout IS DISTINCT FROM 'store' THEN
        RAISE EXCEPTION '%.% keeps its codes in the table (layout ''table''): only a code store mirrors columns; move it with vecext.migrate_to_store first',
            tbl, quote_ident(code_column) USING ERRCODE = 'wrong_object_type';
    END IF;
    IF coalesce(cardinality(columns), 0) = 0 THEN
        RAISE EXCEPTION 'mirror_columns of %.%: name at least one column', tbl, quote_ident(code_column)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT string_agg(quote_ident(d.c), ', ' ORDER BY d.c) INTO dup
      FROM (SELECT u.c FROM unnest(columns) AS u(c) GROUP BY u.c HAVING count(*) > 1) d;
    IF dup IS NOT NULL THEN
        RAISE EXCEPTION 'mirror_columns of %.%: % named twice', tbl, quote_ident(code_column), dup
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    have := coalesce(cc.mirror_attnums, '{}');
    FOREACH col IN ARRAY columns LOOP
        SELECT a.attnum, format_type(a.atttypid, a.atttypmod) AS typ, t.typname INTO att
          FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
         WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'table % has no column % to mirror', tbl, quote_ident(col)
                USING ERRCODE = 'undefined_column';
        END IF;
        IF att.attnum IN (cc.source_attnum, cc.key_attnum) THEN
            RAISE EXCEPTION '%.% is the % column of %: the code store has it already; mirror filter columns only',
                tbl, quote_ident(col),
                CASE WHEN att.attnum = cc.source_attnum THEN 'vector' ELSE 'primary key' END,
                quote_ident(code_column) USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF att.typname IN ('vector', 'halfvec', 'sparsevec') THEN
            RAISE EXCEPTION '%.% is %: vector columns are not mirrored (a filter compares scalar columns)',
                tbl, quote_ident(col), att.typ USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF NOT att.attnum = ANY (have) THEN
            added := added || att.attnum;
        END IF;
    END LOOP;
    IF cardinality(added) > 0 THEN
        store := vecext.store_name(cc.id);
        keep := have || added;
        -- the trigger first (as vecext.postgres.ivf_store.store_trigger makes it): it locks
        -- the user's table before the store, in the order writers take them
        SELECT a.attname INTO srccol FROM pg_attribute a WHERE a.attrelid = tbl AND a.attnum = cc.source_attnum;
        SELECT a.attname INTO keycol FROM pg_attribute a WHERE a.attrelid = tbl AND a.attnum = cc.key_attnum;
        ivf := CASE WHEN cc.list_layout = 'store' THEN cc.ivf_codec_name END;
        SELECT format('%L, %L, %L, %L, %L', store, cc.codec_name, cc.source_attnum, cc.key_attnum, coalesce(ivf, ''))
               || string_agg(format(', %L', m.n), '' ORDER BY m.i),
               format('%I, %I', srccol, keycol) || string_agg(format(', %I', a.attname), '' ORDER BY m.i)
          INTO args, upd
          FROM unnest(keep) WITH ORDINALITY AS m(n, i)
          JOIN pg_attribute a ON a.attrelid = tbl AND a.attnum = m.n AND NOT a.attisdropped;
        EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER INSERT OR UPDATE OF %s OR DELETE ON %s FOR EACH ROW '
                       'EXECUTE FUNCTION vecext.store_trigger(%s)', store, upd, tbl, args);
        FOREACH n IN ARRAY added LOOP
            SELECT format_type(a.atttypid, a.atttypmod) AS typ,
                   CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                        THEN format(' COLLATE %I.%I', cn.nspname, co.collname) ELSE '' END AS coll
              INTO att
              FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
              LEFT JOIN pg_collation co ON co.oid = a.attcollation
              LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
             WHERE a.attrelid = tbl AND a.attnum = n;
            EXECUTE format('ALTER TABLE vecext.%I DROP COLUMN IF EXISTS %I', store, 'col_' || n);
            EXECUTE format('ALTER TABLE vecext.%I ADD COLUMN %I %s%s', store, 'col_' || n, att.typ, att.coll);
        END LOOP;
        SELECT string_agg(format('%I', 'col_' || m.n), ', ' ORDER BY m.i),
               string_agg(format('t.%I', a.attname), ', ' ORDER BY m.i)
          INTO sets, vals
          FROM unnest(added) WITH ORDINALITY AS m(n, i)
          JOIN pg_attribute a ON a.attrelid = tbl AND a.attnum = m.n;
        EXECUTE format('UPDATE vecext.%I s SET (%s) = ROW(%s) FROM %s t WHERE s.pk = t.%I',
                       store, sets, vals, tbl, keycol);
        FOREACH n IN ARRAY added LOOP
            EXECUTE format('CREATE INDEX %I ON vecext.%I (%I)', store || '_col_' || n || '_idx', store, 'col_' || n);
        END LOOP;
        UPDATE vecext.compressed_columns SET mirror_attnums = keep WHERE id = cc.id;
        EXECUTE format('ANALYZE vecext.%I', store);
    ELSE
        keep := have;
    END IF;
    RETURN ARRAY(SELECT a.attname FROM unnest(keep) WITH ORDINALITY AS m(n, i)
                   JOIN pg_attribute a ON a.attrelid = tbl AND a.attnum = m.n AND NOT a.attisdropped
                  ORDER BY m.i);
END
$$;

-- Stop mirroring columns of tbl into the code store of code_column, in the caller's
-- transaction: the trigger no longer writes or watches them and their store columns
-- (and btrees) go; returns the columns still mirrored. Call it before dropping a
-- mirrored column of the table (the trigger fires on updates of it).
CREATE FUNCTION vecext.unmirror_columns(tbl regclass, code_column name, columns name[])
RETURNS name[]
LANGUAGE plpgsql
AS $$
DECLARE
    cc      vecext.compressed_columns;
    store   name;
    have    name[];
    unknown text;
    keep    int2[];
    gone    int2[];
    n       int2;
    srccol     name;
    keycol     name;
    ivf     text;
    args    text;
    upd     text;
BEGIN
    SELECT k.* INTO cc FROM vecext.compressed_columns k
     WHERE k.table_oid = tbl AND k.code_column = unmirror_columns.code_column;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%.% is not a vecext compressed column', tbl, quote_ident(code_column)
            USING ERRCODE = 'undefined_object';
    END IF;
    have := ARRAY(SELECT a.attname FROM unnest(coalesce(cc.mirror_attnums, '{}')) WITH ORDINALITY AS m(n, i)
                    JOIN pg_attribute a ON a.attrelid = tbl AND a.attnum = m.n AND NOT a.attisdropped
                   ORDER BY m.i);
    SELECT string_agg(quote_ident(u.c), ', ' ORDER BY u.c) INTO unknown
      FROM (SELECT DISTINCT c FROM unnest(columns) AS c) u WHERE NOT u.c = ANY (have);
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION '%.% does not mirror % (it mirrors: %)', tbl, quote_ident(code_column), unknown,
            coalesce(nullif(array_to_string(have, ', '), ''), 'nothing')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT coalesce(array_agg(m.n ORDER BY m.i) FILTER (WHERE NOT a.attname = ANY (columns)), '{}'),
           coalesce(array_agg(m.n ORDER BY m.i) FILTER (WHERE a.attname = ANY (columns)), '{}')
      INTO keep, gone
      FROM unnest(coalesce(cc.mirror_attnums, '{}')) WITH ORDINALITY AS m(n, i)
      JOIN pg_attribute a ON a.attrelid = tbl AND a.attnum = m.n AND NOT a.attisdropped;
    IF cardinality(gone) = 0 THEN
        RETURN have;
    END IF;
    store := vecext.store_name(cc.id);
    UPDATE vecext.compressed_columns SET mirror_attnums = nullif(keep, '{}') WHERE id = cc.id;
    SELECT a.attname INTO srccol FROM pg_attribute a WHERE a.attrelid = tbl AND a.attnum = cc.source_attnum;
    SELECT a.attname INTO keycol FROM pg_attribute a WHERE a.attrelid = tbl AND a.attnum = cc.key_attnum;
    ivf := CASE WHEN cc.list_layout = 'store' THEN cc.ivf_codec_name END;
    args := format('%L, %L, %L, %L', store, cc.codec_name, cc.source_attnum, cc.key_attnum);
    upd := format('%I, %I', srccol, keycol);
    IF cardinality(keep) > 0 THEN
        SELECT args || format(', %L', coalesce(ivf, '')) || string_agg(format(', %L', m.n), '' ORDER BY m.i),
               upd || string_agg(format(', %I', a.attname), '' ORDER BY m.i)
          INTO args, upd
          FROM unnest(keep) WITH ORDINALITY AS m(n, i)
          JOIN pg_attribute a ON a.attrelid = tbl AND a.attnum = m.n;
    ELSIF ivf IS NOT NULL THEN
        args := args || format(', %L', ivf);
    END IF;
    EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER INSERT OR UPDATE OF %s OR DELETE ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION vecext.store_trigger(%s)', store, upd, tbl, args);
    FOREACH n IN ARRAY gone LOOP
        EXECUTE format('ALTER TABLE vecext.%I DROP COLUMN IF EXISTS %I', store, 'col_' || n);
    END LOOP;
    RETURN ARRAY(SELECT a.attname FROM unnest(keep) WITH ORDINALITY AS m(n, i)
                   JOIN pg_attribute a ON a.attrelid = tbl AND a.attnum = m.n ORDER BY m.i);
END
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION vecext.mirror_columns(regclass, name, name[]) SET search_path = pg_catalog, %I, pg_temp',
                   vecext.pgvector_schema());
    EXECUTE format('ALTER FUNCTION vecext.unmirror_columns(regclass, name, name[]) SET search_path = pg_catalog, %I, pg_temp',
                   vecext.pgvector_schema());
END
$$;

-- ---------------------------------------------------------------------------
-- 3. vecext.search: the code ranking no index can serve
--
-- As in 0.4.0, but for binary codes the candidate distance is (code <~> q) + 0: with
-- an HNSW index on the store (vecext.postgres.create_vector_index on a compressed
-- column) and sequential scans disabled by the caller, PostgreSQL answered the
-- candidate stage's ORDER BY with a walk of that index, which returns at most
-- hnsw.ef_search rows (1 row instead of k at ef_search 1). Measured the same
-- otherwise: the scan ranks every code either way.

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
        -- + 0: an ordering no index over the codes serves, so every code is ranked (a
        -- walk of an HNSW index over the store stops at hnsw.ef_search candidates)
        dist := format('((%s <~> $4) + 0)', codes);
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


-- CREATE OR REPLACE resets a function's settings: search_path pinned again (its
-- enable_indexscan = off is part of its definition).
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION vecext.search(regclass, name, vector, integer, jsonb, text, name, real) SET search_path = pg_catalog, %I, pg_temp',
                   vecext.pgvector_schema());
END
$$;

-- ---------------------------------------------------------------------------
-- Every script records itself; the installers check that it did.
UPDATE vecext.installed_version SET version = '0.6.0';
INSERT INTO vecext.install_history (script, version) VALUES ('vecext--0.5.0--0.6.0.sql', '0.6.0');
