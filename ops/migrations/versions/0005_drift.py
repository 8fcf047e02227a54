"""Drift routing state: incidents per fingerprint, the router's decisions, circuit breakers.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0005"
# The lead relinks the chain on merge (other branches add 0003 and 0004).
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE vigil.drift_incidents (
            fingerprint    text        PRIMARY KEY,
            source         text        NOT NULL,
            metric         text        NOT NULL,
            labels         jsonb       NOT NULL DEFAULT '{}'::jsonb,
            status         text        NOT NULL CHECK (status IN ('open', 'closed')),
            tier           text        NOT NULL CHECK (tier IN ('warning', 'critical')),
            opened_at      timestamptz NOT NULL,
            last_routed_at timestamptz,
            warnings       double precision[] NOT NULL DEFAULT '{}',
            last_event_id  text        NOT NULL,
            updated_at     timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX drift_incidents_open_critical ON vigil.drift_incidents (source)
            WHERE status = 'open' AND tier = 'critical';

        CREATE TABLE vigil.drift_decisions (
            event_id    text        PRIMARY KEY,
            fingerprint text        NOT NULL,
            source      text        NOT NULL,
            metric      text        NOT NULL,
            value       double precision NOT NULL,
            statistic   text        NOT NULL,
            score       double precision NOT NULL,
            severity    text        NOT NULL,
            tier        text,
            reason      text        NOT NULL,
            observed_at timestamptz NOT NULL,
            decided_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX drift_decisions_recent ON vigil.drift_decisions (fingerprint, observed_at DESC);

        CREATE TABLE vigil.drift_breakers (
            agent       text        NOT NULL,
            fingerprint text        NOT NULL,
            times       double precision[] NOT NULL DEFAULT '{}',
            open        boolean     NOT NULL DEFAULT false,
            reason      text        NOT NULL DEFAULT '',
            opened_at   timestamptz,
            PRIMARY KEY (agent, fingerprint)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE vigil.drift_breakers;
        DROP TABLE vigil.drift_decisions;
        DROP TABLE vigil.drift_incidents;
        """
    )
