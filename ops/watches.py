"""``vigil watch add|list|remove``: future conditions on a topic, with a deadline.

The predicate is checked when the watch is added (:mod:`streams.predicates`), so a watch that can
never be evaluated is never stored. The watch runner in every worker does the rest.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg.rows import dict_row
from rich.console import Console

from ops.output import print_json, print_table
from ops.services import stack
from schemas.errors import ConfigurationError
from streams.naming import topic_name_problem
from streams.predicates import parse
from streams.schedule_maths import next_wall_time, zone
from streams.settings import Settings


def _url(settings: Settings) -> str:
    return stack.attach(settings).require_database_url()


def add(
    settings: Settings, console: Console, name: str, *, topic: str, match: str, by: str, tz: str, agent: str
) -> None:
    problem = topic_name_problem(topic)
    if problem is not None:
        raise ConfigurationError(f"--topic: {problem}")
    parse(match)
    zone(tz)
    deadline = next_wall_time(by, tz, datetime.now(UTC))
    with psycopg.connect(_url(settings)) as conn:
        inserted = conn.execute(
            "INSERT INTO vigil.watches (name, topic, predicate, deadline, timezone, agent) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING RETURNING name",
            (name, topic, match, deadline, tz, agent),
        ).fetchone()
    if inserted is None:
        raise ConfigurationError(f"a watch named {name!r} exists: remove it first, or pick another name")
    console.print(f"watch {name} armed on {topic} until {deadline.isoformat()}; a match goes to {agent}")


def list_watches(settings: Settings, console: Console, *, as_json: bool) -> None:
    with psycopg.connect(_url(settings), row_factory=dict_row) as conn:
        items = conn.execute(
            "SELECT name, topic, predicate, deadline, timezone, agent, state, matched_event_id, matched_at, "
            "expired_at, handed_off_at, created_at FROM vigil.watches ORDER BY deadline"
        ).fetchall()
    if as_json:
        print_json(items)
        return
    print_table(
        console,
        "Watches",
        ["name", "topic", "match", "deadline", "agent", "state"],
        [
            [i["name"], i["topic"], i["predicate"], i["deadline"].isoformat(), i["agent"], i["state"]]
            for i in items
        ],
    )


def remove(settings: Settings, console: Console, name: str) -> None:
    with psycopg.connect(_url(settings)) as conn:
        gone = conn.execute("DELETE FROM vigil.watches WHERE name = %s RETURNING name", (name,)).fetchone()
    if gone is None:
        raise ConfigurationError(f"no watch named {name!r} (see `vigil watch list`)")
    console.print(f"watch {name} removed")
