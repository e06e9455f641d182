-- vecext 0.2.0 -> 0.3.0: DuckDB catalog upgrade.
--
-- Applied after vecext--0.1.0--0.2.0.sql by vecext.duckdb.install() (and so by
-- vecext.duckdb.connect()), in the same transaction as the rest of the chain.
-- Released scripts are never edited: a later version adds vecext--0.3.0--<next>.sql.
--
-- The 0.3.0 changes, one section each (later steps of this release append their
-- own numbered sections before the version record at the end):
--
--   1. SQL naming: the generic codec functions form one group, vecext.codec_*,
--      and take their arguments in the order of the per-codec functions.

-- ---------------------------------------------------------------------------
-- 1. SQL naming
--
-- The same names and argument orders as PostgreSQL's (see its
-- vecext--0.2.0--0.3.0.sql): vecext.codec_encode(codec, v),
-- vecext.codec_decode(codec, codes), vecext.codec_distance(codec, codes, q) and
-- vecext.codec_lut(codec, q); the 0.1.0 names vecext.encode, decode,
-- distance(codec, q, codes) and pq_lut stay as deprecated aliases. The binary
-- codecs' vecext.<codec>_distance(codes, q) names its query argument q, as every
-- other kind and PostgreSQL do (it was `query`).
--
-- DuckDB's functions are macros over Python UDFs, which exist only while vecext
-- has registered them: vecext.duckdb.attach() (and connect()) recreates every
-- generic and per-codec macro on each writable connection, from
-- vecext/duckdb/macros.py. This step therefore changes no table; the macros of
-- a database take the new names the first time a 0.3.0 vecext opens it.

-- ---------------------------------------------------------------------------
-- Every script records itself; the installers check that it did.
UPDATE vecext.installed_version SET version = '0.3.0';
INSERT INTO vecext.install_history (script, version) VALUES ('vecext--0.2.0--0.3.0.sql', '0.3.0');
