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

-- Every script records itself; the installers check that it did.
INSERT INTO vecext.installed_version (version) VALUES ('0.1.0');
INSERT INTO vecext.install_history (script, version) VALUES ('vecext--0.1.0.sql', '0.1.0');
