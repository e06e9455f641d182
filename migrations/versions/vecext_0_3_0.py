"""vecext catalog 0.3.0 (applies sql/postgres/vecext--0.2.0--0.3.0.sql)

Revision ID: vecext_0_3_0
Revises: vecext_0_2_0
Create Date: 2027-01-15
"""

from alembic import op

revision = "vecext_0_3_0"
down_revision = "vecext_0_2_0"
branch_labels = None
depends_on = None


def _psycopg_connection():
    return op.get_bind().connection.driver_connection


def upgrade() -> None:
    from vecext.postgres.catalog import apply_script

    apply_script(_psycopg_connection(), "vecext--0.2.0--0.3.0.sql")


def downgrade() -> None:
    # the script only creates functions (vecext.codec_*): they are dropped again
    from vecext.postgres.catalog import revert_script

    revert_script(_psycopg_connection(), "vecext--0.2.0--0.3.0.sql")
