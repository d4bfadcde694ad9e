"""Shadows: the candidate version each environment's endpoint mirrors a share of its requests
to (`modelci deploy --shadow`), kept in the registry so that every host following it agrees.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shadows",
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("event", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text()),
        sa.PrimaryKeyConstraint("model", "environment", name="pk_shadows"),
        sa.ForeignKeyConstraint(["model"], ["models.name"], name="fk_shadows_model_models"),
        sa.ForeignKeyConstraint(
            ["version"], ["versions.version"], name="fk_shadows_version_versions"
        ),
    )


def downgrade() -> None:
    op.drop_table("shadows")
