"""Catalog-changing verbs run by a role that is not the catalog's owner.

Only the owner of schema ``vecext`` (the role that ran ``vecext install``) changes the
catalog (README "Roles and privileges"). When another role calls a verb that does,
PostgreSQL refuses with SQLSTATE 42501; :func:`owner_only` turns that driver error into a
:class:`~vecext.errors.CatalogError` that names the role, the object it was denied on and
what to do, with the driver's error chained. It is applied once, where
:mod:`vecext.postgres` exports the verbs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus

from vecext.errors import CatalogError

F = TypeVar("F", bound=Callable[..., Any])


def _role(conn: Any) -> str:
    """``current_user`` when the connection can still answer, else the login role."""
    if not isinstance(conn, psycopg.Connection):
        return "?"
    try:
        if conn.info.transaction_status == TransactionStatus.IDLE:
            row = conn.execute("SELECT current_user").fetchone()
            if row:
                return str(row[0])
    except psycopg.Error:
        pass
    return conn.info.user


def privilege_error(
    verb: str, conn: Any, exc: psycopg.errors.InsufficientPrivilege
) -> CatalogError:
    """The vecext error for ``exc``, raised by ``verb`` on ``conn``."""
    denied = (exc.diag.message_primary or str(exc)).strip()
    role = _role(conn)
    return CatalogError(
        f"vecext.postgres.{verb}: role {role!r} may not change the vecext catalog "
        f"(PostgreSQL: {denied}). Run {verb} as the catalog's owner (the role that ran "
        f"`vecext install`); roles that only search need the owner to run "
        f"SELECT vecext.grant_usage('{role}') (README \"Roles and privileges\")."
    )


def owner_only(fn: F) -> F:
    """Wrap verb ``fn`` (first argument: the connection) so that a refused privilege
    raises :class:`~vecext.errors.CatalogError` instead of psycopg's error."""

    @functools.wraps(fn)
    def verb(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except psycopg.errors.InsufficientPrivilege as exc:
            conn = args[0] if args else kwargs.get("conn")
            raise privilege_error(fn.__name__, conn, exc) from exc

    return verb  # type: ignore[return-value]
