"""secrets: sealed app secrets by app, environment name and variable name

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 06:40:00

Values are stored sealed (AES-256-GCM, see edge/keyring.py), never in plain text.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the secrets table."""
    op.create_table(
        "secrets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], name=op.f("fk_secrets_app_id_apps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets")),
        sa.UniqueConstraint(
            "app_id", "environment", "name", name=op.f("uq_secrets_app_id_environment_name")
        ),
    )


def downgrade() -> None:
    """Drop the secrets table (and every secret with it)."""
    op.drop_table("secrets")
