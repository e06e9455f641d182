"""The catalog, backend-neutral: what vecext stores about codecs, compressed columns and
relevance adapters, as rows both databases hold the same way, and the versioned
install scripts that create those tables.

Nothing here talks to a database: the adapters read and write these rows.
"""
