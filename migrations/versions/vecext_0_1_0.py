"""vecext catalog 0.1.0 (applies sql/postgres/vecext--0.1.0.sql)

Revision ID: vecext_0_1_0
Revises:
Create Date: 2026-11-22
"""

from alembic import op

revision = "vecext_0_1_0"
down_revision = None
branch_labels = ("vecext",)
depends_on = None


def _psycopg_connection():
    return op.get_bind().connection.driver_connection


def upgrade() -> None:
    from vecext.postgres.catalog import apply_script

    apply_script(_psycopg_connection(), "vecext--0.1.0.sql")


def downgrade() -> None:
    from vecext.postgres.catalog import uninstall

    uninstall(_psycopg_connection())
