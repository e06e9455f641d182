-- vecext 0.4.0 -> 0.5.0: DuckDB catalog upgrade.
--
-- Applied after vecext--0.3.0--0.4.0.sql by vecext.duckdb.install() (and so by
-- vecext.duckdb.connect()), in the same transaction as the rest of the chain.
-- Released scripts are never edited: a later version adds vecext--0.5.0--<next>.sql.
--
-- Catalog 0.5.0 is one version for both databases: PostgreSQL's 0.5.0 keeps the IVF
-- lists of a code-store column in its code store (sql/postgres/vecext--0.4.0--0.5.0.sql).
-- DuckDB steps of this release append their own numbered sections before the version
-- record at the end.

-- ---------------------------------------------------------------------------
-- 1. The catalog column of PostgreSQL's lists in code stores
--
-- vecext.compressed_columns keeps the same columns in both databases (one catalog
-- store, vecext.catalog.columns): PostgreSQL records where a column's IVF lists are
-- ('store': a column of its code store; 'table': a column of the table). DuckDB keeps
-- its list ids in the table: its rows leave it NULL (read as 'table').
ALTER TABLE vecext.compressed_columns ADD COLUMN list_layout VARCHAR;

-- ---------------------------------------------------------------------------
-- Every script records itself; the installers check that it did.
UPDATE vecext.installed_version SET version = '0.5.0';
INSERT INTO vecext.install_history (script, version) VALUES ('vecext--0.4.0--0.5.0.sql', '0.5.0');
