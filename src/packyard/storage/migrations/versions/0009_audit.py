"""The audit trail: one row per recorded change, in the change's own transaction.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("serial", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("token", sa.String(200), nullable=True),
        sa.Column("address", sa.String(200), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("index_name", sa.String(401), nullable=True),
        sa.Column("project", sa.String(200), nullable=True),
        sa.Column("version", sa.String(200), nullable=True),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_at", "audit", ["at"])
    op.create_index("ix_audit_actor", "audit", ["actor", "id"])
    op.create_index("ix_audit_index", "audit", ["index_name", "id"])


def downgrade() -> None:
    op.drop_table("audit")
