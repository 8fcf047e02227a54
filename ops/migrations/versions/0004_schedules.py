"""Schedules that fire: target agent, overlap and misfire policies, claimed slots; watches.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE vigil.schedules
            ADD COLUMN agent             text,
            ADD COLUMN overlap           text NOT NULL DEFAULT 'skip'
                CHECK (overlap IN ('skip', 'buffer_one', 'allow')),
            ADD COLUMN misfire           text NOT NULL DEFAULT 'run_once'
                CHECK (misfire IN ('run_once', 'skip', 'catch_up')),
            ADD COLUMN catch_up_window_s double precision NOT NULL DEFAULT 3600,
            ADD COLUMN anchor_at         timestamptz,
            -- the last slot decided (fired or skipped): slots after it are new
            ADD COLUMN last_slot_at      timestamptz,
            -- the tick of the last fired slot, until its run commits (overlap policy)
            ADD COLUMN inflight_event_id text,
            ADD COLUMN buffered_slot_at  timestamptz;
        -- rows a scheduler must look at: due, or holding a buffered slot
        CREATE INDEX schedules_buffered ON vigil.schedules (id) WHERE buffered_slot_at IS NOT NULL;

        -- One row per decided slot: the primary key is the claim, so two schedulers (or a restart)
        -- never fire one slot twice.
        CREATE TABLE vigil.schedule_slots (
            schedule   text        NOT NULL REFERENCES vigil.schedules (id) ON DELETE CASCADE,
            slot_time  timestamptz NOT NULL,
            status     text        NOT NULL
                CHECK (status IN ('fired', 'skipped_overlap', 'skipped_missed', 'buffered')),
            event_id   text,
            decided_by text,
            decided_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (schedule, slot_time)
        );

        CREATE TABLE vigil.watches (
            name             text        PRIMARY KEY,
            topic            text        NOT NULL,
            predicate        text        NOT NULL,
            deadline         timestamptz NOT NULL,
            timezone         text        NOT NULL DEFAULT 'UTC',
            agent            text        NOT NULL,
            state            text        NOT NULL DEFAULT 'armed'
                CHECK (state IN ('armed', 'matched', 'expired', 'handed_off')),
            matched_event_id text,
            matched_event    jsonb,
            matched_at       timestamptz,
            expired_at       timestamptz,
            handed_off_at    timestamptz,
            created_at       timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX watches_open ON vigil.watches (deadline) WHERE state IN ('armed', 'matched');
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE vigil.watches;
        DROP TABLE vigil.schedule_slots;
        DROP INDEX vigil.schedules_buffered;
        ALTER TABLE vigil.schedules
            DROP COLUMN agent, DROP COLUMN overlap, DROP COLUMN misfire, DROP COLUMN catch_up_window_s,
            DROP COLUMN anchor_at, DROP COLUMN last_slot_at, DROP COLUMN inflight_event_id,
            DROP COLUMN buffered_slot_at;
        """
    )
