"""The reference of vecext's SQL API: every function, its backends and a runnable example.

This list is the documentation (``docs/sql-api.md`` is generated from it by
``python -m vecext.sqlapi``) and the contract: a test per backend
(``tests/postgres/test_sql_reference_pg.py`` for PostgreSQL) runs every example
on every backend it names and checks that the functions registered in each
database are exactly the ones listed here.

All functions live in schema ``vecext``. Names with ``{codec}`` are generated
per trained codec when it is saved (``vecext.items_pq_distance`` for a codec
named ``items_pq``); they are the fast paths the planner can inline. The
examples run against the fixture the test builds in both backends: a table
``doc_items (id, embedding)`` of 16-d vectors and the codecs ``doc_pq``
(pq, m=4, l2), ``doc_bin`` (binary) and ``doc_half`` (half), all trained on it,
and the relevance adapter ``doc_rel`` (a cosine adapter with the distribution
feature ``mean10``, fitted on the rows' own neighbours).
"""

from __future__ import annotations

from vecext.sqlapi.model import BOTH, DUCK, PG, Q16, SqlFunction

__all__ = ["BOTH", "DUCK", "FUNCTIONS", "PG", "SqlFunction", "by_name", "render_markdown"]
from vecext.sqlapi.stores import STORE_FUNCTIONS

FUNCTIONS: list[SqlFunction] = [
    SqlFunction(
        "vecext.vecext_version",
        "() -> text",
        BOTH,
        "The installed catalog version.",
        "SELECT vecext.vecext_version()",
    ),
    SqlFunction(
        "vecext.codec_fingerprint",
        "(codec text) -> text",
        BOTH,
        "The fingerprint of the trained version of a codec stored in the catalog.",
        "SELECT vecext.codec_fingerprint('doc_pq')",
    ),
    SqlFunction(
        "vecext.codec_encode",
        "(codec text, v vector) -> bytea",
        BOTH,
        "Encode a vector with a stored codec; the bytes equal the Python codec's encode().",
        f"SELECT vecext.codec_encode('doc_pq', {Q16})",
        "DuckDB: v FLOAT[], result BLOB.",
    ),
    SqlFunction(
        "vecext.codec_decode",
        "(codec text, codes bytea) -> vector",
        BOTH,
        "Reconstruct an approximate vector from codes (in the input space).",
        f"SELECT vecext.codec_decode('doc_pq', vecext.codec_encode('doc_pq', {Q16}))",
        "DuckDB: codes BLOB, result FLOAT[].",
    ),
    SqlFunction(
        "vecext.codec_distance",
        "(codec text, codes bytea, q vector) -> real",
        BOTH,
        "Estimated distance between codes and a query, equal to the Python codec's "
        "distances() (squared L2, negative inner product or cosine distance). The codes "
        "come before the query, as in every vecext.{codec}_distance(codes, q).",
        f"SELECT vecext.codec_distance('doc_pq', vecext.codec_encode('doc_pq', {Q16}), {Q16})",
        "DuckDB: codes BLOB, q FLOAT[], result FLOAT. Since catalog 0.3.0.",
    ),
    SqlFunction(
        "vecext.codec_lut",
        "(codec text, q vector) -> real[]",
        BOTH,
        "A PQ query's lookup table, M x 256 values flattened (sub-quantizer major): "
        "distance = sum over m of lut[m*256 + code[m] + 1] (+ 1 for a cosine codec).",
        f"SELECT array_length(vecext.codec_lut('doc_pq', {Q16}), 1)",
        "DuckDB: FLOAT[]; the macro is a scalar subquery, so a query's table is computed once, "
        "not once per row. Since catalog 0.3.0.",
    ),
    SqlFunction(
        "vecext.encode",
        "(codec text, v vector) -> bytea",
        BOTH,
        "Encode a vector with a stored codec.",
        f"SELECT vecext.encode('doc_pq', {Q16})",
        deprecated="vecext.codec_encode(codec, v)",
    ),
    SqlFunction(
        "vecext.decode",
        "(codec text, codes bytea) -> vector",
        BOTH,
        "Reconstruct an approximate vector from codes.",
        f"SELECT vecext.decode('doc_pq', vecext.encode('doc_pq', {Q16}))",
        deprecated="vecext.codec_decode(codec, codes)",
    ),
    SqlFunction(
        "vecext.distance",
        "(codec text, q vector, codes bytea) -> real",
        BOTH,
        "Estimated distance between a query and codes, the query first (the other way "
        "round from every vecext.{codec}_distance(codes, q), hence the new name).",
        f"SELECT vecext.distance('doc_pq', {Q16}, vecext.encode('doc_pq', {Q16}))",
        deprecated="vecext.codec_distance(codec, codes, q)",
    ),
    SqlFunction(
        "vecext.pq_lut",
        "(codec text, q vector) -> real[]",
        BOTH,
        "A PQ query's lookup table.",
        f"SELECT array_length(vecext.pq_lut('doc_pq', {Q16}), 1)",
        deprecated="vecext.codec_lut(codec, q)",
    ),
    SqlFunction(
        "vecext.{codec}_encode",
        "(v vector) -> code type",
        BOTH,
        "Encode with this codec into its column type: pq bytea, binary bit(d), half "
        "halfvec(d), int8 and rbq bytea.",
        f"SELECT vecext.doc_pq_encode({Q16})",
        "DuckDB column types: pq UTINYINT[M], binary UBIGINT[ceil(d/64)], half and int8 and "
        "rbq BLOB.",
    ),
    SqlFunction(
        "vecext.{codec}_decode",
        "(codes code type) -> vector",
        BOTH,
        "Reconstruct from this codec's column type.",
        f"SELECT vecext.doc_half_decode(vecext.doc_half_encode({Q16}))",
    ),
    SqlFunction(
        "vecext.{codec}_lut",
        "(q vector) -> real[]",
        BOTH,
        "PQ codecs: the query's lookup table (as vecext.codec_lut).",
        f"SELECT array_length(vecext.doc_pq_lut({Q16}), 1)",
    ),
    SqlFunction(
        "vecext.{codec}_distance",
        "(codes code type, q) -> real",
        BOTH,
        "The fast distance on a code column, codes first. The query side q is what the "
        "codec's kind compares with: pq: (codes, lut real[]) as an inlinable lookup sum; "
        "binary: (codes, q) with q the query's own codes, Hamming distance (pgvector <~> "
        "in PostgreSQL); half, int8, rbq: (codes, q vector).",
        "WITH q AS MATERIALIZED (SELECT vecext.doc_pq_lut(embedding) AS lut FROM doc_items "
        "WHERE id = 1) SELECT id FROM doc_items, q "
        "ORDER BY vecext.doc_pq_distance(vecext.doc_pq_encode(doc_items.embedding), q.lut) "
        "LIMIT 3",
        "PostgreSQL keeps a compressed column's codes in its code store (catalog 0.4.0; "
        "vecext.code_store(tbl, code_column) names it): ORDER BY "
        "vecext.doc_pq_distance(s.code, q.lut) over SELECT ... FROM <store> s, q. "
        "PostgreSQL inlines the pq lookup sum (about 1 M rows/s per core) when the LUT argument "
        "is a constant or a column, e.g. of a one-row CTE: WITH q AS MATERIALIZED (SELECT "
        "vecext.doc_pq_lut(...) AS lut) SELECT ... FROM doc_items, q ORDER BY "
        "vecext.doc_pq_distance(s.code, q.lut); a subquery or parameter argument is "
        "computed once but keeps the function call per row. Binary: ORDER BY codes <~> "
        "vecext.doc_bin_encode(q) directly can use a pgvector HNSW index on the bit column. "
        "DuckDB: pq is a SQL macro lut[codes[1]::INTEGER + 1] + lut[codes[2]::INTEGER + 257] "
        "+ ... over UTINYINT[M]; binary sums bit_count(xor(codes[i], query[i])) over the "
        "UBIGINT[ceil(d/64)] words (the packed bits read as big-endian 64-bit words, "
        "dimension 0 the top bit of word 1); half, int8 and rbq call a vectorised Arrow UDF. "
        "The macros repeat their query argument once per sub-quantizer or word, so pass the "
        "lookup table (or binary query codes) as a column of a one-row CTE, as in the "
        "example; an inline vecext.doc_pq_lut(...) argument is planned M times and scans "
        "4-30x slower (measured, M = 48).",
    ),
    SqlFunction(
        "vecext.{codec}_prepare",
        "(q vector) -> vector",
        (PG,),
        "The vector as this codec's quantiser sees it: L2-normalised (cosine), pretransformed "
        "(PCA / Matryoshka) and OPQ-rotated; the identity for a plain l2 or ip codec. The "
        "half, int8 and rbq distances compare codes with it.",
        f"SELECT vector_dims(vecext.doc_pq_prepare({Q16}))",
    ),
    SqlFunction(
        "vecext.add_compressed_column",
        "(tbl regclass, source_column name, codec text, code_column name DEFAULT NULL, "
        "layout text DEFAULT 'store') -> name",
        (PG,),
        'Add a compressed column of a vector column: its code store vecext."store_<id>" '
        "(pk, code), keyed by the table's single-column primary key, with triggers that keep "
        "it current on INSERT, UPDATE of the vector or key, DELETE and TRUNCATE, and its "
        "catalog row; returns the compressed column's name. The table itself is not altered. "
        "Fill the store for existing rows with CALL vecext.backfill(...). layout => 'table' "
        "adds a code column to the table instead, as catalogs before 0.4.0 did.",
        "SELECT vecext.add_compressed_column('doc_items', 'embedding', 'doc_bin', 'embedding_bits')",
        "DuckDB has no triggers: use vecext.duckdb.add_compressed_column() and "
        "vecext.duckdb.refresh() from Python.",
    ),
    SqlFunction(
        "vecext.backfill",
        "(tbl regclass, code_column name, batch_size integer DEFAULT 10000) -> procedure",
        (PG,),
        "Encode the rows whose codes are missing, committing every batch_size rows, so an "
        "interrupted backfill resumes where it stopped (CALL it outside a transaction block). "
        "Columns mirrored into the code store (catalog 0.6.0) get their values with the codes.",
        "CALL vecext.backfill('doc_items', 'embedding_pq', 500)",
    ),
    SqlFunction(
        "vecext.drop_compressed_column",
        "(tbl regclass, code_column name) -> void",
        (PG,),
        "Drop a compressed column: its code store (or, for a column made before catalog "
        "0.4.0, its code column) with its triggers, its IVF lists and its catalog entry, in "
        "one transaction; the source column is untouched.",
        "SELECT vecext.drop_compressed_column('doc_items', 'embedding_pq')",
        "IVF lists added to the column (vecext.postgres.add_ivf_lists) go with it: those in "
        "its code store (catalog 0.5.0) with the store; a list column of the table (lists "
        "made before 0.5.0, or of a column of layout 'table') with its indexes and trigger; "
        "and the centroids. Catalog 0.1.0's function "
        "dropped the code column only and left them orphaned (a catalog upgraded from 0.1.0 "
        "may still hold such lists): vecext.postgres.orphaned_ivf_lists() lists them and "
        "vecext.postgres.drop_orphaned_ivf_lists() drops them. Their codec cannot be dropped "
        "while their trigger reads it.",
    ),
    SqlFunction(
        "vecext.compressed_column_trigger",
        "() -> trigger",
        (PG,),
        "The trigger function of compressed columns made before catalog 0.4.0, whose codes "
        "are a column of the table (BEFORE INSERT OR UPDATE OF the source column; trigger "
        "arguments: source column, code column, codec). It is not called directly.",
        "SELECT 'vecext.compressed_column_trigger'::regproc::text",
    ),
    SqlFunction(
        "vecext.search",
        "(tbl regclass, vector_column name, q vector, k integer DEFAULT 10, filter jsonb DEFAULT "
        "NULL, metric text DEFAULT 'cosine', code_column name DEFAULT NULL, recall_target real "
        "DEFAULT 0.95) -> TABLE(id bigint, distance double precision)",
        (PG,),
        'The k rows nearest to q among the rows matching filter ({"col": value} equality, '
        '{"col": [a, b]} IN; values are cast to the column\'s type, never formatted into SQL), '
        "best first: exactly (index scans off) or, with code_column, two-stage: the candidates "
        "by code distance, as many as the column's calibration needs for recall_target, "
        "reranked by the exact distance (every code is ranked: an HNSW index over the code "
        "store is never walked here, catalog 0.6.0). Always min(k, matching rows) rows; ids "
        "are the integer primary key.",
        f"SELECT * FROM vecext.search('doc_items', 'embedding', {Q16}, 3, "
        "code_column => 'embedding_pq', metric => 'l2')",
        "Python's vecext.postgres.search() adds the planner, IVF lists, HNSW indexes and tenants.",
    ),
    SqlFunction(
        "vecext.ivf_lists_trigger",
        "() -> trigger",
        (PG,),
        "The trigger function of every IVF list column of a table (BEFORE INSERT OR UPDATE OF "
        "the vector column; trigger arguments: vector column, list column, IVF codec): the "
        "list is the nearest centroid in vecext.codebook_vectors. vecext.postgres."
        "add_ivf_lists() installs it for a compressed column of layout 'table' (from catalog "
        "0.5.0 the lists of a code-store column are kept by vecext.store_trigger, in the "
        "store); it is not called directly.",
        "SELECT 'vecext.ivf_lists_trigger'::regproc::text",
    ),
]


FUNCTIONS += STORE_FUNCTIONS
FUNCTIONS += [
    SqlFunction(
        "vecext.relevance_score",
        "(adapter text, q vector, s double precision, features jsonb DEFAULT NULL) -> "
        "double precision",
        BOTH,
        "The calibrated relevance score of a candidate whose cosine similarity to the query q "
        "is s, under a relevance adapter saved in the catalog "
        "(vecext.postgres.relevance.save_adapter / vecext.duckdb.relevance.save_adapter): "
        "sigmoid(a(q) s + b(q)) for 'cosine-adapter' (a and b from inner products of q with "
        "the stored weight vectors, a > 0), sigmoid(A s + B) for 'platt', s itself for "
        "'fixed'. Equal to the Python method's score() within 1e-5 (tested). Adapters trained with "
        "distribution features need them in features, a JSON object such as "
        "vecext.relevance_features returns; other adapters ignore it.",
        "SELECT vecext.relevance_score('doc_rel', "
        f"{Q16}, 0.9, vecext.relevance_features('doc_rel', ARRAY[0.99, 0.95, 0.9, 0.8]))",
        "Scoring a query's candidates, PostgreSQL: SELECT id, vecext.relevance_score('rel', "
        "q, 1 - (embedding <=> q)) FROM items ORDER BY embedding <=> q LIMIT 100; DuckDB: "
        "array_cosine_similarity(embedding, q) for s. To filter, bound the distance with "
        "vecext.relevance_min_similarity instead (the score is monotone in s). Unknown "
        "adapter, a query of another dimension (both dimensions named) or missing features: "
        "an error. DuckDB: a macro (q FLOAT[d], features JSON or VARCHAR, pass it as "
        "features := ...), inner products in double precision; PostgreSQL: pgvector's <#> "
        "(single precision).",
    ),
    SqlFunction(
        "vecext.relevance_map",
        "(adapter text, q vector, features jsonb DEFAULT NULL, OUT method text, OUT threshold "
        "double precision, OUT a double precision, OUT b double precision) -> record",
        (PG,),
        "The per-query monotone map of an adapter: score = sigmoid(a * s + b) for 'platt' "
        "and 'cosine-adapter', with a and b computed from q; a and b are NULL for 'fixed'. "
        "relevance_score and relevance_min_similarity are built on it, so they share one "
        "implementation of the numerics.",
        f"SELECT (vecext.relevance_map('doc_rel', {Q16}, "
        """'{"mean10": 0.9}')).a > 0""",
        "Useful to compute a query's parameters once and apply them to many candidates. "
        "threshold is the adapter's trained threshold. Since catalog 0.2.0.",
    ),
    SqlFunction(
        "vecext.relevance_min_similarity",
        "(adapter text, q vector, threshold double precision DEFAULT NULL, features jsonb "
        "DEFAULT NULL) -> double precision",
        BOTH,
        "The cosine similarity s_min a candidate needs for its score to reach threshold "
        "(default: the threshold the adapter was trained with): score >= threshold <=> "
        "s >= s_min, so the threshold becomes a distance bound on the query's scan. "
        "-Infinity / Infinity when every / no similarity passes. A threshold outside [0, 1] "
        "(calibrated methods) is an error.",
        f"SELECT vecext.relevance_min_similarity('doc_rel', {Q16}, 0.5, "
        """'{"mean10": 0.9}')""",
        "PostgreSQL: SELECT id FROM items WHERE embedding <=> q <= 1 - "
        "(SELECT vecext.relevance_min_similarity('rel', q, 0.5)) ORDER BY embedding <=> q "
        "(the scalar subquery evaluates the bound once). DuckDB: WHERE "
        "array_cosine_distance(embedding, q) <= 1 - vecext.relevance_min_similarity('rel', q, "
        "0.5). Python's search(..., min_relevance=, relevance=) pushes this bound down for "
        "you.",
    ),
    SqlFunction(
        "vecext.relevance_features",
        "(adapter text, sims double precision[]) -> jsonb",
        BOTH,
        "The distribution features an adapter was trained with, computed from the cosine "
        "similarities of the query's candidates (its top N, N >= 10 as in training; any "
        "order): top1, gap12 (s1 - s2), mean10, gap1_10 (s1 - s10), std10 (population); "
        "'{}' for an adapter without features. Pass the result as relevance_score's and "
        "relevance_min_similarity's features.",
        "SELECT vecext.relevance_features('doc_rel', ARRAY[0.99, 0.95, 0.9, 0.8])",
        "PostgreSQL: WITH top AS (SELECT id, 1 - (embedding <=> q) AS s FROM items ORDER BY "
        "embedding <=> q LIMIT 100), f AS (SELECT vecext.relevance_features('rel', "
        "array_agg(s)) AS f FROM top) SELECT id, vecext.relevance_score('rel', q, s, f.f) "
        "FROM top, f. DuckDB: the same with list(s) and a JSON result.",
    ),
]


def by_name() -> dict[str, SqlFunction]:
    return {f.name: f for f in FUNCTIONS}


def render_markdown() -> str:
    """The SQL reference as Markdown (docs/sql-api.md)."""
    out = [
        "# vecext SQL API",
        "",
        "Generated from `vecext/sqlapi/` (`python -m vecext.sqlapi > docs/sql-api.md`); "
        "every example is run by the test suite on the backends listed.",
        "",
        "Names with `{codec}` are created for each trained codec when it is saved.",
        "",
    ]
    for f in FUNCTIONS:
        out += [
            f"## `{f.name}{f.signature.split(' -> ')[0]}`",
            "",
            f"Returns `{f.signature.split(' -> ')[1]}`. Backends: {', '.join(f.backends)}.",
            "",
        ]
        if f.deprecated:
            out += [
                f"Deprecated since catalog 0.3.0: use `{f.deprecated}`. The catalog 0.1.0 "
                "name still works, as an alias.",
                "",
            ]
        out += [f.summary, ""]
        if f.notes:
            out += [f.notes, ""]
        out += ["```sql", f.example + ";", "```", ""]
    return "\n".join(out)
