"""Alembic environment for vecext's catalog; revisions apply the scripts in sql/postgres/."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from vecext.postgres.connection import sqlalchemy_url

config = context.config
dsn = context.get_x_argument(as_dictionary=True).get("dsn") or config.get_main_option(
    "sqlalchemy.url"
)
version_table = config.get_main_option("version_table") or "vecext_alembic_version"


def run_migrations_offline() -> None:
    raise SystemExit("vecext's catalog revisions need a live connection (no --sql mode)")


def run_migrations_online() -> None:
    engine = create_engine(sqlalchemy_url(dsn), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, version_table=version_table)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
