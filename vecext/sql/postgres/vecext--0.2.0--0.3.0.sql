-- vecext 0.2.0 -> 0.3.0: PostgreSQL catalog upgrade.
--
-- Applied after vecext--0.1.0--0.2.0.sql by `vecext install`, by the Alembic revision
-- vecext_0_3_0 and by the Docker init script, in the same transaction as the rest
-- of the chain. Released scripts are never edited: a later version adds
-- vecext--0.3.0--<next>.sql.
--
-- The 0.3.0 changes, one section each (later steps of this release append their
-- own numbered sections before the version record at the end):
--
--   1. SQL naming: the generic codec functions form one group, vecext.codec_*,
--      and take their arguments in the order of the per-codec functions.
--
-- The Alembic revision's downgrade (vecext.postgres.catalog.revert_script) undoes
-- a script that only creates or replaces functions and procedures: the ones it
-- created are dropped, the ones it replaced get their 0.2.0 definitions back.

-- ---------------------------------------------------------------------------
-- 1. SQL naming
--
-- One prefix, grouped by kind, one argument order (STYLE rule 3). Every function
-- about a stored codec is vecext.codec_<verb>(codec, ...), and takes the codes
-- before the query, as each codec's own vecext.<codec>_distance(codes, q) does
-- (the generic vecext.distance(codec, q, codes) had them the other way round).
--
--     0.1.0 name (deprecated alias)         0.3.0 name
--     vecext.encode(codec, v)               vecext.codec_encode(codec, v)
--     vecext.decode(codec, codes)           vecext.codec_decode(codec, codes)
--     vecext.distance(codec, q, codes)      vecext.codec_distance(codec, codes, q)
--     vecext.pq_lut(codec, q)               vecext.codec_lut(codec, q)
--     vecext.codec_fingerprint(codec)       (unchanged)
--
-- The old names keep working, with their old argument order, in SQL that users
-- and saved views already hold. Their PL/pgSQL bodies (vecext--0.1.0.sql) stay
-- the implementation; each new name is one SQL expression over it, which the
-- planner inlines, so the new names cost nothing extra and a downgrade has
-- nothing but these four functions to drop. DuckDB gets the same names from its
-- macros (vecext/duckdb/macros.py). A codec can therefore no longer be named
-- "codec" (its vecext.codec_encode would shadow the generic one), as "pq" could
-- not be (vecext.pq_lut).

-- Encode a vector with a stored codec: the bytes of the Python codec's encode().
CREATE FUNCTION vecext.codec_encode(codec text, v vector) RETURNS bytea
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$ SELECT vecext.encode(codec, v) $$;

-- Reconstruct a vector (in the input space) from codes.
CREATE FUNCTION vecext.codec_decode(codec text, codes bytea) RETURNS vector
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$ SELECT vecext.decode(codec, codes) $$;

-- Estimated distance between codes and a query, as the Python codec's distances().
CREATE FUNCTION vecext.codec_distance(codec text, codes bytea, q vector) RETURNS real
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$ SELECT vecext.distance(codec, q, codes) $$;

-- A PQ query's lookup table, M x 256 values, sub-quantizer major.
CREATE FUNCTION vecext.codec_lut(codec text, q vector) RETURNS real[]
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$ SELECT vecext.pq_lut(codec, q) $$;

-- ---------------------------------------------------------------------------
-- Every script records itself; the installers check that it did.
UPDATE vecext.installed_version SET version = '0.3.0';
INSERT INTO vecext.install_history (script, version) VALUES ('vecext--0.2.0--0.3.0.sql', '0.3.0');
