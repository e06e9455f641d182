"""vecext catalog 0.6.0 (applies sql/postgres/vecext--0.5.0--0.6.0.sql)

Mirrored filter columns in the code store: declared filter and tenant columns of the
table are copied into the code store vecext."store_<id>" (col_<attnum>, with a btree
each), kept current by the store's trigger; compressed_columns.mirror_attnums records
them by attnum.

Revision ID: vecext_0_6_0
Revises: vecext_0_5_0
Create Date: 2027-04-01
"""

from alembic import op

revision = "vecext_0_6_0"
down_revision = "vecext_0_5_0"
branch_labels = None
depends_on = None


def _psycopg_connection():
    return op.get_bind().connection.driver_connection


def upgrade() -> None:
    from vecext.postgres.catalog import apply_script

    apply_script(_psycopg_connection(), "vecext--0.5.0--0.6.0.sql")


def downgrade() -> None:
    # the catalog's table change is undone too, but never while a code store mirrors
    # columns: revert_script then refuses and names those compressed columns
    from vecext.postgres.catalog import revert_script

    revert_script(_psycopg_connection(), "vecext--0.5.0--0.6.0.sql")
