-- vecext 0.1.0: catalog schema for DuckDB, the same tables as in PostgreSQL
-- (pgvector `vector` becomes FLOAT[], jsonb becomes JSON text, bytea BLOB).
-- DuckDB has no ON DELETE CASCADE: the adapter deletes dependent rows itself.

CREATE SCHEMA vecext;

CREATE TABLE vecext.installed_version (
    singleton    BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    version      VARCHAR NOT NULL,
    installed_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE vecext.install_history (
    script     VARCHAR PRIMARY KEY,
    version    VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE vecext.codecs (
    name           VARCHAR PRIMARY KEY CHECK (regexp_full_match(name, '[a-z_][a-z0-9_]{0,62}')),
    kind           VARCHAR NOT NULL,
    dim            INTEGER NOT NULL CHECK (dim > 0),
    metric         VARCHAR NOT NULL CHECK (metric IN ('l2', 'ip', 'cosine')),
    code_size      INTEGER NOT NULL CHECK (code_size >= 0),
    params         VARCHAR NOT NULL DEFAULT '{}',
    fingerprint    VARCHAR NOT NULL,
    format_version INTEGER NOT NULL DEFAULT 1,
    created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE vecext.codec_arrays (
    codec_name VARCHAR NOT NULL,
    array_name VARCHAR NOT NULL,
    dtype      VARCHAR NOT NULL,
    shape      INTEGER[] NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (codec_name, array_name)
);

CREATE TABLE vecext.codebook_vectors (
    codec_name VARCHAR NOT NULL,
    part       VARCHAR NOT NULL,
    sub        INTEGER NOT NULL DEFAULT 0,
    idx        INTEGER NOT NULL,
    vec        FLOAT[] NOT NULL,
    PRIMARY KEY (codec_name, part, sub, idx)
);

CREATE SEQUENCE vecext.compressed_columns_id;

CREATE TABLE vecext.compressed_columns (
    id                BIGINT PRIMARY KEY DEFAULT nextval('vecext.compressed_columns_id'),
    table_schema      VARCHAR NOT NULL,
    table_name        VARCHAR NOT NULL,
    source_column     VARCHAR NOT NULL,
    code_column       VARCHAR NOT NULL,
    codec_name        VARCHAR NOT NULL,
    codec_fingerprint VARCHAR NOT NULL,
    key_column        VARCHAR,
    list_column       VARCHAR,
    ivf_codec_name    VARCHAR,
    status            VARCHAR NOT NULL DEFAULT 'backfilling'
                      CHECK (status IN ('backfilling', 'ready')),
    backfill_position VARCHAR,
    rows_encoded      BIGINT NOT NULL DEFAULT 0,
    calibration       VARCHAR,
    created_at        TIMESTAMP NOT NULL DEFAULT current_timestamp,
    updated_at        TIMESTAMP NOT NULL DEFAULT current_timestamp,
    UNIQUE (table_schema, table_name, code_column)
);

CREATE TABLE vecext.tenant_columns (
    table_schema  VARCHAR NOT NULL,
    table_name    VARCHAR NOT NULL,
    tenant_column VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (table_schema, table_name)
);

CREATE TABLE vecext.relevance_adapters (
    name        VARCHAR PRIMARY KEY CHECK (regexp_full_match(name, '[a-z_][a-z0-9_]{0,62}')),
    method      VARCHAR NOT NULL,
    dim         INTEGER CHECK (dim > 0),
    version     INTEGER NOT NULL DEFAULT 1,
    params      VARCHAR NOT NULL DEFAULT '{}',
    fingerprint VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE vecext.relevance_arrays (
    adapter_name VARCHAR NOT NULL,
    array_name   VARCHAR NOT NULL,
    dtype        VARCHAR NOT NULL,
    shape        INTEGER[] NOT NULL,
    data         BLOB NOT NULL,
    vec          FLOAT[],
    PRIMARY KEY (adapter_name, array_name)
);

-- Every script records itself; the installers check that it did.
INSERT INTO vecext.installed_version (version) VALUES ('0.1.0');
INSERT INTO vecext.install_history (script, version) VALUES ('vecext--0.1.0.sql', '0.1.0');
