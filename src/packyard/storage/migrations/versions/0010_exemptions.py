"""Exemptions: break-glass allowances past a mirror's cooldown.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exemptions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "index_id",
            sa.Integer,
            sa.ForeignKey("indexes.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("expires", sa.Float, nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_index("ix_exemptions_project", "exemptions", ["index_id", "project"])


def downgrade() -> None:
    op.drop_table("exemptions")
