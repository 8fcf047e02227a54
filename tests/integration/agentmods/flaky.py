"""Two test agents that fail on demand (``{"fail": true}``), each on its own topic, tried once.

``<VIGIL_TEST_AGENT>-a`` alerts after the default 3 failures in a row, ``-b`` after 5 (its own setting).
"""

from __future__ import annotations

import os
from typing import Any

from agents.api import agent
from agents.context import Context

TOPIC = os.environ.get("VIGIL_TEST_TOPIC", "test.flaky")
NAME = os.environ.get("VIGIL_TEST_AGENT", "flaky")


async def _maybe_fail(event: Any, ctx: Context) -> None:
    if isinstance(event.value, dict) and event.value.get("fail"):
        raise RuntimeError(f"asked to fail: {event.value.get('n')}")
    ctx.step("ok")


@agent(f"{TOPIC}.a", name=f"{NAME}-a", retries=1)
async def flaky_a(event: Any, ctx: Context) -> None:
    await _maybe_fail(event, ctx)


@agent(f"{TOPIC}.b", name=f"{NAME}-b", retries=1, alert_after_failures=5)
async def flaky_b(event: Any, ctx: Context) -> None:
    await _maybe_fail(event, ctx)
