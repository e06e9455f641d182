-- vecext 0.3.0 -> 0.4.0: DuckDB catalog upgrade.
--
-- Applied after vecext--0.2.0--0.3.0.sql by vecext.duckdb.install() (and so by
-- vecext.duckdb.connect()), in the same transaction as the rest of the chain.
-- Released scripts are never edited: a later version adds vecext--0.4.0--<next>.sql.
--
-- Catalog 0.4.0 is one version for both databases: PostgreSQL's 0.4.0 moves codes to
-- code stores (sql/postgres/vecext--0.3.0--0.4.0.sql). DuckDB steps of this release
-- append their own numbered sections before the version record at the end.

-- ---------------------------------------------------------------------------
-- 1. The catalog columns of PostgreSQL's code stores
--
-- vecext.compressed_columns keeps the same columns in both databases (one catalog
-- store, vecext.catalog.columns): PostgreSQL keys its rows by table OID and column
-- attnums and records each column's layout ('store': codes in a code store). DuckDB
-- has no OIDs and keeps its codes in the table: its rows leave the keys NULL and
-- have layout 'table'.
ALTER TABLE vecext.compressed_columns ADD COLUMN table_oid UBIGINT;
ALTER TABLE vecext.compressed_columns ADD COLUMN source_attnum SMALLINT;
ALTER TABLE vecext.compressed_columns ADD COLUMN key_attnum SMALLINT;
ALTER TABLE vecext.compressed_columns ADD COLUMN layout VARCHAR DEFAULT 'table';

-- ---------------------------------------------------------------------------
-- Every script records itself; the installers check that it did.
UPDATE vecext.installed_version SET version = '0.4.0';
INSERT INTO vecext.install_history (script, version) VALUES ('vecext--0.3.0--0.4.0.sql', '0.4.0');
