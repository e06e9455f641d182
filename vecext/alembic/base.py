"""What every vecext Alembic operation shares: its error, and how it says that a step
cannot be reversed."""

from __future__ import annotations

from vecext.errors import VecextError


class MigrationError(VecextError, ValueError):
    """A vecext migration step that cannot run: names what is wrong and how to fix it."""


def irreversible(what: str, missing: str) -> MigrationError:
    """The error of a ``reverse()`` whose operation lacks what the reverse rebuilds."""
    return MigrationError(
        f"{what} cannot be reversed: it does not record {missing}; pass it to the operation "
        "so that autogenerate and downgrades can rebuild what it removes"
    )
