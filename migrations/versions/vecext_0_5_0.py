"""vecext catalog 0.5.0 (applies sql/postgres/vecext--0.4.0--0.5.0.sql)

IVF lists in the code store: the list ids of a compressed column of layout 'store'
live in its code store vecext."store_<id>" (pk, code, list), assigned by the store's
trigger; compressed_columns.list_layout says where a column's lists are.

Revision ID: vecext_0_5_0
Revises: vecext_0_4_0
Create Date: 2027-03-01
"""

from alembic import op

revision = "vecext_0_5_0"
down_revision = "vecext_0_4_0"
branch_labels = None
depends_on = None


def _psycopg_connection():
    return op.get_bind().connection.driver_connection


def upgrade() -> None:
    from vecext.postgres.catalog import apply_script

    apply_script(_psycopg_connection(), "vecext--0.4.0--0.5.0.sql")


def downgrade() -> None:
    # the catalog's table change is undone too, but never while a code store holds IVF
    # lists: revert_script then refuses and names those compressed columns
    from vecext.postgres.catalog import revert_script

    revert_script(_psycopg_connection(), "vecext--0.4.0--0.5.0.sql")
