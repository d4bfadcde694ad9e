"""Alembic migrations of the registry schema, run programmatically by `SqlRegistry.upgrade()`.

`HEAD` lets a registry see that its schema is current with one query and without importing
alembic; a test checks that it names the newest script in `versions/`.
"""

HEAD = "0003"
