"""The metadata schema. Uniqueness and digest formats are database constraints."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

SHA256_CHECK = "length({col}) = 64"

users = Table(
    "users",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("pwhash", Text, nullable=True),
    Column("pwsalt", Text, nullable=True),
    # email, title, description, custom_data
    Column("info", JSON, nullable=False, default=dict),
    Column("created", String(32), nullable=False),
    Column("modified", String(32), nullable=True),
    # Random, part of every login token signed for this user; replaced on a password change
    # or logout (revoking the tokens), and new for a re-registered name.
    Column("token_stamp", String(64), nullable=True),
)

indexes = Table(
    "indexes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user", String(200), ForeignKey("users.name", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("config", JSON, nullable=False),
    UniqueConstraint("user", "name", name="uq_indexes_user_name"),
)

versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("index_id", Integer, ForeignKey("indexes.id", ondelete="CASCADE"), nullable=False),
    Column("project", String(200), nullable=False),  # PEP 503 normalised
    Column("version", String(200), nullable=False),  # as first uploaded
    Column("version_key", String(200), nullable=False),  # canonicalize_version: 1.0 == 1.0.0
    Column("metadata", JSON, nullable=False),
    Column("created", Float, nullable=False),
    UniqueConstraint("index_id", "project", "version_key", name="uq_versions_release"),
)

files = Table(
    "files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("index_id", Integer, ForeignKey("indexes.id", ondelete="CASCADE"), nullable=False),
    Column("project", String(200), nullable=False),
    Column("version", String(200), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("uploaded_at", Float, nullable=False),
    Column("yanked", Text, nullable=True),  # None: not yanked; "" yanked without reason
    Column("metadata_sha256", String(64), nullable=True),  # PEP 658 sidecar blob
    Column("requires_python", Text, nullable=True),
    Column("for_file", String(255), nullable=True),  # toxresults: the release file's name
    Column("log", JSON, nullable=False, default=list),
    # The hash whose prefix names the file's +f/ directory, when not its own (toxresults
    # live in their release file's directory).
    Column("dir_sha256", String(64), nullable=True),
    UniqueConstraint("index_id", "filename", name="uq_files_index_filename"),
    CheckConstraint(SHA256_CHECK.format(col="sha256"), name="ck_files_sha256"),
    CheckConstraint("kind in ('releasefile', 'doczip', 'toxresult')", name="ck_files_kind"),
)
Index("ix_files_index_project", files.c.index_id, files.c.project)

changes = Table(
    "changes",
    metadata,
    Column("serial", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("what", String(64), nullable=False),
    Column("detail", JSON, nullable=False),
)

# The audit trail: one row per recorded change, written in the change's own transaction
# (`Database.write`); `serial` is that change's. Kept: no automatic pruning.
audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("serial", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("token", String(200), nullable=True),
    Column("address", String(200), nullable=True),
    Column("action", String(64), nullable=False),
    Column("index_name", String(401), nullable=True),
    Column("project", String(200), nullable=True),
    Column("version", String(200), nullable=True),
    Column("filename", String(255), nullable=True),
    Column("detail", JSON, nullable=False),
)
Index("ix_audit_at", audit.c.at)
Index("ix_audit_actor", audit.c.actor, audit.c.id)
Index("ix_audit_index", audit.c.index_name, audit.c.id)

# A mirror's copy of one upstream project page: what it lists, and when it was fetched.
mirror_pages = Table(
    "mirror_pages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("index_id", Integer, ForeignKey("indexes.id", ondelete="CASCADE"), nullable=False),
    Column("project", String(200), nullable=False),
    Column("status", String(16), nullable=False),  # "ok" | "missing" (upstream said 404)
    Column("fetched_at", Float, nullable=False),
    Column("etag", Text, nullable=True),
    Column("last_modified", Text, nullable=True),
    Column("upstream_serial", BigInteger, nullable=True),
    Column("links", JSON, nullable=False),
    Column("project_status", JSON, nullable=True),  # the upstream's PEP 792 status, if stated
    UniqueConstraint("index_id", "project", name="uq_mirror_pages_project"),
    CheckConstraint("status in ('ok', 'missing')", name="ck_mirror_pages_status"),
)

# A mirror's copy of the upstream's whole project list, kept as a blob of names.
mirror_lists = Table(
    "mirror_lists",
    metadata,
    Column("index_id", Integer, ForeignKey("indexes.id", ondelete="CASCADE"), primary_key=True),
    Column("fetched_at", Float, nullable=False),
    Column("etag", Text, nullable=True),
    Column("names_sha256", String(64), nullable=False),
    Column("count", Integer, nullable=False),
)

settings = Table(
    "server_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
)

# Blobs that rows stopped pointing at during the current write transaction, noted by
# triggers (migration 0006); the transaction removes those no row needs before it commits.
released_blobs = Table(
    "released_blobs",
    metadata,
    Column("sha256", String(64), nullable=False),
)

# Scoped API tokens: the sha256 of each token's text, never the text; they die with their owner.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user", String(200), ForeignKey("users.name", ondelete="CASCADE"), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("indexes", JSON, nullable=False),  # ["user/name", ...] or ["*"]
    Column("actions", JSON, nullable=False),  # a subset of ["read", "upload", "admin"]
    Column("description", Text, nullable=False),
    Column("created", Float, nullable=False),
    Column("expires", Float, nullable=True),
    Column("last_used", Float, nullable=True),
    CheckConstraint(SHA256_CHECK.format(col="secret_sha256"), name="ck_api_tokens_sha256"),
)
Index("ix_api_tokens_user", api_tokens.c.user)

# Break-glass allowances past a mirror's cooldown (core/cooldown.py): a project, or one
# version of it (version NULL: every version); they die with their index.
exemptions = Table(
    "exemptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("index_id", Integer, ForeignKey("indexes.id", ondelete="CASCADE"), nullable=False),
    Column("project", String(200), nullable=False),
    Column("version", String(200), nullable=True),
    Column("reason", Text, nullable=False),
    Column("expires", Float, nullable=True),
    Column("created_by", String(200), nullable=False),
    Column("created", Float, nullable=False),
)
Index("ix_exemptions_project", exemptions.c.index_id, exemptions.c.project)
# PEP 792 status of a hosted project, set by its index's owner; no row: active.
project_statuses = Table(
    "project_statuses",
    metadata,
    Column("index_id", Integer, ForeignKey("indexes.id", ondelete="CASCADE"), primary_key=True),
    Column("project", String(200), primary_key=True),  # PEP 503 normalised
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("changed", Float, nullable=False),
    CheckConstraint(
        "status in ('deprecated', 'archived', 'quarantined')", name="ck_project_statuses_status"
    ),
)

# OSV advisories imported for the PyPI ecosystem: one row per (advisory, project it names).
advisories = Table(
    "advisories",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("project", String(200), primary_key=True),  # PEP 503 normalised
    Column("malicious", Integer, nullable=False),  # 1 for a MAL- advisory
    Column("data", JSON, nullable=False),  # core.advisories.Advisory.to_json
)
Index("ix_advisories_project", advisories.c.project)
