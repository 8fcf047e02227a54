"""The work every variant of ``bench_agents`` does, shared so that it is the same by construction.

Pure (no Kafka, no database client): the event's route, its outbox row, and the SQL the peers run.
Every variant writes into a freshly migrated Vigil schema: ``vigil.processed_events`` (primary
key ``(agent, event_id)``, so ``ON CONFLICT DO NOTHING`` is the exactly-once check) and
``vigil.outbox`` (the side effect). The Vigil agent (:mod:`bench.agentmods.route`) calls the same
functions through ``ctx.emit``.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Mapping, Sequence
from typing import Any

EVENT_ID_HEADER = "vigil-event-id"
AGGREGATE = "bench"
CRITICAL_SCORE = 0.9


def route_of(event: dict[str, Any]) -> str:
    """The tier an event goes to."""
    return "critical" if event.get("score", 0.0) >= CRITICAL_SCORE else "warning"


def outbox_key(event: dict[str, Any]) -> str:
    return str(event["service"])


def outbox_payload(event: dict[str, Any], route: str) -> dict[str, Any]:
    return {"id": event["id"], "route": route, "score": event["score"]}


def event_id_of(headers: Sequence[tuple[str, bytes | None]] | Mapping[str, bytes] | None) -> str:
    items = headers.items() if isinstance(headers, Mapping) else headers or ()
    for name, value in items:
        if name == EVENT_ID_HEADER and value:
            return value.decode()
    raise ValueError(f"event without a {EVENT_ID_HEADER} header")


# Per-row statements (loop (1) and the Faust per-event agent (3)).
INSERT_PROCESSED = (
    "INSERT INTO vigil.processed_events (agent, event_id, run_id) VALUES (%s, %s, gen_random_uuid()) "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)
INSERT_OUTBOX = (
    "INSERT INTO vigil.outbox (id, aggregatetype, aggregateid, type, payload, source_event_id) "
    "VALUES (gen_random_uuid(), %s, %s, %s, %s::jsonb, %s)"
)
# Set-based statements (loop (2)).
INSERT_PROCESSED_SET = (
    "INSERT INTO vigil.processed_events (agent, event_id, run_id) "
    "SELECT %s, e, gen_random_uuid() FROM unnest(%s::text[]) AS t(e) "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)
COPY_OUTBOX = "COPY vigil.outbox (id, aggregatetype, aggregateid, type, payload, source_event_id) FROM STDIN"


def peer_arguments(description: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--agent", required=True, help="the agent column of processed_events")
    parser.add_argument("--batch", type=int, default=500)
    return parser.parse_args()


def consumer_config(args: argparse.Namespace) -> dict[str, Any]:
    """A plain consumer: offsets committed by the loop, after its database commit."""
    return {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }


def stop_on_sigterm() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop
