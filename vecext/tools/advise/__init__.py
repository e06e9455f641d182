"""``vecext advise``: which codec for which memory budget, measured on your own data.

Given a sample of a vector column, a memory budget in bytes per vector and a recall
target, train every candidate codec that fits the budget, measure it on held-out
queries against exact search, and recommend one.

What is measured, per codec, on a sample of ``n`` base vectors and ``nq`` queries
(held-out rows of the same column unless real queries are given):

* ``recall_codes``: recall@k of a search on the codes alone (no rerank);
* ``rerank_depth``: the fewest candidates, taken in code order, whose exact rerank
  reaches the recall target. Reranking the top ``R`` candidates exactly keeps every
  true neighbour among them, so recall after rerank is the share of true neighbours
  whose position in code order is below ``R``; the depth is read off those
  positions, not searched for;
* ``train_s`` and ``encode_per_s`` (vectors per second).

Sample figures are scaled to the table. How the rerank depth grows with the number
of rows depends on the data (near-duplicates keep it flat; a diffuse neighbourhood
makes it grow), so it is measured rather than assumed: the depth is read off nested
prefixes of the sample (1/8, 1/4, 1/2 and all of it) and extrapolated to the table's
row count with the power law ``depth ~ n^a`` whose exponent is the growth between the
last two prefixes (see :func:`fit_growth`; ``bench/advise_scaling.py`` checks the
estimate against the depth measured on whole tables).
The cost of one query
is then estimated in bytes read: every code once, sequentially, plus one random read
of a page (:data:`RERANK_ROW_BYTES`, PostgreSQL's 8 kB block) per rerank candidate,
since the candidates' float32 vectors are scattered over the table. The
recommendation is the codec within the budget with the lowest estimated cost,
provided it reads less than an exact scan of the float32 vectors.

Nothing is written to the database: ``advise`` only reads a sample.

Modules: :mod:`~vecext.tools.advise.candidates` (what is tried),
:mod:`~vecext.tools.advise.measure` (one codec against exact search),
:mod:`~vecext.tools.advise.recommend` (all of them, and the pick) and
:mod:`~vecext.tools.advise.sample` (reading the sample from a database).
"""

from vecext.tools.advise.candidates import (
    AdviseError,
    Candidate,
    code_size,
    default_candidates,
    parse_candidate,
)
from vecext.tools.advise.measure import (
    RERANK_ROW_BYTES,
    Measurement,
    code_positions,
    depth_for_recall,
    exact_distances,
    exact_neighbours,
    fit_growth,
    prefix_sizes,
)
from vecext.tools.advise.recommend import MIN_BASE, PQ_NOTE, Advice, advise_vectors, split_sample
from vecext.tools.advise.sample import (
    duckdb_metric,
    postgres_metric,
    read_duckdb,
    read_postgres,
    read_sample,
)

__all__ = [
    "MIN_BASE",
    "PQ_NOTE",
    "RERANK_ROW_BYTES",
    "Advice",
    "AdviseError",
    "Candidate",
    "Measurement",
    "advise_vectors",
    "code_positions",
    "code_size",
    "default_candidates",
    "depth_for_recall",
    "duckdb_metric",
    "exact_distances",
    "exact_neighbours",
    "fit_growth",
    "parse_candidate",
    "postgres_metric",
    "prefix_sizes",
    "read_duckdb",
    "read_postgres",
    "read_sample",
    "split_sample",
]
