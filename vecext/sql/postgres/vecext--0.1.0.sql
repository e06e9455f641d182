-- vecext 0.1.0: catalog schema for PostgreSQL (requires pgvector >= 0.7).
--
-- Applied by `vecext install`, by the Alembic revision in migrations/ and by
-- the Docker init script, always inside one transaction. Released scripts are
-- never edited: a later version adds vecext--0.1.0--<next>.sql.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE SCHEMA vecext;
COMMENT ON SCHEMA vecext IS 'vecext catalog: codecs, compressed columns, relevance adapters';

-- One row: the installed catalog version, checked before every install or upgrade.
CREATE TABLE vecext.installed_version (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version      text NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT now()
);

-- Every script applied, in order.
CREATE TABLE vecext.install_history (
    script     text PRIMARY KEY,
    version    text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- A trained codec (or coarse quantizer): its parameters and fingerprint.
-- The fingerprint identifies one trained version: codes made by another
-- version of the same name are refused.
CREATE TABLE vecext.codecs (
    name           text PRIMARY KEY CHECK (name ~ '^[a-z_][a-z0-9_]{0,62}$'),
    kind           text NOT NULL,
    dim            integer NOT NULL CHECK (dim > 0),
    metric         text NOT NULL CHECK (metric IN ('l2', 'ip', 'cosine')),
    code_size      integer NOT NULL CHECK (code_size >= 0),
    params         jsonb NOT NULL DEFAULT '{}',
    fingerprint    text NOT NULL,
    format_version integer NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- The codec's arrays exactly as trained (little-endian raw bytes), so that a
-- codec round-trips bit for bit through the catalog.
CREATE TABLE vecext.codec_arrays (
    codec_name text NOT NULL REFERENCES vecext.codecs (name) ON DELETE CASCADE,
    array_name text NOT NULL,
    dtype      text NOT NULL,
    shape      integer[] NOT NULL,
    data       bytea NOT NULL,
    PRIMARY KEY (codec_name, array_name)
);

-- The same codebooks as pgvector vectors, so SQL alone can encode a vector and
-- build a query's lookup table: part = 'pq' (sub = subquantizer, idx =
-- centroid), 'rotation' / 'pca' (idx = output row), 'mean', 'ivf' (idx = list).
CREATE TABLE vecext.codebook_vectors (
    codec_name text NOT NULL REFERENCES vecext.codecs (name) ON DELETE CASCADE,
    part       text NOT NULL,
    sub        integer NOT NULL DEFAULT 0,
    idx        integer NOT NULL,
    vec        vector NOT NULL,
    PRIMARY KEY (codec_name, part, sub, idx)
);

-- A compressed column kept beside a source vector column.
CREATE TABLE vecext.compressed_columns (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_schema      text NOT NULL,
    table_name        text NOT NULL,
    source_column     text NOT NULL,
    code_column       text NOT NULL,
    codec_name        text NOT NULL REFERENCES vecext.codecs (name),
    codec_fingerprint text NOT NULL,
    key_column        text,
    list_column       text,
    ivf_codec_name    text REFERENCES vecext.codecs (name),
    status            text NOT NULL DEFAULT 'backfilling'
                      CHECK (status IN ('backfilling', 'ready')),
    backfill_position text,
    rows_encoded      bigint NOT NULL DEFAULT 0,
    calibration       jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (table_schema, table_name, code_column)
);

-- A declared tenant column: searches on the table are always restricted to one
-- tenant, large tenants get partial indexes, small ones exact scans.
CREATE TABLE vecext.tenant_columns (
    table_schema  text NOT NULL,
    table_name    text NOT NULL,
    tenant_column text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_schema, table_name)
);

-- A trained relevance method (fixed threshold, Platt, Cosine Adapter).
CREATE TABLE vecext.relevance_adapters (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z_][a-z0-9_]{0,62}$'),
    method      text NOT NULL,
    dim         integer CHECK (dim > 0),
    version     integer NOT NULL DEFAULT 1,
    params      jsonb NOT NULL DEFAULT '{}',
    fingerprint text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE vecext.relevance_arrays (
    adapter_name text NOT NULL REFERENCES vecext.relevance_adapters (name) ON DELETE CASCADE,
    array_name   text NOT NULL,
    dtype        text NOT NULL,
    shape        integer[] NOT NULL,
    data         bytea NOT NULL,
    vec          vector,
    PRIMARY KEY (adapter_name, array_name)
);

-- The catalog version as SQL sees it.
CREATE FUNCTION vecext.vecext_version() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT version FROM vecext.installed_version $$;

-- ---------------------------------------------------------------------------
-- Generic codec functions. They dispatch to the functions generated for each
-- trained codec (vecext.<codec>_encode, ...; see vecext/postgres/sqlgen.py), whose
-- comment records the codec version they were generated from.

-- The fingerprint of a codec's trained version. Raises if the codec is unknown,
-- or if its generated functions belong to another version (SQLSTATE VX001).
CREATE FUNCTION vecext.codec_fingerprint(codec text) RETURNS text
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    fp   text;
    made text;
BEGIN
    SELECT c.fingerprint INTO fp FROM vecext.codecs c WHERE c.name = codec;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown codec %; known codecs: %', quote_literal(codec),
            coalesce((SELECT string_agg(c.name, ', ' ORDER BY c.name) FROM vecext.codecs c), '(none)')
            USING ERRCODE = 'undefined_object';
    END IF;
    made := obj_description(
        to_regprocedure(format('vecext.%I(vector)', codec || '_prepare')), 'pg_proc');
    IF made IS NULL THEN
        RAISE EXCEPTION 'codec % has no SQL functions; save it again (vecext.postgres.save_codec)',
            quote_literal(codec) USING ERRCODE = 'undefined_function';
    END IF;
    IF made <> format('vecext codec %s version %s', codec, fp) THEN
        RAISE EXCEPTION 'codec %: the catalog holds version % but its SQL functions were made for version %',
            quote_literal(codec), fp, split_part(made, ' version ', 2)
            USING ERRCODE = 'VX001',
                  HINT = 'save the codec again, and re-encode codes made by the other version';
    END IF;
    RETURN fp;
END
$$;

-- Encode a vector with a stored codec: the bytes of the Python codec's encode().
CREATE FUNCTION vecext.encode(codec text, v vector) RETURNS bytea
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    c   record;
    out bytea;
BEGIN
    PERFORM vecext.codec_fingerprint(codec);
    SELECT k.kind, k.dim INTO c FROM vecext.codecs k WHERE k.name = codec;
    IF vector_dims(v) <> c.dim THEN
        RAISE EXCEPTION 'codec %: vector has % dimensions, expected %', quote_literal(codec),
            vector_dims(v), c.dim USING ERRCODE = 'data_exception';
    END IF;
    IF c.kind = 'binary' THEN
        -- bit_send: int32 length, then the bits packed most significant first
        EXECUTE format('SELECT substring(bit_send(vecext.%I($1)) from 5)', codec || '_encode')
            INTO out USING v;
    ELSIF c.kind = 'half' THEN
        -- halfvec_send: int16 dim, int16 unused, big-endian halves; codes are little-endian
        EXECUTE format('SELECT substring(halfvec_send(vecext.%I($1)) from 5)', codec || '_encode')
            INTO out USING v;
        out := pg_catalog.decode(
            regexp_replace(pg_catalog.encode(out, 'hex'), '(..)(..)', '\2\1', 'g'), 'hex');
    ELSE
        EXECUTE format('SELECT vecext.%I($1)', codec || '_encode') INTO out USING v;
    END IF;
    RETURN out;
END
$$;

-- Reconstruct a vector (in the input space) from codes.
CREATE FUNCTION vecext.decode(codec text, codes bytea) RETURNS vector
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    c   record;
    out vector;
BEGIN
    PERFORM vecext.codec_fingerprint(codec);
    SELECT k.kind, k.code_size, coalesce((k.params #>> '{pretransform,d_out}')::int, k.dim) AS d_inner
      INTO c FROM vecext.codecs k WHERE k.name = codec;
    IF length(codes) <> c.code_size THEN
        RAISE EXCEPTION 'codec %: codes have % bytes, expected %', quote_literal(codec),
            length(codes), c.code_size USING ERRCODE = 'data_exception';
    END IF;
    IF c.kind = 'binary' THEN
        EXECUTE format(
            'SELECT vecext.%I(substring((''x'' || pg_catalog.encode($1, ''hex''))::varbit from 1 for %s)::bit(%s))',
            codec || '_decode', c.d_inner, c.d_inner) INTO out USING codes;
    ELSIF c.kind = 'half' THEN
        EXECUTE format(
            $q$SELECT vecext.%I((SELECT array_agg(
                CASE WHEN (u >> 10) & 31 = 0 THEN (u & 1023) * 2.0::float8 ^ -24
                     ELSE (1024 + (u & 1023)) * 2.0::float8 ^ (((u >> 10) & 31) - 25) END
                * CASE WHEN u >= 32768 THEN -1 ELSE 1 END ORDER BY i)
              FROM (SELECT i, get_byte($1, 2 * i) + 256 * get_byte($1, 2 * i + 1) AS u
                    FROM generate_series(0, length($1) / 2 - 1) i) s)::halfvec)$q$,
            codec || '_decode') INTO out USING codes;
    ELSE
        EXECUTE format('SELECT vecext.%I($1)', codec || '_decode') INTO out USING codes;
    END IF;
    RETURN out;
END
$$;

-- Estimated distance between a query and codes, as the Python codec's distances().
CREATE FUNCTION vecext.distance(codec text, q vector, codes bytea) RETURNS real
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    c   record;
    out real;
BEGIN
    PERFORM vecext.codec_fingerprint(codec);
    SELECT k.kind, k.dim, k.code_size, coalesce((k.params #>> '{pretransform,d_out}')::int, k.dim) AS d_inner
      INTO c FROM vecext.codecs k WHERE k.name = codec;
    IF vector_dims(q) <> c.dim THEN
        RAISE EXCEPTION 'codec %: query has % dimensions, expected %', quote_literal(codec),
            vector_dims(q), c.dim USING ERRCODE = 'data_exception';
    END IF;
    IF length(codes) <> c.code_size THEN
        RAISE EXCEPTION 'codec %: codes have % bytes, expected %', quote_literal(codec),
            length(codes), c.code_size USING ERRCODE = 'data_exception';
    END IF;
    IF c.kind = 'pq' THEN
        EXECUTE format('SELECT vecext.%I($2, vecext.%I($1))', codec || '_distance', codec || '_lut')
            INTO out USING q, codes;
    ELSIF c.kind = 'binary' THEN
        EXECUTE format(
            'SELECT vecext.%I(substring((''x'' || pg_catalog.encode($2, ''hex''))::varbit from 1 for %s)::bit(%s), vecext.%I($1))',
            codec || '_distance', c.d_inner, c.d_inner, codec || '_encode') INTO out USING q, codes;
    ELSIF c.kind = 'half' THEN
        EXECUTE format(
            $q$SELECT vecext.%I((SELECT array_agg(
                CASE WHEN (u >> 10) & 31 = 0 THEN (u & 1023) * 2.0::float8 ^ -24
                     ELSE (1024 + (u & 1023)) * 2.0::float8 ^ (((u >> 10) & 31) - 25) END
                * CASE WHEN u >= 32768 THEN -1 ELSE 1 END ORDER BY i)
              FROM (SELECT i, get_byte($2, 2 * i) + 256 * get_byte($2, 2 * i + 1) AS u
                    FROM generate_series(0, length($2) / 2 - 1) i) s)::halfvec, $1)$q$,
            codec || '_distance') INTO out USING q, codes;
    ELSE
        EXECUTE format('SELECT vecext.%I($2, $1)', codec || '_distance') INTO out USING q, codes;
    END IF;
    RETURN out;
END
$$;

-- A PQ query's lookup table, M x 256 values, sub-quantizer major.
CREATE FUNCTION vecext.pq_lut(codec text, q vector) RETURNS real[]
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    c   record;
    out real[];
BEGIN
    PERFORM vecext.codec_fingerprint(codec);
    SELECT k.kind, k.dim INTO c FROM vecext.codecs k WHERE k.name = codec;
    IF c.kind <> 'pq' THEN
        RAISE EXCEPTION 'codec % is a % codec; pq_lut needs a pq codec', quote_literal(codec), c.kind
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF vector_dims(q) <> c.dim THEN
        RAISE EXCEPTION 'codec %: query has % dimensions, expected %', quote_literal(codec),
            vector_dims(q), c.dim USING ERRCODE = 'data_exception';
    END IF;
    EXECUTE format('SELECT vecext.%I($1)', codec || '_lut') INTO out USING q;
    RETURN out;
END
$$;

-- ---------------------------------------------------------------------------
-- Compressed columns: a code column beside a vector column, kept current by a
-- trigger, registered in vecext.compressed_columns.

-- The trigger of every compressed column. TG_ARGV: source column, code column, codec.
CREATE FUNCTION vecext.compressed_column_trigger() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    code jsonb;
BEGIN
    EXECUTE format('SELECT to_jsonb(vecext.%I(($1).%I))', TG_ARGV[2] || '_encode', TG_ARGV[0])
        INTO code USING NEW;
    NEW := jsonb_populate_record(NEW, jsonb_build_object(TG_ARGV[1], code));
    RETURN NEW;
END
$$;

CREATE FUNCTION vecext.add_compressed_column(
    tbl regclass, source_column name, codec text, code_column name DEFAULT NULL)
RETURNS name
LANGUAGE plpgsql
AS $$
DECLARE
    c       record;
    src     record;
    rel     record;
    col     name := coalesce(code_column, source_column || '_' || codec);
    coltype text;
    pk      name;
    empty   boolean;
BEGIN
    PERFORM vecext.codec_fingerprint(codec);
    SELECT k.*, coalesce((k.params #>> '{pretransform,d_out}')::int, k.dim) AS d_inner
      INTO c FROM vecext.codecs k WHERE k.name = codec;
    SELECT n.nspname, r.relname, r.relkind INTO rel
      FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace WHERE r.oid = tbl;
    IF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    SELECT a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod) AS typ INTO src
      FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = source_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % has no column %', tbl, quote_ident(source_column)
            USING ERRCODE = 'undefined_column';
    END IF;
    IF src.atttypid <> to_regtype('vector') OR src.atttypmod < 0 THEN
        RAISE EXCEPTION 'column %.% is %, but codec % needs vector(%)', tbl,
            quote_ident(source_column), src.typ, quote_literal(codec), c.dim
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    IF src.atttypmod <> c.dim THEN
        RAISE EXCEPTION 'column %.% has dimension % (%), but codec % expects dimension %', tbl,
            quote_ident(source_column), src.atttypmod, src.typ, quote_literal(codec), c.dim
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    SELECT a.attname INTO pk
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = tbl AND i.indisprimary AND i.indnkeyatts = 1;
    IF pk IS NULL THEN
        RAISE EXCEPTION 'table % needs a single-column primary key for batched backfills', tbl
            USING ERRCODE = 'invalid_table_definition';
    END IF;
    IF EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = col
                                          AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'table % already has a column %', tbl, quote_ident(col)
            USING ERRCODE = 'duplicate_column';
    END IF;
    coltype := CASE c.kind WHEN 'binary' THEN format('bit(%s)', c.d_inner)
                           WHEN 'half' THEN format('halfvec(%s)', c.d_inner)
                           ELSE 'bytea' END;
    EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s', tbl, col, coltype);
    EXECUTE format(
        'CREATE TRIGGER %I BEFORE INSERT OR UPDATE OF %I ON %s FOR EACH ROW '
        'EXECUTE FUNCTION vecext.compressed_column_trigger(%L, %L, %L)',
        left('vecext_' || col, 63), source_column, tbl, source_column, col, codec);
    EXECUTE format('SELECT NOT EXISTS (SELECT FROM %s WHERE %I IS NOT NULL)', tbl, source_column)
        INTO empty;
    INSERT INTO vecext.compressed_columns
        (table_schema, table_name, source_column, code_column, codec_name, codec_fingerprint,
         key_column, status)
    VALUES (rel.nspname, rel.relname, source_column, col, codec, c.fingerprint, pk,
            CASE WHEN empty THEN 'ready' ELSE 'backfilling' END);
    RETURN col;
END
$$;

-- Encode the rows whose codes are missing, batch_size rows per transaction.
CREATE PROCEDURE vecext.backfill(tbl regclass, code_column name, batch_size integer DEFAULT 10000)
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
      JOIN pg_namespace n ON n.nspname = k.table_schema
      JOIN pg_class r ON r.relnamespace = n.oid AND r.relname = k.table_name
     WHERE r.oid = tbl AND k.code_column = backfill.code_column;
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
    q := format(
        'WITH batch AS (SELECT %1$I AS k FROM %2$s '
        '               WHERE ($1::text IS NULL OR %1$I > $1::text::%3$s) '
        '                 AND %4$I IS NULL AND %5$I IS NOT NULL ORDER BY %1$I LIMIT $2), '
        '     upd AS (UPDATE %2$s t SET %4$I = vecext.%6$I(t.%5$I) FROM batch '
        '             WHERE t.%1$I = batch.k RETURNING 1) '
        'SELECT (SELECT count(*) FROM upd), (SELECT max(k)::text FROM batch)',
        cc.key_column, tbl, keytype, cc.code_column, cc.source_column, cc.codec_name || '_encode');
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

-- Drop a code column, its trigger and its catalog entry; the source column stays.
CREATE FUNCTION vecext.drop_compressed_column(tbl regclass, code_column name) RETURNS void
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
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', left('vecext_' || cc.code_column, 63), tbl);
    EXECUTE format('ALTER TABLE %s DROP COLUMN IF EXISTS %I', tbl, cc.code_column);
    DELETE FROM vecext.compressed_columns WHERE id = cc.id;
END
$$;

-- ---------------------------------------------------------------------------
-- Search: IVF coarse lists (the centroids of an 'ivf' codec, stored in
-- vecext.codebook_vectors as part 'centroids') kept current in an integer
-- column by a trigger, and an SQL entry point for exact and two-stage search.

-- The trigger of every IVF list column. TG_ARGV: source column, list column, IVF
-- codec. The list is the nearest centroid (ties to the lower list id) by the
-- codec's metric; cosine centroids are unit vectors, so <=> ranks them.
CREATE FUNCTION vecext.ivf_lists_trigger() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v      vector;
    lst    integer;
    metric text;
BEGIN
    EXECUTE format('SELECT ($1).%I::vector', TG_ARGV[0]) INTO v USING NEW;
    IF v IS NOT NULL THEN
        SELECT k.metric INTO metric FROM vecext.codecs k WHERE k.name = TG_ARGV[2] AND k.kind = 'ivf';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'unknown IVF codec %', quote_literal(TG_ARGV[2])
                USING ERRCODE = 'undefined_object';
        END IF;
        SELECT b.idx INTO lst FROM vecext.codebook_vectors b
         WHERE b.codec_name = TG_ARGV[2] AND b.part = 'centroids'
         ORDER BY CASE metric WHEN 'l2' THEN b.vec <-> v WHEN 'ip' THEN b.vec <#> v
                              ELSE b.vec <=> v END, b.idx
         LIMIT 1;
    END IF;
    NEW := jsonb_populate_record(NEW, jsonb_build_object(TG_ARGV[1], lst));
    RETURN NEW;
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
CREATE FUNCTION vecext.search(
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
                    ' AND %I = ANY (ARRAY(SELECT jsonb_array_elements_text($2 -> %L))::%s[])',
                    key, key, ctype);
            ELSE
                conds := conds || format(' AND %I = ($2 ->> %L)::%s', key, key, ctype);
            END IF;
        END LOOP;
    END IF;
    IF code_column IS NULL THEN
        RETURN QUERY EXECUTE format(
            'SELECT %I::bigint, (%I %s $1)::float8 AS d FROM %s WHERE %I IS NOT NULL%s '
            'ORDER BY 2, 1 LIMIT %s',
            pk, vector_column, op, tbl, vector_column, conds, k) USING q, filter;
        RETURN;
    END IF;
    SELECT c.kind, c.metric, k2.codec_name, k2.calibration, k2.status, k2.source_column,
           k2.codec_fingerprint = c.fingerprint AS current
      INTO cc
      FROM vecext.compressed_columns k2
      JOIN pg_namespace n ON n.nspname = k2.table_schema
      JOIN pg_class r ON r.relnamespace = n.oid AND r.relname = k2.table_name
      JOIN vecext.codecs c ON c.name = k2.codec_name
     WHERE r.oid = tbl AND k2.code_column = search.code_column;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%.% is not a vecext compressed column', tbl, quote_ident(code_column)
            USING ERRCODE = 'undefined_object';
    END IF;
    IF cc.source_column <> vector_column OR cc.metric <> metric OR cc.status <> 'ready'
       OR NOT cc.current THEN
        RAISE EXCEPTION 'compressed column %.% cannot rank %: it encodes %, for metric %, status %, codes %',
            tbl, quote_ident(code_column), quote_ident(vector_column), quote_ident(cc.source_column),
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
    IF cc.kind = 'pq' THEN
        EXECUTE format('SELECT vecext.%I($1)', cc.codec_name || '_lut') INTO lut USING q;
        dist := format('vecext.%I(%I, $3)', cc.codec_name || '_distance', code_column);
    ELSIF cc.kind = 'binary' THEN
        EXECUTE format('SELECT vecext.%I($1)', cc.codec_name || '_encode') INTO qbits USING q;
        dist := format('(%I <~> $4)', code_column);
    ELSE
        dist := format('vecext.%I(%I, $1)', cc.codec_name || '_distance', code_column);
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT c.id::bigint, (c.v %s $1)::float8 AS d FROM ('
        '  SELECT %I AS id, %I AS v, %s AS cd FROM %s'
        '   WHERE %I IS NOT NULL AND %I IS NOT NULL%s ORDER BY 3 LIMIT %s) c '
        'ORDER BY 2, 1 LIMIT %s',
        op, pk, vector_column, dist, tbl, vector_column, code_column, conds, depth, k)
        USING q, filter, lut, qbits;
END
$$;

-- ---------------------------------------------------------------------------
-- Relevance: the calibrated score of a trained relevance method stored in
-- vecext.relevance_adapters / relevance_arrays (vecext.relevance; saved by
-- vecext.postgres.relevance.save_adapter), computed in SQL. Methods: 'fixed'
-- (score = the cosine s), 'platt' (sigmoid(A s + B)) and 'cosine-adapter':
--   z_a = -(w_a <#> q) + c_a + sum_j v_a[j] f_j     (f: distribution features, if any)
--   z_b = -(w_b <#> q) + c_b + sum_j v_b[j] f_j
--   a = softplus(z_a) / s_scale,  b = z_b - a s_center,  score = sigmoid(a s + b)
-- Since a > 0 the score grows with s, and score >= T  <=>  s >= s_min = (logit T - b) / a.
-- exp() arguments are clamped to +-700: PostgreSQL raises on float8 under- or overflow.

-- The distribution features an adapter uses, from the cosine similarities of the
-- query's candidates (its top N, N >= 10 as in training; any order), as the JSON
-- object relevance_score and relevance_min_similarity take: {"mean10": 0.61, ...}.
-- '{}' for an adapter without features.
CREATE FUNCTION vecext.relevance_features(adapter text, sims double precision[]) RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    p   jsonb;
    s   double precision[];
    n   integer;
    f   text;
    out jsonb := '{}';
BEGIN
    SELECT k.params INTO p FROM vecext.relevance_adapters k WHERE k.name = adapter;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown relevance adapter %; known adapters: %', quote_literal(adapter),
            coalesce((SELECT string_agg(k.name, ', ' ORDER BY k.name) FROM vecext.relevance_adapters k), '(none)')
            USING ERRCODE = 'undefined_object';
    END IF;
    SELECT array_agg(x ORDER BY x DESC) INTO s FROM unnest(sims) x WHERE x IS NOT NULL;
    n := coalesce(array_length(s, 1), 0);
    FOR f IN SELECT jsonb_array_elements_text(coalesce(p -> 'features', '[]')) LOOP
        IF n = 0 THEN
            RAISE EXCEPTION 'relevance adapter %: feature % needs the similarities of the query''s candidates, got none',
                quote_literal(adapter), f USING ERRCODE = 'invalid_parameter_value';
        END IF;
        out := out || jsonb_build_object(f, CASE f
            WHEN 'top1' THEN s[1]
            WHEN 'gap12' THEN s[1] - s[least(2, n)]
            WHEN 'mean10' THEN (SELECT avg(x) FROM unnest(s[1:10]) x)
            WHEN 'gap1_10' THEN s[1] - s[least(10, n)]
            WHEN 'std10' THEN (SELECT stddev_pop(x) FROM unnest(s[1:10]) x)
        END);
    END LOOP;
    RETURN out;
END
$$;

-- The cosine similarity a candidate needs for its calibrated score to reach
-- threshold (default: the adapter's trained threshold): score >= threshold <=> s >=
-- the result, so `embedding <=> q <= 1 - vecext.relevance_min_similarity(...)` is
-- the threshold as a distance bound. +-Infinity when no or every similarity passes.
CREATE FUNCTION vecext.relevance_min_similarity(
    adapter text, q vector, threshold double precision DEFAULT NULL, features jsonb DEFAULT NULL)
RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
    r       record;
    t       double precision;
    z_a     double precision;
    z_b     double precision;
    fa      double precision := 0;
    fb      double precision := 0;
    missing text;
    a       double precision;
    b       double precision;
    lg      double precision;
BEGIN
    IF adapter IS NULL OR q IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT k.method, k.dim, k.params INTO r FROM vecext.relevance_adapters k WHERE k.name = adapter;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown relevance adapter %; known adapters: %', quote_literal(adapter),
            coalesce((SELECT string_agg(k.name, ', ' ORDER BY k.name) FROM vecext.relevance_adapters k), '(none)')
            USING ERRCODE = 'undefined_object';
    END IF;
    t := coalesce(threshold, (r.params ->> 'threshold')::double precision);
    IF t = 'NaN'::double precision OR t IN ('Infinity', '-Infinity') THEN
        RAISE EXCEPTION 'relevance adapter %: threshold must be a finite number, got %', quote_literal(adapter), t
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF r.method = 'fixed' THEN
        RETURN t;
    END IF;
    IF t < 0 OR t > 1 THEN
        RAISE EXCEPTION 'relevance adapter % (%): threshold % is outside [0, 1]', quote_literal(adapter), r.method, t
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF r.method = 'platt' THEN
        a := (r.params ->> 'A')::double precision;
        b := (r.params ->> 'B')::double precision;
    ELSIF r.method = 'cosine-adapter' THEN
        IF vector_dims(q) <> r.dim THEN
            RAISE EXCEPTION 'relevance adapter % was trained on dimension %, the query has dimension %',
                quote_literal(adapter), r.dim, vector_dims(q) USING ERRCODE = 'data_exception';
        END IF;
        SELECT -(wa.vec <#> q), -(wb.vec <#> q) INTO z_a, z_b
          FROM vecext.relevance_arrays wa, vecext.relevance_arrays wb
         WHERE wa.adapter_name = adapter AND wa.array_name = 'w_a'
           AND wb.adapter_name = adapter AND wb.array_name = 'w_b';
        IF jsonb_array_length(coalesce(r.params -> 'features', '[]')) > 0 THEN
            SELECT string_agg(f.name, ', ' ORDER BY f.i) FILTER (WHERE features ->> f.name IS NULL),
                   sum((r.params -> 'v_a' ->> (f.i - 1)::int)::double precision * (features ->> f.name)::double precision),
                   sum((r.params -> 'v_b' ->> (f.i - 1)::int)::double precision * (features ->> f.name)::double precision)
              INTO missing, fa, fb
              FROM jsonb_array_elements_text(r.params -> 'features') WITH ORDINALITY f(name, i);
            IF features IS NULL OR missing IS NOT NULL THEN
                RAISE EXCEPTION 'relevance adapter % uses the distribution features % of the query''s candidates; missing: %',
                    quote_literal(adapter), r.params -> 'features', coalesce(missing, 'all')
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'pass features => vecext.relevance_features(adapter, <similarities of the query''s top candidates>)';
            END IF;
        END IF;
        z_a := z_a + (r.params ->> 'c_a')::double precision + fa;
        z_b := z_b + (r.params ->> 'c_b')::double precision + fb;
        a := (greatest(z_a, 0) + ln(1 + exp(-least(abs(z_a), 700)))) / (r.params ->> 's_scale')::double precision;
        b := z_b - a * (r.params ->> 's_center')::double precision;
    ELSE
        RAISE EXCEPTION 'relevance adapter % uses method %, which SQL cannot evaluate', quote_literal(adapter), r.method
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF t = 0 THEN
        RETURN '-Infinity';
    ELSIF t = 1 THEN
        RETURN 'Infinity';
    END IF;
    lg := ln(t / (1 - t));
    IF a > 0 THEN
        RETURN (lg - b) / a;
    END IF;
    RETURN CASE WHEN lg > b THEN 'Infinity'::double precision ELSE '-Infinity'::double precision END;
END
$$;

-- The calibrated relevance score of a candidate with cosine similarity s (for
-- example 1 - (embedding <=> q)) to query q: in [0, 1] for 'platt' and
-- 'cosine-adapter', s itself for 'fixed'. Equals the Python method's score().
CREATE FUNCTION vecext.relevance_score(
    adapter text, q vector, s double precision, features jsonb DEFAULT NULL)
RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
    r       record;
    z_a     double precision;
    z_b     double precision;
    fa      double precision := 0;
    fb      double precision := 0;
    missing text;
    a       double precision;
    b       double precision;
    x       double precision;
BEGIN
    IF adapter IS NULL OR q IS NULL OR s IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT k.method, k.dim, k.params INTO r FROM vecext.relevance_adapters k WHERE k.name = adapter;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown relevance adapter %; known adapters: %', quote_literal(adapter),
            coalesce((SELECT string_agg(k.name, ', ' ORDER BY k.name) FROM vecext.relevance_adapters k), '(none)')
            USING ERRCODE = 'undefined_object';
    END IF;
    IF r.method = 'fixed' THEN
        RETURN s;
    ELSIF r.method = 'platt' THEN
        a := (r.params ->> 'A')::double precision;
        b := (r.params ->> 'B')::double precision;
    ELSIF r.method = 'cosine-adapter' THEN
        IF vector_dims(q) <> r.dim THEN
            RAISE EXCEPTION 'relevance adapter % was trained on dimension %, the query has dimension %',
                quote_literal(adapter), r.dim, vector_dims(q) USING ERRCODE = 'data_exception';
        END IF;
        SELECT -(wa.vec <#> q), -(wb.vec <#> q) INTO z_a, z_b
          FROM vecext.relevance_arrays wa, vecext.relevance_arrays wb
         WHERE wa.adapter_name = adapter AND wa.array_name = 'w_a'
           AND wb.adapter_name = adapter AND wb.array_name = 'w_b';
        IF jsonb_array_length(coalesce(r.params -> 'features', '[]')) > 0 THEN
            SELECT string_agg(f.name, ', ' ORDER BY f.i) FILTER (WHERE features ->> f.name IS NULL),
                   sum((r.params -> 'v_a' ->> (f.i - 1)::int)::double precision * (features ->> f.name)::double precision),
                   sum((r.params -> 'v_b' ->> (f.i - 1)::int)::double precision * (features ->> f.name)::double precision)
              INTO missing, fa, fb
              FROM jsonb_array_elements_text(r.params -> 'features') WITH ORDINALITY f(name, i);
            IF features IS NULL OR missing IS NOT NULL THEN
                RAISE EXCEPTION 'relevance adapter % uses the distribution features % of the query''s candidates; missing: %',
                    quote_literal(adapter), r.params -> 'features', coalesce(missing, 'all')
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'pass features => vecext.relevance_features(adapter, <similarities of the query''s top candidates>)';
            END IF;
        END IF;
        z_a := z_a + (r.params ->> 'c_a')::double precision + fa;
        z_b := z_b + (r.params ->> 'c_b')::double precision + fb;
        a := (greatest(z_a, 0) + ln(1 + exp(-least(abs(z_a), 700)))) / (r.params ->> 's_scale')::double precision;
        b := z_b - a * (r.params ->> 's_center')::double precision;
    ELSE
        RAISE EXCEPTION 'relevance adapter % uses method %, which SQL cannot evaluate', quote_literal(adapter), r.method
            USING ERRCODE = 'feature_not_supported';
    END IF;
    x := least(greatest(a * s + b, -700), 700);
    IF x >= 0 THEN
        RETURN 1 / (1 + exp(-x));
    END IF;
    RETURN exp(x) / (1 + exp(x));
END
$$;

-- Every script records itself; the installers check that it did.
INSERT INTO vecext.installed_version (version) VALUES ('0.1.0');
INSERT INTO vecext.install_history (script, version) VALUES ('vecext--0.1.0.sql', '0.1.0');
