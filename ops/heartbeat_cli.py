"""``vigil heartbeat expect|beat|list|remove``: dead-man's switches for jobs outside Vigil.

``expect NAME --every D --grace D`` declares that NAME beats every D; ``beat NAME`` beats it (a
cron job ends with it, or ``curl -X POST …/heartbeat/NAME``); the worker's absence monitor raises
one critical alert when a beat is ``grace`` late, and one ``resolved`` when beats return.
``remove NAME`` forgets a decommissioned job and resolves its open alert.
"""

from __future__ import annotations

from rich.console import Console
from sqlalchemy import Engine

from agents import heartbeats
from agents.db import as_engine
from ops.output import print_json, print_table
from ops.services import stack
from streams.drift_publish import DriftPublisher
from streams.settings import Settings
from streams.watch import parse_duration


def _engine(settings: Settings) -> Engine:
    return as_engine(stack.attach(settings).require_database_url())


def expect(settings: Settings, console: Console, name: str, *, every: str, grace: str) -> None:
    every_s, grace_s = parse_duration(every), parse_duration(grace)
    engine = _engine(settings)
    try:
        row = heartbeats.expect(engine, name, every_s=every_s, grace_s=grace_s)
    finally:
        engine.dispose()
    console.print(
        f"heartbeat {name}: a beat every {every_s:g}s, alert {grace_s:g}s after a miss; "
        f"next expected by {row['next_expected_at']:%Y-%m-%d %H:%M:%S%z}"
    )


def beat(settings: Settings, console: Console, name: str) -> None:
    engine = _engine(settings)
    try:
        row = heartbeats.beat(engine, name)
    finally:
        engine.dispose()
    console.print(f"heartbeat {name}: beat; next expected by {row['next_expected_at']:%Y-%m-%d %H:%M:%S%z}")


def list_all(settings: Settings, console: Console, *, as_json: bool) -> bool:
    """Print every heartbeat, overdue ones first; return False when one is overdue."""
    engine = _engine(settings)
    try:
        entries = heartbeats.list_heartbeats(engine)
    finally:
        engine.dispose()
    if as_json:
        print_json(entries)
    else:
        print_table(
            console,
            "Heartbeats (vigil.heartbeats)",
            ["name", "kind", "state", "every (s)", "grace (s)", "last beat", "next expected"],
            [
                [
                    e["name"],
                    e["kind"],
                    e["state"],
                    f"{e['every_seconds']:g}",
                    f"{e['grace_seconds']:g}",
                    str(e["last_beat_at"] or "never"),
                    e["next_expected_at"],
                ]
                for e in entries
            ],
        )
    return not any(e["state"] == "overdue" for e in entries)


def remove(settings: Settings, console: Console, name: str) -> None:
    """Remove heartbeat NAME; its open alert is resolved (published to drift.events) in the same step."""
    resolved = stack.attach(settings)
    engine = as_engine(resolved.require_database_url())
    publisher = DriftPublisher(resolved)
    try:
        ids = heartbeats.remove(engine, name, publisher.publish_records)
    finally:
        publisher.close()
        engine.dispose()
    console.print(f"heartbeat {name}: removed")
    for event_id in ids:
        console.print(f"  its open alert is resolved: {event_id}")
