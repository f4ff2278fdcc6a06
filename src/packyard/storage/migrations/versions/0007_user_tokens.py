"""Login tokens bound to a per-user random stamp, so that they can be revoked.

A password change or a logout replaces the stamp; a user deleted and registered again gets a
new one. Tokens issued before this revision carry no stamp and stop working (log in again).

Revision ID: 0007
Revises: 0006
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

users = sa.table("users", sa.column("name", sa.String), sa.column("token_stamp", sa.String))


def upgrade() -> None:
    op.add_column("users", sa.Column("token_stamp", sa.String(64), nullable=True))
    connection = op.get_bind()
    for (name,) in connection.execute(sa.select(users.c.name)).all():
        stamp = secrets.token_hex(16)
        connection.execute(users.update().where(users.c.name == name).values(token_stamp=stamp))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("token_stamp")
