"""The contract's tables in schema vigil.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE vigil.processed_events (
            agent        text        NOT NULL,
            event_id     text        NOT NULL,
            run_id       uuid        NOT NULL,
            processed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (agent, event_id)
        );
        CREATE INDEX processed_events_processed_at ON vigil.processed_events (processed_at);

        -- Column names of Debezium's Outbox Event Router, so the stock SMT reads this table.
        -- seq orders the in-worker relay; sent_at marks rows it has published.
        CREATE TABLE vigil.outbox (
            id              uuid        PRIMARY KEY,
            aggregatetype   text        NOT NULL,
            aggregateid     text        NOT NULL,
            type            text        NOT NULL,
            payload         jsonb,
            created_at      timestamptz NOT NULL DEFAULT now(),
            seq             bigint      GENERATED ALWAYS AS IDENTITY,
            source_event_id text,
            trace_id        text,
            sent_at         timestamptz
        );
        CREATE INDEX outbox_unsent ON vigil.outbox (seq) WHERE sent_at IS NULL;

        CREATE TABLE vigil.runs (
            run_id      uuid        PRIMARY KEY,
            agent       text        NOT NULL,
            event_id    text        NOT NULL,
            trigger     text        NOT NULL,
            status      text        NOT NULL
                CHECK (status IN ('running', 'succeeded', 'failed', 'duplicate', 'rejected', 'dead-lettered')),
            attempt     integer     NOT NULL DEFAULT 1,
            started_at  timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            error       text,
            trace       jsonb       NOT NULL DEFAULT '[]'::jsonb
        );
        CREATE INDEX runs_agent_started ON vigil.runs (agent, started_at DESC);
        CREATE INDEX runs_failed ON vigil.runs (started_at DESC) WHERE status IN ('failed', 'dead-lettered');

        CREATE TABLE vigil.heartbeats (
            name             text        PRIMARY KEY,
            every_seconds    double precision NOT NULL,
            grace_seconds    double precision NOT NULL DEFAULT 0,
            last_beat_at     timestamptz,
            next_expected_at timestamptz NOT NULL,
            status           text        NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'overdue', 'paused')),
            alerted_at       timestamptz,
            created_at       timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE vigil.schedules (
            id           text        PRIMARY KEY,
            kind         text        NOT NULL CHECK (kind IN ('cron', 'every', 'at', 'wakeup')),
            expression   text        NOT NULL,
            timezone     text        NOT NULL DEFAULT 'UTC',
            payload      jsonb       NOT NULL DEFAULT '{}'::jsonb,
            paused       boolean     NOT NULL DEFAULT false,
            next_fire_at timestamptz,
            last_fire_at timestamptz,
            created_at   timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX schedules_due ON vigil.schedules (next_fire_at) WHERE NOT paused;

        CREATE TABLE vigil.deliveries (
            sink         text        NOT NULL,
            outbox_id    uuid        NOT NULL,
            status       text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
            attempts     integer     NOT NULL DEFAULT 0,
            last_error   text,
            delivered_at timestamptz,
            created_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (sink, outbox_id)
        );

        CREATE TABLE vigil.reviews (
            id         uuid        PRIMARY KEY,
            agent      text        NOT NULL,
            event_id   text        NOT NULL,
            run_id     uuid        NOT NULL,
            reason     text        NOT NULL,
            proposed   jsonb       NOT NULL DEFAULT '[]'::jsonb,
            status     text        NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'approved', 'rejected')),
            decided_by text,
            decided_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX reviews_pending ON vigil.reviews (created_at) WHERE status = 'pending';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE vigil.reviews;
        DROP TABLE vigil.deliveries;
        DROP TABLE vigil.schedules;
        DROP TABLE vigil.heartbeats;
        DROP TABLE vigil.runs;
        DROP TABLE vigil.outbox;
        DROP TABLE vigil.processed_events;
        """
    )
