"""Pointers carry the intent of the deploy that moved them until it ends (`pending`), so that
a deploy killed before its health check is finished by the next command or the host.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pointers") as batch:
        batch.add_column(
            sa.Column("pending", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"))
        )


def downgrade() -> None:
    with op.batch_alter_table("pointers") as batch:
        batch.drop_column("pending")
