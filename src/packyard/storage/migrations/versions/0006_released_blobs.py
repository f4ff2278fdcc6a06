"""Blob lifetimes kept by the database: every row that stops pointing at a blob notes it.

Triggers on `files` (deleted rows, changed hashes) and `mirror_lists` (replaced name lists)
write the blobs they let go of into `released_blobs`, whatever statement or cascade removed
them. Every write transaction then removes the noted blobs no row points at any more
(`Database.write`), so no caller can forget to.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (table, column) pairs whose values name blobs.
BLOB_COLUMNS = (
    ("files", "sha256"),
    ("files", "metadata_sha256"),
    ("mirror_lists", "names_sha256"),
)


def upgrade() -> None:
    op.create_table("released_blobs", sa.Column("sha256", sa.String(64), nullable=False))
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_triggers()
    else:
        _postgresql_triggers()


def _sqlite_triggers() -> None:
    for table in ("files", "mirror_lists"):
        columns = [column for owner, column in BLOB_COLUMNS if owner == table]
        on_delete = "".join(
            f"INSERT INTO released_blobs (sha256)"
            f" SELECT OLD.{column} WHERE OLD.{column} IS NOT NULL;"
            for column in columns
        )
        on_update = "".join(
            f"INSERT INTO released_blobs (sha256) SELECT OLD.{column}"
            f" WHERE OLD.{column} IS NOT NULL AND OLD.{column} IS NOT NEW.{column};"
            for column in columns
        )
        op.execute(
            f"CREATE TRIGGER {table}_release_on_delete AFTER DELETE ON {table}"
            f" BEGIN {on_delete} END"
        )
        op.execute(
            f"CREATE TRIGGER {table}_release_on_update"
            f" AFTER UPDATE OF {', '.join(columns)} ON {table} BEGIN {on_update} END"
        )


def _postgresql_triggers() -> None:
    for table in ("files", "mirror_lists"):
        columns = [column for owner, column in BLOB_COLUMNS if owner == table]
        on_delete = "".join(
            f"IF OLD.{column} IS NOT NULL THEN"
            f" INSERT INTO released_blobs (sha256) VALUES (OLD.{column}); END IF;"
            for column in columns
        )
        on_update = "".join(
            f"IF OLD.{column} IS NOT NULL AND OLD.{column} IS DISTINCT FROM NEW.{column} THEN"
            f" INSERT INTO released_blobs (sha256) VALUES (OLD.{column}); END IF;"
            for column in columns
        )
        op.execute(
            f"CREATE FUNCTION {table}_release_blobs() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN IF TG_OP = 'DELETE' THEN {on_delete} ELSE {on_update} END IF;"
            f" RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_release AFTER DELETE OR UPDATE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION {table}_release_blobs()"
        )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in ("files", "mirror_lists"):
        if sqlite:
            op.execute(f"DROP TRIGGER {table}_release_on_delete")
            op.execute(f"DROP TRIGGER {table}_release_on_update")
        else:
            op.execute(f"DROP TRIGGER {table}_release ON {table}")
            op.execute(f"DROP FUNCTION {table}_release_blobs()")
    op.drop_table("released_blobs")
