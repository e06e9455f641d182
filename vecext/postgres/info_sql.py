"""The statements that read what a search needs to know about a table (PostgreSQL):
its columns, primary key, indexes and pgvector's version (:data:`BASE_INFO`), then its
vecext catalog rows (:data:`CATALOG_INFO`; :data:`OLD_CATALOG_INFO` for a catalog
before 0.4.0, keyed by names). :class:`~vecext.postgres.backend.PostgresBackend` reads
them when the table's stamp changed (:mod:`vecext.postgres.info_cache`)."""

from __future__ import annotations

from psycopg import sql

from vecext.postgres.index_catalog import INDEX_ROWS
from vecext.postgres.statement import PATH_TEXT

__all__ = ["BASE_INFO", "CATALOG_INFO", "OLD_CATALOG_INFO"]

BASE_INFO = sql.SQL(
    """WITH r AS (SELECT c.oid, n.nspname, c.relname, c.reltuples FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.oid = to_regclass(%(table)s) AND c.relkind IN ('r', 'p'))
    SELECT r.oid, r.nspname, r.relname, r.reltuples,
      (SELECT json_agg(json_build_array(attname, format_type(atttypid, atttypmod), atttypmod,
                                        quote_ident(attname), attnum) ORDER BY attnum)
         FROM pg_attribute WHERE attrelid = r.oid AND attnum > 0 AND NOT attisdropped),
      (SELECT a.attname FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = r.oid AND i.indisprimary AND i.indnkeyatts = 1),
      (SELECT json_agg(to_json(x)) FROM ({indexes}) x),
      (SELECT extversion FROM pg_extension WHERE extname = 'vector'),
      {path},
      -- NULL: no catalog; 'denied': no USAGE on it; 'old': before 0.4.0 (no OID keys)
      (SELECT CASE WHEN NOT has_schema_privilege(v.oid, 'USAGE') THEN 'denied'
                   WHEN EXISTS (SELECT FROM pg_class k JOIN pg_attribute a ON a.attrelid = k.oid
                                 WHERE k.relnamespace = v.oid AND k.relname = 'compressed_columns'
                                   AND a.attname = 'table_oid' AND NOT a.attisdropped)
                   THEN 'new' ELSE 'old' END
         FROM pg_namespace v WHERE v.nspname = 'vecext')
    FROM r"""
).format(
    indexes=sql.SQL(INDEX_ROWS).format(oid=sql.SQL("r.oid"), size=sql.SQL("false")),
    path=sql.SQL(PATH_TEXT),
)

_TENANT_OF = """(SELECT tenant_column FROM vecext.tenant_columns
        WHERE table_schema = %(schema)s AND table_name = %(name)s)"""
CATALOG_INFO = (
    """SELECT
      (SELECT json_agg(json_build_array(k.code_column, k.codec_name, c.kind, k.codec_fingerprint,
                       c.fingerprint, c.metric, k.status, k.list_column, k.ivf_codec_name,
                       v.fingerprint, v.params, k.calibration, c.params, c.dim,
                       CASE WHEN k.layout = 'store' THEN vecext.store_name(k.id) END,
                       to_jsonb(k) ->> 'list_layout', to_jsonb(k) -> 'mirror_attnums')
                       ORDER BY k.id)
         FROM vecext.compressed_columns k
         JOIN vecext.codecs c ON c.name = k.codec_name
         LEFT JOIN vecext.codecs v ON v.name = k.ivf_codec_name
        WHERE k.table_oid = %(oid)s AND k.source_attnum = %(attnum)s), """
    + _TENANT_OF
)
#: the same for a catalog before 0.4.0: rows keyed by names, codes in the table
OLD_CATALOG_INFO = (
    CATALOG_INFO.replace("CASE WHEN k.layout = 'store' THEN vecext.store_name(k.id) END", "NULL")
    .replace("k.table_oid = %(oid)s", "k.table_schema = %(schema)s AND k.table_name = %(name)s")
    .replace("k.source_attnum = %(attnum)s", "k.source_column = %(column)s")
)
