"""The installation: one id per database, named by every ledger record committed in it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE vigil.installation (
            singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
            id         uuid        NOT NULL DEFAULT gen_random_uuid(),
            created_at timestamptz NOT NULL DEFAULT now()
        );
        INSERT INTO vigil.installation DEFAULT VALUES;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE vigil.installation")
