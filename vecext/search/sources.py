"""What a backend hands the calibration driver (:mod:`vecext.search.calibrate`): the rows
to read and where to keep the record. A module of its own so that the backend contract
(:mod:`vecext.search.contracts`) can name these types without importing the driver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = ["CodeSource", "IndexSource", "RowSource"]


class RowSource(Protocol):
    """The rows a calibration reads: ``(keys, float32 vectors)``, keys being what the
    backend's searches return for a row."""

    @property
    def dim(self) -> int:
        """The vector column's dimension."""
        ...

    def sample(self, n: int, seed: int) -> tuple[Any, np.ndarray]:
        """A repeatable sample of ``n`` rows (fewer when the table has fewer)."""
        ...

    def batches(self, size: int) -> Iterator[tuple[Any, np.ndarray]]:
        """Every row, in batches of at most ``size``."""
        ...


@dataclass
class CodeSource:
    """What a backend hands the driver to calibrate a compressed column: the rows that
    have codes, the column's codec and IVF coarse quantizer (or ``None``), its name for
    messages, and how to keep the record."""

    rows: RowSource
    codec: Any
    coarse: Any
    what: str
    save: Callable[[dict[str, Any]], None]


@dataclass
class IndexSource:
    """What a backend hands the driver to calibrate an HNSW index: the search target
    that plans with it (:func:`index_target`), the rows, and how to keep the record."""

    #: a :class:`vecext.search.engine.Prepared` (typed loosely here: the engine imports
    #: the contracts, which name this class)
    target: Any
    rows: RowSource
    save: Callable[[dict[str, Any]], None]
