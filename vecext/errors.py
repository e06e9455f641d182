"""Exceptions raised by vecext's database adapters.

The numerical core raises :class:`vecext.codecs.CodecError` (a ``ValueError``);
the adapters raise the classes below. Every message names the object at fault
(host, path, version, column) so that it can be acted on without a debugger.
"""

from __future__ import annotations


class VecextError(Exception):
    """Base class of the errors raised by vecext's adapters."""


class VecextWarning(UserWarning):
    """Something works but costs more than it should (the message says how to avoid it)."""


class ConnectionFailed(VecextError):
    """The database could not be reached (names the host and the cause)."""


class EmbeddedServerError(VecextError):
    """The embedded PostgreSQL server could not be set up or started."""


class PgvectorError(VecextError):
    """pgvector is missing, or older than a feature needs."""


class CatalogError(VecextError):
    """The vecext catalog is missing, newer than this package, or inconsistent."""
