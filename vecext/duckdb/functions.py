"""vecext's DuckDB functions: each feature module adds a registrar here.

A registrar is ``fn(con) -> None`` that creates UDFs and macros in ``con``.
:func:`register_functions` runs them all; it is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

Registrar = Callable[[duckdb.DuckDBPyConnection], None]
_REGISTRARS: list[Registrar] = []


def registrar(fn: Registrar) -> Registrar:
    """Decorator: run ``fn`` whenever vecext's functions are registered in a connection."""
    if fn not in _REGISTRARS:
        _REGISTRARS.append(fn)
    return fn


def register_functions(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Register every vecext function in ``con``; return the registrars' names."""
    _import_feature_modules()
    for fn in _REGISTRARS:
        fn(con)
    return [fn.__name__ for fn in _REGISTRARS]


def _import_feature_modules() -> None:
    # Feature modules register themselves on import; importing them here keeps
    # `connect()` complete without import cycles at package import time.
    import importlib

    for name in _FEATURE_MODULES:
        importlib.import_module(name)


#: Modules that define registrars (grown by each feature).
_FEATURE_MODULES: list[str] = [
    "vecext.duckdb.core",
    "vecext.duckdb.codecs",
    "vecext.duckdb.relevance",
]
