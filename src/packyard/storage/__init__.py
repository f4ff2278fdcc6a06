"""Persistence: the metadata database (SQLAlchemy Core) and the content-addressed blob store."""
