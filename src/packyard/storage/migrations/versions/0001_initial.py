"""Initial schema: users, indexes, versions, files, changes, server settings.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("pwhash", sa.Text, nullable=True),
        sa.Column("pwsalt", sa.Text, nullable=True),
        sa.Column("info", sa.JSON, nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("modified", sa.String(32), nullable=True),
    )
    op.create_table(
        "indexes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "user",
            sa.String(200),
            sa.ForeignKey("users.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.UniqueConstraint("user", "name", name="uq_indexes_user_name"),
    )
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "index_id",
            sa.Integer,
            sa.ForeignKey("indexes.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("version_key", sa.String(200), nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.UniqueConstraint("index_id", "project", "version_key", name="uq_versions_release"),
    )
    op.create_table(
        "files",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "index_id",
            sa.Integer,
            sa.ForeignKey("indexes.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("uploaded_at", sa.Float, nullable=False),
        sa.Column("yanked", sa.Text, nullable=True),
        sa.Column("metadata_sha256", sa.String(64), nullable=True),
        sa.Column("requires_python", sa.Text, nullable=True),
        sa.Column("for_file", sa.String(255), nullable=True),
        sa.Column("log", sa.JSON, nullable=False),
        sa.UniqueConstraint("index_id", "filename", name="uq_files_index_filename"),
        sa.CheckConstraint("length(sha256) = 64", name="ck_files_sha256"),
        sa.CheckConstraint("kind in ('releasefile', 'doczip', 'toxresult')", name="ck_files_kind"),
    )
    op.create_index("ix_files_index_project", "files", ["index_id", "project"])
    op.create_table(
        "changes",
        sa.Column("serial", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("what", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_table(
        "server_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    for table in ("server_settings", "changes", "files", "versions", "indexes", "users"):
        op.drop_table(table)
