"""Test agents on ``vigil.ticks``: ``VIGIL_TEST_AGENT`` records every tick it runs, and a second
agent (``<name>-other``) records any tick it receives, to show ticks reach only the named agent.

Each run writes a ``public.tick_runs`` row through ``ctx.session`` (schedule, slot, event id, start
and end of the handler). A tick's JSON payload drives it: ``sleep_ms`` sleeps in the handler,
``wake_in_s`` sets a wakeup (payload ``{"woken": true}``), ``fail`` raises after setting it (the
run rolls back, so the wakeup must never fire).
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from agents.api import agent
from agents.context import Context

NAME = os.environ.get("VIGIL_TEST_AGENT", "ticker")

TABLES = """
CREATE TABLE IF NOT EXISTS public.tick_runs (
    agent text NOT NULL, event_id text NOT NULL, schedule text NOT NULL, kind text NOT NULL,
    slot_time timestamptz NOT NULL, started_at timestamptz NOT NULL, finished_at timestamptz NOT NULL,
    payload jsonb
);
"""


async def _record(event: Any, ctx: Context, started: datetime) -> None:
    await ctx.session.execute(
        text(
            "INSERT INTO public.tick_runs VALUES "
            "(:agent, :event_id, :schedule, :kind, :slot, :started, :finished, CAST(:payload AS jsonb))"
        ),
        {
            "agent": ctx.agent,
            "event_id": event.event_id,
            "schedule": event.schedule_id,
            "kind": event.kind,
            "slot": event.slot_time,
            "started": started,
            "finished": datetime.now(UTC),
            "payload": event.payload,
        },
    )


@agent("vigil.ticks", name=NAME, retries=1)
async def ticker(event: Any, ctx: Context) -> None:
    started = datetime.now(UTC)
    payload = json.loads(event.payload) if event.payload else {}
    if payload.get("sleep_ms"):
        await asyncio.sleep(payload["sleep_ms"] / 1000)
    if payload.get("wake_in_s") is not None:
        ctx.wake_in(seconds=payload["wake_in_s"], payload={"woken": True, "by": event.schedule_id})
    if payload.get("fail"):
        raise RuntimeError("this run fails after setting a wakeup")
    await _record(event, ctx, started)


@agent("vigil.ticks", name=f"{NAME}-other", retries=1)
async def other(event: Any, ctx: Context) -> None:
    await _record(event, ctx, datetime.now(UTC))
