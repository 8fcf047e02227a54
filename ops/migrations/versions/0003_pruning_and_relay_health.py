"""Indexes for pruning by age; ``heartbeats.detail`` for the state behind a heartbeat.

The outbox relay beats ``relay:<app_id>`` and keeps its counters and last error in ``detail``
(``vigil status`` shows them). Pruning deletes by a time column in batches: without an index
each batch would scan the whole table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE vigil.heartbeats ADD COLUMN detail jsonb;
        CREATE INDEX outbox_sent_at ON vigil.outbox (sent_at) WHERE sent_at IS NOT NULL;
        CREATE INDEX outbox_created_at ON vigil.outbox (created_at);
        CREATE INDEX runs_started_at ON vigil.runs (started_at);
        CREATE INDEX deliveries_created_at ON vigil.deliveries (created_at) WHERE status <> 'pending';
        CREATE INDEX reviews_decided_at ON vigil.reviews (decided_at) WHERE status <> 'pending';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX vigil.reviews_decided_at;
        DROP INDEX vigil.deliveries_created_at;
        DROP INDEX vigil.runs_started_at;
        DROP INDEX vigil.outbox_created_at;
        DROP INDEX vigil.outbox_sent_at;
        ALTER TABLE vigil.heartbeats DROP COLUMN detail;
        """
    )
