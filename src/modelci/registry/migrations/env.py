"""Alembic's entry point for the registry: online only, on the connection modelci hands over.

`SqlRegistry` opens the transaction (and takes the migration lock) itself, so alembic runs
inside it and commits nothing on its own.
"""

from __future__ import annotations

from alembic import context

from modelci.registry.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the modelci registry migrates itself: run `modelci registry upgrade`, not alembic"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters tables by copying them; batch mode does that for later migrations.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
