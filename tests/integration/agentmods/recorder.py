"""A test agent: one outbox row per event; raises for events marked ``fail``; rejected if ``reject``.

Its topic and name come from the test that starts the worker (``VIGIL_TEST_TOPIC``, ``VIGIL_TEST_AGENT``).
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import text

from agents.api import agent
from agents.context import Context, Output

TOPIC = os.environ.get("VIGIL_TEST_TOPIC", "test.recorder")
NAME = os.environ.get("VIGIL_TEST_AGENT", "recorder")
SLOW_MS = float(os.environ.get("VIGIL_TEST_SLOW_MS", "0"))
AGGREGATE = os.environ.get("VIGIL_TEST_AGGREGATE", "effects")


def no_rejects(event: Any, output: Output) -> bool | str:
    if isinstance(event.value, dict) and event.value.get("reject"):
        return "the event asked to be rejected"
    return True


@agent(TOPIC, name=NAME, validate=no_rejects, retries=3)
async def recorder(event: Any, ctx: Context) -> None:
    value = event.value
    if value.get("fail"):
        raise RuntimeError(f"handler fails for n={value['n']}")
    if value.get("touch_db"):
        await ctx.session.execute(text("SELECT 1"))
    route = "critical" if value.get("score", 0) >= 0.9 else "warning"
    ctx.step("route", tier=route)
    ctx.emit(AGGREGATE, key=str(value["n"]), payload={"n": value["n"], "tier": route})
    if SLOW_MS:
        import asyncio

        await asyncio.sleep(SLOW_MS / 1000)
