"""The demo's agent: watches ``public.orders`` through CDC and notifies about failed orders.

Loaded by ``vigil up --demo``; the shape of the ARCHITECTURE.md example, for real.
"""

from __future__ import annotations

from typing import Any

from agents.api import agent
from agents.context import Context

ORDERS_TOPIC = "cdc.public.orders"


@agent(ORDERS_TOPIC, name="order-watch")
async def order_watch(event: Any, ctx: Context) -> None:
    after = event.after
    if event.op not in ("c", "u", "r") or not after:
        return
    became_failed = after.get("status") == "failed" and (event.before or {}).get("status") != "failed"
    ctx.step("inspect", order=after.get("id"), status=after.get("status"), op=event.op)
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
