"""Versioned SQL scripts under ``sql/<backend>/``: which to apply, in which order.

``vecext--X.sql`` installs version X from nothing; ``vecext--A--B.sql`` upgrades
A to B. An install applies the oldest base script and then walks the upgrade
chain, one step per file, exactly as PostgreSQL's own extension machinery does.
The same plan drives ``vecext install``, the Alembic revisions and the Docker
init script, so the three can never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vecext.errors import CatalogError

SQL_ROOT = Path(__file__).resolve().parents[1] / "sql"
_BASE = re.compile(r"^vecext--(\d+\.\d+\.\d+)\.sql$")
_STEP = re.compile(r"^vecext--(\d+\.\d+\.\d+)--(\d+\.\d+\.\d+)\.sql$")


@dataclass
class InstallResult:
    """What an install or upgrade did: the version before and after, and the scripts run."""

    previous: str | None
    current: str
    applied: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.applied)


#: The installed version, once schema ``vecext`` exists (both databases)
VERSION_SQL = "SELECT version FROM vecext.installed_version"


def recorded_version(row: tuple[object, ...] | None) -> str:
    """The version in the row :data:`VERSION_SQL` returned; a :class:`CatalogError` when
    the schema exists without one (a failed manual install)."""
    if row is None:
        raise CatalogError("schema vecext exists but records no installed version")
    return str(row[0])


def vtuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


@dataclass(frozen=True)
class Script:
    path: Path
    from_version: str | None  # None for a base install script
    to_version: str

    @property
    def name(self) -> str:
        return self.path.name

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")


def scripts_dir(backend: str) -> Path:
    if backend not in ("postgres", "duckdb"):
        raise ValueError(f"unknown backend {backend!r}; expected 'postgres' or 'duckdb'")
    return SQL_ROOT / backend


def _scan(backend: str) -> tuple[list[Script], dict[str, Script]]:
    bases: list[Script] = []
    steps: dict[str, Script] = {}
    directory = scripts_dir(backend)
    if not directory.is_dir():
        raise CatalogError(f"vecext's SQL scripts are missing: {directory} does not exist")
    for path in sorted(directory.glob("vecext--*.sql")):
        if m := _BASE.match(path.name):
            bases.append(Script(path, None, m.group(1)))
        elif m := _STEP.match(path.name):
            if m.group(1) in steps:
                raise CatalogError(f"two upgrade scripts start at {m.group(1)} in {directory}")
            steps[m.group(1)] = Script(path, m.group(1), m.group(2))
    if not bases:
        raise CatalogError(f"no base install script (vecext--X.Y.Z.sql) in {directory}")
    bases.sort(key=lambda s: vtuple(s.to_version))
    return bases, steps


def latest_version(backend: str) -> str:
    """The version the upgrade chain ends at."""
    bases, steps = _scan(backend)
    version = bases[0].to_version
    while version in steps:
        version = steps[version].to_version
    return version


def plan(backend: str, installed: str | None, target: str | None = None) -> list[Script]:
    """The scripts that take a catalog from ``installed`` (None: nothing) to ``target``.

    Raises
    ------
    CatalogError
        ``installed`` is newer than ``target`` (this package is older than the
        catalog), or no chain of upgrade scripts leads from one to the other.
    """
    bases, steps = _scan(backend)
    target = target or latest_version(backend)
    out: list[Script] = []
    if installed is None:
        out.append(bases[0])
        version = bases[0].to_version
    else:
        version = installed
    if vtuple(version) > vtuple(target):
        raise CatalogError(
            f"the installed vecext catalog is version {version}, newer than this vecext "
            f"({target}); refusing to touch it: upgrade the vecext package instead"
        )
    while vtuple(version) < vtuple(target):
        step = steps.get(version)
        if step is None:
            raise CatalogError(f"no upgrade script from vecext {version} towards {target}")
        out.append(step)
        version = step.to_version
    if version != target:
        raise CatalogError(f"the upgrade chain passes {target} without stopping at it")
    return out


def apply(
    steps: list[Script],
    run: Callable[[str], object],
    installed: Callable[[], str | None],
    previous: str | None,
) -> InstallResult:
    """Run the scripts of a :func:`plan` in order, in the caller's transaction: ``run``
    executes a script's text, ``installed`` reads the version back, which must be the
    one each script promises (a script that forgets to record itself is refused)."""
    result = InstallResult(previous=previous, current=previous or "", applied=[])
    for script in steps:
        run(script.text())
        now = installed()
        if now != script.to_version:
            raise CatalogError(
                f"{script.name} left the catalog at version {now}, expected {script.to_version}"
            )
        result.applied.append(script.name)
        result.current = script.to_version
    return result
