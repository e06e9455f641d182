"""Load DuckDB's VSS extension (HNSW indexes) from the ``duckdb-extension-vss`` wheel.

DuckDB normally downloads extensions from its own repository at ``INSTALL``
time; the PyPI wheel ships the binary instead, built for exactly one DuckDB
release, so we ``LOAD`` it by path and check the versions agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb


@dataclass(frozen=True)
class VssStatus:
    loaded: bool
    path: Path | None
    reason: str  # why it is not loaded, or where it came from


def vss_extension_path(duckdb_version: str | None = None) -> Path | None:
    """The VSS binary shipped by ``duckdb-extension-vss`` for this DuckDB, if installed."""
    version = duckdb_version or duckdb.__version__
    try:
        import duckdb_extension_vss  # type: ignore[import-not-found]
    except ImportError:
        return None
    root = Path(duckdb_extension_vss.__file__).parent / "extensions" / f"v{version}"
    path = root / "vss.duckdb_extension"
    return path if path.is_file() else None


def _shipped_versions() -> list[str]:
    try:
        import duckdb_extension_vss  # type: ignore[import-not-found]
    except ImportError:
        return []
    root = Path(duckdb_extension_vss.__file__).parent / "extensions"
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def is_loaded(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT loaded FROM duckdb_extensions() WHERE extension_name = 'vss'"
    ).fetchone()
    return bool(row and row[0])


def load_vss(con: duckdb.DuckDBPyConnection, *, required: bool = False) -> VssStatus:
    """Load VSS into ``con`` from the wheel, else from DuckDB's own extension directory.

    With ``required=True`` a failure raises ``RuntimeError`` naming what was
    looked for; otherwise the returned status says why VSS is unavailable.
    """
    if is_loaded(con):
        return VssStatus(True, None, "already loaded")
    path = vss_extension_path()
    if path is not None:
        try:
            con.execute(f"LOAD '{_sql_string(str(path))}'")
            return VssStatus(True, path, f"loaded from {path}")
        except duckdb.Error as exc:
            reason = f"the VSS binary at {path} did not load: {exc}"
    else:
        shipped = _shipped_versions()
        if shipped:
            reason = (
                f"duckdb-extension-vss ships VSS for {', '.join(shipped)}, but DuckDB is "
                f"v{duckdb.__version__}: install matching versions (pip install vecext does)"
            )
        else:
            reason = "the duckdb-extension-vss package is not installed"
        try:  # a VSS installed by DuckDB's own INSTALL (machines with network access)
            con.execute("LOAD vss")
            return VssStatus(True, None, "loaded from DuckDB's extension directory")
        except duckdb.Error:
            pass
    if required:
        raise RuntimeError(f"DuckDB's VSS extension is not available: {reason}")
    return VssStatus(False, path, reason)


def _sql_string(text: str) -> str:
    # LOAD takes no bound parameters; the path is ours (site-packages), quoted as a literal
    return text.replace("'", "''")
