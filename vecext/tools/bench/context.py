"""What a method factory receives: the data, the filter, the backend's connection."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psycopg import sql
from rich.progress import Progress

from vecext.datasets import Dataset
from vecext.search.filters import Predicate
from vecext.tools.bench import where


@dataclass
class BenchContext:
    """Everything one benchmark run shares with its methods.

    Attributes
    ----------
    backend : str
        ``"postgres"``, ``"duckdb"`` or ``"faiss"``.
    dataset : Dataset
        ``xb`` float32 ``(n, d)`` documents (row ``i`` has id ``i``), ``attrs`` their
        attributes, ``xq`` the (possibly limited) queries, ``qrels`` their labels.
    k : int
        Rows asked for per query.
    filter : Predicate or None
        The filter, values already typed to the attribute columns.
    filter_mask : numpy.ndarray
        Bool ``(n,)``, True for the rows that match ``filter``.
    conn : object
        Postgres: a psycopg connection (autocommit, pgvector types registered);
        DuckDB: a connection with VSS loaded; FAISS: ``None``.
    table : str or None
        The table holding ``id bigint``, ``embedding`` (``vector(d)`` / ``FLOAT[d]``)
        and the attribute columns (Postgres and DuckDB).
    load_s : float
        Seconds it took to load that table (recorded at load time when reused).
    rebuild : bool
        Drop and rebuild reusable artefacts (Postgres indexes) instead of reusing them.
    cores : int
        CPU cores of this machine (for build parallelism).
    progress : rich.progress.Progress
        Live progress display; use :meth:`task` for long steps.
    """

    backend: str
    dataset: Dataset
    k: int
    filter: Predicate | None
    filter_mask: np.ndarray
    conn: Any = None
    table: str | None = None
    load_s: float = 0.0
    rebuild: bool = False
    cores: int = 1
    progress: Progress | None = None
    id_column: str = "id"
    vector_column: str = "embedding"
    extra: dict[str, Any] = field(default_factory=dict)
    #: the method's options (``pgvector-hnsw@ef=200,iterative=relaxed_order``), as text
    options: dict[str, str] = field(default_factory=dict)
    #: the options a method read (:meth:`option`); the runner refuses the others
    used_options: set[str] = field(default_factory=set)

    def option(self, name: str, kind: type, default: Any = None) -> Any:
        """The method option ``name`` as ``kind`` (``default`` when not given)."""
        self.used_options.add(name)
        if name not in self.options:
            return default
        text = self.options[name]
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"method option {name}={text!r} is not a {kind.__name__}") from None

    @property
    def n(self) -> int:
        return int(self.dataset.xb.shape[0])

    @property
    def d(self) -> int:
        return int(self.dataset.xb.shape[1])

    @property
    def xb(self) -> np.ndarray:
        return self.dataset.xb

    @property
    def n_matching(self) -> int:
        return int(self.filter_mask.sum())

    def pg_where(self) -> tuple[sql.Composable, list[Any]]:
        """``WHERE <filter>`` for PostgreSQL (``%s`` placeholders) and its parameters."""
        return where.pg_where(self.filter)

    def duck_where(self) -> tuple[str, list[Any]]:
        """``WHERE <filter>`` for DuckDB (``?`` placeholders) and its parameters."""
        return where.duck_where(self.filter)

    def task(self, description: str, total: float | None = None) -> Any:
        """A progress bar (``total`` given) or spinner; a context manager yielding
        ``advance(amount=1, **fields)``."""
        return progress_task(self.progress, description, total)


@contextmanager
def progress_task(
    progress: Progress | None, description: str, total: float | None = None
) -> Iterator[Any]:
    """One task on ``progress`` (nothing when ``None``) that is marked finished on exit."""
    if progress is None:
        yield lambda *a, **kw: None
        return
    task_id = progress.add_task(description, total=total)
    start = time.perf_counter()

    def advance(amount: float = 1, **fields: Any) -> None:
        progress.update(task_id, advance=amount, **fields)

    try:
        yield advance
    finally:
        done = total if total is not None else 1
        progress.update(task_id, completed=done, total=done)
        progress.stop_task(task_id)
        if not progress.console.is_terminal:  # no live display: log each finished step
            progress.console.print(f"{description}: {time.perf_counter() - start:.1f} s")
