"""Alembic environment: runs on a connection handed in by conf.migrate."""

from __future__ import annotations

from alembic import context

from conf.migrate import all_metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=all_metadata(),
    render_as_batch=True,  # SQLite needs batch mode for ALTER TABLE
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
