"""Backends by connection: the search core's only way to reach a database adapter.

A backend registers its class (:func:`register`); the ones installed with vecext
are also declared as ``vecext.backends`` entry points, which are loaded the first
time a connection is not recognised by an already registered backend. So
``vecext.search.search(psycopg_conn, ...)`` works without importing
``vecext.postgres`` first, and ``import vecext.search`` imports no driver.
"""

from __future__ import annotations

import threading
from importlib.metadata import entry_points
from typing import Any

from vecext.search.contracts import Backend, SearchError

_LOCK = threading.Lock()
_BACKENDS: dict[str, type[Backend]] = {}
#: entry points that could not be loaded (name -> why): an extra that is not installed
_BROKEN: dict[str, str] = {}
_LOADED = False

GROUP = "vecext.backends"


def register(cls: type[Backend]) -> type[Backend]:
    """Make ``cls`` a backend (usable as a class decorator). A later registration of
    the same name replaces the earlier one."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a class attribute name to be a backend")
    with _LOCK:
        _BACKENDS[name] = cls
    return cls


def _load_entry_points() -> None:
    global _LOADED
    with _LOCK:
        if _LOADED:
            return
        _LOADED = True
    for ep in entry_points(group=GROUP):
        if ep.name in _BACKENDS:
            continue
        try:
            cls = ep.load()
        except ImportError as exc:  # the backend's extra is not installed
            _BROKEN[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        register(cls)


def backends() -> dict[str, type[Backend]]:
    """Every registered backend by name (entry points included)."""
    _load_entry_points()
    return dict(_BACKENDS)


def backend_for(conn: Any) -> Backend:
    """The backend adapter for ``conn`` (a psycopg or DuckDB connection, or any
    connection a registered backend accepts)."""
    for cls in list(_BACKENDS.values()):
        if cls.accepts(conn):
            return cls(conn)  # type: ignore[call-arg]
    _load_entry_points()
    for cls in list(_BACKENDS.values()):
        if cls.accepts(conn):
            return cls(conn)  # type: ignore[call-arg]
    missing = "".join(f"; backend {n} is not available ({why})" for n, why in _BROKEN.items())
    raise SearchError(
        f"unsupported connection {type(conn).__name__}: pass a psycopg or DuckDB connection"
        + missing
    )
