-- vecext 0.1.0 -> 0.2.0: DuckDB catalog upgrade.
--
-- The 0.2.0 changes are to PostgreSQL's SQL functions (vecext.drop_compressed_column
-- drops a column's IVF lists, vecext.relevance_map). DuckDB's catalog keeps its
-- tables; its functions are macros that vecext registers on every connection. This
-- step only records the version, so that both backends' catalogs read 0.2.0.

UPDATE vecext.installed_version SET version = '0.2.0';
INSERT INTO vecext.install_history (script, version) VALUES ('vecext--0.1.0--0.2.0.sql', '0.2.0');
