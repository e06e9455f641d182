"""The ``alembic.plugins`` entry point of vecext (Alembic >= 1.18).

Alembic calls :func:`setup` while it is itself being imported, so this module
imports nothing of Alembic's autogenerate machinery at import time: it adds one
comparator (target ``schema``, priority LAST) that loads :mod:`vecext.alembic`
on first use and runs :func:`vecext.alembic.compare.compare_vecext`. Like every
Alembic plugin it runs when named in ``context.configure(...,
autogenerate_plugins=["alembic.autogenerate.*", "vecext"])``; env.py then needs
no vecext import. Without the plugin, ``import vecext.alembic`` in env.py
registers the same comparator globally.
"""

from __future__ import annotations

from typing import Any

PLUGIN_NAME = "vecext"


def _compare(autogen_context: Any, upgrade_ops: Any, schemas: Any) -> Any:
    from vecext.alembic.compare import compare_vecext  # registers ops and renderers too

    return compare_vecext(autogen_context, upgrade_ops, schemas)


def setup(plugin: Any) -> None:
    """Called by Alembic with the :class:`alembic.runtime.plugins.Plugin` named ``vecext``."""
    from alembic.util import DispatchPriority

    plugin.add_autogenerate_comparator(_compare, "schema", "vecext", priority=DispatchPriority.LAST)
