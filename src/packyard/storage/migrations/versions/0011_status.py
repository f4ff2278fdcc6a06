"""Project status (PEP 792) for hosted projects and mirrors' pages; imported OSV advisories.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: a batch copy of the table would drop its triggers (0006).
    op.add_column("mirror_pages", sa.Column("project_status", sa.JSON, nullable=True))
    op.create_table(
        "project_statuses",
        sa.Column(
            "index_id",
            sa.Integer,
            sa.ForeignKey("indexes.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("changed", sa.Float, nullable=False),
        sa.CheckConstraint(
            "status in ('deprecated', 'archived', 'quarantined')",
            name="ck_project_statuses_status",
        ),
    )
    op.create_table(
        "advisories",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("malicious", sa.Integer, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("ix_advisories_project", "advisories", ["project"])


def downgrade() -> None:
    op.drop_table("advisories")
    op.drop_table("project_statuses")
    op.drop_column("mirror_pages", "project_status")
