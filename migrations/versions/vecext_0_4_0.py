"""vecext catalog 0.4.0 (applies sql/postgres/vecext--0.3.0--0.4.0.sql)

Code stores: compressed columns keep their codes in vecext."store_<id>" tables kept
current by triggers; catalog rows keyed by table OID and column attnum.

Revision ID: vecext_0_4_0
Revises: vecext_0_3_0
Create Date: 2027-02-01
"""

from alembic import op

revision = "vecext_0_4_0"
down_revision = "vecext_0_3_0"
branch_labels = None
depends_on = None


def _psycopg_connection():
    return op.get_bind().connection.driver_connection


def upgrade() -> None:
    from vecext.postgres.catalog import apply_script

    apply_script(_psycopg_connection(), "vecext--0.3.0--0.4.0.sql")


def downgrade() -> None:
    # the catalog's table changes are undone too, but never while a code store holds
    # codes: revert_script then refuses and names those compressed columns
    from vecext.postgres.catalog import revert_script

    revert_script(_psycopg_connection(), "vecext--0.3.0--0.4.0.sql")
