"""A test agent that closes a remediation loop: each remediation it sees on
``vigil.outbox.<VIGIL_TEST_LOOP_AGGREGATE>`` makes the same metric drift again (a new critical
event on ``drift.events``, one second later), as a bad rollback would."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from agents.api import agent
from agents.context import Context
from schemas.codec import Codec
from streams.catalog import DRIFT_EVENTS, outbox_topic
from streams.drift_events import drift_record

AGGREGATE = os.environ.get("VIGIL_TEST_LOOP_AGGREGATE", "remediation")
CODEC = Codec()


@agent(outbox_topic(AGGREGATE), name=os.environ.get("VIGIL_TEST_AGENT", "drift-loop") + "-loop")
async def drift_again(event: Any, ctx: Context) -> None:
    action = event.value
    at = datetime.fromisoformat(action["observed_at"]) + timedelta(seconds=1)
    record = drift_record(
        source=action["source"],
        metric=action["metric"],
        value=action["value"],
        severity="critical",
        labels=action["labels"],
        observed_at=at,
        fp=action["fingerprint"],
        event_id=f"{ctx.event_id}/{ctx.agent}/0",
    )
    ctx.send(DRIFT_EVENTS, CODEC.encode("DriftEvent", record), key=action["fingerprint"].encode())
