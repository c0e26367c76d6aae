"""packages: a release's Python package environment, a function's entry kind

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 07:00:00

``releases.packages`` is the digest of the release's environment under
``$EDGE_HOME/envs/`` ("" when the app has no requirements.txt), so a rollback
brings back its packages. ``functions.kind`` is edge.toml's ``kind`` of a
Python entry ("" detects a handler, WSGI or ASGI app at load).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add releases.packages and functions.kind (empty for existing rows)."""
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("packages", sa.String(length=64), nullable=False, server_default=""))
    with op.batch_alter_table("functions") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=8), nullable=False, server_default=""))


def downgrade() -> None:
    """Drop both columns."""
    with op.batch_alter_table("functions") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("packages")
