-- vecext 0.5.0 -> 0.6.0: DuckDB catalog upgrade.
--
-- Applied after vecext--0.4.0--0.5.0.sql by vecext.duckdb.install() (and so by
-- vecext.duckdb.connect()), in the same transaction as the rest of the chain.
-- Released scripts are never edited: a later version adds vecext--0.6.0--<next>.sql.
--
-- Catalog 0.6.0 is one version for both databases: PostgreSQL's 0.6.0 mirrors declared
-- filter and tenant columns into a column's code store
-- (sql/postgres/vecext--0.5.0--0.6.0.sql). DuckDB steps of this release append their
-- own numbered sections before the version record at the end.

-- ---------------------------------------------------------------------------
-- 1. The catalog column of PostgreSQL's mirrored filter columns
--
-- vecext.compressed_columns keeps the same columns in both databases (one catalog
-- store, vecext.catalog.columns): PostgreSQL records the columns of the table mirrored
-- into a column's code store, by attnum. DuckDB has no code stores: its rows leave it
-- NULL.
ALTER TABLE vecext.compressed_columns ADD COLUMN mirror_attnums SMALLINT[];

-- ---------------------------------------------------------------------------
-- Every script records itself; the installers check that it did.
UPDATE vecext.installed_version SET version = '0.6.0';
INSERT INTO vecext.install_history (script, version) VALUES ('vecext--0.5.0--0.6.0.sql', '0.6.0');
