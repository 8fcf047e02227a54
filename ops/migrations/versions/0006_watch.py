"""Vigil watching itself: ``vigil.alerts``, one row per alert subject (an overdue heartbeat, an
agent failing run after run), open or resolved.

The row is how several workers raise one alert: a monitor claims it (``INSERT … ON CONFLICT … WHERE
status = 'resolved' RETURNING``) in the transaction in which it publishes the alert; a second
monitor waits for that transaction and then finds the alert open. ``since`` names the incident (the
heartbeat overdue since, the streak's first failure): the alert's event ids derive from it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE vigil.alerts (
            key               text        PRIMARY KEY,
            kind              text        NOT NULL CHECK (kind IN ('absence', 'repeated-failures')),
            subject           text        NOT NULL,
            status            text        NOT NULL CHECK (status IN ('open', 'resolved')),
            since             timestamptz NOT NULL,
            event_id          text        NOT NULL,
            opened_at         timestamptz NOT NULL DEFAULT now(),
            resolved_at       timestamptz,
            resolved_event_id text,
            detail            jsonb       NOT NULL DEFAULT '{}'::jsonb
        );
        CREATE INDEX alerts_open ON vigil.alerts (opened_at) WHERE status = 'open';
        CREATE INDEX runs_agent_finished ON vigil.runs (agent, finished_at DESC);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX vigil.runs_agent_finished;
        DROP TABLE vigil.alerts;
        """
    )
