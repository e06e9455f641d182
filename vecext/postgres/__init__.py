"""PostgreSQL adapter: connections, the embedded default server and the catalog."""

from vecext.postgres.catalog import InstallResult, install, installed_version, require_catalog
from vecext.postgres.connection import connect, resolve_dsn
from vecext.postgres.embedded import start_embedded, stop_embedded, vecext_home

__all__ = [
    "InstallResult",
    "connect",
    "install",
    "installed_version",
    "require_catalog",
    "resolve_dsn",
    "start_embedded",
    "stop_embedded",
    "vecext_home",
]
