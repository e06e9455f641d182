"""Labelled embedding datasets on disk, synthetic ones from a spec string, and the
seeded generator behind them.

See :mod:`vecext.datasets.load` for the on-disk layout and
:mod:`vecext.datasets.spec` for the ``synthetic:...`` specs.
"""

from vecext.datasets.dataset import Dataset, qrels_to_lists, read_qrels
from vecext.datasets.load import load_dataset, load_datasets
from vecext.datasets.spec import parse_synthetic_spec
from vecext.datasets.synthetic import (
    SyntheticEmbeddings,
    SyntheticQueries,
    synthetic_embeddings,
    synthetic_queries,
)

__all__ = [
    "Dataset",
    "SyntheticEmbeddings",
    "SyntheticQueries",
    "load_dataset",
    "load_datasets",
    "parse_synthetic_spec",
    "qrels_to_lists",
    "read_qrels",
    "synthetic_embeddings",
    "synthetic_queries",
]
