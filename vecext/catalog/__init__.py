"""The catalog, backend-neutral: what vecext stores about codecs, compressed columns,
IVF lists, tenants and relevance adapters, as rows both databases hold the same way,
and the versioned install scripts that create those tables.

=====================  ==========================================================
module                 what
=====================  ==========================================================
``rows``, ``adapters`` a trained codec / relevance method as rows, and back (pure)
``dialect``            the little a store needs from a database connection
``store``              codec rows: save, read, drop (and a process-wide codec cache)
``adapter_store``      relevance adapter rows
``columns``, ``ivf``   compressed-column, IVF-list and tenant rows
``api``                verbs both adapters export as they are (``VERBS``: the public face)
``scripts``            which ``sql/<backend>/`` scripts install or upgrade a catalog
=====================  ==========================================================

No driver is imported here: each adapter implements the dialect over its own
connection (``vecext.postgres.catalog.PgDialect``, ``vecext.duckdb.catalog.DuckDialect``)
and registers it.
"""
