"""Connection resolution, in one place.

A DSN passed in wins, else ``$VECEXT_DSN``, else the embedded default server
(started on first use, reused after). Connections fail fast: an unreachable
host is reported within ``CONNECT_TIMEOUT`` seconds, naming the host and cause.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
from psycopg import conninfo

from vecext.errors import ConnectionFailed

#: Seconds before giving up on an unreachable server.
CONNECT_TIMEOUT = 5

_embedded_dsn: str | None = None


def resolve_dsn(dsn: str | None = None) -> str:
    """Return the DSN to use: ``dsn``, else ``$VECEXT_DSN``, else the embedded server's."""
    global _embedded_dsn
    if dsn:
        return dsn
    env = os.environ.get("VECEXT_DSN")
    if env:
        return env
    if _embedded_dsn is None:
        from vecext.postgres.embedded import start_embedded

        _embedded_dsn = start_embedded().dsn
    return _embedded_dsn


def describe_target(dsn: str) -> str:
    """``host:port/dbname`` of a DSN, for messages (never the password)."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "an unparseable DSN"
    host = params.get("host") or params.get("hostaddr") or "localhost (default socket)"
    port = params.get("port")
    db = params.get("dbname")
    out = str(host)
    if port:
        out += f":{port}"
    if db:
        out += f"/{db}"
    return out


def connect(
    dsn: str | None = None, *, autocommit: bool = False, **kwargs: Any
) -> psycopg.Connection:
    """Open a psycopg connection with pgvector's types registered when present.

    Raises
    ------
    ConnectionFailed
        The server cannot be reached or refuses the connection; the message
        names the host and the cause.
    """
    target = resolve_dsn(dsn)
    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT)
    try:
        conn = psycopg.connect(target, autocommit=autocommit, **kwargs)
    except psycopg.OperationalError as exc:
        # libpq's message spans lines ("...: Connection refused\n\tIs the server running...")
        cause = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        cause = cause or type(exc).__name__
        raise ConnectionFailed(
            f"cannot connect to PostgreSQL at {describe_target(target)}: {cause}"
        ) from exc
    except psycopg.ProgrammingError as exc:
        raise ConnectionFailed(f"invalid DSN: {exc}") from exc
    register_pgvector(conn)
    return conn


def register_pgvector(conn: psycopg.Connection) -> bool:
    """Register pgvector's Python types on ``conn`` if the extension exists there."""
    from pgvector.psycopg import register_vector

    try:
        register_vector(conn)
    except psycopg.ProgrammingError:
        # vector type not found: the extension is not installed in this database
        if not conn.autocommit:
            conn.rollback()
        return False
    return True


def sqlalchemy_url(dsn: str | None = None) -> str:
    """The SQLAlchemy URL (``postgresql+psycopg://``) for a libpq DSN or URI."""
    from sqlalchemy.engine import URL

    params = conninfo.conninfo_to_dict(resolve_dsn(dsn))
    query: dict[str, str] = {}
    host = params.pop("host", None)
    port = params.pop("port", None)
    # a socket directory (or several hosts) cannot live in the URL's host part
    if host and (str(host).startswith("/") or "," in str(host)):
        query["host"] = str(host)
        host = None
    for key, value in params.items():
        if key not in ("user", "password", "dbname") and value is not None:
            query[key] = str(value)
    url = URL.create(
        "postgresql+psycopg",
        username=params.get("user"),  # type: ignore[arg-type]
        password=params.get("password") or None,  # type: ignore[arg-type]
        host=host,  # type: ignore[arg-type]
        port=int(port) if port else None,
        database=params.get("dbname"),  # type: ignore[arg-type]
        query=query,
    )
    return url.render_as_string(hide_password=False)
