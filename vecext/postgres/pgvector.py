"""Which pgvector a server has, and whether it is new enough for a feature."""

from __future__ import annotations

import numpy as np
import psycopg

from vecext.errors import PgvectorError

#: The oldest pgvector that has each feature vecext uses.
FEATURES: dict[str, tuple[int, int, int]] = {
    "vector": (0, 5, 0),
    "hnsw": (0, 5, 0),
    "halfvec": (0, 7, 0),
    "bit": (0, 7, 0),
    "subvector": (0, 7, 0),
    "binary_quantize": (0, 7, 0),
    "iterative_scan": (0, 8, 0),
}

#: What vecext's catalog itself needs.
MINIMUM = FEATURES["halfvec"]


def vector_text(v: np.ndarray) -> str:
    """A float vector as pgvector's text form, ``[x,y,...]``; 9 significant digits
    identify every float32, so the value parses back bit for bit."""
    return "[" + ",".join(f"{x:.9g}" for x in np.asarray(v, np.float32).ravel().tolist()) + "]"


def parse_version(text: str) -> tuple[int, int, int]:
    """``'0.8.6'`` -> ``(0, 8, 6)``; tolerates suffixes such as ``'0.8.0-dev'``."""
    parts: list[int] = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit()) or "0"
        parts.append(int(digits))
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def fmt(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


def installed_version(conn: psycopg.Connection) -> str | None:
    """The pgvector version created in this database, or ``None``."""
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    return row[0] if row else None


def schema(conn: psycopg.Connection) -> str:
    """The schema pgvector is installed in (its types and operators live there)."""
    row = conn.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'vector'"
    ).fetchone()
    if row is None:
        raise PgvectorError("pgvector is not installed in this database: CREATE EXTENSION vector")
    return str(row[0])


def available_version(conn: psycopg.Connection) -> str | None:
    """The pgvector version the server could create, or ``None`` if it has none."""
    row = conn.execute(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
    ).fetchone()
    return row[0] if row else None


def check_version(found: str | None, feature: str = "vector", *, where: str = "") -> None:
    """Raise :class:`PgvectorError` unless ``found`` supports ``feature``."""
    if feature not in FEATURES:
        raise ValueError(f"unknown pgvector feature {feature!r}; known: {sorted(FEATURES)}")
    needed = FEATURES[feature]
    suffix = f" in {where}" if where else ""
    if found is None:
        raise PgvectorError(
            f"pgvector is not installed{suffix}; vecext needs pgvector >= {fmt(needed)} "
            f"for {feature} (CREATE EXTENSION vector, or use a server that has it)"
        )
    if parse_version(found) < needed:
        raise PgvectorError(
            f"pgvector {found}{suffix} is too old for {feature}: it needs pgvector >= {fmt(needed)}"
        )


def require(conn: psycopg.Connection, feature: str = "vector") -> str:
    """Check that pgvector in ``conn``'s database supports ``feature``; return its version."""
    found = installed_version(conn)
    if found is None:
        avail = available_version(conn)
        db = conn.info.dbname
        if avail is None:
            raise PgvectorError(
                f"pgvector is not available on this server (database {db!r}): vecext needs "
                f"pgvector >= {fmt(FEATURES[feature])}; install the extension package, or use "
                "the embedded default / the pgvector Docker image"
            )
        raise PgvectorError(
            f"pgvector {avail} is available but not created in database {db!r}: "
            "run CREATE EXTENSION vector (or `vecext install`)"
        )
    check_version(found, feature, where=f"database {conn.info.dbname!r}")
    return found
