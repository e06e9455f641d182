"""vecext catalog 0.2.0 (applies sql/postgres/vecext--0.1.0--0.2.0.sql)

Revision ID: vecext_0_2_0
Revises: vecext_0_1_0
Create Date: 2026-11-22
"""

from alembic import op

revision = "vecext_0_2_0"
down_revision = "vecext_0_1_0"
branch_labels = None
depends_on = None


def _psycopg_connection():
    return op.get_bind().connection.driver_connection


def upgrade() -> None:
    from vecext.postgres.catalog import apply_script

    apply_script(_psycopg_connection(), "vecext--0.1.0--0.2.0.sql")


def downgrade() -> None:
    # the script only replaces functions: their 0.1.0 definitions come back
    from vecext.postgres.catalog import revert_script

    revert_script(_psycopg_connection(), "vecext--0.1.0--0.2.0.sql")
