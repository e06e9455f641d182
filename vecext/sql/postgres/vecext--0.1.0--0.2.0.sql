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
-- 2. vecext.relevance_map: the adapter lookup and per-query map that
--    relevance_min_similarity and relevance_score each repeated, now shared.

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

-- ---------------------------------------------------------------------------
-- Relevance (see vecext--0.1.0.sql for the methods and their formulas)

-- The monotone map of a relevance adapter for one query: score = sigmoid(a * s + b)
-- for 'platt' and 'cosine-adapter' (a, b computed from q with pgvector inner
-- products), the raw similarity for 'fixed' (a, b NULL); threshold is the
-- adapter's trained threshold. Shared by the two functions below so that their
-- numerics cannot drift apart. All NULL when adapter or q is NULL.
CREATE FUNCTION vecext.relevance_map(
    adapter text, q vector, features jsonb DEFAULT NULL,
    OUT method text, OUT threshold double precision, OUT a double precision, OUT b double precision)
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
    r       record;
    z_a     double precision;
    z_b     double precision;
    fa      double precision := 0;
    fb      double precision := 0;
    missing text;
BEGIN
    IF adapter IS NULL OR q IS NULL THEN
        RETURN;
    END IF;
    SELECT k.method, k.dim, k.params INTO r FROM vecext.relevance_adapters k WHERE k.name = adapter;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown relevance adapter %; known adapters: %', quote_literal(adapter),
            coalesce((SELECT string_agg(k.name, ', ' ORDER BY k.name) FROM vecext.relevance_adapters k), '(none)')
            USING ERRCODE = 'undefined_object';
    END IF;
    method := r.method;
    threshold := (r.params ->> 'threshold')::double precision;
    IF r.method = 'fixed' THEN
        RETURN;
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
END
$$;

-- The cosine similarity a candidate needs for its calibrated score to reach
-- threshold (default: the adapter's trained threshold): score >= threshold <=> s >=
-- the result, so `embedding <=> q <= 1 - vecext.relevance_min_similarity(...)` is
-- the threshold as a distance bound. +-Infinity when no or every similarity passes.
CREATE OR REPLACE FUNCTION vecext.relevance_min_similarity(
    adapter text, q vector, threshold double precision DEFAULT NULL, features jsonb DEFAULT NULL)
RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
    m  record;
    t  double precision;
    lg double precision;
BEGIN
    IF adapter IS NULL OR q IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO m FROM vecext.relevance_map(adapter, q, features);
    t := coalesce(threshold, m.threshold);
    IF t = 'NaN'::double precision OR t IN ('Infinity', '-Infinity') THEN
        RAISE EXCEPTION 'relevance adapter %: threshold must be a finite number, got %', quote_literal(adapter), t
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF m.method = 'fixed' THEN
        RETURN t;
    END IF;
    IF t < 0 OR t > 1 THEN
        RAISE EXCEPTION 'relevance adapter % (%): threshold % is outside [0, 1]', quote_literal(adapter), m.method, t
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF t = 0 THEN
        RETURN '-Infinity';
    ELSIF t = 1 THEN
        RETURN 'Infinity';
    END IF;
    lg := ln(t / (1 - t));
    IF m.a > 0 THEN
        RETURN (lg - m.b) / m.a;
    END IF;
    RETURN CASE WHEN lg > m.b THEN 'Infinity'::double precision ELSE '-Infinity'::double precision END;
END
$$;

-- The calibrated relevance score of a candidate with cosine similarity s (for
-- example 1 - (embedding <=> q)) to query q: in [0, 1] for 'platt' and
-- 'cosine-adapter', s itself for 'fixed'. Equals the Python method's score().
CREATE OR REPLACE FUNCTION vecext.relevance_score(
    adapter text, q vector, s double precision, features jsonb DEFAULT NULL)
RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
    m record;
    x double precision;
BEGIN
    IF adapter IS NULL OR q IS NULL OR s IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO m FROM vecext.relevance_map(adapter, q, features);
    IF m.method = 'fixed' THEN
        RETURN s;
    END IF;
    x := least(greatest(m.a * s + m.b, -700), 700);
    IF x >= 0 THEN
        RETURN 1 / (1 + exp(-x));
    END IF;
    RETURN exp(x) / (1 + exp(x));
END
$$;

-- Every script records itself; the installers check that it did.
UPDATE vecext.installed_version SET version = '0.2.0';
INSERT INTO vecext.install_history (script, version) VALUES ('vecext--0.1.0--0.2.0.sql', '0.2.0');
