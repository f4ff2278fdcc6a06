"""Full-text search over project names, summaries and descriptions.

SQLite keeps the text in an FTS5 table; PostgreSQL in a plain table with a GIN index over
its tsvector.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _create()
    _backfill()


def _create() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE search_entries USING fts5("
            "project, summary, description, index_id UNINDEXED, version UNINDEXED,"
            " tokenize = 'porter unicode61')"
        )
        return
    op.create_table(
        "search_entries",
        sa.Column("index_id", sa.Integer, sa.ForeignKey("indexes.id", ondelete="CASCADE")),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.UniqueConstraint("index_id", "project", name="uq_search_entries_project"),
    )
    op.execute(
        "CREATE INDEX ix_search_entries_text ON search_entries USING GIN (to_tsvector('english',"
        " project || ' ' || summary || ' ' || description))"
    )


def _backfill() -> None:
    """Make what is already stored findable: each project's most recent version."""
    bind = op.get_bind()
    versions = sa.table(
        "versions",
        sa.column("id", sa.Integer),
        sa.column("index_id", sa.Integer),
        sa.column("project", sa.String),
        sa.column("version", sa.String),
        sa.column("metadata", sa.JSON),
    )
    latest: dict[tuple[int, str], tuple[str, dict[str, object]]] = {}
    for row in bind.execute(sa.select(versions).order_by(versions.c.id)):
        latest[(row.index_id, row.project)] = (row.version, dict(row.metadata or {}))
    insert = sa.text(
        "INSERT INTO search_entries (index_id, project, version, summary, description)"
        " VALUES (:index_id, :project, :version, :summary, :description)"
    )
    for (index_id, project), (version, metadata) in latest.items():
        bind.execute(
            insert,
            {
                "index_id": index_id,
                "project": project,
                "version": version,
                "summary": str(metadata.get("summary") or ""),
                "description": str(metadata.get("description") or ""),
            },
        )


def downgrade() -> None:
    op.drop_table("search_entries")
