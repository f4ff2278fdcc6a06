"""SQLite search entries found by (index, project) through an ordinary indexed table.

An FTS5 table can be searched only by its words and its rowid, so removing or replacing the
entry of one project scanned the whole table on every upload. The words move to `search_text`,
whose rowid is the id of the project's row in `search_keys`. PostgreSQL is unchanged: its
`search_entries` is a plain table with a unique index.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_table(
        "search_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "index_id", sa.Integer, sa.ForeignKey("indexes.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.UniqueConstraint("index_id", "project", name="uq_search_keys_project"),
    )
    op.execute(
        "CREATE VIRTUAL TABLE search_text USING fts5("
        "project, summary, description, tokenize = 'porter unicode61')"
    )
    op.execute(
        "INSERT INTO search_keys (index_id, project, version)"
        " SELECT index_id, project, version FROM search_entries"
    )
    op.execute(
        "INSERT INTO search_text (rowid, project, summary, description)"
        " SELECT k.id, e.project, e.summary, e.description FROM search_entries e"
        " JOIN search_keys k ON k.index_id = e.index_id AND k.project = e.project"
    )
    op.execute("DROP TABLE search_entries")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        "CREATE VIRTUAL TABLE search_entries USING fts5("
        "project, summary, description, index_id UNINDEXED, version UNINDEXED,"
        " tokenize = 'porter unicode61')"
    )
    op.execute(
        "INSERT INTO search_entries (index_id, project, version, summary, description)"
        " SELECT k.index_id, k.project, k.version, t.summary, t.description"
        " FROM search_keys k JOIN search_text t ON t.rowid = k.id"
    )
    op.execute("DROP TABLE search_text")
    op.drop_table("search_keys")
