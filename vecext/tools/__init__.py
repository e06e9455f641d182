"""Tools built on the adapters; the top layer (nothing below imports from here).

* :mod:`vecext.tools.cli`: the ``vecext`` command, one module per command group
  (``info``, ``install``, ``stop``, ``demo``, ``bench``, ``advise``,
  ``eval-relevance``).
* :mod:`vecext.tools.demo`: ``vecext demo``, the main job end to end on both backends
  (:mod:`~vecext.tools.demo_common` holds the shared steps,
  :mod:`~vecext.tools.demo_backends` the two halves).
* :mod:`vecext.tools.bench`: ``vecext bench``, search methods (vecext's and the
  baselines: exact, pgvector HNSW, DuckDB VSS, FAISS) compared on one backend.
* :mod:`vecext.tools.advise`: ``vecext advise``, which codec for a memory budget,
  measured on a sample of the column.
* :mod:`vecext.tools.info`: ``vecext info``, versions and where things live.

The database adapters are optional extras: a tool imports the one it uses when it
runs, so that ``vecext --help`` works with the core alone.
"""
