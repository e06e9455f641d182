"""The reference of vecext's SQL API: every function, its backends and a runnable example.

This list is the documentation (``docs/sql-api.md`` is generated from it by
``python -m vecext.sqlapi``) and the contract: ``tests/test_sql_reference.py``
runs every example on every backend it names and checks that the functions
registered in each database are exactly the ones listed here.

All functions live in schema ``vecext``. Names with ``{codec}`` are generated
per trained codec when it is saved (``vecext.items_pq_distance`` for a codec
named ``items_pq``); they are the fast paths the planner can inline. The
examples run against the fixture the test builds in both backends: a table
``doc_items (id, embedding)`` of 16-d vectors and the codecs ``doc_pq``
(pq, m=4, l2), ``doc_bin`` (binary) and ``doc_half`` (half), all trained on it.
"""

from __future__ import annotations

from dataclasses import dataclass

PG = "postgres"
DUCK = "duckdb"
BOTH = (PG, DUCK)


@dataclass(frozen=True)
class SqlFunction:
    name: str  # "vecext.encode" or "vecext.{codec}_distance"
    signature: str  # arguments and result, in PostgreSQL types (DuckDB equivalents in notes)
    backends: tuple[str, ...]
    summary: str
    example: str  # runnable SQL on every backend listed
    notes: str = ""

    @property
    def per_codec(self) -> bool:
        return "{codec}" in self.name


Q16 = "(SELECT embedding FROM doc_items WHERE id = 1)"

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
        "vecext.encode",
        "(codec text, v vector) -> bytea",
        BOTH,
        "Encode a vector with a stored codec; the bytes equal the Python codec's encode().",
        f"SELECT vecext.encode('doc_pq', {Q16})",
        "DuckDB: v FLOAT[], result BLOB.",
    ),
    SqlFunction(
        "vecext.decode",
        "(codec text, codes bytea) -> vector",
        BOTH,
        "Reconstruct an approximate vector from codes (in the input space).",
        f"SELECT vecext.decode('doc_pq', vecext.encode('doc_pq', {Q16}))",
        "DuckDB: codes BLOB, result FLOAT[].",
    ),
    SqlFunction(
        "vecext.distance",
        "(codec text, q vector, codes bytea) -> real",
        BOTH,
        "Estimated distance between a query and codes, equal to the Python codec's "
        "distances() (squared L2, negative inner product or cosine distance).",
        f"SELECT vecext.distance('doc_pq', {Q16}, vecext.encode('doc_pq', {Q16}))",
        "DuckDB: q FLOAT[], codes BLOB, result FLOAT.",
    ),
    SqlFunction(
        "vecext.pq_lut",
        "(codec text, q vector) -> real[]",
        BOTH,
        "A PQ query's lookup table, M x 256 values flattened (sub-quantizer major): "
        "distance = sum over m of lut[m*256 + code[m] + 1].",
        f"SELECT array_length(vecext.pq_lut('doc_pq', {Q16}), 1)",
        "DuckDB: FLOAT[].",
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
        "PQ codecs: the query's lookup table (as vecext.pq_lut).",
        f"SELECT array_length(vecext.doc_pq_lut({Q16}), 1)",
    ),
    SqlFunction(
        "vecext.{codec}_distance",
        "(codes code type, query) -> real",
        BOTH,
        "The fast distance on a code column. pq: (codes, lut real[]) as an inlinable lookup "
        "sum; binary: (codes, query codes) Hamming distance (pgvector <~> in PostgreSQL); "
        "half, int8, rbq: (codes, q vector).",
        f"SELECT id FROM doc_items ORDER BY vecext.doc_pq_distance(doc_items.embedding_pq, "
        f"vecext.doc_pq_lut({Q16})) LIMIT 3",
    ),
    SqlFunction(
        "vecext.add_compressed_column",
        "(tbl regclass, source_column name, codec text, code_column name DEFAULT NULL) -> name",
        (PG,),
        "Add a code column beside a vector column, with a trigger that keeps it current on "
        "INSERT and UPDATE, and register it in the catalog; returns the column's name. Fill "
        "existing rows with CALL vecext.backfill(...).",
        "SELECT vecext.add_compressed_column('doc_items', 'embedding', 'doc_bin', 'embedding_bits')",
        "DuckDB has no triggers: use vecext.duckdb.add_compressed_column() and "
        "vecext.duckdb.refresh() from Python.",
    ),
    SqlFunction(
        "vecext.backfill",
        "(tbl regclass, code_column name, batch_size integer DEFAULT 10000) -> procedure",
        (PG,),
        "Encode the rows whose codes are missing, committing every batch_size rows, so an "
        "interrupted backfill resumes where it stopped (CALL it outside a transaction block).",
        "CALL vecext.backfill('doc_items', 'embedding_pq', 500)",
    ),
    SqlFunction(
        "vecext.drop_compressed_column",
        "(tbl regclass, code_column name) -> void",
        (PG,),
        "Drop a code column, its trigger and its catalog entry; the source column is untouched.",
        "SELECT vecext.drop_compressed_column('doc_items', 'embedding_pq')",
    ),
]


def by_name() -> dict[str, SqlFunction]:
    return {f.name: f for f in FUNCTIONS}


def render_markdown() -> str:
    """The SQL reference as Markdown (docs/sql-api.md)."""
    out = [
        "# vecext SQL API",
        "",
        "Generated from `vecext/sqlapi.py` (`python -m vecext.sqlapi > docs/sql-api.md`); "
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
            f.summary,
            "",
        ]
        if f.notes:
            out += [f.notes, ""]
        out += ["```sql", f.example + ";", "```", ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(render_markdown())
