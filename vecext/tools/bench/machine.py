"""What the numbers were measured on: CPU, cores, memory, OS, library versions, load."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_info(**extra: Any) -> dict[str, Any]:
    """A JSON-ready description of this machine; ``extra`` (e.g. server settings) is merged in."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": cores(),
        "memory_bytes": _memory_bytes(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "loadavg_at_start": load,
        "versions": {
            name: _version(name)
            for name in (
                "vecext",
                "numpy",
                "faiss-cpu",
                "duckdb",
                "duckdb-extension-vss",
                "psycopg",
                "pgvector",
                "pyarrow",
            )
        },
    }
    info.update(extra)
    return info
