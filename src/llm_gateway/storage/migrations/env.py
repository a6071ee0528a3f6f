"""Alembic environment: always online, on the connection ``storage.migrate`` hands over.

The gateway runs migrations itself at start-up (``SqlStorage.start``), inside its own
async engine via ``run_sync``, so this file never builds an engine or reads an ini file.
"""

from __future__ import annotations

from alembic import context

from llm_gateway.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table when a later
    # migration needs it.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
