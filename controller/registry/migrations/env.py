"""Alembic environment: always run with a connection handed in by jetfleet (see db.migrate)."""

from __future__ import annotations

from alembic import context

from jetfleet.controller.fleet import schema as _fleet_schema  # noqa: F401 - registers the fleet tables
from jetfleet.controller.registry.schema import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
