"""``vigil schedule add|list|remove|pause|resume``: schedules in ``vigil.schedules``.

Adding a schedule only writes its row (with its first slot as ``next_fire_at``); the scheduler in
every running worker fires it. Checks happen here, so a bad cron line or zone is refused before it
is stored.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from rich.console import Console

from ops.output import print_json, print_table
from ops.services import stack
from schemas.errors import ConfigurationError
from streams.schedule_maths import (
    Kind,
    Misfire,
    Overlap,
    Spec,
    check_cron,
    next_slot,
    parse_at,
    parse_duration,
    zone,
)
from streams.settings import Settings

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:")


def _url(settings: Settings) -> str:
    return stack.attach(settings).require_database_url()


def build_spec(
    *, cron: str | None, every: str | None, at: str | None, tz: str, now: datetime
) -> tuple[Spec, datetime]:
    """The schedule's spec and its first slot, from exactly one of --cron, --every, --at."""
    given = [name for name, value in (("--cron", cron), ("--every", every), ("--at", at)) if value]
    if len(given) != 1:
        raise ConfigurationError("give exactly one of --cron EXPR, --every DURATION or --at TIME")
    zone(tz)
    if cron:
        check_cron(cron)
        spec = Spec(Kind.CRON, cron, tz)
    elif every:
        parse_duration(every)
        spec = Spec(Kind.EVERY, every, tz, anchor=now.replace(microsecond=0))
    else:
        assert at is not None
        when = parse_at(at, tz, now=now)
        spec = Spec(Kind.AT, when.isoformat(), tz)
    first = next_slot(spec, now) if spec.kind != Kind.AT else datetime.fromisoformat(spec.expression)
    if first is None:
        raise ConfigurationError("the schedule has no slot in the future")
    return spec, first


def add(
    settings: Settings,
    console: Console,
    name: str,
    *,
    cron: str | None,
    every: str | None,
    at: str | None,
    tz: str,
    agent: str,
    payload: str | None,
    overlap: str,
    misfire: str,
    catch_up_window: str,
) -> None:
    if not name or set(name) - _NAME_CHARS or name.startswith("wakeup"):
        raise ConfigurationError(
            f"schedule name {name!r}: use letters, digits, '_', '.', '-', ':' (not starting with 'wakeup')"
        )
    try:
        overlap_policy = Overlap(overlap)
        misfire_policy = Misfire(misfire)
    except ValueError as exc:
        raise ConfigurationError(
            f"{exc}: --overlap is skip, buffer_one or allow; --misfire is run_once, skip or catch_up"
        ) from exc
    try:
        data: Any = json.loads(payload) if payload else {}
    except ValueError as exc:
        raise ConfigurationError(f"--payload is not JSON: {exc}") from exc
    window = parse_duration(catch_up_window).total_seconds()
    spec, first = build_spec(cron=cron, every=every, at=at, tz=tz, now=datetime.now(UTC))
    with psycopg.connect(_url(settings)) as conn:
        inserted = conn.execute(
            """
            INSERT INTO vigil.schedules (id, kind, expression, timezone, payload, next_fire_at, agent,
                                         overlap, misfire, catch_up_window_s, anchor_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (id) DO NOTHING RETURNING id
            """,
            (
                name,
                spec.kind.value,
                spec.expression,
                tz,
                Jsonb(data),
                first,
                agent,
                overlap_policy.value,
                misfire_policy.value,
                window,
                spec.anchor,
            ),
        ).fetchone()
    if inserted is None:
        raise ConfigurationError(f"a schedule named {name!r} exists: remove it first, or pick another name")
    console.print(f"schedule {name} added: next tick {first.isoformat()} to agent {agent}")


LIST_SQL = """
SELECT id, kind, expression, timezone, agent, overlap, misfire, paused, next_fire_at, last_fire_at,
       payload,
       (SELECT count(*) FROM vigil.schedule_slots s WHERE s.schedule = id AND s.status = 'fired') AS fired,
       (SELECT count(*) FROM vigil.schedule_slots s WHERE s.schedule = id AND s.status LIKE 'skipped%%')
           AS skipped
FROM vigil.schedules WHERE kind <> 'wakeup' OR %(wakeups)s ORDER BY next_fire_at NULLS LAST, id
"""


def list_schedules(settings: Settings, console: Console, *, as_json: bool, wakeups: bool) -> None:
    with psycopg.connect(_url(settings), row_factory=dict_row) as conn:
        items = conn.execute(LIST_SQL, {"wakeups": wakeups}).fetchall()
    if as_json:
        print_json(items)
        return
    print_table(
        console,
        "Schedules",
        ["name", "kind", "expression", "tz", "agent", "overlap", "misfire", "next fire", "fired", "skipped"],
        [
            [
                i["id"],
                i["kind"],
                i["expression"],
                i["timezone"],
                i["agent"] or "",
                i["overlap"],
                i["misfire"],
                "paused" if i["paused"] else (i["next_fire_at"].isoformat() if i["next_fire_at"] else "done"),
                str(i["fired"]),
                str(i["skipped"]),
            ]
            for i in items
        ],
    )


def remove(settings: Settings, console: Console, name: str) -> None:
    with psycopg.connect(_url(settings)) as conn:
        gone = conn.execute("DELETE FROM vigil.schedules WHERE id = %s RETURNING id", (name,)).fetchone()
        conn.execute("DELETE FROM vigil.heartbeats WHERE name = %s", (f"schedule:{name}",))
    if gone is None:
        raise ConfigurationError(f"no schedule named {name!r} (see `vigil schedule list`)")
    console.print(f"schedule {name} removed")


def set_paused(settings: Settings, console: Console, name: str, *, paused: bool) -> None:
    """Pause or resume. Resuming goes on from now: the slots of the pause are not fired, whatever the
    misfire policy (a pause is deliberate, not an outage)."""
    now = datetime.now(UTC)
    with psycopg.connect(_url(settings), row_factory=dict_row) as conn:
        row = conn.execute("SELECT * FROM vigil.schedules WHERE id = %s FOR UPDATE", (name,)).fetchone()
        if row is None:
            raise ConfigurationError(f"no schedule named {name!r} (see `vigil schedule list`)")
        next_fire = row["next_fire_at"]
        last_slot = row["last_slot_at"]
        if not paused and row["paused"] and row["kind"] != Kind.AT:
            spec = Spec(Kind(row["kind"]), row["expression"], row["timezone"], row["anchor_at"])
            next_fire = next_slot(spec, now)
            last_slot = now
        conn.execute(
            "UPDATE vigil.schedules SET paused = %s, next_fire_at = %s, last_slot_at = %s WHERE id = %s",
            (paused, next_fire, last_slot, name),
        )
        conn.execute(
            "UPDATE vigil.heartbeats SET status = %s WHERE name = %s",
            ("paused" if paused else "ok", f"schedule:{name}"),
        )
    console.print(f"schedule {name} {'paused' if paused else 'resumed'}")
