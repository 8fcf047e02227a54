"""The demo's agents, loaded by ``vigil up --demo``.

- ``order-watch`` watches ``public.orders`` through CDC and notifies about failed orders (the shape
  of the ARCHITECTURE.md example, for real). Its trace keeps the change's commit time (Debezium's
  ``source.ts_ms``), from which the demo measures CDC latency.
- ``demo-ticker`` runs the demo's schedule ticks; on the first tick of a schedule whose payload asks
  for it (``wake_in_s``), it sets itself one wakeup, which comes back to it as a ``wakeup`` tick.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from agents.api import agent
from agents.context import Context
from streams.catalog import TICKS

ORDERS_TOPIC = "cdc.public.orders"
TICKER = "demo-ticker"


@agent(ORDERS_TOPIC, name="order-watch")
async def order_watch(event: Any, ctx: Context) -> None:
    after = event.after
    if event.op not in ("c", "u", "r") or not after:
        return
    became_failed = after.get("status") == "failed" and (event.before or {}).get("status") != "failed"
    ctx.step(
        "inspect",
        order=after.get("id"),
        status=after.get("status"),
        op=event.op,
        committed_ms=(event.source or {}).get("ts_ms"),
    )
    if became_failed:
        ctx.step("notify", reason="order failed")
        ctx.emit(
            "notifications",
            key=str(after["id"]),
            payload={
                "order": after["id"],
                "customer": after.get("customer"),
                "amount": after.get("amount"),
                "batch": after.get("batch"),
                "text": f"order {after['id']} of {after.get('customer')} failed",
            },
        )


@agent(TICKS, name=TICKER, retries=1)
async def demo_ticker(event: Any, ctx: Context) -> None:
    payload = json.loads(event.payload) if event.payload else {}
    if event.kind == "wakeup":
        ctx.step("woken", by=payload.get("by"), slot=str(event.slot_time))
        return
    ctx.step("tick", schedule=event.schedule_id, slot=str(event.slot_time))
    wake_in = payload.get("wake_in_s")
    if wake_in is None:
        return
    already = await ctx.session.execute(
        text(
            "SELECT 1 FROM vigil.schedules WHERE kind = 'wakeup' AND agent = :agent "
            "AND payload->>'by' = :schedule LIMIT 1"
        ),
        {"agent": ctx.agent, "schedule": event.schedule_id},
    )
    if already.first() is None:
        wake_id = ctx.wake_in(seconds=float(wake_in), payload={"by": event.schedule_id})
        ctx.step("wakeup set", id=wake_id, in_s=wake_in)
