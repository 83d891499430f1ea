"""Storage of the messenger: SQLAlchemy tables and queries (no Matrix rules here)."""
