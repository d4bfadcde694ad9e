"""The initial registry: models, versions, pointers and the event log.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_models"),
    )
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("commit", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(128)),
        sa.Column("artifact_uri", sa.Text()),
        sa.Column("artifact_sha256", sa.String(128)),
        sa.Column("metrics", _json(), nullable=False),
        sa.Column("lock_hash", sa.String(128)),
        sa.Column("actor", sa.Text()),
        sa.Column("ci_url", sa.Text()),
        sa.Column("details", _json(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_versions"),
        sa.UniqueConstraint("version", name="uq_versions_version"),
        sa.ForeignKeyConstraint(["model"], ["models.name"], name="fk_versions_model_models"),
        sa.CheckConstraint("status IN ('training', 'ready', 'failed')", name="ck_versions_status"),
    )
    op.create_index("ix_versions_model_id", "versions", ["model", "id"])
    op.create_index("ix_versions_model_fingerprint", "versions", ["model", "fingerprint"])
    op.create_table(
        "pointers",
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.Column("actor", sa.Text()),
        sa.PrimaryKeyConstraint("model", "environment", name="pk_pointers"),
        sa.ForeignKeyConstraint(["model"], ["models.name"], name="fk_pointers_model_models"),
        sa.ForeignKeyConstraint(
            ["version"], ["versions.version"], name="fk_pointers_version_versions"
        ),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("time", _time(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("version", sa.String(128)),
        sa.Column("environment", sa.String(64)),
        sa.Column("from_version", sa.String(128)),
        sa.Column("to_version", sa.String(128)),
        sa.Column("commit", sa.String(64)),
        sa.Column("tag", sa.Text()),
        sa.Column("actor", sa.Text()),
        sa.Column("ci_url", sa.Text()),
        sa.Column("details", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_model_id", "events", ["model", "id"])
    op.create_index("ix_events_kind_id", "events", ["kind", "id"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("pointers")
    op.drop_table("versions")
    op.drop_table("models")
