"""Mirror state: cached upstream project pages and project lists.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mirror_pages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "index_id",
            sa.Integer,
            sa.ForeignKey("indexes.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("fetched_at", sa.Float, nullable=False),
        sa.Column("etag", sa.Text, nullable=True),
        sa.Column("last_modified", sa.Text, nullable=True),
        sa.Column("upstream_serial", sa.BigInteger, nullable=True),
        sa.Column("links", sa.JSON, nullable=False),
        sa.UniqueConstraint("index_id", "project", name="uq_mirror_pages_project"),
        sa.CheckConstraint("status in ('ok', 'missing')", name="ck_mirror_pages_status"),
    )
    op.create_table(
        "mirror_lists",
        sa.Column(
            "index_id",
            sa.Integer,
            sa.ForeignKey("indexes.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("fetched_at", sa.Float, nullable=False),
        sa.Column("etag", sa.Text, nullable=True),
        sa.Column("names_sha256", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mirror_lists")
    op.drop_table("mirror_pages")
